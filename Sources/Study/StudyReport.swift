// StudyReport.swift: `memloss study report DIR`: reads a study directory (study-spec.json and one
// ordinary run directory per cell under runs/), and builds per-group mean ± sd over seeds, seed-paired
// differences against the baseline arm, the per-cell values, and the list of failed or missing cells;
// writes study.json and study.md (with the SVG plots of StudyPlots.swift) atomically. It reads files
// only: it never runs a cell (StudyRunner.swift does) and never knows a model.

import Foundation
import SystemIO
import Training

// MARK: - Values

/// Mean and spread of one metric over some runs (or over seed-paired differences).
public struct StudyStatistic: Codable, Sendable, Equatable {
    /// How many values (seeds or pairs) the statistic is over.
    public var n: Int
    public var mean: Double
    /// Sample standard deviation (divisor n − 1); nil when n < 2.
    public var sd: Double?

    public init(n: Int, mean: Double, sd: Double?) { self.n = n; self.mean = mean; self.sd = sd }

    /// The statistic of `values`, or nil for no values.
    ///
    /// ```
    /// mean = Σ v / n,   sd = √( Σ (v − mean)² / (n − 1) )   (n ≥ 2)
    /// ```
    public static func of(_ values: [Double]) -> StudyStatistic? {
        guard !values.isEmpty else { return nil }
        let n = values.count
        let mean = values.reduce(0, +) / Double(n)
        guard n >= 2 else { return StudyStatistic(n: 1, mean: mean, sd: nil) }
        let ss = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) }
        return StudyStatistic(n: n, mean: mean, sd: (ss / Double(n - 1)).squareRoot())
    }
}

/// One reported quantity: its key in the per-cell `values`, a label, and how to print it.
public struct StudyMetric: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable {
        /// A fraction in [0, 1] (printed as a percentage; differences in percentage points).
        case accuracy
        case seconds
        case bytes
        case count
    }

    /// `clean`, an attack name of the evaluation (`pgd20`, `cw`, …), `autoattack`, `wall_seconds`,
    /// `bank_bytes` or `epochs`.
    public var key: String
    public var label: String
    public var kind: Kind

    public init(key: String, label: String, kind: Kind) { self.key = key; self.label = label; self.kind = kind }
}

/// One finished cell: the numbers its run directory holds.
public struct StudyCellResult: Codable, Sendable, Equatable {
    public var name: String
    public var group: String
    public var arm: String
    public var seed: Int
    /// Metric key → value (fractions for accuracies, seconds, bytes). A key is absent when the run
    /// holds no such figure (e.g. `bank_bytes` of a run without a memory bank).
    public var values: [String: Double]
    /// `val_robust_accuracy` of the run's validation epochs, in epoch order.
    public var validationRobust: [StudyEpochValue]
    /// Test points of the evaluation and of AutoAttack (nil when not run).
    public var testSamples: Int?
    public var autoAttackSamples: Int?
    /// Where each figure came from, and figures that could not be read (the cell still counts).
    public var notes: [String]

    public init(name: String, group: String, arm: String, seed: Int, values: [String: Double], validationRobust: [StudyEpochValue],
                testSamples: Int?, autoAttackSamples: Int?, notes: [String]) {
        self.name = name; self.group = group; self.arm = arm; self.seed = seed; self.values = values
        self.validationRobust = validationRobust; self.testSamples = testSamples; self.autoAttackSamples = autoAttackSamples
        self.notes = notes
    }
}

/// A value at a 1-based epoch.
public struct StudyEpochValue: Codable, Sendable, Equatable {
    public var epoch: Int
    public var value: Double
    /// Training seconds up to the end of this epoch: Σ `epoch_seconds` of epochs 1…epoch
    /// (validation and checkpoints excluded; docs/metrics.md). Absent in older reports.
    public var trainingSeconds: Double?

    public init(epoch: Int, value: Double, trainingSeconds: Double? = nil) {
        self.epoch = epoch; self.value = value; self.trainingSeconds = trainingSeconds
    }
}

/// A cell of the spec that has no results: failed (its study-failed.json) or missing (not run, not
/// finished, or unreadable).
public struct StudyCellProblem: Codable, Sendable, Equatable {
    public enum Status: String, Codable, Sendable { case failed, missing }
    public var name: String
    public var group: String
    public var seed: Int
    public var status: Status
    public var reason: String

    public init(name: String, group: String, seed: Int, status: Status, reason: String) {
        self.name = name; self.group = group; self.seed = seed; self.status = status; self.reason = reason
    }
}

/// Cells that differ only by seed: their seeds and mean ± sd per metric.
public struct StudyGroupSummary: Codable, Sendable, Equatable {
    public var group: String
    public var arm: String
    /// The grid point as `flag → value` (empty for an arm without a grid).
    public var point: [String: String]
    /// Seeds of the spec, and those whose cell finished (spec order).
    public var seeds: [Int]
    public var seedsFinished: [Int]
    /// Metric key → statistic over the finished seeds that have the figure.
    public var metrics: [String: StudyStatistic]
}

/// One metric's seed-paired differences (group − baseline).
public struct StudyPairedMetric: Codable, Sendable, Equatable {
    /// Seeds where both cells have the figure, and the difference at each (same order).
    public var seeds: [Int]
    public var differences: [Double]
    /// Over the differences; nil when no seed pairs.
    public var statistic: StudyStatistic?
}

/// A group against its baseline group, seed by seed.
public struct StudyPairedDifference: Codable, Sendable, Equatable {
    public var group: String
    /// nil when no baseline group matches (see `note`).
    public var baselineGroup: String?
    /// Seeds both cells finished.
    public var seeds: [Int]
    public var metrics: [String: StudyPairedMetric]
    /// Why there is no pairing, or that fewer than 2 pairs give no spread.
    public var note: String?
}

/// Mean ± sd over a group's finished seeds of `val_robust_accuracy` per epoch.
public struct StudyCurve: Codable, Sendable, Equatable {
    public struct Point: Codable, Sendable, Equatable {
        public var epoch: Int
        public var statistic: StudyStatistic
        /// The cells' training seconds at that epoch (`StudyEpochValue.trainingSeconds`), when all have them.
        public var trainingSeconds: StudyStatistic?
        public init(epoch: Int, statistic: StudyStatistic, trainingSeconds: StudyStatistic? = nil) {
            self.epoch = epoch; self.statistic = statistic; self.trainingSeconds = trainingSeconds
        }
    }
    public var group: String
    public var points: [Point]

    public init(group: String, points: [Point]) { self.group = group; self.points = points }
}

// MARK: - The report

/// Everything `study.json` holds: per group, per pair, per cell, the problems and the plots.
///
/// Accuracies are fractions in [0, 1]; `study.md` prints them as percentages. Every group and pair
/// figure can be recomputed from `cells[].values`.
public struct StudyReport: Codable, Sendable, Equatable {
    public static let currentFormat = "memloss-study-report/1"
    public var format: String
    public var study: String
    public var baseline: String?
    /// The evaluation's attacks (in spec order) and AutoAttack's subset.
    public var evaluation: StudyEvaluation
    public var metrics: [StudyMetric]
    public var groups: [StudyGroupSummary]
    public var paired: [StudyPairedDifference]
    public var cells: [StudyCellResult]
    public var problems: [StudyCellProblem]
    public var curves: [StudyCurve]
    /// Plot files, relative to the report's directory (`plots/…svg`).
    public var plots: [String]
    /// Cells of the spec in total.
    public var cellCount: Int

    /// The attack names of `evaluation.attacks` (`pgd20,cw` → [pgd20, cw]).
    public static func attackNames(_ evaluation: StudyEvaluation) -> [String] {
        evaluation.attacks.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// The metrics of a study: clean, each attack, AutoAttack (when the spec has it), wall time,
    /// bank bytes, epochs.
    public static func metrics(of spec: StudySpec) -> [StudyMetric] {
        var m = [StudyMetric(key: "clean", label: "clean", kind: .accuracy)]
        for a in attackNames(spec.evaluation) where a != "natural" && a != "clean" {
            m.append(StudyMetric(key: a, label: label(attack: a), kind: .accuracy))
        }
        if spec.evaluation.autoattack != nil { m.append(StudyMetric(key: "autoattack", label: "AutoAttack", kind: .accuracy)) }
        m.append(StudyMetric(key: "wall_seconds", label: "wall time", kind: .seconds))
        m.append(StudyMetric(key: "bank_bytes", label: "bank bytes", kind: .bytes))
        m.append(StudyMetric(key: "epochs", label: "epochs", kind: .count))
        return m
    }

    static func label(attack a: String) -> String {
        if a.hasPrefix("pgd"), let k = Int(a.dropFirst(3)) { return "PGD-\(k)" }
        if a == "cw" { return "CW∞" }
        if a.hasPrefix("cw"), let k = Int(a.dropFirst(2)) { return "CW∞-\(k)" }
        return a
    }
}

/// Errors of `study report`: each names the file, what was expected, and a hint.
public enum StudyReportError: Error, CustomStringConvertible, Equatable {
    case notAStudy(path: String, problem: String)
    case write(path: String, problem: String)

    public var description: String {
        switch self {
        case .notAStudy(let p, let problem):
            return "\(p): \(problem)\nhint: pass the directory `memloss study run SPEC --out DIR` wrote (it holds study-spec.json)"
        case .write(let p, let problem):
            return "\(p): cannot be written: \(problem)\nhint: check that the directory is writable and the disk has room, "
                + "or pass another --out"
        }
    }
}

// MARK: - Reading a study directory

extension StudyReport {
    /// Reads the study in `directory` (its study-spec.json and runs/) and computes the report.
    /// Cells that failed, are missing or cannot be read are listed in `problems`, never averaged.
    /// - Throws: `StudyReportError.notAStudy` when the directory or its spec cannot be read.
    public static func build(directory: URL) throws -> StudyReport {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDir), isDir.boolValue else {
            throw StudyReportError.notAStudy(path: directory.path, problem: "is not a directory")
        }
        let specPath = directory.appendingPathComponent("study-spec.json").path
        guard FileManager.default.fileExists(atPath: specPath) else {
            throw StudyReportError.notAStudy(path: specPath, problem: "is missing")
        }
        let spec: StudySpec
        do { spec = try StudySpec.load(specPath) } catch {
            throw StudyReportError.notAStudy(path: specPath, problem: "\(error)".components(separatedBy: "\n")[0])
        }
        var results: [StudyCellResult] = [], problems: [StudyCellProblem] = []
        for cell in spec.cells {
            switch StudyCellReader(cell: cell, spec: spec, runs: directory.appendingPathComponent("runs")).read() {
            case .success(let r): results.append(r)
            case .failure(let p): problems.append(p)
            }
        }
        return compute(spec: spec, cells: results, problems: problems)
    }

    /// The report from per-cell results: groups, paired differences and curves (no file access).
    public static func compute(spec: StudySpec, cells results: [StudyCellResult], problems: [StudyCellProblem]) -> StudyReport {
        let metrics = metrics(of: spec)
        let byName = Dictionary(results.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var groups: [StudyGroupSummary] = [], curves: [StudyCurve] = []
        for (group, cells) in orderedGroups(spec) {
            let finished = cells.compactMap { byName[$0.name] }
            var stats: [String: StudyStatistic] = [:]
            for m in metrics { stats[m.key] = StudyStatistic.of(finished.compactMap { $0.values[m.key] }) }
            let first = cells[0]
            groups.append(StudyGroupSummary(
                group: group, arm: first.arm, point: Dictionary(first.point.map { ($0.flag, $0.value.description) },
                                                                uniquingKeysWith: { a, _ in a }),
                seeds: cells.map(\.seed), seedsFinished: finished.map(\.seed), metrics: stats))
            curves.append(curve(group: group, finished))
        }
        return StudyReport(format: currentFormat, study: spec.name, baseline: spec.baseline, evaluation: spec.evaluation,
                           metrics: metrics, groups: groups, paired: pairedDifferences(spec, results, metrics),
                           cells: results, problems: problems, curves: curves.filter { !$0.points.isEmpty }, plots: [],
                           cellCount: spec.cells.count)
    }

    /// Groups in spec order with their cells.
    static func orderedGroups(_ spec: StudySpec) -> [(String, [StudyCell])] {
        var order: [String] = [], cells: [String: [StudyCell]] = [:]
        for c in spec.cells {
            if cells[c.group] == nil { order.append(c.group) }
            cells[c.group, default: []].append(c)
        }
        return order.map { ($0, cells[$0]!) }
    }

    static func curve(group: String, _ finished: [StudyCellResult]) -> StudyCurve {
        var perEpoch: [Int: [Double]] = [:], seconds: [Int: [Double?]] = [:]
        for r in finished {
            for p in r.validationRobust { perEpoch[p.epoch, default: []].append(p.value); seconds[p.epoch, default: []].append(p.trainingSeconds) }
        }
        let points = perEpoch.keys.sorted().compactMap { e in
            StudyStatistic.of(perEpoch[e]!).map { st in
                let t = seconds[e] ?? []
                return StudyCurve.Point(epoch: e, statistic: st, trainingSeconds: t.contains(nil) ? nil : StudyStatistic.of(t.compactMap { $0 }))
            }
        }
        return StudyCurve(group: group, points: points)
    }

    // MARK: Paired differences

    /// Every group outside the baseline arm against its baseline group: the baseline arm's single
    /// group, or (baseline arm with a grid) the group whose grid settings the other group's flags equal.
    static func pairedDifferences(_ spec: StudySpec, _ results: [StudyCellResult], _ metrics: [StudyMetric]) -> [StudyPairedDifference] {
        guard let baseline = spec.baseline else { return [] }
        let groups = orderedGroups(spec)
        let baseGroups = groups.filter { $0.1[0].arm == baseline }
        var bySeed: [String: [Int: StudyCellResult]] = [:]
        for r in results { bySeed[r.group, default: [:]][r.seed] = r }
        var out: [StudyPairedDifference] = []
        for (group, cells) in groups where cells[0].arm != baseline {
            let flags = cells[0].flags
            let matches = baseGroups.count == 1 ? baseGroups : baseGroups.filter { b in
                b.1[0].point.allSatisfy { flags[$0.flag] == $0.value }
            }
            guard matches.count == 1, let base = matches.first?.0 else {
                let what = matches.isEmpty ? "no group of the baseline arm \(baseline) has this group's grid point"
                    : "several groups of the baseline arm \(baseline) match this group's flags (\(matches.map(\.0).joined(separator: ", ")))"
                out.append(StudyPairedDifference(group: group, baselineGroup: nil, seeds: [], metrics: [:], note: what))
                continue
            }
            let mine = bySeed[group] ?? [:], theirs = bySeed[base] ?? [:]
            let seeds = cells.map(\.seed).filter { mine[$0] != nil && theirs[$0] != nil }
            var pm: [String: StudyPairedMetric] = [:]
            for m in metrics {
                var s: [Int] = [], d: [Double] = []
                for seed in seeds {
                    if let a = mine[seed]?.values[m.key], let b = theirs[seed]?.values[m.key] { s.append(seed); d.append(a - b) }
                }
                pm[m.key] = StudyPairedMetric(seeds: s, differences: d, statistic: StudyStatistic.of(d))
            }
            let note: String? = seeds.count >= 2 ? nil
                : seeds.isEmpty ? "no seed finished in both this group and \(base): no paired difference"
                : "only 1 seed pair (seed \(seeds[0])): a single difference, no spread"
            out.append(StudyPairedDifference(group: group, baselineGroup: base, seeds: seeds, metrics: pm, note: note))
        }
        return out
    }
}

// MARK: - One cell's run directory

/// Reads `runs/<cell.name>/`: study-failed.json, eval/summary.json, eval/test.json,
/// eval/autoattack.json, metrics.jsonl and bank/.
struct StudyCellReader {
    let cell: StudyCell
    let spec: StudySpec
    let runs: URL

    var run: URL { runs.appendingPathComponent(cell.name) }

    /// A cell's results, or why it has none.
    enum Outcome { case success(StudyCellResult), failure(StudyCellProblem) }

    func problem(_ status: StudyCellProblem.Status, _ reason: String) -> Outcome {
        .failure(StudyCellProblem(name: cell.name, group: cell.group, seed: cell.seed, status: status, reason: reason))
    }

    /// The file's JSON decoded as `T`, nil when the file does not exist.
    /// - Throws: a one-line message naming the file and the field.
    func decode<T: Decodable>(_ type: T.Type, _ relative: String) throws -> T? {
        let url = run.appendingPathComponent(relative)
        guard let data = FileManager.default.contents(atPath: url.path) else { return nil }
        do { return try JSONDecoder().decode(T.self, from: data) } catch {
            let field = StudyError.field(of: error)
            throw CellReadError(message: "\(url.path): \(field.isEmpty ? "" : "field '\(field)': ")\(StudyError.problem(of: error))")
        }
    }

    struct CellReadError: Error { var message: String }

    /// The fields of an AutoAttack report the study uses.
    struct AutoAttackFigures: Decodable { var robustAccuracy: Double; var n: Int; var seconds: Double }

    var expectsAutoAttack: Bool {
        guard let aa = spec.evaluation.autoattack else { return false }
        return aa.arms.map { $0.contains(cell.arm) } ?? true
    }

    func read() -> Outcome {
        let failed = run.appendingPathComponent("study-failed.json")
        if FileManager.default.fileExists(atPath: failed.path) { return problem(.failed, StudyCellReader.failureReason(failed)) }
        guard FileManager.default.fileExists(atPath: run.path) else { return problem(.missing, "not run (no run directory)") }
        do {
            guard let summary = try decode(TrainingSummary.self, "eval/summary.json") else {
                let epochs = (try? MetricsLog.read(run.appendingPathComponent("metrics.jsonl")))?
                    .filter { $0.kind == .epoch }.count ?? 0
                return problem(.missing, "not finished (no eval/summary.json; \(epochs) epoch line\(epochs == 1 ? "" : "s") in metrics.jsonl)")
            }
            var notes: [String] = []
            guard let test = try decode(EvaluationResult.self, "eval/test.json") ?? summary.test else {
                return problem(.missing, "no test evaluation (neither eval/test.json nor a `test` in eval/summary.json)")
            }
            let aa = try decode(AutoAttackFigures.self, "eval/autoattack.json")
            if expectsAutoAttack && aa == nil { return problem(.missing, "AutoAttack not finished (no eval/autoattack.json)") }

            var values: [String: Double] = ["clean": test.cleanAccuracy, "epochs": Double(summary.epochs),
                                            "wall_seconds": summary.wallSeconds + (aa?.seconds ?? 0)]
            for name in StudyReport.attackNames(spec.evaluation) where name != "natural" && name != "clean" {
                if let v = test.accuracy(of: name) { values[name] = v } else { notes.append("the test evaluation has no \(name)") }
            }
            if let aa { values["autoattack"] = aa.robustAccuracy }

            var curve: [StudyEpochValue] = []
            var metricsBank: Int?
            do {
                let epochs = try MetricsLog.read(run.appendingPathComponent("metrics.jsonl")).compactMap { line -> EpochRecord? in
                    if case .epoch(let r) = line { return r } else { return nil }
                }
                var trained = 0.0
                curve = epochs.compactMap { r in
                    trained += r.epochSeconds
                    return r.valRobustAccuracy.map { StudyEpochValue(epoch: r.epoch, value: $0, trainingSeconds: trained) }
                }
                metricsBank = epochs.compactMap { $0.memory?.totalBytes }.max()
            } catch {
                notes.append("metrics.jsonl unreadable (no curve, no bank bytes from it): "
                             + "\(error)".components(separatedBy: "\n")[0])
            }
            if let b = metricsBank {
                values["bank_bytes"] = Double(b)
            } else if let b = StudyCellReader.directoryBytes(run.appendingPathComponent("bank")) {
                values["bank_bytes"] = Double(b); notes.append("bank bytes: size of bank/ (no memory.total_bytes in metrics.jsonl)")
            }
            return .success(StudyCellResult(name: cell.name, group: cell.group, arm: cell.arm, seed: cell.seed, values: values,
                                            validationRobust: curve, testSamples: test.n, autoAttackSamples: aa?.n, notes: notes))
        } catch let e as CellReadError {
            return problem(.missing, "unreadable: \(e.message)")
        } catch {
            return problem(.missing, "unreadable: \(error)")
        }
    }

    /// Total size of the regular files under `dir`, nil when it does not exist.
    static func directoryBytes(_ dir: URL) -> Int? {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir.path, isDirectory: &isDir), isDir.boolValue,
              let e = FileManager.default.enumerator(at: dir, includingPropertiesForKeys: [.fileSizeKey, .isRegularFileKey])
        else { return nil }
        var total = 0
        for case let url as URL in e {
            let v = try? url.resourceValues(forKeys: [.fileSizeKey, .isRegularFileKey])
            if v?.isRegularFile == true { total += v?.fileSize ?? 0 }
        }
        return total
    }

    /// One line from study-failed.json: the runner's `StudyFailure` summary (exit status or signal
    /// and the error line); for a hand-written file its `reason`/`error`/`message`, exit status,
    /// signal and last stderr line; the file's own text when it is not a JSON object.
    static func failureReason(_ url: URL) -> String {
        guard let data = FileManager.default.contents(atPath: url.path) else { return "failed (study-failed.json unreadable)" }
        // The runner's record (StudyRunner.swift); other shapes are read loosely below.
        if let record = try? JSONDecoder().decode(StudyFailure.self, from: data) {
            return "failed (\(record.phase)): \(record.summary)"
        }
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            return "failed: " + String(text.components(separatedBy: "\n")[0].prefix(200))
        }
        func text(_ v: Any?) -> String? {
            switch v {
            case let s as String: return s
            case let n as NSNumber: return n.stringValue
            case let a as [Any]: return a.compactMap { text($0) }.last { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
            default: return nil
            }
        }
        let keys = object.keys.sorted()
        func first(_ names: [String]) -> (String, String)? {
            for k in keys where names.contains(where: { k.lowercased().contains($0) }) { if let t = text(object[k]) { return (k, t) } }
            return nil
        }
        var parts: [String] = []
        if let (_, t) = first(["reason", "message", "error"]) { parts.append(t) }
        if let (_, t) = first(["exit", "status"]) { parts.append("exit \(t)") }
        if let (_, t) = first(["signal"]) { parts.append("signal \(t)") }
        if let (_, t) = first(["stderr"]) {
            let last = t.components(separatedBy: "\n").last { !$0.trimmingCharacters(in: .whitespaces).isEmpty } ?? t
            parts.append(String(last.prefix(200)))
        }
        return parts.isEmpty ? "failed (study-failed.json gives no reason)" : "failed: " + parts.joined(separator: "; ")
    }
}

// MARK: - Writing

extension StudyReport {
    /// Writes `plots/*.svg`, `study.json` and `study.md` into `directory` (created if needed), each
    /// atomically (temporary file, fsync, rename). Returns the report with its `plots` filled in.
    /// - Throws: `StudyReportError.write` naming the file.
    @discardableResult
    public func write(to directory: URL) throws -> StudyReport {
        var report = self
        let plotsDir = directory.appendingPathComponent("plots")
        do { try FileManager.default.createDirectory(at: plotsDir, withIntermediateDirectories: true) } catch {
            throw StudyReportError.write(path: plotsDir.path, problem: "cannot create the directory (\(error.localizedDescription))")
        }
        let plots = StudyPlots.charts(for: self)
        report.plots = plots.map { "plots/\($0.file)" }
        for p in plots { try StudyReport.replace(Array(p.chart.render().utf8), plotsDir.appendingPathComponent(p.file)) }
        // Plots of an earlier report of this study that this one no longer draws (fewer groups) would
        // sit next to study.md unlinked; only files named like the report's own plots are removed.
        let current = Set(plots.map(\.file))
        for old in (try? FileManager.default.contentsOfDirectory(atPath: plotsDir.path)) ?? []
        where StudyPlots.isPlotFileName(old) && !current.contains(old) {
            try? FileManager.default.removeItem(at: plotsDir.appendingPathComponent(old))
        }
        try StudyReport.replace(Array(try report.jsonData()), directory.appendingPathComponent("study.json"))
        try StudyReport.replace(Array(report.markdown(plotTitles: plots.map { ($0.chart.title, "plots/\($0.file)") }).utf8),
                                directory.appendingPathComponent("study.md"))
        return report
    }

    /// The report as pretty, key-sorted JSON.
    public func jsonData() throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try e.encode(self)
    }

    static func replace(_ bytes: [UInt8], _ url: URL) throws {
        do { try AtomicFile.replace(bytes, at: url) } catch {
            throw StudyReportError.write(path: url.path, problem: "\(error)".components(separatedBy: "\n")[0])
        }
    }
}

// MARK: - Markdown

extension StudyReport {
    /// study.md: the headline table of groups, the paired differences, the per-cell table, the
    /// failed/missing cells and the plots (`plotTitles`: title and relative path of each).
    public func markdown(plotTitles: [(String, String)] = []) -> String {
        let shown = metrics
        var s = "# Study \(study)\n\n"
        s += "\(cells.count) of \(cellCount) cells finished"
        let failed = problems.filter { $0.status == .failed }.count, missing = problems.count - failed
        s += problems.isEmpty ? ".\n\n" : "; \(failed) failed, \(missing) missing (listed below; never averaged in).\n\n"
        s += "Evaluation: `\(evaluation.attacks)` on "
            + (evaluation.n == 0 ? "every test image" : "the first \(evaluation.n) test images")
        if let aa = evaluation.autoattack {
            s += "; AutoAttack \(aa.version) on the first \(aa.n) for " + (aa.arms.map { $0.joined(separator: ", ") } ?? "every arm")
        }
        s += ". Values are mean ± sd over seeds (sample sd, n − 1; — for n = 1). Wall time = training + AutoAttack.\n\n"

        s += "## Groups\n\n| group | n | " + shown.map(\.label).joined(separator: " | ") + " |\n"
        s += "|---|---:|" + String(repeating: "---:|", count: shown.count) + "\n"
        for g in groups {
            let n = "\(g.seedsFinished.count)/\(g.seeds.count)"
            s += "| \(g.group) | \(n) | " + shown.map { StudyReport.format(g.metrics[$0.key], $0.kind) }.joined(separator: " | ") + " |\n"
        }

        s += "\n## Paired differences against the baseline\n\n"
        if let baseline {
            s += "Group − baseline (arm `\(baseline)`), seed by seed; only seeds both cells finished are paired. "
                + "Accuracy differences in percentage points.\n\n"
            let diffMetrics = shown.filter { $0.key != "epochs" }
            s += "| group | baseline group | pairs (seeds) | " + diffMetrics.map { "Δ " + $0.label }.joined(separator: " | ") + " |\n"
            s += "|---|---|---|" + String(repeating: "---:|", count: diffMetrics.count) + "\n"
            for p in paired {
                let seeds = p.seeds.isEmpty ? "0" : "\(p.seeds.count) (\(p.seeds.map(String.init).joined(separator: ", ")))"
                s += "| \(p.group) | \(p.baselineGroup ?? "—") | \(seeds) | "
                    + diffMetrics.map { StudyReport.formatDifference(p.metrics[$0.key]?.statistic, $0.kind) }.joined(separator: " | ") + " |\n"
            }
            let notes = paired.filter { $0.note != nil }
            if !notes.isEmpty {
                s += "\n"
                for p in notes { s += "- \(p.group): \(p.note!).\n" }
            }
        } else {
            s += "The spec names no baseline arm: no paired differences.\n"
        }

        s += "\n## Failed and missing cells\n\n"
        if problems.isEmpty { s += "None: every cell finished.\n" }
        for p in problems { s += "- **\(p.status.rawValue)** `\(p.name)`: \(p.reason)\n" }

        if !plotTitles.isEmpty {
            s += "\n## Plots\n\n"
            for (title, path) in plotTitles { s += "![\(title)](\(path))\n\n" }
        }

        s += "\n## Cells\n\n| cell | seed | " + shown.map(\.label).joined(separator: " | ") + " | notes |\n"
        s += "|---|---:|" + String(repeating: "---:|", count: shown.count) + "---|\n"
        for c in cells {
            s += "| \(c.name) | \(c.seed) | "
                + shown.map { k in c.values[k.key].map { StudyReport.format(value: $0, k.kind) } ?? "—" }.joined(separator: " | ")
                + " | \(c.notes.joined(separator: "; ")) |\n"
        }
        s += "\nNumbers: study.json (every figure above and each cell's values).\n"
        return s
    }

    static func format(value v: Double, _ kind: StudyMetric.Kind) -> String {
        switch kind {
        case .accuracy: return String(format: "%.2f%%", v * 100)
        case .seconds: return String(format: "%.1f s", v)
        case .bytes: return bytes(v)
        case .count: return v == v.rounded() ? String(Int(v)) : String(format: "%.2f", v)
        }
    }

    static func bytes(_ v: Double) -> String {
        let a = abs(v)
        if a >= Double(1 << 30) { return String(format: "%.2f GiB", v / Double(1 << 30)) }
        if a >= Double(1 << 20) { return String(format: "%.2f MiB", v / Double(1 << 20)) }
        if a >= Double(1 << 10) { return String(format: "%.1f KiB", v / Double(1 << 10)) }
        return String(format: "%.0f B", v)
    }

    /// `mean ± sd`, `mean ± —` for n = 1, `—` for no value.
    static func format(_ st: StudyStatistic?, _ kind: StudyMetric.Kind) -> String {
        guard let st else { return "—" }
        return format(value: st.mean, kind) + " ± " + (st.sd.map { format(value: $0, kind) } ?? "—")
    }

    /// Signed mean ± sd of differences (accuracies in percentage points), with the pair count.
    static func formatDifference(_ st: StudyStatistic?, _ kind: StudyMetric.Kind) -> String {
        guard let st else { return "—" }
        func f(_ v: Double, signed: Bool) -> String {
            switch kind {
            case .accuracy: return String(format: signed ? "%+.2f pp" : "%.2f pp", v * 100)
            case .seconds: return String(format: signed ? "%+.1f s" : "%.1f s", v)
            case .bytes: return (signed && v >= 0 ? "+" : "") + bytes(v)
            case .count: return String(format: signed ? "%+.2f" : "%.2f", v)
            }
        }
        return f(st.mean, signed: true) + " ± " + (st.sd.map { f($0, signed: false) } ?? "—") + " (n=\(st.n))"
    }
}
