// MPIAutoAttackStateTests.swift: `memloss eval --attack autoattack --state FILE` under `mpirun -np 2`
// (docs/distributed.md §5): each rank keeps `FILE.rank-<r>` for its shard of the points; a job killed
// mid-cascade resumes from them and reports exactly one uninterrupted process's cascade; a launch
// with another world size is refused through the agreement (a normal exit naming the state file).
// Skipped when `mpirun` is not on PATH.

import Foundation
import XCTest
import _TestSupport

final class MPIAutoAttackStateTests: XCTestCase {
    /// The cascade's figures of an AutoAttack JSON report: n, clean and robust accuracy, each
    /// attack's attacked and broken counts (times and PGD-20, whose starts are per batch, left out).
    private func cascade(_ path: String) throws -> [String] {
        let o = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        let attacks = (o["attacks"] as? [[String: Any]] ?? []).map { "\($0["attack"] ?? "?") \($0["attacked"] ?? "?") \($0["broken"] ?? "?")" }
        return ["n \(o["n"] ?? "?")", "clean \(o["cleanAccuracy"] ?? "?")", "robust \(o["robustAccuracy"] ?? "?")"] + attacks
    }

    func test_autoAttackState_underTwoRanks_resumesAKilledJob_toOneProcesssCounts() throws {
        _ = try MPILaunch.requireMPI()
        let dir = TempDirectory()
        let run = dir.url.appendingPathComponent("run")
        let t = try MPILaunch.plain(["train", "--out", run.path, "--method", "standard", "--epochs", "2", "--train-samples", "1024",
                                     "--batch-size", "32", "--validation-size", "64", "--validation-samples", "32",
                                     "--test-samples", "16"])
        XCTAssertEqual(t.status, 0, t.err)
        let ck = run.appendingPathComponent("checkpoints/last.safetensors").path
        let args = ["eval", "--checkpoint", ck, "--n", "12", "--attack", "autoattack", "--version", "fast", "--epsilon", "0.1",
                    "--batch-size", "2"]
        let reference = dir.url.appendingPathComponent("one.json").path
        let one = try MPILaunch.plain(args + ["--output", reference])
        XCTAssertEqual(one.status, 0, one.err)

        // Rank 1 kills itself after its 2nd attack batch (its state saved); Open MPI ends the job.
        let state = dir.url.appendingPathComponent("aa.state").path
        let killed = try MPILaunch.run(args + ["--state", state],
                                       rankEnvironments: [[:], ["MEMLOSS_KILL_AT": "autoattack.afterBatch#2"]], timeout: 120)
        XCTAssertFalse(killed.timedOut, "the job hung after rank 1 died")
        XCTAssertNotEqual(killed.status, 0, "rank 1 was killed: the job must fail")
        for r in 0..<2 { XCTAssertTrue(FileManager.default.fileExists(atPath: "\(state).rank-\(r)"), "rank \(r)'s state file") }
        XCTAssertFalse(FileManager.default.fileExists(atPath: state), "under mpirun the ranks keep FILE.rank-<r> only")

        let resumedPath = dir.url.appendingPathComponent("two.json").path
        let resumed = try MPILaunch.run(args + ["--state", state, "--output", resumedPath], rankEnvironments: [[:], [:]], timeout: 120)
        XCTAssertEqual(resumed.status, 0, resumed.err)
        let a = try cascade(reference), b = try cascade(resumedPath)
        XCTAssertEqual(b, a, "the resumed 2-rank cascade must equal one uninterrupted process's")
        XCTAssertTrue(a.contains("n 12"), "\(a)")
        XCTAssertFalse(a.first { $0.hasPrefix("apgd-ce") }?.hasSuffix(" 0") ?? true, "APGD-CE should break some points: \(a)")
        let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: resumedPath))) as? [String: Any])
        XCTAssertEqual(report["resumed"] as? Bool, true, "the report says it continued from state files")

        // Three ranks find two-rank state files: rank 0's and rank 1's shards no longer match
        // theirs. Refused through the agreement: status 1, the state file named, no MPI_Abort.
        let three = try MPILaunch.run(args + ["--state", state], rankEnvironments: [[:], [:], [:]], timeout: 120)
        XCTAssertFalse(three.timedOut)
        XCTAssertEqual(three.status, 1, three.err)
        XCTAssertTrue(three.err.contains("aa.state.rank-"), three.err)
        XCTAssertFalse(three.err.contains("MPI_ABORT"), three.err)
    }
}
