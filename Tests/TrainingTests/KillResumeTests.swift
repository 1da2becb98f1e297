// KillResumeTests.swift: kill -9 a real `memloss train` child at every durable step of a checkpoint
// commit, of a mid-epoch checkpoint, of the epoch end and of a bank seal (SystemIO/FaultPoint.swift
// names them), and at random moments; `memloss train --resume` must then finish with exactly the
// uninterrupted run's tensors (last, optimizer state, best), metrics lines (every deterministic
// field), test evaluation and bank segments. docs/checkpoints.md, "Crash tests".
//
// The default suite kills at the first, a middle and the last occurrence of every point and at three
// seeded random moments; MEMLOSS_KILL_ALL=1 kills at every occurrence (the longer run).

import Foundation
import Tensors
import Training
import XCTest
import _TestSupport

final class KillResumeTests: XCTestCase {
    /// Keys of metrics and evaluation JSON that measure time or memory (never equal between runs).
    static let unstableKeys: Set<String> = ["wall_seconds", "images_per_second", "epoch_seconds", "data_wait_seconds",
                                            "peak_rss_bytes", "bank_wait_seconds", "writer_blocked_seconds", "seconds",
                                            "checkpoint_seconds"]

    private struct Outcome { var status: Int32; var reason: Process.TerminationReason; var stderr: String }

    private func memloss(_ args: [String], env: [String: String] = [:], killAfter: Double? = nil) throws -> Outcome {
        let p = Process()
        p.executableURL = BuiltExecutable.url("memloss")
        p.arguments = args
        var e = ProcessInfo.processInfo.environment
        e["MEMLOSS_THREADS"] = "1"
        for (k, v) in env { e[k] = v }
        p.environment = e
        let err = Pipe()
        p.standardOutput = FileHandle.nullDevice
        p.standardError = err
        try p.run()
        if let killAfter {
            Thread.sleep(forTimeInterval: killAfter)
            if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        }
        let data = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Outcome(status: p.terminationStatus, reason: p.terminationReason, stderr: String(decoding: data, as: UTF8.self))
    }

    /// The tiny TRADES(+MemLoss) run of TrainerTests as a config file.
    private func configFile(in dir: TempDirectory, memLoss: Bool) throws -> String {
        var c = TrainerTests.tinyConfig(epochs: 2)
        if !memLoss { c.memLoss = nil }
        let url = dir.url.appendingPathComponent("config-\(memLoss).json")
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        try enc.encode(c).write(to: url)
        return url.path
    }

    private func trainArgs(config: String, out: URL) -> [String] {
        ["train", "--config", config, "--out", out.path, "--checkpoint-every", "3"] + (config.contains("false") ? ["--no-memloss"] : [])
    }

    // MARK: Comparison

    private func tensors(_ url: URL) throws -> [String: [UInt8]] {
        let f = try SafeTensorsFile.read(from: url)
        return Dictionary(uniqueKeysWithValues: f.entries.map { ($0.name, $0.bytes) })
    }

    private func stripped(_ value: Any) -> Any {
        if let d = value as? [String: Any] {
            var out: [String: Any] = [:]
            for (k, v) in d where !KillResumeTests.unstableKeys.contains(k) { out[k] = stripped(v) }
            return out
        }
        if let a = value as? [Any] { return a.map(stripped) }
        return value
    }

    private func canonical(_ data: Data) throws -> String {
        let obj = try JSONSerialization.jsonObject(with: data)
        return String(decoding: try JSONSerialization.data(withJSONObject: stripped(obj), options: [.sortedKeys]), as: UTF8.self)
    }

    private func metricsLines(_ run: URL) throws -> [String] {
        let data = try Data(contentsOf: run.appendingPathComponent("metrics.jsonl"))
        return try data.split(separator: 0x0A).map { try canonical(Data($0)) }
    }

    private func bankSegments(_ run: URL) -> [String: Data] {
        let bank = run.appendingPathComponent("bank")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: bank.path)) ?? []
        var out: [String: Data] = [:]
        for n in names where n.hasSuffix(".mbs") { out[n] = FileManager.default.contents(atPath: bank.appendingPathComponent(n).path) }
        return out
    }

    private func assertSameRun(_ run: URL, as reference: URL, _ label: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let ck = { (u: URL, n: String) in u.appendingPathComponent("checkpoints").appendingPathComponent(n) }
        for name in ["last.safetensors", "last.state.safetensors", "best.safetensors"] {
            XCTAssertEqual(try tensors(ck(run, name)), try tensors(ck(reference, name)), "\(label): \(name)", file: file, line: line)
        }
        let a = try metricsLines(run), b = try metricsLines(reference)
        XCTAssertEqual(a.count, b.count, "\(label): metrics line count", file: file, line: line)
        for (i, (x, y)) in zip(a, b).enumerated() where x != y {
            XCTFail("\(label): metrics line \(i + 1) differs:\n  \(x)\n  \(y)", file: file, line: line)
            break
        }
        let test = { (u: URL) in try self.canonical(Data(contentsOf: u.appendingPathComponent("eval/test.json"))) }
        XCTAssertEqual(try test(run), try test(reference), "\(label): eval/test.json", file: file, line: line)
        XCTAssertEqual(bankSegments(run), bankSegments(reference), "\(label): bank segments", file: file, line: line)
        let leftovers = (FileManager.default.enumerator(atPath: run.path)?.allObjects as? [String] ?? []).filter { $0.hasSuffix(".tmp") }
        XCTAssertEqual(leftovers, [], "\(label): temporaries left", file: file, line: line)
    }

    /// The global step of the commit `CURRENT` names (0 without one), read without recovering.
    private func committedStep(_ run: URL) -> Int {
        let ck = run.appendingPathComponent("checkpoints")
        guard let p = FileManager.default.contents(atPath: ck.appendingPathComponent("CURRENT").path),
              let pointer = try? JSONSerialization.jsonObject(with: p) as? [String: Any],
              let generation = pointer["generation"] as? String,
              let c = FileManager.default.contents(atPath: ck.appendingPathComponent(generation).appendingPathComponent("commit.json").path),
              let commit = try? JSONSerialization.jsonObject(with: c) as? [String: Any] else { return 0 }
        return commit["globalStep"] as? Int ?? 0
    }

    // MARK: Points

    /// The fault points an uninterrupted run passes, in order (from MEMLOSS_FAULT_LOG).
    private func straightRun(config: String, dir: TempDirectory) throws -> (run: URL, points: [String]) {
        let run = dir.url.appendingPathComponent("straight")
        let log = dir.url.appendingPathComponent("points.log")
        let o = try memloss(trainArgs(config: config, out: run), env: ["MEMLOSS_FAULT_LOG": log.path])
        XCTAssertEqual(o.reason, .exit, o.stderr)
        XCTAssertEqual(o.status, 0, o.stderr)
        let points = try String(contentsOf: log, encoding: .utf8).split(separator: "\n").map(String.init)
        return (run, points)
    }

    /// (name, occurrence) pairs to kill at: every occurrence with MEMLOSS_KILL_ALL, else the first,
    /// a middle and the last of each name.
    private func killPoints(_ points: [String]) -> [(String, Int)] {
        var counts: [String: Int] = [:]
        var order: [String] = []
        for p in points {
            if counts[p] == nil { order.append(p) }
            counts[p, default: 0] += 1
        }
        let all = ProcessInfo.processInfo.environment["MEMLOSS_KILL_ALL"] == "1"
        return order.flatMap { name -> [(String, Int)] in
            let n = counts[name]!
            let picks = all ? Array(1...n) : Array(Set([1, (n + 1) / 2, n])).sorted()
            return picks.map { (name, $0) }
        }
    }

    private func killAndResume(config: String, dir: TempDirectory, memLoss: Bool) throws {
        let (reference, points) = try straightRun(config: config, dir: dir)
        let names = Set(points)
        for required in ["train.afterStep", "train.afterEpochLine", "checkpoint.afterState", "checkpoint.afterModel",
                         "checkpoint.afterCommitRecord", "checkpoint.afterPointer", "checkpoint.afterLinks", "checkpoint.afterPrune"] {
            XCTAssertTrue(names.contains(required), "the run never passed \(required)")
        }
        if memLoss {
            XCTAssertTrue(names.contains { $0.hasPrefix("bank.seal.") }, "no bank seal point in \(names.sorted())")
            XCTAssertTrue(names.contains { $0.hasPrefix("bank.checkpoint.") }, "no bank checkpoint point in \(names.sorted())")
        }
        let totalSteps = points.filter { $0 == "train.afterStep" }.count
        var tried = 0
        for (name, occurrence) in killPoints(points) {
            let run = dir.url.appendingPathComponent("kill-\(name)-\(occurrence)")
            let killed = try memloss(trainArgs(config: config, out: run), env: ["MEMLOSS_KILL_AT": "\(name)#\(occurrence)"])
            XCTAssertEqual(killed.reason, .uncaughtSignal, "\(name)#\(occurrence) did not die: \(killed.stderr)")
            let committed = committedStep(run)
            let log = dir.url.appendingPathComponent("resume-\(name)-\(occurrence).log")
            let resumed = try memloss(["train", "--resume", run.path, "--checkpoint-every", "3"], env: ["MEMLOSS_FAULT_LOG": log.path])
            XCTAssertEqual(resumed.status, 0, "\(name)#\(occurrence): resume failed: \(resumed.stderr)")
            guard resumed.status == 0 else { continue }
            // The resume continued from the commit (it did not silently start over): it ran exactly
            // the steps after the committed one.
            let hits = (try? String(contentsOf: log, encoding: .utf8)) ?? ""  // no file: no point was passed
            let stepsRun = hits.split(separator: "\n").filter { $0 == "train.afterStep" }.count
            XCTAssertEqual(stepsRun, totalSteps - committed, "\(name)#\(occurrence): committed step \(committed)")
            try assertSameRun(run, as: reference, "\(name)#\(occurrence)")
            tried += 1
        }
        // Random moments (seeded): a kill anywhere, then resume.
        var random = FuzzRandom(seed: memLoss ? 11 : 12)
        for k in 0..<3 {
            let run = dir.url.appendingPathComponent("random-\(k)")
            let delay = 0.3 + Double(random.below(1000)) / 1000 * 2.0
            let killed = try memloss(trainArgs(config: config, out: run), killAfter: delay)
            let resumed: Outcome
            if killed.reason == .uncaughtSignal {
                resumed = try memloss(["train", "--resume", run.path, "--checkpoint-every", "3"])
            } else {
                resumed = killed  // finished before the kill
            }
            XCTAssertEqual(resumed.status, 0, "random kill \(k) after \(delay) s: \(resumed.stderr)")
            if resumed.status == 0 { try assertSameRun(run, as: reference, "random kill \(k) after \(delay) s") }
        }
        print("KillResumeTests(memLoss: \(memLoss)): \(tried) targeted kill points resumed exactly, 3 random kills")
    }

    func test_killAtEveryCommitStep_resumesExactly_withoutMemory() throws {
        let dir = TempDirectory("kill-plain")
        try killAndResume(config: try configFile(in: dir, memLoss: false), dir: dir, memLoss: false)
    }

    func test_killAtEveryCommitStep_andBankSealStep_resumesExactly_withTheBank() throws {
        let dir = TempDirectory("kill-bank")
        try killAndResume(config: try configFile(in: dir, memLoss: true), dir: dir, memLoss: true)
    }

    // MARK: Disk full

    private func mountTmpfs(at dir: URL, bytes: Int, remount: Bool = false) -> Bool {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/mount")
        let size = "size=\((bytes + 4095) / 4096 * 4096)"
        p.arguments = remount ? ["-o", "remount," + size, dir.path] : ["-t", "tmpfs", "-o", size, "tmpfs", dir.path]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return false }
        p.waitUntilExit()
        return p.terminationStatus == 0
    }

    private func unmount(_ dir: URL) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/umount")
        p.arguments = [dir.path]
        try? p.run()
        p.waitUntilExit()
    }

    /// Bytes of the files below `dir`, each inode once (hard links share their blocks).
    private func bytesUsed(_ dir: URL) -> Int {
        let files = FileManager.default.enumerator(atPath: dir.path)?.allObjects as? [String] ?? []
        var seen = Set<Int>()
        var total = 0
        for f in files {
            guard let a = try? FileManager.default.attributesOfItem(atPath: dir.appendingPathComponent(f).path),
                  (a[.type] as? FileAttributeType) == .typeRegular,
                  let inode = (a[.systemFileNumber] as? NSNumber)?.intValue, seen.insert(inode).inserted else { continue }
            total += (a[.size] as? NSNumber)?.intValue ?? 0
        }
        return total
    }

    /// The disk fills in the middle of the run (a tmpfs too small for a third checkpoint generation):
    /// the run stops with one line naming the file and the cause, no trap, no temporary left, the
    /// last commit intact; once there is room again, --resume finishes it exactly.
    func test_diskFullDuringACommit_stopsCleanly_andResumesExactlyOnceThereIsRoom() throws {
        let dir = TempDirectory("kill-diskfull")
        let config = try configFile(in: dir, memLoss: false)
        let (reference, _) = try straightRun(config: config, dir: dir)
        let mountPoint = dir.url.appendingPathComponent("disk")
        try FileManager.default.createDirectory(at: mountPoint, withIntermediateDirectories: true)
        // Two generations are what a finished run keeps; a commit needs a third for a moment.
        let size = bytesUsed(reference) * 9 / 8
        print("disk-full test: reference run \(bytesUsed(reference)) bytes, tmpfs \(size)")
        guard mountTmpfs(at: mountPoint, bytes: size) else { throw XCTSkip("cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN)") }
        defer { unmount(mountPoint) }
        let run = mountPoint.appendingPathComponent("run")
        let full = try memloss(trainArgs(config: config, out: run))
        print("disk-full test: the run said: \(full.stderr)")
        XCTAssertEqual(full.reason, .exit, "no trap: \(full.stderr)")
        XCTAssertEqual(full.status, 1, full.stderr)
        XCTAssertTrue(full.stderr.contains("No space left on device"), full.stderr)
        XCTAssertTrue(full.stderr.contains("hint:"), full.stderr)
        XCTAssertFalse(full.stderr.contains("NSCocoaErrorDomain") || full.stderr.contains("Fatal error"), full.stderr)
        XCTAssertLessThanOrEqual(full.stderr.split(separator: "\n").count, 3, full.stderr)
        let leftovers = (FileManager.default.enumerator(atPath: run.path)?.allObjects as? [String] ?? []).filter { $0.hasSuffix(".tmp") }
        XCTAssertEqual(leftovers, [], "temporaries left after the disk filled")
        XCTAssertGreaterThan(committedStep(run), 0, "the disk should fill after the first commit (size \(size))")
        XCTAssertTrue(mountTmpfs(at: mountPoint, bytes: 64 << 20, remount: true))
        let resumed = try memloss(["train", "--resume", run.path, "--checkpoint-every", "3"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        if resumed.status == 0 { try assertSameRun(run, as: reference, "after disk full") }
    }
}
