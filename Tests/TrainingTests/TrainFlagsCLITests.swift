// TrainFlagsCLITests.swift: `memloss train` flags that never lie (issue 14 item 5), through the real
// executable: --resume with conflicting flags refuses and more --epochs continues, --out on an
// existing run refuses unless --overwrite, unusable --out paths give one line with the cause and a
// hint, non-finite numbers are refused naming the flag, empty datasets are named with their count.

import Foundation
import XCTest
import _TestSupport

final class TrainFlagsCLITests: XCTestCase {
    /// The cheapest complete run: 64 samples, one step per epoch, 1-step attacks, tiny evaluations.
    static let tiny = ["--train-samples", "64", "--validation-size", "32", "--validation-samples", "16",
                       "--test-samples", "16", "--width", "0.25", "--attack-steps", "1", "--val-steps", "1",
                       "--no-memloss", "--test-attacks", "pgd1", "--schedule", "cosine"]

    private func run(_ args: [String]) throws -> (status: Int32, out: String, err: String) {
        try BuiltExecutable.run("memloss", args)
    }

    private func train(_ dir: URL, _ extra: [String] = []) throws -> (status: Int32, out: String, err: String) {
        try run(["train", "--out", dir.path, "--epochs", "1"] + Self.tiny + extra)
    }

    private func assertOneLineWithHint(_ err: String, naming path: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssert(err.contains(path), err, file: file, line: line)
        XCTAssert(err.contains("\nhint: "), err, file: file, line: line)
        XCTAssertFalse(err.contains("NSCocoaErrorDomain") || err.contains("Error Domain") || err.contains("UserInfo"),
                       err, file: file, line: line)
        XCTAssertEqual(err.split(separator: "\n").count, 2, err, file: file, line: line)
    }

    func test_resume_withConflictingFlags_refusesNamingEach() throws {
        let tmp = TempDirectory("cli-resume-conflict")
        let dir = tmp.path("run")
        XCTAssertEqual(try train(dir).status, 0)
        let before = try Data(contentsOf: dir.appendingPathComponent("checkpoints/last.safetensors"))
        let r = try run(["train", "--resume", dir.path, "--lr", "0.3", "--model", "resnet18", "--out", tmp.path("other").path])
        XCTAssertEqual(r.status, 1, r.err)
        XCTAssert(r.err.contains("--lr (optimizer.learningRate): stored 0.05, given 0.3"), r.err)
        XCTAssert(r.err.contains("--model (model): stored \"smallcnn\", given \"resnet18\""), r.err)
        XCTAssert(r.err.contains("--out"), r.err)
        XCTAssert(r.err.contains("hint: "), r.err)
        XCTAssertEqual(try Data(contentsOf: dir.appendingPathComponent("checkpoints/last.safetensors")), before,
                       "a refused resume leaves the run untouched")
        // A --config key with another value is a conflict too; the stored value given again is fine.
        let cfg = tmp.path("c.json")
        try Data("{\"batchSize\": 32, \"seed\": 1}".utf8).write(to: cfg)
        let c = try run(["train", "--resume", dir.path, "--config", cfg.path, "--print-config"])
        XCTAssertEqual(c.status, 1, c.err)
        XCTAssert(c.err.contains("--config (batchSize): stored 64, given 32") && !c.err.contains("(seed)"), c.err)
    }

    func test_resume_withMoreEpochs_continues_andSameValuesAreAccepted() throws {
        let tmp = TempDirectory("cli-resume-epochs")
        let dir = tmp.path("run")
        XCTAssertEqual(try train(dir).status, 0)
        let r = try run(["train", "--resume", dir.path, "--epochs", "2", "--lr", "0.05", "--width", "0.25", "--out", dir.path])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssert(r.out.contains("2 epochs") && r.out.contains("resuming after epoch 1"), r.out)
        let stored = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("config.json"))) as? [String: Any]
        XCTAssertEqual(stored?["epochs"] as? Int, 2, "config.json records the new total for the next resume")
        let fewer = try run(["train", "--resume", dir.path, "--epochs", "1"])
        XCTAssertEqual(fewer.status, 1)
        XCTAssert(fewer.err.contains("--epochs 1 is below the 2 epochs"), fewer.err)
    }

    func test_out_onAnExistingRun_refusesUnlessOverwrite() throws {
        let tmp = TempDirectory("cli-out-existing")
        let dir = tmp.path("run")
        XCTAssertEqual(try train(dir).status, 0)
        let before = try Data(contentsOf: dir.appendingPathComponent("checkpoints/last.safetensors"))
        let r = try train(dir, ["--seed", "5"])
        XCTAssertEqual(r.status, 1, r.err)
        XCTAssert(r.err.contains(dir.path) && r.err.contains("already holds a run"), r.err)
        XCTAssert(r.err.contains("--resume") && r.err.contains("--overwrite"), r.err)
        XCTAssertEqual(try Data(contentsOf: dir.appendingPathComponent("checkpoints/last.safetensors")), before)
        // --overwrite: the old run's files are removed first; a user's own file stays.
        try Data("x".utf8).write(to: dir.appendingPathComponent("eval/stale.json"))
        try Data("mine".utf8).write(to: dir.appendingPathComponent("notes.txt"))
        let o = try train(dir, ["--seed", "5", "--overwrite"])
        XCTAssertEqual(o.status, 0, o.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("eval/stale.json").path))
        XCTAssert(FileManager.default.fileExists(atPath: dir.appendingPathComponent("notes.txt").path))
        let stored = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("config.json"))) as? [String: Any]
        XCTAssertEqual(stored?["seed"] as? Int, 5)
        // An empty existing directory is fine.
        let empty = tmp.path("empty")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        XCTAssertEqual(try train(empty).status, 0)
    }

    func test_out_belowARegularFile_isOneLineWithTheCause() throws {
        let tmp = TempDirectory("cli-out-file")
        let file = tmp.path("plain")
        try Data("x".utf8).write(to: file)
        let r = try train(file.appendingPathComponent("run"))
        XCTAssertEqual(r.status, 1, r.err)
        assertOneLineWithHint(r.err, naming: file.appendingPathComponent("run").path)
        XCTAssert(r.err.contains("Not a directory") && r.err.contains("regular file"), r.err)
    }

    func test_out_onAFileSystemThatRefusesNewEntries_isOneLineWithTheCause() throws {
        // /sys refuses mkdir even for root (EPERM, or EROFS where it is mounted read-only).
        let target = "/sys/memloss-cli-test-\(getpid())/run"
        guard FileManager.default.fileExists(atPath: "/sys"),
              mkdir("/sys/memloss-cli-probe-\(getpid())", 0o755) != 0 else {
            rmdir("/sys/memloss-cli-probe-\(getpid())")
            throw XCTSkip("/sys accepts new directories here")
        }
        let r = try run(["train", "--out", target, "--epochs", "1"] + Self.tiny)
        XCTAssertEqual(r.status, 1, r.err)
        assertOneLineWithHint(r.err, naming: target)
        XCTAssert(r.err.contains("create directory failed"), r.err)
    }

    /// An immutable directory (chattr +i, which root can set on ext4/xfs/btrfs): below it, and as --out
    /// itself (the directory exists, config.json cannot be written). Skipped where chattr is refused.
    func test_out_inAnImmutableDirectory_isOneLineWithTheCause() throws {
        let tmp = TempDirectory("cli-out-immutable")
        let locked = tmp.path("locked")
        try FileManager.default.createDirectory(at: locked, withIntermediateDirectories: true)
        func chattr(_ flag: String) -> Int32 {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = ["chattr", flag, locked.path]
            p.standardError = Pipe()
            do { try p.run() } catch { return -1 }
            p.waitUntilExit()
            return p.terminationStatus
        }
        guard chattr("+i") == 0 else { throw XCTSkip("chattr +i is not available or not permitted here") }
        defer { _ = chattr("-i") }
        let below = try train(locked.appendingPathComponent("run"))
        XCTAssertEqual(below.status, 1, below.err)
        assertOneLineWithHint(below.err, naming: locked.appendingPathComponent("run").path)
        XCTAssert(below.err.contains("Operation not permitted") && below.err.contains("immutable"), below.err)
        let itself = try train(locked)
        XCTAssertEqual(itself.status, 1, itself.err)
        assertOneLineWithHint(itself.err, naming: locked.path)
    }

    func test_evalOutput_belowARegularFile_isOneLineWithTheCause() throws {
        let tmp = TempDirectory("cli-eval-output")
        let dir = tmp.path("run")
        XCTAssertEqual(try train(dir).status, 0)
        let file = tmp.path("plain")
        try Data("x".utf8).write(to: file)
        let target = file.appendingPathComponent("result.json").path
        let r = try run(["eval", "--checkpoint", dir.appendingPathComponent("checkpoints/last.safetensors").path,
                         "--attack", "natural", "--n", "8", "--output", target])
        XCTAssertNotEqual(r.status, 0, r.err)
        XCTAssert(r.err.contains(target) && r.err.contains("hint: "), r.err)
        XCTAssertFalse(r.err.contains("NSCocoaErrorDomain") || r.err.contains("Error Domain"), r.err)
    }

    func test_nonFiniteAndOutOfRangeNumbers_areRefusedAtParseTime_namingTheFlag() throws {
        for (flag, value) in [("--lr", "inf"), ("--lr", "nan"), ("--momentum", "2"), ("--weight-decay", "nan"),
                              ("--beta", "nan"), ("--mem-beta", "inf"), ("--gamma", "inf"), ("--width", "inf"),
                              ("--epsilon", "nan"), ("--step-size", "inf"), ("--val-step-size", "nan")] {
            let r = try run(["train", flag, value, "--print-config"])
            XCTAssertNotEqual(r.status, 0, "\(flag) \(value)")
            XCTAssert(r.err.contains(flag), "\(flag) \(value): \(r.err)")
            XCTAssertFalse(r.err.contains("EncodingError") || r.err.contains("JSON"), r.err)
        }
    }

    func test_emptyDataset_isNamedWithItsCount_notBlamedOnFlags() throws {
        let tmp = TempDirectory("cli-empty-data")
        let file = tmp.path("zero.mlds")
        let synth = try run(["data", "synth", "--out", file.path, "--count", "0", "--shape", "1,28,28"])
        XCTAssertEqual(synth.status, 0, synth.err)
        for memory in [[], ["--no-memloss"]] {
            let r = try run(["train", "--data", "synthetic:\(file.path)", "--out", tmp.path("run").path, "--epochs", "1"] + memory)
            XCTAssertEqual(r.status, 1, r.err)
            XCTAssert(r.err.contains("has 0 training images") && r.err.contains(file.path), r.err)
            XCTAssertFalse(r.err.contains("--mem") || r.err.contains("--classes"), r.err)
        }
        let big = try run(["train", "--train-samples", "5000", "--out", tmp.path("big").path, "--epochs", "1"])
        XCTAssertEqual(big.status, 1, big.err)
        XCTAssert(big.err.contains("trainSamples 5000 exceeds the 3600 training images"), big.err)
        let split = try run(["train", "--validation-size", "4000", "--out", tmp.path("split").path, "--epochs", "1"])
        XCTAssertEqual(split.status, 1, split.err)
        XCTAssert(split.err.contains("would hold out all 4000 training images"), split.err)
    }
}
