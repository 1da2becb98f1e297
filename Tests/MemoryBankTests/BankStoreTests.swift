// BankStoreTests.swift: the bank as a store: write → seal → reopen → read for every codec, absent
// entries, the writer's immediate and deferred errors, single-writer locking, resume by discarding
// newer generations, and the window/stride retention rule of docs/format/membank-v1.md §3.1.

import Foundation
@testable import MemoryBank
import Tensors
import _TestSupport
import XCTest

final class BankStoreTests: XCTestCase {
    func test_writeSealReopenRead_roundTripsEveryCodec_withinItsBound() throws {
        for codec in BankCodec.allCases {
            let dir = TempDirectory("bank-rt")
            let config = BankFixtures.config(codec: codec, window: 2)
            let written: [Int: [Int: [Float]]]
            do {
                let bank = try Bank.create(at: dir.url, config: config, options: BankFixtures.options())
                written = try BankFixtures.fill(bank, generations: [0, 1], ids: [0, 2, 3, 9])
                bank.close()
            }
            let reader = try BankReader.open(at: dir.url)
            XCTAssertEqual(reader.generations, [0, 1])
            XCTAssertEqual(reader.config, config)
            for (g, entries) in written {
                XCTAssertEqual(reader.segment(g)?.recordCount, 4)
                for (id, delta) in entries {
                    let e = try XCTUnwrap(reader.entry(id: id, generation: g), "\(codec) g \(g) id \(id)")
                    XCTAssertEqual(e.info.view, BankFixtures.view(id))
                    XCTAssertEqual(e.info.metadata, BankFixtures.metadata(id))
                    for i in delta.indices {
                        XCTAssertLessThanOrEqual(abs(e.delta[i] - delta[i]), codec.errorBound(epsilon: config.epsilon, value: delta[i]),
                                                 "\(codec) g \(g) id \(id) i \(i)")
                    }
                    if codec == .f32 { XCTAssertEqual(e.delta, delta) }
                }
                XCTAssertNil(try reader.entry(id: 1, generation: g), "absent ID")
                XCTAssertFalse(reader.contains(id: 1, generation: g))
                XCTAssertTrue(reader.contains(id: 9, generation: g))
            }
            XCTAssertNil(try reader.entry(id: 0, generation: 5), "generation not live")
            XCTAssertTrue(BankReader.verify(at: dir.url).isIntact, "\(codec)")
        }
    }

    func test_batchAppend_fromATensor_equalsPerEntryAppend() throws {
        let dir = TempDirectory("bank-batch")
        let config = BankFixtures.config(codec: .q8)
        let bank = try Bank.create(at: dir.url, config: config, options: BankFixtures.options())
        let rows = (0..<4).map { BankFixtures.pgdDelta(count: config.elementCount, seed: UInt64($0)) }
        let deltas = Tensor(shape: [5] + config.shape, values: rows.flatMap { $0 } + [Float](repeating: 0, count: config.elementCount))
        try bank.beginGeneration(0)
        try bank.append(ids: [7, 1, 4, 0], deltas: deltas, views: [7, 1, 4, 0].map(BankFixtures.view),
                        metadata: [7, 1, 4, 0].map(BankFixtures.metadata))
        let summary = try bank.sealGeneration()
        XCTAssertEqual(summary.records, 4)
        XCTAssertGreaterThan(summary.fileBytes, 0)
        let reader = try bank.reader()
        for (row, id) in [7, 1, 4, 0].enumerated() {
            let e = try XCTUnwrap(reader.entry(id: id, generation: 0))
            assertClose(e.delta, rows[row], atol: config.epsilon / 254 * 1.001, rtol: 0)
            XCTAssertEqual(e.info.view, BankFixtures.view(id))
        }
    }

    func test_append_rejectsAtOnce_outOfRangeWrongSizeDuplicatesAndMissingGeneration() throws {
        let dir = TempDirectory("bank-errors")
        let config = BankFixtures.config()
        let bank = try Bank.create(at: dir.url, config: config, options: BankFixtures.options())
        let d = BankFixtures.pgdDelta(count: config.elementCount, seed: 1)
        assertBankError(try bank.append(id: 0, delta: d, view: .identity, metadata: .zero)) { $0 == .noOpenGeneration }
        assertBankError(try bank.sealGeneration()) { $0 == .noOpenGeneration }
        try bank.beginGeneration(3)
        assertBankError(try bank.beginGeneration(4)) { $0 == .generationAlreadyOpen(generation: 3) }
        assertBankError(try bank.append(id: 10, delta: d, view: .identity, metadata: .zero)) { $0 == .sampleOutOfRange(id: 10, sampleCount: 10) }
        assertBankError(try bank.append(id: -1, delta: d, view: .identity, metadata: .zero)) { $0.sampleID == -1 }
        assertBankError(try bank.append(id: 0, delta: [1, 2], view: .identity, metadata: .zero)) { $0 == .shapeMismatch(expected: 60, actual: 2) }
        try bank.append(id: 0, delta: d, view: .identity, metadata: .zero)
        assertBankError(try bank.append(id: 0, delta: d, view: .identity, metadata: .zero)) { $0 == .duplicateEntry(generation: 3, sampleID: 0) }
        try bank.sealGeneration()
        assertBankError(try bank.beginGeneration(3)) { $0 == .generationNotIncreasing(requested: 3, newest: 3) }
        try bank.beginGeneration(4)
        try bank.append(id: 0, delta: d, view: .identity, metadata: .zero)  // a new generation accepts the ID again
        try bank.sealGeneration()
        XCTAssertEqual(bank.generations, [3, 4], "K = 1, s = 1 keeps the newest and the one it read")
    }

    func test_backgroundError_surfacesOnTheNextCall_andSealAbandonsTheGeneration() throws {
        let dir = TempDirectory("bank-async")
        let config = BankFixtures.config()
        let bank = try Bank.create(at: dir.url, config: config, options: BankFixtures.options())
        try BankFixtures.fill(bank, generations: [0], ids: [1])
        try bank.beginGeneration(1)
        var bad = BankFixtures.pgdDelta(count: config.elementCount, seed: 1)
        bad[5] = .nan
        try bank.append(id: 2, delta: bad, view: .identity, metadata: .zero)  // accepted: checked on the writer thread
        // The error reaches a later append (once the thread got to it) or, at the latest, the seal.
        var surfaced: MemoryBankError?
        for id in 3..<10 where surfaced == nil {
            Thread.sleep(forTimeInterval: 0.01)
            do throws(MemoryBankError) { try bank.append(id: id, delta: BankFixtures.pgdDelta(count: 60, seed: 2), view: .identity, metadata: .zero) }
            catch { surfaced = error }
        }
        XCTAssertEqual(surfaced, .nonFiniteDelta(generation: 1, sampleID: 2))
        assertBankError(try bank.sealGeneration()) { $0 == .nonFiniteDelta(generation: 1, sampleID: 2) }
        XCTAssertNil(bank.openGeneration)
        XCTAssertFalse(FileManager.default.fileExists(atPath: BankFixtures.segmentURL(dir.url, 1).path + ".tmp"))
        XCTAssertEqual(bank.generations, [0], "the failed generation was not sealed; the previous one is intact")
        try bank.beginGeneration(1)  // the bank stays usable
        try bank.append(id: 2, delta: BankFixtures.pgdDelta(count: 60, seed: 3), view: .identity, metadata: .zero)
        try bank.sealGeneration()
        XCTAssertNotNil(try bank.reader().entry(id: 2, generation: 1))
    }

    func test_oneWriterPerBank_andReopenKeepsTheGenerations() throws {
        let dir = TempDirectory("bank-lock")
        let config = BankFixtures.config(window: 3)
        let bank = try Bank.create(at: dir.url, config: config, options: BankFixtures.options())
        try BankFixtures.fill(bank, generations: [0, 1], ids: [0])
        assertBankError(try Bank.open(at: dir.url)) { $0 == .bankLocked(path: dir.url.path) }
        assertBankError(try Bank.create(at: dir.url, config: config)) { if case .bankLocked = $0 { return true }; return false }
        bank.close()
        assertBankError(try Bank.create(at: dir.url, config: config)) { $0 == .alreadyExists(path: dir.url.path) }
        let again = try Bank.open(at: dir.url, options: BankFixtures.options())
        XCTAssertEqual(again.generations, [0, 1])
        XCTAssertEqual(again.config, config)
        again.close()
        var other = config
        other.epsilon = 4 / 255
        assertBankError(try Bank.openOrCreate(at: dir.url, config: other)) {
            if case .configMismatch(_, "epsilon", _, _) = $0 { return true }
            return false
        }
        var relabelled = config
        relabelled.createdBy = "another run's JSON"
        XCTAssertEqual(try Bank.openOrCreate(at: dir.url, config: relabelled, options: BankFixtures.options()).generations, [0, 1])
        assertBankError(try BankReader.open(at: dir.url.appendingPathComponent("nope"))) { if case .notABank = $0 { return true }; return false }
    }

    func test_discardGenerations_forResume_dropsNewerOnes() throws {
        let dir = TempDirectory("bank-resume")
        let bank = try Bank.create(at: dir.url, config: BankFixtures.config(window: 4), options: BankFixtures.options())
        try BankFixtures.fill(bank, generations: [0, 1, 2, 3], ids: [0, 1])
        try bank.discardGenerations(after: 1)
        XCTAssertEqual(bank.generations, [0, 1])
        XCTAssertFalse(FileManager.default.fileExists(atPath: BankFixtures.segmentURL(dir.url, 2).path))
        try bank.beginGeneration(2)
        try bank.sealGeneration()
        XCTAssertEqual(try bank.reader().generations, [0, 1, 2])
    }

    // MARK: - Window and stride

    func test_retention_keepsExactlyTheGenerationsLaterEpochsRead() throws {
        let config = BankFixtures.config(window: 2, stride: 3)
        XCTAssertEqual(config.generationsRead(atEpoch: 11), [8, 5])
        XCTAssertEqual(config.retainedRange(afterSealing: 10), 4...10)
        // Property: after sealing g, kept = every generation some epoch e ≥ g reads (e = g: a run
        // that crashed before epoch g's checkpoint redoes epoch g).
        for (k, s) in [(1, 1), (1, 2), (2, 1), (2, 3), (4, 2)] {
            let c = BankFixtures.config(window: k, stride: s)
            for g in 0..<20 {
                var needed = Set<Int>()
                for e in g...(g + 1 + k * s) {
                    for h in c.generationsRead(atEpoch: e) where h >= 0 && h <= g { needed.insert(h) }
                }
                let kept = Set(c.retainedRange(afterSealing: g).filter { $0 >= 0 })
                XCTAssertEqual(kept, needed, "K \(k) s \(s) g \(g)")
            }
        }

        let dir = TempDirectory("bank-window")
        let bank = try Bank.create(at: dir.url, config: config, options: BankFixtures.options())
        try BankFixtures.fill(bank, generations: Array(0...10), ids: [0])
        XCTAssertEqual(bank.generations, Array(4...10))
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.url.path).filter { $0.hasSuffix(".mbs") }.sorted()
        XCTAssertEqual(files, (4...10).map(BankLayout.segmentName))
        let reader = try bank.reader()
        XCTAssertEqual(reader.windowGenerations(forEpoch: 11), [8, 5])
        XCTAssertEqual(reader.windowGenerations(forEpoch: 12), [9, 6])
        XCTAssertEqual(reader.windowGenerations(forEpoch: 8), [5, nil], "deleted generations are empty slots")
        XCTAssertEqual(reader.windowGenerations(forEpoch: 1), [nil, nil])
    }

    func test_readerSnapshot_isUnaffectedByLaterSealsAndDeletion() throws {
        let dir = TempDirectory("bank-snapshot")
        let bank = try Bank.create(at: dir.url, config: BankFixtures.config(), options: BankFixtures.options())
        let written = try BankFixtures.fill(bank, generations: [0], ids: [3])
        let snapshot = try bank.reader()
        // K = 1 keeps [g − 1, g]: sealing 2 deletes generation 0's file.
        try BankFixtures.fill(bank, generations: [1, 2], ids: [3])
        XCTAssertFalse(FileManager.default.fileExists(atPath: BankFixtures.segmentURL(dir.url, 0).path))
        let e = try XCTUnwrap(snapshot.entry(id: 3, generation: 0), "the mapping outlives the unlink")
        assertClose(e.delta, written[0]![3]!, atol: BankFixtures.epsilon / 254 * 1.001, rtol: 0)
        XCTAssertEqual(try bank.reader().generations, [1, 2])
    }
}
