// StudyReportCommand.swift: `memloss study report DIR [--out DIR2] [--json]`: parses the flags, calls
// Study.StudyReport (build from the study directory, write study.md, study.json and plots/*.svg) and
// prints where they went, or the JSON. No statistics or formatting here (Sources/Study/StudyReport.swift).

import ArgumentParser
import Foundation
import Study

struct StudyReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Summarize a study: mean ± sd per group, seed-paired differences against the baseline, plots.",
        discussion: "Writes study.md, study.json and plots/*.svg into DIR (or --out). Failed and missing cells are listed, "
            + "never averaged in.")

    @Argument(help: "The study directory (`memloss study run SPEC --out DIR`; it holds study-spec.json).")
    var directory: String
    @Option(help: "Write study.md, study.json and plots/ here instead of into DIR.")
    var out: String?
    @Flag(help: "Print study.json on stdout (the files are written too).")
    var json = false

    func run() throws {
        do {
            let report = try StudyReport.build(directory: URL(fileURLWithPath: directory))
            let dest = URL(fileURLWithPath: out ?? directory)
            let written = try report.write(to: dest)
            if json {
                print(String(decoding: try written.jsonData(), as: UTF8.self))
                return
            }
            let failed = written.problems.filter { $0.status == .failed }.count
            print("study \(written.study): \(written.cells.count) of \(written.cellCount) cells finished, \(failed) failed, "
                  + "\(written.problems.count - failed) missing")
            print("wrote \(dest.appendingPathComponent("study.md").path)")
            print("wrote \(dest.appendingPathComponent("study.json").path)")
            for p in written.plots { print("wrote \(dest.appendingPathComponent(p).path)") }
        } catch let e as StudyReportError {
            FileHandle.standardError.write(Data("memloss study report: \(e)\n".utf8))
            throw ExitCode(1)
        } catch {
            FileHandle.standardError.write(Data("memloss study report: \(error)\nhint: report this with the study directory\n".utf8))
            throw ExitCode(1)
        }
    }
}
