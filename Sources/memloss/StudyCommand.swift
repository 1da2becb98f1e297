// StudyCommand.swift: `memloss study` (a command group) and `memloss study run SPEC --out DIR` (docs/study.md,
// "Running a study"). Parses flags, forwards SIGINT/SIGTERM to the runner and prints its events as lines on
// stderr; the runner itself (cell states, child processes, files) is Study/StudyRunner.swift.

import ArgumentParser
import Dispatch
import Foundation
import Study

struct StudyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "study",
        abstract: "Run a grid of training runs from a spec, and report on it.",
        subcommands: [
            StudyRunCommand.self,
            StudyReportCommand.self,
        ])
}

struct StudyRunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run every cell of a study spec (finished cells are skipped, partial ones resume).",
        discussion: "Each cell is an ordinary run directory DIR/runs/<cell>/ trained by a child `memloss train`; its output "
            + "goes to DIR/runs/<cell>/study.log. A failed cell is recorded in its study-failed.json and not retried "
            + "unless --retry-failed. Exit status: 0 when every cell finished, 1 when some failed.")

    @Argument(help: "The study spec (JSON, docs/study.md).")
    var spec: String
    @Option(help: "The study directory (created on the first run; the same spec continues it).")
    var out: String
    @Flag(help: "Run cells that failed before again.")
    var retryFailed = false
    @Flag(help: "List the cells, their state and their commands; run nothing.")
    var dryRun = false

    func run() throws {
        let study: StudySpec
        do { study = try StudySpec.load(spec) } catch { throw Self.fail(error) }
        let runner = StudyRunner(spec: study, directory: URL(fileURLWithPath: out), executable: Self.ownExecutable(),
                                 retryFailed: retryFailed)
        if dryRun {
            try printPlan(runner)
            return
        }
        let sources = [SIGINT, SIGTERM].map { sig -> DispatchSourceSignal in
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { runner.interrupt(signal: sig) }
            source.resume()
            return source
        }
        defer { sources.forEach { $0.cancel() } }
        let outcome: StudyOutcome
        do { outcome = try runner.run(events: Self.render) } catch { throw Self.fail(error) }
        if let sig = outcome.interruptedBy {
            Self.say("study: stopped by signal \(sig) after \(Self.duration(outcome.seconds)); "
                     + "run the same command again to continue (finished cells are kept, the stopped one resumes)")
            throw ExitCode(128 + sig)
        }
        Self.say("study \(study.name): \(outcome.finished.count)/\(outcome.total) cells finished, \(outcome.failed.count) failed "
                 + "(\(Self.duration(outcome.seconds)) this run)")
        guard outcome.failed.isEmpty else {
            for (cell, failure) in outcome.failed {
                Self.say("  FAILED \(cell) (\(failure.summary)): \(out)/runs/\(cell)/study-failed.json, study.log")
            }
            Self.say("hint: fix the cause, then rerun with --retry-failed")
            throw ExitCode(1)
        }
    }

    /// `--dry-run`: every cell, its state and its commands.
    private func printPlan(_ runner: StudyRunner) throws {
        let plans: [StudyCellPlan]
        do { plans = try runner.plan() } catch { throw Self.fail(error) }
        for p in plans {
            var state = p.status.description
            if let f = p.failure { state = "FAILED before (\(f.summary))" + (retryFailed ? ", retried" : ", not retried") }
            print("[\(p.index)/\(plans.count)] \(p.cell.name): \(state)")
            print("    memloss \(StudyRunner.shellQuoted(p.trainArguments))")
            if p.willRun {
                for c in p.commands where c != p.trainArguments { print("    next: memloss \(StudyRunner.shellQuoted(c))") }
            }
        }
        let toRun = plans.filter(\.willRun).count
        print("\(plans.count) cells, \(plans.filter { $0.status == .finished }.count) finished, \(toRun) to run; nothing was run (--dry-run)")
    }

    /// This executable, for the child processes.
    static func ownExecutable() -> URL {
        if let path = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            return URL(fileURLWithPath: path)
        }
        return URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL
    }

    static func render(_ event: StudyEvent) {
        switch event {
        case let .skipped(k, n, cell, failure):
            if let failure {
                say("[\(k)/\(n)] \(cell): failed before (\(failure.summary)); not retried (--retry-failed retries it)")
            } else {
                say("[\(k)/\(n)] \(cell): finished, skipped")
            }
        case let .started(k, n, cell, phase, resumed):
            say("[\(k)/\(n)] \(cell): \(phase) (\(resumed ? "resumed" : "fresh"))…")
        case let .finished(k, n, cell, seconds, eta, left):
            say("[\(k)/\(n)] \(cell): done in \(duration(seconds))" + etaText(eta, left))
        case let .failed(k, n, cell, failure, eta, left):
            say("[\(k)/\(n)] \(cell): FAILED (\(failure.summary))" + etaText(eta, left))
        }
    }

    private static func etaText(_ eta: Double?, _ left: Int) -> String {
        guard left > 0 else { return "" }
        guard let eta else { return "; \(left) cell\(left == 1 ? "" : "s") left" }
        return "; ETA \(duration(eta)) for \(left) cell\(left == 1 ? "" : "s")"
    }

    /// `95 s`, `12 min`, `3.2 h`.
    static func duration(_ s: Double) -> String {
        if s < 120 { return "\(Int(s.rounded())) s" }
        if s < 7200 { return "\(Int((s / 60).rounded())) min" }
        return String(format: "%.1f h", s / 3600)
    }

    /// Prints a spec or study error (it names the file and the field, then a hint) and exits 1.
    static func fail(_ error: Error) -> ExitCode {
        say("memloss study run: \(error)")
        return ExitCode(1)
    }

    static func say(_ line: String) { FileHandle.standardError.write(Data((line + "\n").utf8)) }
}
