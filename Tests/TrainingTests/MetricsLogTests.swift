// MetricsLogTests.swift: metrics.jsonl against its schema (MetricsLine, docs/metrics.md): every line of
// a real two-epoch MemLoss run decodes, with the counts and values the run implies and snake_case
// keys throughout; resume truncation keeps the epochs asked for and drops a torn last line; a line
// off the schema is an error naming its number; a diverging run ends with a decodable error line.

import Foundation
import Training
import XCTest
import _TestSupport

final class MetricsLogTests: XCTestCase {
    /// Every key of a JSON value, nested objects included.
    private func keys(_ value: Any) -> [String] {
        if let o = value as? [String: Any] { return o.keys + o.values.flatMap(keys) }
        if let a = value as? [Any] { return a.flatMap(keys) }
        return []
    }

    func test_aRealRunsMetricsFile_decodesLineByLineWithTheSchema() throws {
        let tmp = TempDirectory("metrics-schema")
        let dir = tmp.path("run")
        let config = TrainerTests.tinyConfig(epochs: 2)  // TRADES + MemLoss K = 1 on disk, 512 samples, batch 64
        let summary = try Trainer(config: config, runDirectory: dir).train()
        let text = try String(contentsOf: dir.appendingPathComponent("metrics.jsonl"), encoding: .utf8)
        XCTAssert(text.hasSuffix("\n"))
        var lines: [MetricsLine] = []
        for (i, raw) in text.split(separator: "\n").enumerated() {
            let data = Data(raw.utf8)
            lines.append(try JSONDecoder().decode(MetricsLine.self, from: data))
            let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any], "line \(i + 1)")
            XCTAssertEqual(object["type"] as? String, lines.last!.kind.rawValue)
            for k in keys(object) {
                XCTAssert(k.allSatisfy { $0.isLowercase || $0.isNumber || $0 == "_" }, "line \(i + 1): key '\(k)' is not snake_case")
            }
        }
        XCTAssertEqual(try MetricsLog.read(dir.appendingPathComponent("metrics.jsonl")), lines)

        // 8 steps per epoch, a step line every 2 steps, one epoch line per epoch, no damaged entry.
        let steps = lines.steps, epochs = lines.epochs
        XCTAssertEqual(lines.count, steps.count + epochs.count)
        XCTAssertEqual(steps.map(\.step), [2, 4, 6, 8, 10, 12, 14, 16])
        XCTAssertEqual(steps.map(\.epoch), [1, 1, 1, 1, 2, 2, 2, 2])
        for s in steps {
            XCTAssertEqual(s.terms["total"], s.loss)
            XCTAssertEqual(Set(s.terms.keys).subtracting(["mem"]), ["ce", "kl", "total"])
            XCTAssert(s.learningRate > 0 && s.imagesPerSecond > 0 && s.peakRSSBytes > 0)
        }
        XCTAssertEqual(epochs.map(\.epoch), [1, 2])
        XCTAssertEqual(epochs.map(\.step), [8, 16])
        XCTAssertEqual(epochs.last?.step, summary.steps)
        XCTAssertEqual(epochs.last?.bestEpoch, summary.bestEpoch)
        XCTAssertEqual(epochs.compactMap(\.valRobustAccuracy).max(), summary.bestValidationRobust)
        for e in epochs {
            XCTAssertEqual(e.valAttack, "pgd2")
            for a in [e.trainCleanAccuracy, e.trainAdversarialAccuracy, e.valCleanAccuracy, e.valRobustAccuracy] {
                let v = try XCTUnwrap(a)
                XCTAssert((0...1).contains(v), "\(v)")
            }
            XCTAssertEqual(e.trainTerms["total"]!, e.trainLoss, accuracy: 1e-9)
            XCTAssertEqual(e.memory?.entriesWritten, 512)
            XCTAssertEqual(e.memory?.entriesCorrupt, 0)
        }
        // Epoch 1 has no memory yet; epoch 2 reads all 512 entries of generation 0.
        XCTAssertEqual(epochs[0].memEntriesUsed, 0)
        XCTAssertNil(epochs[0].trainTerms["mem"])
        XCTAssertEqual(epochs[1].memEntriesUsed, 512)
        XCTAssertEqual(epochs[1].memSamplesWithMemory, 512)
        XCTAssertEqual(epochs[1].memory?.entriesPresent, 512)
        XCTAssertEqual(epochs[1].memory?.generations, [0, 1])
        XCTAssertGreaterThan(try XCTUnwrap(epochs[1].trainTerms["mem"]), 0)
    }

    private func sampleLines() -> [MetricsLine] {
        (1...3).flatMap { e -> [MetricsLine] in
            [.step(StepRecord(epoch: e, step: 2 * e, learningRate: 0.1, loss: 1.5, terms: ["ce": 1, "total": 1.5],
                              imagesPerSecond: 100, dataWaitSeconds: 0.5, wallSeconds: Double(e), peakRSSBytes: 1 << 20)),
             .bankProblem(BankProblemRecord(epoch: e, step: 2 * e, problem: "gen-0000000000.mbs: sample 3: checksum")),
             .epoch(EpochRecord(epoch: e, step: 2 * e, learningRate: 0.1, trainLoss: 1.5, trainTerms: ["total": 1.5],
                                trainCleanAccuracy: 0.5, trainAdversarialAccuracy: nil, imagesPerSecond: 90, epochSeconds: 2,
                                dataWaitSeconds: 0.5, wallSeconds: Double(e), peakRSSBytes: 1 << 20, memEntriesUsed: 3,
                                memSamplesWithMemory: 2, memory: MemoryEpochReport(), bestEpoch: 1))]
        }
    }

    func test_resumeTruncation_keepsTheEpochsAskedFor_andDropsATornLastLine() throws {
        let tmp = TempDirectory("metrics-truncate")
        let url = tmp.path("metrics.jsonl")
        do {
            let log = try MetricsLog(url: url)
            for l in sampleLines() { try log.append(l) }
        }
        XCTAssertEqual(try MetricsLog.read(url), sampleLines())
        // A crash in the middle of a write leaves a line without its end.
        let handle = try FileHandle(forWritingTo: url)
        try handle.seekToEnd()
        handle.write(Data(#"{"epoch":4,"step":8,"ty"#.utf8))
        try handle.close()
        XCTAssertEqual(try MetricsLog.read(url), sampleLines(), "the torn last line is not a line")
        _ = try MetricsLog(url: url, keepEpochsThrough: 2)
        XCTAssertEqual(try MetricsLog.read(url), sampleLines().filter { $0.epoch <= 2 })
        _ = try MetricsLog(url: url, keepEpochsThrough: 0)
        XCTAssertEqual(try MetricsLog.read(url), [])
    }

    func test_aLineOffTheSchema_isAnErrorNamingItsNumberAndField() throws {
        let tmp = TempDirectory("metrics-bad")
        let url = tmp.path("metrics.jsonl")
        try Data((#"{"type":"bank_problem","epoch":1,"step":0,"problem":"p"}"# + "\n"
                  + #"{"type":"step","epoch":1,"step":2}"# + "\n"
                  + #"{"type":"bank_problem","epoch":1,"step":0,"problem":"p"}"# + "\n").utf8).write(to: url)
        XCTAssertThrowsError(try MetricsLog(url: url, keepEpochsThrough: 1)) { e in
            XCTAssert("\(e)".contains("metrics.jsonl line 2") && "\(e)".contains("'lr' is missing"), "\(e)")
        }
        try Data((#"{"type":"checkpoint","epoch":1}"# + "\n").utf8).write(to: url)
        XCTAssertThrowsError(try MetricsLog.read(url)) { e in
            XCTAssert("\(e)".contains("line 1") && "\(e)".contains("unknown line type 'checkpoint'"), "\(e)")
        }
    }

    func test_aDivergingRun_stopsWithoutItsUpdate_andEndsWithAnErrorLine() throws {
        let tmp = TempDirectory("metrics-diverge")
        let dir = tmp.path("run")
        var config = TrainerTests.tinyConfig(epochs: 1)
        config.memLoss = nil
        config.optimizer.learningRate = .greatestFiniteMagnitude
        XCTAssertThrowsError(try Trainer(config: config, runDirectory: dir).train()) { e in
            guard case TrainingError.nonFinite(let epoch, _, _, let checkpoint) = e else { return XCTFail("\(e)") }
            XCTAssertEqual(epoch, 1)
            XCTAssert(checkpoint.contains("none yet"), checkpoint)
        }
        let lines = try MetricsLog.read(dir.appendingPathComponent("metrics.jsonl"))
        guard case .error(let r)? = lines.last else { return XCTFail("no error line: \(lines)") }
        XCTAssertEqual(r.error, "non-finite loss")
        XCTAssert(r.nonFiniteTerms.contains("total"), "\(r)")
        XCTAssert(r.terms.values.allSatisfy(\.isFinite))
    }
}
