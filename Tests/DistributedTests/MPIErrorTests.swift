// MPIErrorTests.swift: `mpirun -np 2` launches of the built `memloss` whose flags or files are wrong
// (docs/distributed.md §7): a flag the parser rejects, a value the config rejects, a missing data
// file, a problem only rank 0 meets. Each must end every rank through a normal exit with a non-zero
// status, say the error once (rank 0's; rank 1's parser error at most once more, tagged), and never
// print Open MPI's MPI_Abort banner or hang. Skipped when `mpirun` is not on PATH.

import Foundation
import XCTest
import _TestSupport

final class MPIErrorTests: XCTestCase {
    /// Open MPI's banner when a rank calls MPI_Abort ("MPI_ABORT was invoked on rank 1 …"), and the
    /// line memloss printed before it used to abort.
    static let abortMarkers = ["MPI_ABORT", "MPI_Abort", "stopping every rank"]

    private func occurrences(_ needle: String, in text: String) -> Int { text.components(separatedBy: needle).count - 1 }

    private func assertEndedNormally(_ r: MPILaunch.Outcome, status: Int32? = nil, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertFalse(r.timedOut, "the ranks hung (\(r.seconds) s):\n\(r.err)", file: file, line: line)
        XCTAssertNotEqual(r.status, 0, r.err, file: file, line: line)
        if let status { XCTAssertEqual(r.status, status, r.err, file: file, line: line) }
        for marker in Self.abortMarkers {
            XCTAssertFalse(r.err.contains(marker) || r.out.contains(marker), "\(marker) in:\n\(r.err)", file: file, line: line)
        }
    }

    /// An unknown flag: the parser rejects it on every rank before MPI starts. Rank 0 prints the
    /// parser's message with the usage, rank 1 at most one tagged line; the exit status is the
    /// parser's (64, EX_USAGE).
    func test_anUnknownFlagOnEveryRank_isSaidOnce_andEndsEveryRankNormally() throws {
        let r = try MPILaunch.run(["train", "--bogus"], rankEnvironments: [[:], [:]], timeout: 60)
        assertEndedNormally(r, status: 64)
        XCTAssertGreaterThanOrEqual(occurrences("Unknown option '--bogus'", in: r.err), 1, r.err)
        XCTAssertLessThanOrEqual(occurrences("Unknown option '--bogus'", in: r.err), 2, r.err)
        XCTAssertLessThanOrEqual(occurrences("Usage:", in: r.err), 1, "the usage is rank 0's alone:\n\(r.err)")
        XCTAssertLessThanOrEqual(occurrences("memloss (rank 1): Error: Unknown option '--bogus'", in: r.err), 1, r.err)
    }

    /// A value the flag check rejects (`--epsilon 2`) and a data file that does not exist: every rank
    /// meets the same error, the ranks agree, rank 0 says it once, every rank exits with status 1.
    func test_aBadValueOrAMissingDataFile_onEveryRank_isSaidOnceByRank0_withStatus1() throws {
        let dir = TempDirectory()
        let cases: [(args: [String], message: String)] = [
            (["--epsilon", "2"], "--epsilon '2': expected a number in [0, 1]"),
            (["--data", "mnist:\(dir.url.path)/no-such-dir"], "no-such-dir"),
        ]
        for (extra, message) in cases {
            let out = dir.url.appendingPathComponent("run-\(extra[0].dropFirst(2))")
            let r = try MPILaunch.run(["train", "--out", out.path, "--epochs", "1"] + extra, rankEnvironments: [[:], [:]], timeout: 60)
            assertEndedNormally(r, status: 1)
            XCTAssertEqual(occurrences(message, in: r.err), 1, "\(extra): said once:\n\(r.err)")
            XCTAssertTrue(r.err.contains("memloss train: "), "rank 0 says it, untagged:\n\(r.err)")
            XCTAssertFalse(r.err.contains("(rank 1)"), "rank 1 stays quiet:\n\(r.err)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent("checkpoints/CURRENT").path))
        }
    }

    /// A problem only rank 0 meets (its check that `--out` holds no run): before, rank 0 called
    /// MPI_Abort while rank 1 waited in the config check; now rank 1 learns it through the agreement
    /// and both end with status 1, rank 0 naming the directory.
    func test_aProblemOnlyRank0Meets_stopsBothRanksNormally_namingIt() throws {
        let dir = TempDirectory()
        let out = dir.url.appendingPathComponent("taken")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        try Data("{}".utf8).write(to: out.appendingPathComponent("config.json"))
        let r = try MPILaunch.run(["train", "--out", out.path, "--epochs", "1"], rankEnvironments: [[:], [:]], timeout: 60)
        assertEndedNormally(r, status: 1)
        XCTAssertEqual(occurrences("already holds a run", in: r.err), 1, r.err)
        XCTAssertTrue(r.err.contains("memloss train: rank 0: --out \(out.path)"), "rank 0 names itself and the directory: \(r.err)")
        XCTAssertTrue(r.err.contains("--overwrite"), "the refusal's hint: \(r.err)")
    }

    /// `memloss eval` meets the same agreement: a missing checkpoint on every rank is said once.
    func test_evalWithAMissingCheckpointOnEveryRank_isSaidOnce_andEndsNormally() throws {
        let dir = TempDirectory()
        let missing = dir.url.appendingPathComponent("none.safetensors").path
        let r = try MPILaunch.run(["eval", "--checkpoint", missing, "--attack", "fgsm"], rankEnvironments: [[:], [:]], timeout: 60)
        assertEndedNormally(r)
        XCTAssertEqual(occurrences("none.safetensors: no such file", in: r.err), 1, r.err)
    }
}
