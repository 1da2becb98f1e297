// StudyReportTests.swift: `memloss study report` (Sources/Study/StudyReport.swift, StudyPlots.swift) on a
// hand-made study directory: 3 arms (4 groups) × 2–3 seeds, one failed cell, one missing cell. Means,
// sds and seed-paired differences are checked against numbers computed by hand (written below); the
// SVGs must parse as XML with one point per group/K; study.md names the failed and missing cells;
// study.json round-trips.

import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Study
import Training
import XCTest
import _TestSupport

final class StudyReportTests: XCTestCase {
    private static let spec = """
    {
      "format": "memloss-study/1",
      "name": "fixture",
      "base": {"data": "demo", "epochs": 2},
      "arms": [
        {"name": "trades", "flags": {"memloss": false}},
        {"name": "trades+memloss", "flags": {"memloss": true}},
        {"name": "window", "flags": {"memloss": true}, "grid": {"mem-k": [1, 4]}, "seeds": [0, 1]}
      ],
      "seeds": [0, 1, 2],
      "baseline": "trades",
      "evaluation": {"attacks": "pgd20,cw", "n": 100, "autoattack": {"n": 50, "version": "standard", "arms": ["trades", "trades+memloss"]}}
    }
    """

    /// One finished cell of the fixture.
    private struct Run {
        var name: String
        var clean: Double, pgd20: Double, cw: Double
        var autoattack: (accuracy: Double, seconds: Double)?
        var trainSeconds: Double
        /// `memory.total_bytes` of the two epoch lines (nil: no memory report).
        var memoryBytes: [Int]?
        /// Bytes of files to put under bank/.
        var bankFiles: [Int] = []
        /// `val_robust_accuracy` of epochs 1 and 2.
        var valRobust: [Double]
    }

    // The fixture's numbers. Hand computations are in the tests.
    private static let runs: [Run] = [
        Run(name: "trades_seed=0", clean: 0.80, pgd20: 0.40, cw: 0.38, autoattack: (0.36, 20), trainSeconds: 100,
            memoryBytes: nil, valRobust: [0.30, 0.40]),
        Run(name: "trades_seed=1", clean: 0.82, pgd20: 0.43, cw: 0.40, autoattack: (0.37, 20), trainSeconds: 110,
            memoryBytes: nil, valRobust: [0.32, 0.42]),
        Run(name: "trades_seed=2", clean: 0.84, pgd20: 0.46, cw: 0.42, autoattack: (0.41, 20), trainSeconds: 120,
            memoryBytes: nil, valRobust: [0.34, 0.44]),
        Run(name: "trades+memloss_seed=0", clean: 0.83, pgd20: 0.45, cw: 0.41, autoattack: (0.39, 30), trainSeconds: 150,
            memoryBytes: [1000, 3000], valRobust: [0.35, 0.45]),
        // trades+memloss_seed=1 failed (study-failed.json).
        Run(name: "trades+memloss_seed=2", clean: 0.85, pgd20: 0.50, cw: 0.44, autoattack: (0.42, 30), trainSeconds: 170,
            memoryBytes: [2000, 2500], valRobust: [0.37, 0.47]),
        Run(name: "window_mem-k=1_seed=0", clean: 0.81, pgd20: 0.44, cw: 0.40, autoattack: nil, trainSeconds: 90,
            memoryBytes: nil, bankFiles: [100, 250], valRobust: [0.31, 0.41]),
        Run(name: "window_mem-k=1_seed=1", clean: 0.83, pgd20: 0.47, cw: 0.43, autoattack: nil, trainSeconds: 95,
            memoryBytes: [500, 500], valRobust: [0.33, 0.43]),
        Run(name: "window_mem-k=4_seed=0", clean: 0.79, pgd20: 0.48, cw: 0.39, autoattack: nil, trainSeconds: 99,
            memoryBytes: [800, 900], valRobust: [0.36, 0.46]),
        // window_mem-k=4_seed=1 is missing (no run directory).
    ]

    private var retained: [TempDirectory] = []

    /// Writes the fixture study directory and returns it.
    private func makeStudy() throws -> URL {
        let dir = TempDirectory("study-report")
        retained.append(dir)
        try Data(StudyReportTests.spec.utf8).write(to: dir.path("study-spec.json"))
        let runs = dir.path("runs")
        for r in StudyReportTests.runs { try write(r, into: runs.appendingPathComponent(r.name)) }
        let failed = runs.appendingPathComponent("trades+memloss_seed=1")
        try FileManager.default.createDirectory(at: failed, withIntermediateDirectories: true)
        try Data("""
        {"exit_status": 1, "stderr": ["Error: bad flag", "memloss train: --mem-k: expected an integer ≥ 1"], "when": "2026-01-01T00:00:00Z"}
        """.utf8).write(to: failed.appendingPathComponent("study-failed.json"))
        return dir.url
    }

    private func write(_ r: Run, into run: URL) throws {
        let eval = run.appendingPathComponent("eval")
        try FileManager.default.createDirectory(at: eval, withIntermediateDirectories: true)
        try Data("{}".utf8).write(to: run.appendingPathComponent("config.json"))
        let test = """
        {"n": 100, "seed": 0, "bnMode": "inference", "epsilonText": "0.3", "epsilon": 0.3, "cleanAccuracy": \(r.clean),
         "attacks": [{"attack": "pgd20", "accuracy": \(r.pgd20), "correct": \(Int(r.pgd20 * 100))},
                     {"attack": "cw", "accuracy": \(r.cw), "correct": \(Int(r.cw * 100))}],
         "worstCaseAccuracy": \(min(r.pgd20, r.cw)), "seconds": 3.5}
        """
        try Data(test.utf8).write(to: eval.appendingPathComponent("test.json"))
        let summary = """
        {"epochs": 2, "steps": 20, "wallSeconds": \(r.trainSeconds), "bestEpoch": 2, "bestValidationRobust": \(r.valRobust[1]),
         "peakRSSBytes": 1000000}
        """
        try Data(summary.utf8).write(to: eval.appendingPathComponent("summary.json"))
        if let aa = r.autoattack {
            // Only the fields the study reads, plus a few others a real report has.
            let text = """
            {"n": 50, "robustAccuracy": \(aa.accuracy), "cleanAccuracy": \(r.clean), "seconds": \(aa.seconds), "version": "standard"}
            """
            try Data(text.utf8).write(to: eval.appendingPathComponent("autoattack.json"))
        }
        var lines = Data()
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        for e in 0..<2 {
            var memory: MemoryEpochReport?
            if let b = r.memoryBytes { memory = MemoryEpochReport(); memory!.totalBytes = b[e] }
            let rec = EpochRecord(epoch: e + 1, step: 10 * (e + 1), learningRate: 0.1, trainLoss: 1, trainTerms: [:],
                                  trainCleanAccuracy: 0.5, trainAdversarialAccuracy: 0.3, imagesPerSecond: 100, epochSeconds: 10,
                                  dataWaitSeconds: 0, wallSeconds: Double(10 * (e + 1)), peakRSSBytes: 1000, memory: memory,
                                  valCleanAccuracy: 0.7, valRobustAccuracy: r.valRobust[e], valAttack: "pgd10", bestEpoch: e + 1)
            lines += try enc.encode(MetricsLine.epoch(rec)) + Data([0x0A])
        }
        try lines.write(to: run.appendingPathComponent("metrics.jsonl"))
        if !r.bankFiles.isEmpty {
            let bank = run.appendingPathComponent("bank")
            try FileManager.default.createDirectory(at: bank, withIntermediateDirectories: true)
            for (i, n) in r.bankFiles.enumerated() {
                try Data(repeating: 7, count: n).write(to: bank.appendingPathComponent("gen-\(i).seg"))
            }
        }
    }

    private func group(_ report: StudyReport, _ name: String) throws -> StudyGroupSummary {
        try XCTUnwrap(report.groups.first { $0.group == name }, "no group \(name)")
    }

    private func assertStat(_ st: StudyStatistic?, n: Int, mean: Double, sd: Double?, _ what: String,
                            file: StaticString = #filePath, line: UInt = #line) {
        guard let st else { return XCTFail("\(what): no statistic", file: file, line: line) }
        XCTAssertEqual(st.n, n, "\(what): n", file: file, line: line)
        XCTAssertEqual(st.mean, mean, accuracy: 1e-9, "\(what): mean", file: file, line: line)
        if let sd {
            XCTAssertEqual(st.sd ?? .nan, sd, accuracy: 1e-9, "\(what): sd", file: file, line: line)
        } else {
            XCTAssertNil(st.sd, "\(what): sd must be absent for n = 1", file: file, line: line)
        }
    }

    // MARK: Groups

    func test_groupMeansAndSampleSds_equalAHandComputation() throws {
        let report = try StudyReport.build(directory: try makeStudy())
        XCTAssertEqual(report.groups.map(\.group), ["trades", "trades+memloss", "window_mem-k=1", "window_mem-k=4"])
        XCTAssertEqual(report.metrics.map(\.key), ["clean", "pgd20", "cw", "autoattack", "wall_seconds", "bank_bytes", "epochs"])

        let t = try group(report, "trades")
        XCTAssertEqual(t.seedsFinished, [0, 1, 2])
        // clean 0.80 0.82 0.84: mean 0.82, sd √((0.02² + 0 + 0.02²)/2) = 0.02.
        assertStat(t.metrics["clean"], n: 3, mean: 0.82, sd: 0.02, "trades clean")
        // PGD-20 0.40 0.43 0.46: mean 0.43, sd 0.03.
        assertStat(t.metrics["pgd20"], n: 3, mean: 0.43, sd: 0.03, "trades pgd20")
        // CW 0.38 0.40 0.42: mean 0.40, sd 0.02.
        assertStat(t.metrics["cw"], n: 3, mean: 0.40, sd: 0.02, "trades cw")
        // AutoAttack 0.36 0.37 0.41: mean 0.38, deviations −0.02 −0.01 +0.03, sd √(0.0014/2) = 0.0264575131.
        assertStat(t.metrics["autoattack"], n: 3, mean: 0.38, sd: 0.0264575131106, "trades autoattack")
        // Wall = training + AutoAttack: 120 130 140: mean 130, sd 10.
        assertStat(t.metrics["wall_seconds"], n: 3, mean: 130, sd: 10, "trades wall")
        assertStat(t.metrics["epochs"], n: 3, mean: 2, sd: 0, "trades epochs")
        XCTAssertNil(t.metrics["bank_bytes"], "a run without a bank has no bank bytes")

        let m = try group(report, "trades+memloss")
        XCTAssertEqual(m.seeds, [0, 1, 2])
        XCTAssertEqual(m.seedsFinished, [0, 2], "the failed seed 1 is not averaged in")
        // clean 0.83 0.85: mean 0.84, sd √(2·0.01²) = 0.0141421356.
        assertStat(m.metrics["clean"], n: 2, mean: 0.84, sd: 0.0141421356237, "memloss clean")
        // PGD-20 0.45 0.50: mean 0.475, sd √(2·0.025²) = 0.0353553391.
        assertStat(m.metrics["pgd20"], n: 2, mean: 0.475, sd: 0.0353553390593, "memloss pgd20")
        // Bank bytes: the largest memory.total_bytes of each run, 3000 and 2500: mean 2750, sd √(2·250²) = 353.553391.
        assertStat(m.metrics["bank_bytes"], n: 2, mean: 2750, sd: 353.553390593, "memloss bank")

        // window K=1: bank bytes of seed 0 from bank/ (100 + 250 = 350), of seed 1 from metrics (500).
        let k1 = try group(report, "window_mem-k=1")
        assertStat(k1.metrics["bank_bytes"], n: 2, mean: 425, sd: 106.066017178, "window k=1 bank")
        XCTAssertNil(k1.metrics["autoattack"], "the window arm is not in the AutoAttack subset")
        // window K=4: seed 1 missing → n = 1, no sd.
        let k4 = try group(report, "window_mem-k=4")
        XCTAssertEqual(k4.seedsFinished, [0])
        assertStat(k4.metrics["pgd20"], n: 1, mean: 0.48, sd: nil, "window k=4 pgd20")
        XCTAssertEqual(k4.point, ["mem-k": "4"])

        // Validation curve of trades, epoch 1: 0.30 0.32 0.34 → 0.32 ± 0.02.
        let curve = try XCTUnwrap(report.curves.first { $0.group == "trades" })
        XCTAssertEqual(curve.points.map(\.epoch), [1, 2])
        assertStat(curve.points[0].statistic, n: 3, mean: 0.32, sd: 0.02, "trades val robust epoch 1")
    }

    // MARK: Paired differences

    func test_pairedDifferences_pairBySeed_andDropASeedMissingInOneGroup() throws {
        let report = try StudyReport.build(directory: try makeStudy())
        XCTAssertEqual(report.paired.map(\.group), ["trades+memloss", "window_mem-k=1", "window_mem-k=4"])
        let m = try XCTUnwrap(report.paired.first { $0.group == "trades+memloss" })
        XCTAssertEqual(m.baselineGroup, "trades")
        XCTAssertEqual(m.seeds, [0, 2], "seed 1 failed in trades+memloss: that pair is dropped")
        // clean: 0.83 − 0.80 = 0.03, 0.85 − 0.84 = 0.01 → mean 0.02, sd 0.0141421356.
        let clean = try XCTUnwrap(m.metrics["clean"])
        XCTAssertEqual(clean.seeds, [0, 2])
        XCTAssertEqual(clean.differences[0], 0.03, accuracy: 1e-12)
        XCTAssertEqual(clean.differences[1], 0.01, accuracy: 1e-12)
        assertStat(clean.statistic, n: 2, mean: 0.02, sd: 0.0141421356237, "Δ clean")
        // PGD-20: 0.05, 0.04 → mean 0.045, sd 0.00707106781. (Unpaired means would give 0.475 − 0.43 = 0.045 too,
        // but a different spread; the AutoAttack line below tells pairing from unpaired means apart.)
        assertStat(m.metrics["pgd20"]?.statistic, n: 2, mean: 0.045, sd: 0.00707106781187, "Δ pgd20")
        // AutoAttack: 0.39 − 0.36 = 0.03, 0.42 − 0.41 = 0.01 → mean 0.02 (unpaired: 0.405 − 0.38 = 0.025).
        assertStat(m.metrics["autoattack"]?.statistic, n: 2, mean: 0.02, sd: 0.0141421356237, "Δ autoattack")
        // Wall: 180 − 120 = 60, 200 − 140 = 60 → 60 ± 0.
        assertStat(m.metrics["wall_seconds"]?.statistic, n: 2, mean: 60, sd: 0, "Δ wall")
        XCTAssertEqual(m.metrics["bank_bytes"]?.seeds, [], "the baseline has no bank: no bank-bytes pairs")
        XCTAssertNil(m.metrics["bank_bytes"]?.statistic)
        XCTAssertNil(m.note)

        // window K=4 finished seed 0 only: one pair, said plainly.
        let k4 = try XCTUnwrap(report.paired.first { $0.group == "window_mem-k=4" })
        XCTAssertEqual(k4.seeds, [0])
        assertStat(k4.metrics["pgd20"]?.statistic, n: 1, mean: 0.08, sd: nil, "Δ pgd20 window k=4")
        XCTAssertTrue(k4.note?.contains("only 1 seed pair") == true, k4.note ?? "no note")
        let md = report.markdown()
        XCTAssertTrue(md.contains("window_mem-k=4: only 1 seed pair"), md)
        XCTAssertTrue(md.contains("+2.00 pp ± 1.41 pp (n=2)"), "the Δ clean of trades+memloss in percentage points:\n\(md)")
    }

    func test_baselineArmWithAGrid_pairsTheGroupWithTheSameGridPoint() throws {
        var spec = try JSONDecoder().decode(StudySpec.self, from: Data(StudyReportTests.spec.utf8))
        spec.arms = [StudyArm(name: "base", grid: ["mem-k": [.number(1), .number(4)]]),
                     StudyArm(name: "other", flags: ["mem-beta": .number(2)], grid: ["mem-k": [.number(1), .number(4)]])]
        spec.baseline = "base"
        spec.seeds = [0]
        func cell(_ name: String, _ group: String, _ arm: String, pgd: Double) -> StudyCellResult {
            StudyCellResult(name: name, group: group, arm: arm, seed: 0, values: ["pgd20": pgd], validationRobust: [],
                            testSamples: nil, autoAttackSamples: nil, notes: [])
        }
        let cells = [cell("base_mem-k=1_seed=0", "base_mem-k=1", "base", pgd: 0.40),
                     cell("base_mem-k=4_seed=0", "base_mem-k=4", "base", pgd: 0.30),
                     cell("other_mem-k=1_seed=0", "other_mem-k=1", "other", pgd: 0.45),
                     cell("other_mem-k=4_seed=0", "other_mem-k=4", "other", pgd: 0.50)]
        let report = StudyReport.compute(spec: spec, cells: cells, problems: [])
        XCTAssertEqual(report.paired.map(\.baselineGroup), ["base_mem-k=1", "base_mem-k=4"])
        XCTAssertEqual(report.paired[0].metrics["pgd20"]?.differences[0] ?? .nan, 0.05, accuracy: 1e-12)
        XCTAssertEqual(report.paired[1].metrics["pgd20"]?.differences[0] ?? .nan, 0.20, accuracy: 1e-12)
    }

    // MARK: Failed and missing cells

    func test_failedAndMissingCells_areListedByNameAndReason() throws {
        let dir = try makeStudy()
        let report = try StudyReport.build(directory: dir).write(to: dir)
        XCTAssertEqual(report.cells.count, 8)
        XCTAssertEqual(report.cellCount, 10)
        XCTAssertEqual(report.problems.map(\.name), ["trades+memloss_seed=1", "window_mem-k=4_seed=1"])
        XCTAssertEqual(report.problems.map(\.status), [.failed, .missing])
        XCTAssertTrue(report.problems[0].reason.contains("exit 1"), report.problems[0].reason)
        XCTAssertTrue(report.problems[0].reason.contains("--mem-k: expected an integer"), report.problems[0].reason)
        let md = try String(contentsOf: dir.appendingPathComponent("study.md"), encoding: .utf8)
        XCTAssertTrue(md.contains("**failed** `trades+memloss_seed=1`"), md)
        XCTAssertTrue(md.contains("**missing** `window_mem-k=4_seed=1`: not run"), md)
        XCTAssertTrue(md.contains("8 of 10 cells finished; 1 failed, 1 missing"), md)
        XCTAssertTrue(md.contains("| trades+memloss | 2/3 |"), "the group row shows seeds finished/planned:\n\(md)")
        for p in report.plots { XCTAssertTrue(md.contains("](\(p))"), "study.md links \(p)") }
    }

    func test_unfinishedAndUnreadableCells_areMissingWithTheFileNamed() throws {
        let dir = try makeStudy()
        let runs = dir.appendingPathComponent("runs")
        // A partial run: its summary is gone (training did not finish).
        try FileManager.default.removeItem(at: runs.appendingPathComponent("window_mem-k=1_seed=1/eval/summary.json"))
        // A damaged test result.
        let test = runs.appendingPathComponent("trades_seed=2/eval/test.json")
        try Data(#"{"n": 100, "cleanAccuracy": "high"}"#.utf8).write(to: test)
        // AutoAttack was expected for trades but is missing.
        try FileManager.default.removeItem(at: runs.appendingPathComponent("trades_seed=1/eval/autoattack.json"))
        let report = try StudyReport.build(directory: dir)
        let byName = Dictionary(uniqueKeysWithValues: report.problems.map { ($0.name, $0) })
        XCTAssertTrue(byName["window_mem-k=1_seed=1"]?.reason.contains("not finished") == true)
        XCTAssertTrue(byName["window_mem-k=1_seed=1"]?.reason.contains("2 epoch lines") == true)
        let bad = try XCTUnwrap(byName["trades_seed=2"]?.reason)
        XCTAssertTrue(bad.contains(test.path) && bad.contains("unreadable"), bad)
        XCTAssertTrue(byName["trades_seed=1"]?.reason.contains("AutoAttack not finished") == true)
        XCTAssertEqual(try group(report, "trades").seedsFinished, [0])
    }

    func test_aDirectoryWithoutASpec_isRejectedNamingTheFile() throws {
        let dir = TempDirectory("study-report-empty")
        XCTAssertThrowsError(try StudyReport.build(directory: dir.url)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains(dir.path("study-spec.json").path) && text.contains("is missing"), text)
            XCTAssertTrue(text.contains("\nhint: "), text)
        }
    }

    // MARK: Files

    func test_studyJSON_roundTrips_andHoldsEveryCellValue() throws {
        let dir = try makeStudy()
        let out = dir.appendingPathComponent("elsewhere")
        let written = try StudyReport.build(directory: dir).write(to: out)
        let data = try Data(contentsOf: out.appendingPathComponent("study.json"))
        let decoded = try JSONDecoder().decode(StudyReport.self, from: data)
        XCTAssertEqual(decoded, written)
        XCTAssertEqual(decoded.format, StudyReport.currentFormat)
        let cell = try XCTUnwrap(decoded.cells.first { $0.name == "trades+memloss_seed=2" })
        XCTAssertEqual(cell.values["wall_seconds"], 200)
        XCTAssertEqual(cell.values["autoattack"], 0.42)
        XCTAssertEqual(cell.values["bank_bytes"], 2500)
        XCTAssertEqual(cell.autoAttackSamples, 50)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("study.json").path),
                       "--out writes elsewhere, not into the study directory")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: out.path).filter { $0.hasSuffix(".tmp") }
        XCTAssertEqual(leftovers, [], "atomic writes leave no temporaries")
    }

    func test_aWriteFailure_namesTheFile_andLeavesTheOldReportIntact() throws {
        let dir = try makeStudy()
        let report = try StudyReport.build(directory: dir)
        try report.write(to: dir)
        let md = dir.appendingPathComponent("study.md")
        let before = try Data(contentsOf: md)
        // study.json cannot be replaced: a non-empty directory holds its name.
        let json = dir.appendingPathComponent("study.json")
        try FileManager.default.removeItem(at: json)
        try FileManager.default.createDirectory(at: json.appendingPathComponent("blocker"), withIntermediateDirectories: true)
        var changed = report
        changed.study = "changed"
        XCTAssertThrowsError(try changed.write(to: dir)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains(json.path) && text.contains("cannot be written"), text)
            XCTAssertTrue(text.contains("\nhint: "), text)
        }
        XCTAssertEqual(try Data(contentsOf: md), before, "study.md is not replaced after study.json failed")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".tmp") }
        XCTAssertEqual(leftovers, [])
    }

    func test_plots_parseAsXML_withOnePointPerGroupAndK() throws {
        let dir = try makeStudy()
        let report = try StudyReport.build(directory: dir).write(to: dir)
        XCTAssertEqual(report.plots, ["plots/k-window.svg", "plots/val-robust-1.svg", "plots/val-robust-time-1.svg"])
        // A plot of an earlier report that this one does not draw is removed; other files are kept.
        try Data("<svg/>".utf8).write(to: dir.appendingPathComponent("plots/val-robust-2.svg"))
        try Data("mine".utf8).write(to: dir.appendingPathComponent("plots/notes.txt"))
        try report.write(to: dir)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("plots").path).sorted(),
                       ["k-window.svg", "notes.txt", "val-robust-1.svg", "val-robust-time-1.svg"])

        // (a) K plot of the window arm: PGD-20, one series (no stride grid), one point per K = group.
        let k = try SVGPoints.parse(dir.appendingPathComponent("plots/k-window.svg"))
        XCTAssertEqual(k.points.count, 2)
        XCTAssertEqual(k.points.map(\.x), [1, 4])
        // Means in percent: K=1 (0.44 + 0.47)/2 = 45.5, K=4 48.
        XCTAssertEqual(k.points[0].y, 45.5, accuracy: 1e-9)
        XCTAssertEqual(k.points[1].y, 48, accuracy: 1e-9)
        XCTAssertEqual(k.errorBars, 1, "an error bar where n ≥ 2 (K=1), none for n = 1 (K=4)")
        XCTAssertEqual(k.legendEntries, 1)

        // (b) validation curves: one line per group with finished seeds, one point per group and epoch.
        let v = try SVGPoints.parse(dir.appendingPathComponent("plots/val-robust-1.svg"))
        XCTAssertEqual(v.legendEntries, 4)
        XCTAssertEqual(v.points.count, 4 * 2)
        XCTAssertEqual(Set(v.points.map(\.series)), ["trades", "trades+memloss", "window_mem-k=1", "window_mem-k=4"])
        let trades = v.points.filter { $0.series == "trades" }
        XCTAssertEqual(trades.map(\.y)[0], 32, accuracy: 1e-9)
        XCTAssertEqual(trades.map(\.y)[1], 42, accuracy: 1e-9)

        // (c) time to robustness: the same points against training seconds, Σ epoch_seconds (10 s per
        // epoch in the fixture): 10 and 20.
        let t = try SVGPoints.parse(dir.appendingPathComponent("plots/val-robust-time-1.svg"))
        XCTAssertEqual(t.legendEntries, 4)
        XCTAssertEqual(t.points.count, 4 * 2)
        let timed = t.points.filter { $0.series == "trades" }
        XCTAssertEqual(timed.map(\.x), [10, 20])
        XCTAssertEqual(timed.map(\.y)[0], 32, accuracy: 1e-9)
        XCTAssertEqual(timed.map(\.y)[1], 42, accuracy: 1e-9)
        let cell = try XCTUnwrap(report.cells.first { $0.arm == "trades" })
        XCTAssertEqual(cell.validationRobust.map(\.trainingSeconds), [10, 20])
    }

    func test_kPlot_hasOneSeriesPerStride_andAutoAttackDashed_onePointPerK() throws {
        var spec = try JSONDecoder().decode(StudySpec.self, from: Data(StudyReportTests.spec.utf8))
        spec.arms = [StudyArm(name: "win", grid: ["mem-k": [.number(1), .number(2), .number(8)], "mem-stride": [.number(1), .number(2)]])]
        spec.baseline = nil
        spec.seeds = [0, 1]
        spec.evaluation.autoattack?.arms = nil
        let cells = spec.cells.map { c -> StudyCellResult in
            let k = Double(c.point.first { $0.flag == "mem-k" }!.value.description)!
            let s = Double(c.point.first { $0.flag == "mem-stride" }!.value.description)!
            // PGD-20 = 0.4 + 0.01·K + 0.02·stride + 0.01·seed; AutoAttack 0.05 below.
            let pgd = 0.4 + 0.01 * k + 0.02 * s + 0.01 * Double(c.seed)
            return StudyCellResult(name: c.name, group: c.group, arm: c.arm, seed: c.seed,
                                   values: ["pgd20": pgd, "autoattack": pgd - 0.05], validationRobust: [],
                                   testSamples: 100, autoAttackSamples: 50, notes: [])
        }
        let report = StudyReport.compute(spec: spec, cells: cells, problems: [])
        XCTAssertEqual(report.paired, [], "no baseline, no pairs")
        let charts = StudyPlots.charts(for: report)
        XCTAssertEqual(charts.map(\.file), ["k-win.svg"])
        let chart = charts[0].chart
        XCTAssertEqual(chart.series.map(\.name), ["PGD-20, stride 1", "PGD-20, stride 2", "AutoAttack, stride 1", "AutoAttack, stride 2"])
        XCTAssertEqual(chart.series.map(\.dashed), [false, false, true, true])
        XCTAssertEqual(chart.series[1].points.map(\.x), [1, 2, 8])
        // K = 8, stride 2, seeds 0 and 1: 0.52 and 0.53 → 52.5 ± 0.7071 (%).
        XCTAssertEqual(chart.series[1].points[2].y, 52.5, accuracy: 1e-9)
        XCTAssertEqual(chart.series[1].points[2].sd ?? .nan, 0.707106781187, accuracy: 1e-9)
        let url = retainedDirectory().appendingPathComponent("k.svg")
        try Data(chart.render().utf8).write(to: url)
        let svg = try SVGPoints.parse(url)
        XCTAssertEqual(svg.points.count, 3 * 2 * 2, "one point per K, stride and metric")
        XCTAssertEqual(svg.legendEntries, 4)
    }

    private func retainedDirectory() -> URL {
        let dir = TempDirectory("study-report-plot")
        retained.append(dir)
        return dir.url
    }

    func test_moreThanEightGroups_makeSeveralCurvePlots() {
        let curves = (0..<11).map { i in
            StudyCurve(group: "g\(i)", points: [.init(epoch: 1, statistic: StudyStatistic(n: 1, mean: 0.5, sd: nil))])
        }
        var report = StudyReport.compute(spec: try! JSONDecoder().decode(StudySpec.self, from: Data(StudyReportTests.spec.utf8)),
                                         cells: [], problems: [])
        report.curves = curves
        let charts = StudyPlots.charts(for: report).filter { $0.file.hasPrefix("val-robust") }
        XCTAssertEqual(charts.map(\.file), ["val-robust-1.svg", "val-robust-2.svg"])
        XCTAssertEqual(charts.map(\.chart.series.count), [8, 3])
    }

    func test_statistic_usesTheSampleSd_andHasNoneForOneValue() {
        // 2, 4, 4, 4, 5, 5, 7, 9: mean 5, Σ(v − 5)² = 32, sample sd √(32/7) = 2.138089935.
        let st = StudyStatistic.of([2, 4, 4, 4, 5, 5, 7, 9])
        XCTAssertEqual(st?.mean ?? .nan, 5, accuracy: 1e-12)
        XCTAssertEqual(st?.sd ?? .nan, 2.13808993529939, accuracy: 1e-12)
        XCTAssertEqual(StudyStatistic.of([0.7]), StudyStatistic(n: 1, mean: 0.7, sd: nil))
        XCTAssertNil(StudyStatistic.of([]))
    }
}

/// The data points, error bars and legend entries of a study SVG, read with XMLParser (so the file
/// must be well-formed XML).
private final class SVGPoints: NSObject, XMLParserDelegate {
    struct Point { var series: String; var x: Double; var y: Double }
    var points: [Point] = []
    var errorBars = 0
    var legendEntries = 0
    var sawSVG = false

    static func parse(_ url: URL) throws -> SVGPoints {
        let data = try Data(contentsOf: url)
        let parser = XMLParser(data: data)
        let reader = SVGPoints()
        parser.delegate = reader
        guard parser.parse() else {
            throw NSError(domain: "SVG", code: 1, userInfo: [NSLocalizedDescriptionKey:
                "\(url.path) is not well-formed XML: \(parser.parserError.map { "\($0)" } ?? "?")"])
        }
        XCTAssertTrue(reader.sawSVG, "\(url.path) has an <svg> root")
        return reader
    }

    func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                attributes: [String: String] = [:]) {
        if name == "svg" { sawSVG = true }
        switch attributes["class"] {
        case "point":
            points.append(Point(series: attributes["data-series"] ?? "", x: Double(attributes["data-x"] ?? "") ?? .nan,
                                y: Double(attributes["data-y"] ?? "") ?? .nan))
        case "errorbar": errorBars += 1
        case "legend": legendEntries += 1
        default: break
        }
    }
}
