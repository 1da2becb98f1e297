// WarmStartCLITests.swift: `memloss train --attack-init` as a user meets it (docs/warm-start.md):
// the option is in the resolved config (`--print-config`, config.json), a bad value is named, a
// tiny two-epoch run without MemLoss opens its own bank and writes `warm_starts` 0 in epoch 1 and
// > 0 in epoch 2, and `--resume` refuses a change of the option.

import Foundation
import XCTest
import _TestSupport

final class WarmStartCLITests: XCTestCase {
    private func run(_ args: [String]) throws -> (status: Int32, out: String, err: String) {
        try BuiltExecutable.run("memloss", args)
    }

    func test_attackInit_isInTheResolvedConfig_andABadValueIsNamed() throws {
        let r = try run(["train", "--attack-init", "memory", "--print-config"])
        XCTAssertEqual(r.status, 0, r.err)
        let config = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any])
        XCTAssertEqual(config["attackInit"] as? String, "memory")
        XCTAssert(r.err.contains("warm start from the memory bank"), r.err)
        let random = try run(["train", "--attack-init", "random", "--print-config"])
        XCTAssertEqual(random.status, 0, random.err)
        XCTAssertFalse(random.out.contains("attackInit"), "random is the default: config.json keeps its old form")
        let bad = try run(["train", "--attack-init", "warm", "--print-config"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssert(bad.err.contains("--attack-init") && bad.err.contains("warm"), bad.err)
        let standard = try run(["train", "--method", "standard", "--attack-init", "memory", "--print-config"])
        XCTAssertNotEqual(standard.status, 0, "standard training has no attack to start")
        XCTAssert(standard.err.contains("attackInit"), standard.err)
    }

    func test_tinyRun_writesWarmStarts_zeroInEpoch1_andPositiveInEpoch2_andResumeRefusesAChange() throws {
        let tmp = TempDirectory("cli-warm-start")
        let dir = tmp.path("run")
        let r = try run(["train", "--out", dir.path, "--epochs", "2", "--attack-init", "memory"] + TrainFlagsCLITests.tiny)
        XCTAssertEqual(r.status, 0, r.err)
        let lines = try String(contentsOf: dir.appendingPathComponent("metrics.jsonl"), encoding: .utf8).split(separator: "\n")
        let epochs = try lines.compactMap { line -> [String: Any]? in
            let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            return obj["type"] as? String == "epoch" ? obj : nil
        }
        XCTAssertEqual(epochs.count, 2)
        XCTAssertEqual(epochs.first?["warm_starts"] as? Int, 0, "epoch 1 has no bank entry yet")
        let second = try XCTUnwrap(epochs.last?["warm_starts"] as? Int)
        XCTAssertGreaterThan(second, 0, "epoch 2 starts from epoch 1's entries")
        XCTAssert(FileManager.default.fileExists(atPath: dir.appendingPathComponent("bank").path), "MemLoss off: its own bank")
        let report = try String(contentsOf: dir.appendingPathComponent("report.md"), encoding: .utf8)
        XCTAssert(report.contains("| attack init | memory |") && report.contains("## Warm start"), report)

        let change = try run(["train", "--resume", dir.path, "--attack-init", "random", "--epochs", "3"])
        XCTAssertNotEqual(change.status, 0)
        XCTAssert(change.err.contains("--attack-init") && change.err.contains("attackInit"), change.err)
    }

    /// A config.json that spells the default `"attackInit": "random"` (a config built in code with
    /// `.random`, written by an older build) resumes with `--attack-init random`: no change.
    func test_resume_withAttackInitRandom_overAStoredRandom_isNoChange() throws {
        let tmp = TempDirectory("cli-warm-resume-random")
        let dir = tmp.path("run")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let printed = try run(["train", "--print-config"])
        XCTAssertEqual(printed.status, 0, printed.err)
        var config = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(printed.out.utf8)) as? [String: Any])
        config["attackInit"] = "random"
        try JSONSerialization.data(withJSONObject: config).write(to: dir.appendingPathComponent("config.json"))
        let r = try run(["train", "--resume", dir.path, "--attack-init", "random", "--print-config"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertFalse(r.out.contains("attackInit"), r.out)
        let change = try run(["train", "--resume", dir.path, "--attack-init", "memory", "--print-config"])
        XCTAssertNotEqual(change.status, 0, "random → memory is a change")
    }

    func test_attackInitMemory_withMemStrideAboveOne_isRefused_namingBothFlags() throws {
        let r = try run(["train", "--attack-init", "memory", "--mem-stride", "2", "--print-config"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssert(r.err.contains("--attack-init") && r.err.contains("--mem-stride") && r.err.contains("hint:"), r.err)
        XCTAssertEqual(try run(["train", "--mem-stride", "2", "--print-config"]).status, 0)
    }
}
