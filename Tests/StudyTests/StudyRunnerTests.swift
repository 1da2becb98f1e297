// StudyRunnerTests.swift: `memloss study run` (docs/study.md, "Running a study"; Study/StudyRunner.swift) on
// tiny real runs of the built `memloss`: finished cells are skipped untouched, a study killed mid-cell (runner
// and child, SIGKILL) resumes to the results of an uninterrupted one, a failing cell is reported and not
// retried unless asked, and a changed or reserved-flag spec is refused naming the field.

import Foundation
@testable import Study
import Training
import XCTest
import _TestSupport
#if canImport(Glibc)
import Glibc
#endif

final class StudyRunnerTests: XCTestCase {
    // MARK: Fixtures

    /// Tiny cells (about a second each): 16 steps with a commit after each, so a kill lands mid-cell.
    static let base = """
    {"data": "demo", "model": "smallcnn", "width": 0.25, "epochs": 1, "train-samples": 1024, "batch-size": 64,
     "validation-samples": 32, "validation-size": 100, "attack-steps": 1, "val-steps": 2, "checkpoint-every": 1}
    """

    static func specJSON(arms: String = #"[{"name": "t", "flags": {"beta": 1}}]"#, seeds: String = "[1, 2]",
                         evaluation: String = #"{"attacks": "pgd20", "n": 64, "autoattack": {"n": 16, "version": "fast"}}"#) -> String {
        """
        {"format": "memloss-study/1", "name": "tiny", "base": \(base), "arms": \(arms), "seeds": \(seeds),
         "baseline": null, "evaluation": \(evaluation)}
        """
    }

    private var retained: [TempDirectory] = []

    private func temp(_ label: String) -> TempDirectory {
        let d = TempDirectory(label)
        retained.append(d)
        return d
    }

    private func writeSpec(_ text: String, in dir: TempDirectory, name: String = "spec.json") throws -> String {
        let url = dir.path(name)
        try Data(text.utf8).write(to: url)
        return url.path
    }

    private static let memloss = BuiltExecutable.url("memloss")

    /// An uninterrupted study of the default spec (2 cells, AutoAttack on both), run once per process.
    /// The reference study's `.finished` events: (cell, ETA, cells left).
    private static var referenceFinished: [(cell: String, eta: Double?, left: Int)] = []

    private static let reference: Result<URL, Error> = Result(catching: {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("study-reference-\(getpid())")
        try? FileManager.default.removeItem(at: dir)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let specURL = dir.appendingPathComponent("spec.json")
        try Data(specJSON().utf8).write(to: specURL)
        let spec = try StudySpec.load(specURL.path)
        let outcome = try StudyRunner(spec: spec, directory: dir.appendingPathComponent("out"), executable: memloss).run { e in
            if case let .finished(_, _, cell, _, eta, left) = e { referenceFinished.append((cell, eta, left)) }
        }
        guard outcome.failed.isEmpty, outcome.finished.count == 2 else {
            throw StudyRunError.storedSpec(file: dir.path, problem: "the reference study did not finish: \(outcome.failed)")
        }
        return dir
    })

    override class func tearDown() {
        if case .success(let dir) = reference { try? FileManager.default.removeItem(at: dir) }
        super.tearDown()
    }

    /// A copy of the reference study's directory (`out`) and its spec file.
    private func referenceCopy() throws -> (spec: String, out: URL, reference: URL) {
        let ref = try Self.reference.get()
        let dir = temp("study-copy")
        try FileManager.default.copyItem(at: ref.appendingPathComponent("out"), to: dir.path("out"))
        return (try writeSpec(Self.specJSON(), in: dir), dir.path("out"), ref.appendingPathComponent("out"))
    }

    private func testResult(_ out: URL, _ cell: String) throws -> EvaluationResult {
        let data = try Data(contentsOf: out.appendingPathComponent("runs/\(cell)/eval/test.json"))
        var r = try JSONDecoder().decode(EvaluationResult.self, from: data)
        r.seconds = 0
        return r
    }

    private func robustAccuracy(_ out: URL, _ cell: String) throws -> Double {
        struct AA: Decodable { var robustAccuracy: Double }
        return try JSONDecoder().decode(AA.self, from: Data(contentsOf: out.appendingPathComponent("runs/\(cell)/eval/autoattack.json")))
            .robustAccuracy
    }

    /// Modification times of every file below `dir`, by relative path.
    private func modificationTimes(_ dir: URL) throws -> [String: Date] {
        var out: [String: Date] = [:]
        let fm = FileManager.default
        for case let path as String in fm.enumerator(atPath: dir.path) ?? NSEnumerator() {
            let attrs = try fm.attributesOfItem(atPath: dir.appendingPathComponent(path).path)
            if attrs[.type] as? FileAttributeType == .typeRegular { out[path] = attrs[.modificationDate] as? Date }
        }
        return out
    }

    private func run(_ args: [String]) throws -> (status: Int32, out: String, err: String) {
        try BuiltExecutable.run("memloss", args)
    }

    // MARK: Skipping and resuming

    func test_finishedCells_areSkippedUntouched_andTheMissingOneRuns() throws {
        let (specPath, out, ref) = try referenceCopy()
        let names = try StudySpec.load(specPath).cells.map(\.name)
        XCTAssertEqual(names, ["t_seed=1", "t_seed=2"])
        try FileManager.default.removeItem(at: out.appendingPathComponent("runs/\(names[1])"))
        let before = try modificationTimes(out.appendingPathComponent("runs/\(names[0])"))
        XCTAssertFalse(before.isEmpty)

        let runner = StudyRunner(spec: try StudySpec.load(specPath), directory: out, executable: Self.memloss)
        XCTAssertEqual(try runner.plan().map(\.status), [.finished, .fresh])
        var events: [String] = []
        let outcome = try runner.run { e in
            switch e {
            case let .skipped(_, _, cell, _): events.append("skipped \(cell)")
            case let .started(_, _, cell, phase, resumed): events.append("\(phase) \(resumed ? "resumed" : "fresh") \(cell)")
            case let .finished(_, _, cell, _, _, _): events.append("finished \(cell)")
            case let .failed(_, _, cell, f, _, _): events.append("failed \(cell): \(f.summary)")
            }
        }
        XCTAssertEqual(events, ["skipped \(names[0])", "training fresh \(names[1])", "autoattack fresh \(names[1])",
                                "finished \(names[1])"])
        XCTAssertEqual(outcome.finished, names)
        XCTAssertTrue(outcome.failed.isEmpty)
        XCTAssertEqual(try modificationTimes(out.appendingPathComponent("runs/\(names[0])")), before,
                       "a finished cell's files must not be rewritten")
        XCTAssertEqual(try testResult(out, names[1]), try testResult(ref, names[1]))
        XCTAssertEqual(try runner.plan().map(\.status), [.finished, .finished])

        let progress = try JSONDecoder().decode(StudyProgress.self, from: Data(contentsOf: out.appendingPathComponent("study-progress.json")))
        XCTAssertEqual([progress.total, progress.finished, progress.failed, progress.remaining], [2, 2, 0, 0])
        XCTAssertNil(progress.current)
        XCTAssertNotNil(progress.meanCellSeconds)
    }

    func test_missingAutoAttack_runsOnlyTheEvaluation_trainingFilesUntouched() throws {
        let (specPath, out, ref) = try referenceCopy()
        let cell = try StudySpec.load(specPath).cells[1].name
        try FileManager.default.removeItem(at: out.appendingPathComponent("runs/\(cell)/eval/autoattack.json"))
        let trainFiles = ["config.json", "metrics.jsonl", "eval/summary.json", "eval/test.json", "checkpoints/best.safetensors"]
        let before = try modificationTimes(out.appendingPathComponent("runs/\(cell)")).filter { trainFiles.contains($0.key) }
        XCTAssertEqual(before.count, trainFiles.count)
        let runner = StudyRunner(spec: try StudySpec.load(specPath), directory: out, executable: Self.memloss)
        guard case .autoattackPending = try runner.plan()[1].status else { return XCTFail("expected AutoAttack pending") }
        var phases: [String] = []
        _ = try runner.run { if case let .started(_, _, _, phase, _) = $0 { phases.append(phase) } }
        XCTAssertEqual(phases, ["autoattack"])
        let after = try modificationTimes(out.appendingPathComponent("runs/\(cell)")).filter { trainFiles.contains($0.key) }
        XCTAssertEqual(after, before)
        XCTAssertEqual(try robustAccuracy(out, cell), try robustAccuracy(ref, cell))
    }

    func test_killedStudy_resumesTheStoppedCell_andEqualsAnUninterruptedStudy() throws {
        let ref = try Self.reference.get().appendingPathComponent("out")
        let dir = temp("study-kill")
        let specPath = try writeSpec(Self.specJSON(), in: dir)
        let out = dir.path("out")
        let names = try StudySpec.load(specPath).cells.map(\.name)

        // Foundation's Process starts the runner in a process group of its own; its children join it.
        let p = Process()
        p.executableURL = Self.memloss
        p.arguments = ["study", "run", specPath, "--out", out.path]
        p.standardOutput = FileHandle.nullDevice
        XCTAssertTrue(FileManager.default.createFile(atPath: dir.path("err").path, contents: nil))
        p.standardError = try FileHandle(forWritingTo: dir.path("err"))
        try p.run()
        let current = out.appendingPathComponent("runs/\(names[1])/checkpoints/CURRENT")
        let deadline = Date().addingTimeInterval(120)
        while !FileManager.default.fileExists(atPath: current.path) && p.isRunning && Date() < deadline { usleep(2_000) }
        XCTAssertTrue(p.isRunning, "the study ended before its second cell committed a checkpoint")
        kill(-p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationReason, .uncaughtSignal)
        XCTAssertTrue(FileManager.default.fileExists(atPath: current.path))
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent("runs/\(names[1])/eval/summary.json").path),
                       "the kill must land while the second cell trains")

        let plan = try StudyRunner(spec: try StudySpec.load(specPath), directory: out, executable: Self.memloss).plan()
        XCTAssertEqual(plan.map(\.status), [.finished, .partial])
        XCTAssertEqual(plan[1].commands.first, ["train", "--resume", out.appendingPathComponent("runs/\(names[1])").path,
                                               "--checkpoint-every", "1"])
        let before = try modificationTimes(out.appendingPathComponent("runs/\(names[0])"))
        let r = try run(["study", "run", specPath, "--out", out.path])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.err.contains("[1/2] \(names[0]): finished, skipped"), r.err)
        XCTAssertTrue(r.err.contains("[2/2] \(names[1]): training (resumed)…"), r.err)
        XCTAssertTrue(r.err.contains("[2/2] \(names[1]): done in"), r.err)
        XCTAssertTrue(r.err.contains("2/2 cells finished, 0 failed"), r.err)
        XCTAssertEqual(try modificationTimes(out.appendingPathComponent("runs/\(names[0])")), before)
        let log = try String(contentsOf: out.appendingPathComponent("runs/\(names[1])/study.log"), encoding: .utf8)
        XCTAssertTrue(log.contains(": training (resumed): memloss train --resume "), log)
        for cell in names {
            XCTAssertEqual(try testResult(out, cell), try testResult(ref, cell), cell)
            XCTAssertEqual(try robustAccuracy(out, cell), try robustAccuracy(ref, cell), cell)
        }
    }

    func test_eta_isTheMeanMeasuredCellTime_timesTheCellsLeft() throws {
        let out = try Self.reference.get().appendingPathComponent("out")
        XCTAssertEqual(Self.referenceFinished.map(\.cell), ["t_seed=1", "t_seed=2"])
        XCTAssertEqual(Self.referenceFinished.map(\.left), [1, 0])
        struct Summary: Decodable { var wallSeconds: Double }
        struct AA: Decodable { var seconds: Double }
        let wall = try JSONDecoder().decode(Summary.self, from: Data(contentsOf: out.appendingPathComponent("runs/t_seed=1/eval/summary.json")))
        let aa = try JSONDecoder().decode(AA.self, from: Data(contentsOf: out.appendingPathComponent("runs/t_seed=1/eval/autoattack.json")))
        XCTAssertGreaterThan(aa.seconds, 0)
        XCTAssertEqual(try XCTUnwrap(Self.referenceFinished[0].eta), wall.wallSeconds + aa.seconds, accuracy: 1e-9)
        let progress = try JSONDecoder().decode(StudyProgress.self, from: Data(contentsOf: out.appendingPathComponent("study-progress.json")))
        XCTAssertEqual(progress.etaSeconds, 0)
        XCTAssertNotNil(progress.meanCellSeconds)
    }

    func test_sigtermOfTheRunner_reachesTheChild_andLeavesTheCellToResume() throws {
        let dir = temp("study-term")
        let specPath = try writeSpec(Self.specJSON(evaluation: #"{"attacks": "pgd20", "n": 64}"#), in: dir)
        let out = dir.path("out")
        let p = Process()
        p.executableURL = Self.memloss
        p.arguments = ["study", "run", specPath, "--out", out.path]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        let current = out.appendingPathComponent("runs/t_seed=1/checkpoints/CURRENT")
        let deadline = Date().addingTimeInterval(120)
        while !FileManager.default.fileExists(atPath: current.path) && p.isRunning && Date() < deadline { usleep(2_000) }
        kill(p.processIdentifier, SIGTERM)  // the runner only: it must forward the signal
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 128 + SIGTERM)
        let log = try String(contentsOf: out.appendingPathComponent("runs/t_seed=1/study.log"), encoding: .utf8)
        XCTAssertTrue(log.hasSuffix(": signal 15 (SIGTERM)\n"), log)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent("runs/t_seed=1/study-failed.json").path))
        let plan = try StudyRunner(spec: try StudySpec.load(specPath), directory: out, executable: Self.memloss).plan()
        XCTAssertEqual(plan.map(\.status), [.partial, .fresh])
        XCTAssertTrue(plan.allSatisfy(\.willRun))
    }

    // MARK: Failures

    func test_failingCell_isReported_theOthersRun_andItIsNotRetriedUnlessAsked() throws {
        let dir = temp("study-fail")
        let specPath = try writeSpec(Self.specJSON(arms: #"[{"name": "bad", "flags": {"model": "nosuch"}}, {"name": "good", "flags": {}}]"#,
                                                   seeds: "[1]", evaluation: #"{"attacks": "pgd20", "n": 64}"#), in: dir)
        let out = dir.path("out")
        let bad = out.appendingPathComponent("runs/bad_seed=1"), good = out.appendingPathComponent("runs/good_seed=1")

        let r1 = try run(["study", "run", specPath, "--out", out.path])
        XCTAssertEqual(r1.status, 1, r1.err)
        XCTAssertTrue(r1.err.contains("[1/2] bad_seed=1: FAILED (exit 1: memloss train: config field 'model' = nosuch"), r1.err)
        XCTAssertTrue(r1.err.contains("[2/2] good_seed=1: done in"), r1.err)
        XCTAssertTrue(r1.err.contains("FAILED bad_seed=1"), r1.err)
        XCTAssertTrue(FileManager.default.fileExists(atPath: good.appendingPathComponent("eval/summary.json").path))
        let failureFile = bad.appendingPathComponent("study-failed.json")
        let failure = try JSONDecoder().decode(StudyFailure.self, from: Data(contentsOf: failureFile))
        XCTAssertEqual(failure.exitStatus, 1)
        XCTAssertNil(failure.signal)
        XCTAssertEqual(failure.phase, "train")
        XCTAssertEqual(failure.command.first, "train")
        XCTAssertTrue(failure.stderrTail.contains { $0.contains("nosuch") }, "\(failure.stderrTail)")
        XCTAssertLessThanOrEqual(failure.stderrTail.count, StudyRunner.failureTailLines)
        let progress = try JSONDecoder().decode(StudyProgress.self, from: Data(contentsOf: out.appendingPathComponent("study-progress.json")))
        XCTAssertEqual([progress.finished, progress.failed, progress.remaining], [1, 1, 0])
        XCTAssertEqual(progress.failedCells, ["bad_seed=1"])

        // A rerun reports it and runs nothing.
        let log = bad.appendingPathComponent("study.log")
        let logBefore = try Data(contentsOf: log), failureBefore = try Data(contentsOf: failureFile)
        let goodBefore = try modificationTimes(good)
        let r2 = try run(["study", "run", specPath, "--out", out.path])
        XCTAssertEqual(r2.status, 1, r2.err)
        XCTAssertTrue(r2.err.contains("[1/2] bad_seed=1: failed before (exit 1: memloss train: config field 'model'"), r2.err)
        XCTAssertTrue(r2.err.contains("[2/2] good_seed=1: finished, skipped"), r2.err)
        XCTAssertFalse(r2.err.contains("training (fresh)"), r2.err)
        XCTAssertEqual(try Data(contentsOf: log), logBefore)
        XCTAssertEqual(try Data(contentsOf: failureFile), failureBefore)
        XCTAssertEqual(try modificationTimes(good), goodBefore)

        // --retry-failed runs it again (and it fails again, with a new record).
        let r3 = try run(["study", "run", specPath, "--out", out.path, "--retry-failed"])
        XCTAssertEqual(r3.status, 1, r3.err)
        XCTAssertTrue(r3.err.contains("[1/2] bad_seed=1: training (fresh)…"), r3.err)
        XCTAssertGreaterThan(try Data(contentsOf: log).count, logBefore.count)
        XCTAssertTrue(FileManager.default.fileExists(atPath: failureFile.path))
    }

    // MARK: Refusals

    func test_changedSpec_isRefused_namingTheFirstDifferingField_andNothingIsWritten() throws {
        let (_, out, _) = try referenceCopy()
        let dir = temp("study-changed")
        let before = try modificationTimes(out)
        let cases: [(String, String, String)] = [
            (Self.specJSON(evaluation: #"{"attacks": "pgd20", "n": 65, "autoattack": {"n": 16, "version": "fast"}}"#),
             "evaluation.n", "started with 64, this spec has 65"),
            (Self.specJSON(arms: #"[{"name": "t", "flags": {"beta": 2}}]"#), "arms[0].flags.beta", "started with 1, this spec has 2"),
            (Self.specJSON(seeds: "[1, 2, 3]"), "seeds[2]", "started with absent, this spec has 3"),
        ]
        for (i, (text, field, values)) in cases.enumerated() {
            let path = try writeSpec(text, in: dir, name: "changed\(i).json")
            XCTAssertThrowsError(try StudyRunner(spec: try StudySpec.load(path), directory: out, executable: Self.memloss).run { _ in }) { e in
                XCTAssertTrue("\(e)".contains("field '\(field)' differs"), "\(e)")
                XCTAssertTrue("\(e)".contains(values), "\(e)")
            }
            let r = try run(["study", "run", path, "--out", out.path])
            XCTAssertEqual(r.status, 1, r.err)
            XCTAssertTrue(r.err.contains("study-spec.json: field '\(field)' differs"), r.err)
            XCTAssertTrue(r.err.contains("hint: pass a new --out for a changed spec, or the same spec to continue"), r.err)
            XCTAssertEqual(try run(["study", "run", path, "--out", out.path, "--dry-run"]).status, 1)
        }
        XCTAssertEqual(try modificationTimes(out), before)

        // A directory that is not a study is refused too.
        let other = temp("study-other")
        try Data("x".utf8).write(to: other.path("notes.txt"))
        let r = try run(["study", "run", try writeSpec(Self.specJSON(), in: dir), "--out", other.url.path])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.err.contains("holds no study-spec.json"), r.err)
    }

    func test_reservedFlag_isRefusedBeforeAnythingRuns() throws {
        let dir = temp("study-reserved")
        let path = try writeSpec(Self.specJSON(arms: #"[{"name": "t", "flags": {"out": "elsewhere"}}]"#), in: dir)
        let r = try run(["study", "run", path, "--out", dir.path("out").path])
        XCTAssertEqual(r.status, 1, r.err)
        XCTAssertTrue(r.err.contains("field 'arms[0]': --out is set by the study runner"), r.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.path("out").path))
    }

    // MARK: Dry run and helpers

    func test_dryRun_listsCellsWithCommandsAndStates_andRunsNothing() throws {
        let dir = temp("study-dry")
        let path = try writeSpec(Self.specJSON(), in: dir)
        let out = dir.path("out")
        let r = try run(["study", "run", path, "--out", out.path, "--dry-run"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.out.contains("[1/2] t_seed=1: fresh"), r.out)
        XCTAssertTrue(r.out.contains("memloss train --attack-steps 1 --batch-size 64 --beta 1 --checkpoint-every 1 --data demo"), r.out)
        XCTAssertTrue(r.out.contains("--seed 2 --test-attacks pgd20 --test-samples 64 --out \(out.path)/runs/t_seed=2"), r.out)
        XCTAssertTrue(r.out.contains("next: memloss eval --checkpoint \(out.path)/runs/t_seed=1/checkpoints/best.safetensors "
                                     + "--attack autoattack --version fast --n 16 --state "), r.out)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path))

        let (copySpec, copy, _) = try referenceCopy()
        let done = try run(["study", "run", copySpec, "--out", copy.path, "--dry-run"])
        XCTAssertTrue(done.out.contains("[2/2] t_seed=2: finished"), done.out)
        XCTAssertTrue(done.out.contains("2 cells, 2 finished, 0 to run"), done.out)
    }

    func test_firstDifference_walksKeysInOrder_andArrays() {
        let a: [String: Any] = ["a": 1, "b": ["x": [1, 2]], "c": true]
        XCTAssertNil(StudyRunner.firstDifference(a, a, path: ""))
        XCTAssertEqual(StudyRunner.firstDifference(a, ["a": 1, "b": ["x": [1, 3]], "c": false], path: "")?.path, "b.x[1]")
        XCTAssertEqual(StudyRunner.firstDifference(a, ["a": 1, "b": ["x": [1, 2]]], path: "")?.given, "absent")
        XCTAssertEqual(StudyRunner.firstDifference(["v": "1"], ["v": 1], path: "")?.path, "v")
    }

    func test_failureSummary_picksTheErrorLine_overProgressLines() {
        XCTAssertEqual(StudyFailure.errorLine(["autoattack: apgd-ce batch 1/2", "Error: --n must be ≥ 0", "Usage: …"]),
                       "Error: --n must be ≥ 0")
        XCTAssertEqual(StudyFailure.errorLine(["memloss train: note: x", "epoch 1", "memloss train: disk full", "hint: free space"]),
                       "memloss train: disk full")
        XCTAssertEqual(StudyFailure.errorLine(["a", "b", " "]), "b")
        XCTAssertEqual(StudyFailure.errorLine([]), "")
    }
}
