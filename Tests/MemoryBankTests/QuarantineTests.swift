// QuarantineTests.swift: a past generation whose segment header or index is damaged, whose segment
// is cut short or missing, stops neither the writer nor the readers (docs/format/membank-v1.md §3.3):
// it is listed in `quarantined` with its file and reason, left out of reads, its entries skipped and
// counted by the prefetcher, deleted by retention as usual, and still reported by `verify`; a
// damaged manifest stays fatal.

import Foundation
import SystemIO
@testable import MemoryBank
import _TestSupport
import XCTest

final class QuarantineTests: XCTestCase {
    private var dir: TempDirectory!
    private let config = BankFixtures.config(codec: .q8, window: 2)
    private let ids = [0, 1, 2, 3]

    override func setUpWithError() throws {
        dir = TempDirectory("bank-quarantine")
        let bank = try Bank.create(at: dir.url, config: config, options: BankFixtures.options())
        try BankFixtures.fill(bank, generations: [4, 5], ids: ids)
        bank.close()
    }

    private var damagedSegment: URL { BankFixtures.segmentURL(dir.url, 4) }

    /// Damages generation 4 with `damage`, then checks every consumer and returns the quarantine entry.
    @discardableResult
    private func assertQuarantined(_ damage: () throws -> Void, _ expected: (MemoryBankError) -> Bool,
                                   file: StaticString = #filePath, line: UInt = #line) throws -> QuarantinedGeneration? {
        try damage()
        // Readers open; generation 4 is not read, 5 still is.
        let reader = try BankReader.open(at: dir.url)
        XCTAssertEqual(reader.generations, [5], file: file, line: line)
        let q = try XCTUnwrap(reader.quarantined.first, file: file, line: line)
        XCTAssertEqual(reader.quarantined.count, 1, file: file, line: line)
        XCTAssertEqual(q.generation, 4, file: file, line: line)
        XCTAssertEqual(q.file, damagedSegment.path, file: file, line: line)
        XCTAssertTrue(expected(q.error), "\(q.error)", file: file, line: line)
        XCTAssertTrue(q.reason.contains(damagedSegment.lastPathComponent) && !q.reason.contains("hint:"), q.reason, file: file, line: line)
        XCTAssertNil(try reader.entry(id: 0, generation: 4), file: file, line: line)
        XCTAssertNotNil(try reader.entry(id: 0, generation: 5), file: file, line: line)
        assertBankError(try BankReader.open(at: dir.url, damaged: .reject), file: file, line: line) { $0 == q.error }

        // The prefetcher of epoch 6 (slots 5, 4) skips and counts every entry of generation 4.
        XCTAssertEqual(reader.windowGenerations(forEpoch: 6), [5, 4], file: file, line: line)
        let prefetcher = BankPrefetcher(reader: reader, epoch: 6, batches: [[0, 1], [2, 3]])
        var problems: [MemoryBankError] = []
        while let batch = try prefetcher.next() {
            for i in 0..<batch.count {
                XCTAssertTrue(batch.isPresent(i, slot: 0), file: file, line: line)
                XCTAssertFalse(batch.isPresent(i, slot: 1), file: file, line: line)
            }
            XCTAssertEqual(batch.generations, [5, 4], file: file, line: line)
            problems += batch.problems
        }
        let stats = prefetcher.statistics
        XCTAssertEqual(stats.entriesDecoded, ids.count, file: file, line: line)
        XCTAssertEqual(stats.entriesCorrupt, ids.count, file: file, line: line)
        XCTAssertEqual(stats.entriesAbsent, 0, file: file, line: line)
        XCTAssertEqual(problems.map(\.sampleID), ids, file: file, line: line)
        XCTAssertTrue(problems.allSatisfy { $0.isRecordLevel && "\($0)".contains("generation quarantined") }, file: file, line: line)
        let failing = BankPrefetcher(reader: reader, epoch: 6, batches: [[0, 1]], corruptEntries: .fail)
        XCTAssertThrowsError(try failing.next(), file: file, line: line)

        // The writer opens, names it, writes on; retention deletes it normally.
        let bank = try Bank.open(at: dir.url, options: BankFixtures.options())
        XCTAssertEqual(bank.quarantined, [q], file: file, line: line)
        XCTAssertEqual(try bank.reader().quarantined, [q], file: file, line: line)
        XCTAssertEqual(bank.generations, [4, 5], "listed until retention drops it", file: file, line: line)
        try BankFixtures.fill(bank, generations: [6], ids: ids)
        XCTAssertEqual(bank.quarantined, [q], "window 2 keeps [4, 6] after sealing 6", file: file, line: line)
        XCTAssertFalse(BankReader.verify(at: dir.url).isIntact, "verify still reports the damage", file: file, line: line)
        try BankFixtures.fill(bank, generations: [7], ids: ids)
        XCTAssertEqual(bank.generations, [5, 6, 7], file: file, line: line)
        XCTAssertEqual(bank.quarantined, [], file: file, line: line)
        XCTAssertFalse(FileManager.default.fileExists(atPath: damagedSegment.path), file: file, line: line)
        XCTAssertTrue(BankReader.verify(at: dir.url).isIntact, file: file, line: line)
        return q
    }

    func test_damagedHeader_isQuarantined() throws {
        try assertQuarantined({ try BankFixtures.flipByte(at: 50, in: damagedSegment) }) {
            if case .checksumMismatch(_, "header", _, _) = $0 { return true }
            return false
        }
    }

    func test_damagedIndex_isQuarantined() throws {
        try assertQuarantined({
            let size = try BankFixtures.readBytes(damagedSegment).count
            try BankFixtures.flipByte(at: size - 3, in: damagedSegment)
        }) {
            if case .checksumMismatch(_, "index", _, _) = $0 { return true }
            return false
        }
    }

    func test_truncatedSegment_isQuarantined() throws {
        try assertQuarantined({
            let b = try BankFixtures.readBytes(damagedSegment)
            try BankFixtures.writeBytes(Array(b[0..<(b.count - 40)]), damagedSegment)
        }) {
            if case .truncated = $0 { return true }
            return false
        }
    }

    func test_segmentCutInsideItsHeader_isQuarantined() throws {
        try assertQuarantined({
            let b = try BankFixtures.readBytes(damagedSegment)
            try BankFixtures.writeBytes(Array(b[0..<60]), damagedSegment)
        }) {
            if case .truncated = $0 { return true }
            return false
        }
    }

    func test_missingSegment_isQuarantined() throws {
        try assertQuarantined({ try FileManager.default.removeItem(at: damagedSegment) }) {
            if case .segmentMissing(_, 4) = $0 { return true }
            return false
        }
    }

    /// Seeded mutants of a past segment: the writer and the reader always open, the prefetcher never
    /// fails in the skip policy, and whatever is quarantined is also a `verify` problem.
    /// MEMLOSS_FUZZ_ITERATIONS runs more.
    func test_mutatedPastSegment_neverStopsTheWriterOrTheReaders() throws {
        let original = try BankFixtures.readBytes(damagedSegment)
        var quarantinedCount = 0
        var failures: [String] = []
        Fuzz.run(name: "quarantine gen-4.mbs", corpus: [("gen-4.mbs", original)], iterations: Fuzz.iterations(default: 60)) { mutant in
            do {
                try BankFixtures.writeBytes(mutant, damagedSegment)
                let reader = try BankReader.open(at: dir.url)
                let prefetcher = BankPrefetcher(reader: reader, epoch: 6, batches: [ids])
                while try prefetcher.next() != nil {}
                XCTAssertEqual(prefetcher.statistics.entriesDecoded + prefetcher.statistics.entriesCorrupt
                                   + prefetcher.statistics.entriesAbsent, 2 * ids.count)
                let bank = try Bank.open(at: dir.url, options: BankFixtures.options())
                XCTAssertEqual(bank.quarantined, reader.quarantined)
                bank.close()
                if !reader.quarantined.isEmpty {
                    quarantinedCount += 1
                    if BankReader.verify(at: dir.url).isIntact { failures.append("quarantined but intact: \(reader.quarantined)") }
                }
            } catch {
                failures.append("\(error)")
            }
        }
        XCTAssertEqual(failures, [])
        XCTAssertGreaterThan(quarantinedCount, 0)
    }

    func test_damagedManifest_staysFatal() throws {
        let url = dir.url.appendingPathComponent(BankLayout.manifestName)
        try BankFixtures.flipByte(at: 30, in: url)
        assertBankError(try BankReader.open(at: dir.url)) { if case .checksumMismatch(url.path, "manifest", _, _) = $0 { return true }; return false }
        assertBankError(try Bank.open(at: dir.url)) { if case .checksumMismatch(url.path, "manifest", _, _) = $0 { return true }; return false }
    }

    func test_intactBank_quarantinesNothing() throws {
        XCTAssertEqual(try BankReader.open(at: dir.url).quarantined, [])
        XCTAssertEqual(try Bank.open(at: dir.url).quarantined, [])
    }
}
