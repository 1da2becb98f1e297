// StudyRunner.swift: `memloss study run SPEC --out DIR` (docs/study.md, "Running a study"): runs every cell of
// a StudySpec as a child `memloss train` (and `memloss eval --attack autoattack`) in `DIR/runs/<cell>/`.
// A cell's state comes from its files only (finished, failed, partial, fresh), so a killed study continues
// where it stopped and a failed cell is reported, not retried. It does not parse flags or print: the CLI
// (Sources/memloss/StudyCommand.swift) does, from the events and the outcome here.

import Foundation
import SystemIO
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Files of a study

/// The files of a study directory.
///
/// ```
/// DIR/study-spec.json          the spec the study was started with (key-sorted JSON)
/// DIR/study-progress.json      cells finished / failed / remaining and the ETA, after every cell
/// DIR/runs/<cell>/             an ordinary run directory (`memloss train --out`)
/// DIR/runs/<cell>/study.log    the children's stdout and stderr, appended, one header line per child
/// DIR/runs/<cell>/study-failed.json   why the cell failed (absent unless it did)
/// ```
public struct StudyDirectory: Sendable {
    public let url: URL
    public init(_ url: URL) { self.url = url }

    public var spec: URL { url.appendingPathComponent("study-spec.json") }
    public var progress: URL { url.appendingPathComponent("study-progress.json") }
    public var runs: URL { url.appendingPathComponent("runs") }
    public func run(_ cell: StudyCell) -> URL { runs.appendingPathComponent(cell.name) }
    public func log(_ cell: StudyCell) -> URL { run(cell).appendingPathComponent("study.log") }
    public func failure(_ cell: StudyCell) -> URL { run(cell).appendingPathComponent("study-failed.json") }
    public func summary(_ cell: StudyCell) -> URL { run(cell).appendingPathComponent("eval/summary.json") }
    public func autoattack(_ cell: StudyCell) -> URL { run(cell).appendingPathComponent("eval/autoattack.json") }
    public func autoattackState(_ cell: StudyCell) -> URL { run(cell).appendingPathComponent("eval/autoattack.state") }
}

/// `DIR/runs/<cell>/study-failed.json` (`memloss-study-failure/1`): why a cell's child failed.
public struct StudyFailure: Codable, Sendable, Equatable {
    public static let currentFormat = "memloss-study-failure/1"
    public var format: String
    public var cell: String
    /// `train` or `autoattack`.
    public var phase: String
    /// The child's arguments (after the executable).
    public var command: [String]
    /// The exit status, when the child exited.
    public var exitStatus: Int32?
    /// The signal number, when a signal ended the child.
    public var signal: Int32?
    /// The last (up to) 40 lines of the child's stderr.
    public var stderrTail: [String]
    /// ISO 8601, UTC.
    public var when: String

    /// `exit 1: <the error line>`.
    public var summary: String {
        let how = signal.map { ChildTermination.signaled($0).description } ?? "exit \(exitStatus ?? -1)"
        let line = StudyFailure.errorLine(stderrTail)
        return line.isEmpty ? how : "\(how): \(line)"
    }

    /// The line that says what went wrong: the first `Error:` line, else the first line of the last
    /// `memloss …:` message, else the last non-empty line (progress lines precede errors on stderr).
    static func errorLine(_ lines: [String]) -> String {
        if let e = lines.first(where: { $0.hasPrefix("Error:") }) { return e }
        if let m = lines.last(where: { $0.hasPrefix("memloss ") && $0.contains(":") }) { return m }
        return lines.last(where: { !$0.trimmingCharacters(in: .whitespaces).isEmpty }) ?? ""
    }
}

/// `DIR/study-progress.json` (`memloss-study-progress/1`), rewritten atomically after every cell.
public struct StudyProgress: Codable, Sendable, Equatable {
    public static let currentFormat = "memloss-study-progress/1"
    public var format = StudyProgress.currentFormat
    public var study: String
    public var total: Int
    /// Cells whose results are complete (training and, where asked, AutoAttack).
    public var finished: Int
    public var failed: Int
    /// total − finished − failed.
    public var remaining: Int
    /// The cell running now (nil between cells and at the end).
    public var current: String?
    /// Mean wall time of the finished cells (training + AutoAttack), from their result files.
    public var meanCellSeconds: Double?
    /// meanCellSeconds × the cells this invocation still has to run.
    public var etaSeconds: Double?
    public var failedCells: [String]
    /// ISO 8601, UTC.
    public var updated: String
}

// MARK: - Cell states

/// Where a cell stands, from its files alone.
public enum StudyCellStatus: Sendable, Equatable, CustomStringConvertible {
    /// No run yet: `memloss train <cell's arguments>`.
    case fresh
    /// A run directory with `config.json` but no `eval/summary.json`: `memloss train --resume`.
    case partial
    /// Trained, but the AutoAttack result the spec asks for is missing (`resumes`: its state file exists).
    case autoattackPending(resumes: Bool)
    /// `eval/summary.json` and, where asked, `eval/autoattack.json`.
    case finished

    public var description: String {
        switch self {
        case .fresh: return "fresh"
        case .partial: return "partial (training resumes)"
        case .autoattackPending(let resumes): return "trained, AutoAttack " + (resumes ? "partial (resumes)" : "to run")
        case .finished: return "finished"
        }
    }
}

/// One cell of the plan: its state and the child commands that would run it (arguments after the
/// executable; empty for a finished cell).
public struct StudyCellPlan: Sendable {
    public var index: Int
    public var cell: StudyCell
    public var runDirectory: URL
    public var status: StudyCellStatus
    /// Set when `study-failed.json` exists (and the cell is not finished).
    public var failure: StudyFailure?
    /// The cell's full `memloss train` arguments (what a fresh run executes).
    public var trainArguments: [String]
    /// What the runner would execute now, in order.
    public var commands: [[String]]
    /// False for finished cells, and for failed ones without `--retry-failed`.
    public var willRun: Bool
}

/// What the runner reports while it works; the CLI renders these as lines on stderr.
public enum StudyEvent: Sendable {
    /// A cell is skipped: finished, or failed before (not retried).
    case skipped(index: Int, total: Int, cell: String, failure: StudyFailure?)
    /// A child starts: `phase` is `training` or `autoattack`, `resumed` whether it continues earlier work.
    case started(index: Int, total: Int, cell: String, phase: String, resumed: Bool)
    case finished(index: Int, total: Int, cell: String, seconds: Double, etaSeconds: Double?, cellsLeft: Int)
    case failed(index: Int, total: Int, cell: String, failure: StudyFailure, etaSeconds: Double?, cellsLeft: Int)
}

/// The end of a study run.
public struct StudyOutcome: Sendable {
    public var total: Int
    public var finished: [String]
    /// Failed cells (this run's and earlier ones not retried), with `study-failed.json`'s record.
    public var failed: [(cell: String, failure: StudyFailure)]
    /// The signal that stopped the runner (the next run resumes), or nil.
    public var interruptedBy: Int32?
    public var seconds: Double
}

public enum StudyRunError: Error, CustomStringConvertible {
    /// The directory's study-spec.json differs from the spec given (first differing field).
    case specChanged(file: String, field: String, stored: String, given: String)
    /// The directory exists, is not empty and holds no study-spec.json.
    case notAStudy(path: String)
    case storedSpec(file: String, problem: String)
    case io(SystemIOError)
    case spawn(executable: String, reason: String)

    public var description: String {
        switch self {
        case let .specChanged(file, field, stored, given):
            return "\(file): field '\(field)' differs: the study was started with \(stored), this spec has \(given)\n"
                + "hint: pass a new --out for a changed spec, or the same spec to continue this study"
        case let .notAStudy(path):
            return "\(path): not empty and holds no study-spec.json, so it is not a study directory\n"
                + "hint: pass a new or empty --out directory, or the --out of an earlier run of this spec"
        case let .storedSpec(file, problem):
            return "\(file): \(problem)\nhint: restore the file from the spec the study was started with, or pass a new --out"
        case let .io(e): return e.description
        case let .spawn(executable, reason):
            return "cannot start \(executable): \(reason)\nhint: build memloss (swift build) and run it from its build directory"
        }
    }
}

// MARK: - The runner

/// Runs a study's cells one after another as child processes of `executable` (`memloss`).
///
/// Rules (docs/study.md, "Running a study"):
/// - the first run creates the directory and writes `study-spec.json`; a later run with a spec that
///   differs is refused, naming the first differing field;
/// - a cell's state comes from its files (`StudyCellStatus`); finished cells are skipped, failed ones
///   are reported and skipped unless `retryFailed`, partial ones resume (`train --resume`, AutoAttack
///   with its `--state` file);
/// - children's stdout and stderr go to the cell's `study.log`, never to the runner's output;
/// - `interrupt(signal:)` forwards a signal to the running child, waits for it, and ends the run
///   without recording a failure (the next run resumes).
public final class StudyRunner: @unchecked Sendable {
    public let spec: StudySpec
    public let directory: StudyDirectory
    public let executable: URL
    public let retryFailed: Bool

    /// Lines kept from a failed child's stderr.
    public static let failureTailLines = 40

    private let lock = NSLock()
    private var childPID: pid_t?
    private var interruption: Int32?

    public init(spec: StudySpec, directory: URL, executable: URL, retryFailed: Bool = false) {
        self.spec = spec
        self.directory = StudyDirectory(directory)
        self.executable = executable
        self.retryFailed = retryFailed
    }

    /// Stops the study: sends `signal` to the running child (if any); the run returns once the child
    /// has ended, with `interruptedBy` set. Safe to call from a signal-handling queue.
    public func interrupt(signal: Int32) {
        lock.lock()
        defer { lock.unlock() }
        if interruption == nil { interruption = signal }
        if let pid = childPID { kill(pid, signal) }
    }

    private var interrupted: Int32? {
        lock.lock()
        defer { lock.unlock() }
        return interruption
    }

    // MARK: Plan

    /// Every cell with its state and the commands that would run it. Reads files only.
    /// - Throws: `StudyRunError` when the directory belongs to another spec (see `checkDirectory`).
    public func plan() throws -> [StudyCellPlan] {
        _ = try checkDirectory()
        return spec.cells.enumerated().map { plan(for: $1, index: $0 + 1) }
    }

    func plan(for cell: StudyCell, index: Int) -> StudyCellPlan {
        let fm = FileManager.default
        let run = directory.run(cell)
        let train = cell.trainArguments(out: run.path, evaluation: spec.evaluation)
        let wantsAutoAttack = autoattackArms.contains(cell.arm)
        let trained = fm.fileExists(atPath: directory.summary(cell).path)
        let status: StudyCellStatus
        if trained {
            if wantsAutoAttack && !fm.fileExists(atPath: directory.autoattack(cell).path) {
                status = .autoattackPending(resumes: fm.fileExists(atPath: directory.autoattackState(cell).path))
            } else {
                status = .finished
            }
        } else if fm.fileExists(atPath: run.appendingPathComponent("config.json").path) {
            status = .partial
        } else {
            status = .fresh
        }
        let failure = status == .finished ? nil : readFailure(cell)
        var commands: [[String]] = []
        switch status {
        case .fresh:
            // Checkpoints or metrics without config.json are leftovers no run can resume: start over.
            let leftovers = ["checkpoints", "metrics.jsonl"].contains { fm.fileExists(atPath: run.appendingPathComponent($0).path) }
            commands.append(leftovers ? train + ["--overwrite"] : train)
        case .partial:
            commands.append(resumeArguments(cell))
        case .autoattackPending, .finished:
            break
        }
        if status != .finished && wantsAutoAttack { commands.append(autoattackArguments(cell)) }
        return StudyCellPlan(index: index, cell: cell, runDirectory: run, status: status, failure: failure,
                             trainArguments: train, commands: commands,
                             willRun: status != .finished && (failure == nil || retryFailed))
    }

    /// The arms the spec evaluates with AutoAttack.
    var autoattackArms: Set<String> {
        guard let aa = spec.evaluation.autoattack else { return [] }
        return Set(aa.arms ?? spec.arms.map(\.name))
    }

    /// `train --resume RUN`, with the cell's `--checkpoint-every` (not part of the stored config).
    func resumeArguments(_ cell: StudyCell) -> [String] {
        var args = ["train", "--resume", directory.run(cell).path]
        if let every = cell.flags["checkpoint-every"] { args += every.arguments(flag: "checkpoint-every") }
        return args
    }

    /// `eval --attack autoattack` on the run's best checkpoint (its last one when no validation chose a
    /// best), resumable through its state file.
    func autoattackArguments(_ cell: StudyCell) -> [String] {
        guard let aa = spec.evaluation.autoattack else { return [] }
        let checkpoints = directory.run(cell).appendingPathComponent("checkpoints")
        let best = checkpoints.appendingPathComponent("best.safetensors")
        let last = checkpoints.appendingPathComponent("last.safetensors")
        let model = FileManager.default.fileExists(atPath: best.path) || !FileManager.default.fileExists(atPath: last.path) ? best : last
        return ["eval", "--checkpoint", model.path, "--attack", "autoattack", "--version", aa.version, "--n", "\(aa.n)",
                "--state", directory.autoattackState(cell).path, "--output", directory.autoattack(cell).path]
    }

    private func readFailure(_ cell: StudyCell) -> StudyFailure? {
        guard let data = FileManager.default.contents(atPath: directory.failure(cell).path) else { return nil }
        // An unreadable record still marks the cell failed: keep what can be said.
        return (try? JSONDecoder().decode(StudyFailure.self, from: data))
            ?? StudyFailure(format: StudyFailure.currentFormat, cell: cell.name, phase: "unknown", command: [], exitStatus: nil,
                            signal: nil, stderrTail: ["(study-failed.json is not readable)"], when: "")
    }

    // MARK: Directory and spec

    /// The spec as the study stores it: key-sorted, pretty JSON.
    public static func encoded(_ spec: StudySpec) throws -> Data {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try enc.encode(spec) + Data("\n".utf8)
    }

    /// Whether the directory can hold this study: true when it already does (study-spec.json equal to
    /// the spec), false when it is absent or empty (a first run).
    /// - Throws: `StudyRunError.specChanged` naming the first differing field, `.notAStudy`, `.storedSpec`.
    @discardableResult
    public func checkDirectory() throws -> Bool {
        let fm = FileManager.default
        guard let stored = fm.contents(atPath: directory.spec.path) else {
            let entries = (try? fm.contentsOfDirectory(atPath: directory.url.path)) ?? []
            if !entries.isEmpty { throw StudyRunError.notAStudy(path: directory.url.path) }
            return false
        }
        let given = try StudyRunner.encoded(spec)
        guard let a = try? JSONSerialization.jsonObject(with: stored), (try? JSONDecoder().decode(StudySpec.self, from: stored)) != nil else {
            throw StudyRunError.storedSpec(file: directory.spec.path, problem: "is not a readable study spec")
        }
        let b = try JSONSerialization.jsonObject(with: given)
        if let d = StudyRunner.firstDifference(a, b, path: "") {
            throw StudyRunError.specChanged(file: directory.spec.path, field: d.path.isEmpty ? "(the spec)" : d.path,
                                            stored: d.stored, given: d.given)
        }
        return true
    }

    /// The first path (keys in sorted order, `arms[1].flags.mem-k`) where two JSON values differ, with
    /// each side's value as JSON (`absent` where a key is missing).
    static func firstDifference(_ a: Any?, _ b: Any?, path: String) -> (path: String, stored: String, given: String)? {
        if let da = a as? [String: Any], let db = b as? [String: Any] {
            for key in Set(da.keys).union(db.keys).sorted() {
                if let d = firstDifference(da[key], db[key], path: path.isEmpty ? key : path + "." + key) { return d }
            }
            return nil
        }
        if let aa = a as? [Any], let ab = b as? [Any] {
            for i in 0..<max(aa.count, ab.count) {
                if let d = firstDifference(i < aa.count ? aa[i] : nil, i < ab.count ? ab[i] : nil, path: path + "[\(i)]") { return d }
            }
            return nil
        }
        let sa = json(a), sb = json(b)
        return sa == sb ? nil : (path, sa, sb)
    }

    private static func json(_ v: Any?) -> String {
        guard let v else { return "absent" }
        guard let d = try? JSONSerialization.data(withJSONObject: [v], options: [.sortedKeys, .fragmentsAllowed]) else { return "\(v)" }
        return String(String(decoding: d, as: UTF8.self).dropFirst().dropLast())
    }

    /// Creates the directory and writes study-spec.json on a first run.
    func prepareDirectory() throws {
        if try checkDirectory() { return }
        do { try FileManager.default.createDirectory(at: directory.runs, withIntermediateDirectories: true) } catch {
            throw StudyRunError.io(SystemIOError.from(error, operation: "create directory", path: directory.runs.path))
        }
        do { try AtomicFile.replace(Array(try StudyRunner.encoded(spec)), at: directory.spec) } catch let e as SystemIOError {
            throw StudyRunError.io(e)
        }
    }

    // MARK: Run

    /// Runs every cell that is not finished (and not failed, unless `retryFailed`), in spec order.
    /// - Parameter events: progress, in order, from the calling thread.
    /// - Returns: which cells finished and which failed; `interruptedBy` when `interrupt` stopped it.
    /// - Throws: `StudyRunError` for the directory, the spec or a child that cannot be started; a
    ///   cell's failure is not thrown but recorded and reported.
    public func run(events: (StudyEvent) -> Void) throws -> StudyOutcome {
        let start = Date()
        try prepareDirectory()
        let cells = spec.cells
        let total = cells.count
        var plans = cells.enumerated().map { plan(for: $1, index: $0 + 1) }
        var failed: [String: StudyFailure] = [:]
        for p in plans where !p.willRun { if let f = p.failure { failed[p.cell.name] = f } }
        var toRun = plans.filter(\.willRun).count
        try writeProgress(plans: plans, failed: failed, current: nil, cellsLeft: toRun)

        for i in plans.indices {
            let p = plans[i]
            if let signal = interrupted { return outcome(plans, failed, signal, start) }
            guard p.willRun else {
                events(.skipped(index: p.index, total: total, cell: p.cell.name, failure: p.failure))
                continue
            }
            try writeProgress(plans: plans, failed: failed, current: p.cell.name, cellsLeft: toRun)
            let cellStart = Date()
            let result = try runCell(p, total: total, events: events)
            toRun -= 1
            if let signal = interrupted { return outcome(plans, failed, signal, start) }
            plans[i] = plan(for: p.cell, index: p.index)
            let eta = meanCellSeconds(plans).map { $0 * Double(toRun) }
            if let failure = result {
                failed[p.cell.name] = failure
                events(.failed(index: p.index, total: total, cell: p.cell.name, failure: failure, etaSeconds: eta, cellsLeft: toRun))
            } else {
                failed[p.cell.name] = nil
                events(.finished(index: p.index, total: total, cell: p.cell.name, seconds: Date().timeIntervalSince(cellStart),
                                 etaSeconds: eta, cellsLeft: toRun))
            }
            try writeProgress(plans: plans, failed: failed, current: nil, cellsLeft: toRun)
        }
        return outcome(plans, failed, nil, start)
    }

    private func outcome(_ plans: [StudyCellPlan], _ failed: [String: StudyFailure], _ signal: Int32?, _ start: Date) -> StudyOutcome {
        StudyOutcome(total: plans.count, finished: plans.filter { $0.status == .finished }.map(\.cell.name),
                     failed: plans.compactMap { p in failed[p.cell.name].map { (p.cell.name, $0) } },
                     interruptedBy: signal, seconds: Date().timeIntervalSince(start))
    }

    /// Runs a cell's commands; returns the failure (also written to study-failed.json), or nil.
    private func runCell(_ plan: StudyCellPlan, total: Int, events: (StudyEvent) -> Void) throws -> StudyFailure? {
        let cell = plan.cell
        do { try FileManager.default.createDirectory(at: plan.runDirectory, withIntermediateDirectories: true) } catch {
            throw StudyRunError.io(SystemIOError.from(error, operation: "create directory", path: plan.runDirectory.path))
        }
        if plan.failure != nil { try? FileManager.default.removeItem(at: directory.failure(cell)) }
        var status = plan.status
        while status != .finished {
            let phase: String, resumed: Bool, args: [String]
            switch status {
            case .fresh: (phase, resumed, args) = ("training", false, plan.commands.first ?? plan.trainArguments)
            case .partial: (phase, resumed, args) = ("training", true, resumeArguments(cell))
            case .autoattackPending(let r): (phase, resumed, args) = ("autoattack", r, autoattackArguments(cell))
            case .finished: return nil
            }
            events(.started(index: plan.index, total: total, cell: cell.name, phase: phase, resumed: resumed))
            let (termination, tail) = try runChild(args, log: directory.log(cell), note: "\(phase) (\(resumed ? "resumed" : "fresh"))")
            if interrupted != nil { return nil }
            let next = self.plan(for: cell, index: plan.index).status
            if !termination.succeeded || next == status {
                let lines = String(decoding: tail, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
                    .map(String.init).filter { !$0.isEmpty }.suffix(StudyRunner.failureTailLines)
                var exitStatus: Int32? = nil, signal: Int32? = nil
                switch termination {
                case .exited(let c): exitStatus = c
                case .signaled(let s): signal = s
                }
                var tailLines = Array(lines)
                if termination.succeeded { tailLines.append("the child exited 0 but did not write its result files") }
                let failure = StudyFailure(format: StudyFailure.currentFormat, cell: cell.name, phase: phase == "training" ? "train" : phase,
                                           command: args, exitStatus: exitStatus, signal: signal, stderrTail: tailLines,
                                           when: StudyRunner.timestamp())
                try writeJSON(failure, to: directory.failure(cell))
                return failure
            }
            status = next
        }
        return nil
    }

    /// Runs `executable args` with stdout and stderr appended to `log` after a header line.
    private func runChild(_ args: [String], log: URL, note: String) throws -> (ChildTermination, Data) {
        let fd = open(log.path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw StudyRunError.io(SystemIOError(operation: "open the cell log", path: log.path, reason: String(cString: strerror(errno))))
        }
        defer { close(fd) }
        let header = "== memloss study \(StudyRunner.timestamp()): \(note): memloss \(StudyRunner.shellQuoted(args))\n"
        _ = header.withCString { write(fd, $0, strlen($0)) }
        lock.lock()
        let child: SpawnedChild
        do { child = try SpawnedChild.spawn(executable: executable.path, arguments: args, stdout: fd) } catch {
            lock.unlock()
            throw error
        }
        childPID = child.pid
        if let signal = interruption { kill(child.pid, signal) }
        lock.unlock()
        let tail = child.readStderr(copyingTo: fd)
        let termination = child.wait()
        lock.lock()
        childPID = nil
        lock.unlock()
        // The footer starts a line of its own even when the child's last line had no newline.
        var last: UInt8 = 0x0A
        var info = stat()
        if fstat(fd, &info) == 0, info.st_size > 0 { _ = pread(fd, &last, 1, info.st_size - 1) }
        let footer = (last == 0x0A ? "" : "\n") + "== memloss study \(StudyRunner.timestamp()): \(termination)\n"
        _ = footer.withCString { write(fd, $0, strlen($0)) }
        return (termination, tail)
    }

    // MARK: Progress

    /// Mean wall time of the finished cells: `wallSeconds` of eval/summary.json plus `seconds` of
    /// eval/autoattack.json where present.
    func meanCellSeconds(_ plans: [StudyCellPlan]) -> Double? {
        struct Summary: Decodable { var wallSeconds: Double }
        struct AutoAttackTime: Decodable { var seconds: Double }
        var times: [Double] = []
        for p in plans where p.status == .finished {
            guard let d = FileManager.default.contents(atPath: directory.summary(p.cell).path),
                  let s = try? JSONDecoder().decode(Summary.self, from: d) else { continue }
            var t = s.wallSeconds
            if let a = FileManager.default.contents(atPath: directory.autoattack(p.cell).path),
               let aa = try? JSONDecoder().decode(AutoAttackTime.self, from: a) { t += aa.seconds }
            times.append(t)
        }
        return times.isEmpty ? nil : times.reduce(0, +) / Double(times.count)
    }

    private func writeProgress(plans: [StudyCellPlan], failed: [String: StudyFailure], current: String?, cellsLeft: Int) throws {
        let finished = plans.filter { $0.status == .finished }.count
        let mean = meanCellSeconds(plans)
        let failedNames = plans.map(\.cell.name).filter { failed[$0] != nil }
        let progress = StudyProgress(study: spec.name, total: plans.count, finished: finished, failed: failedNames.count,
                                     remaining: plans.count - finished - failedNames.count, current: current,
                                     meanCellSeconds: mean, etaSeconds: mean.map { $0 * Double(cellsLeft) },
                                     failedCells: failedNames, updated: StudyRunner.timestamp())
        try writeJSON(progress, to: directory.progress)
    }

    private func writeJSON<T: Encodable>(_ value: T, to url: URL) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        do { try AtomicFile.replace(Array(try enc.encode(value)) + [0x0A], at: url) } catch let e as SystemIOError {
            throw StudyRunError.io(e)
        }
    }

    // MARK: Text helpers

    static func timestamp() -> String { ISO8601DateFormatter().string(from: Date()) }

    /// Arguments joined for a shell: each quoted when it holds anything but `A-Za-z0-9 + - _ . / = , :`.
    public static func shellQuoted(_ args: [String]) -> String {
        args.map { a in
            let plain = !a.isEmpty && a.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "+-_./=,:".contains($0)) }
            return plain ? a : "'" + a.replacingOccurrences(of: "'", with: "'\\''") + "'"
        }.joined(separator: " ")
    }
}
