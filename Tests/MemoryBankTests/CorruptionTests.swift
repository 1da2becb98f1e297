// CorruptionTests.swift: flipped bytes in each region of a segment (header, createdBy, index, record
// header, payload), the manifest, a truncated segment, a deleted segment and an unknown major version
// are each detected with the right error case, naming the file (and generation and sample for
// records; segment-level damage through `damaged: .reject`, the writer quarantines it: §3.3);
// `verify` lists them all; the prefetcher skips a damaged entry and reports it.

import SystemIO
import Foundation
@testable import MemoryBank
import _TestSupport
import XCTest

final class CorruptionTests: XCTestCase {
    private var dir: TempDirectory!
    private var config: BankConfig!

    override func setUpWithError() throws {
        dir = TempDirectory("bank-corrupt")
        config = BankFixtures.config(codec: .q8, window: 2)
        let bank = try Bank.create(at: dir.url, config: config, options: BankFixtures.options())
        try BankFixtures.fill(bank, generations: [4, 5], ids: [0, 1, 2])
        bank.close()
    }

    private var segment: URL { BankFixtures.segmentURL(dir.url, 5) }

    func test_flippedHeaderByte_isAHeaderChecksumMismatch() throws {
        try BankFixtures.flipByte(at: 50, in: segment)
        assertBankError(try BankReader.open(at: dir.url, damaged: .reject)) {
            if case .checksumMismatch(let f, "header", _, _) = $0 { return f == self.segment.path }
            return false
        }
    }

    func test_flippedCreatedByByte_isACreatedByChecksumMismatch() throws {
        try BankFixtures.flipByte(at: 130, in: segment)
        assertBankError(try BankReader.open(at: dir.url, damaged: .reject)) { if case .checksumMismatch(_, "createdBy", _, _) = $0 { return true }; return false }
    }

    func test_flippedIndexByte_isAnIndexChecksumMismatch() throws {
        let size = try BankFixtures.readBytes(segment).count
        try BankFixtures.flipByte(at: size - 3, in: segment)
        assertBankError(try BankReader.open(at: dir.url, damaged: .reject)) { if case .checksumMismatch(_, "index", _, _) = $0 { return true }; return false }
    }

    func test_flippedRecordBytes_areCorruptRecords_namingFileGenerationAndSample() throws {
        let offset = try BankFixtures.recordOffset(dir: dir.url, generation: 5, id: 1)
        try BankFixtures.flipByte(at: offset + 60, in: segment)  // payload of sample 1
        let offset2 = try BankFixtures.recordOffset(dir: dir.url, generation: 5, id: 2)
        try BankFixtures.flipByte(at: offset2 + 17, in: segment)  // record header (pY) of sample 2
        let reader = try BankReader.open(at: dir.url)  // header and index are intact
        XCTAssertNotNil(try reader.entry(id: 0, generation: 5))
        for id in [1, 2] {
            let e = assertBankError(try reader.entry(id: id, generation: 5)) {
                if case .corruptRecord(self.segment.path, 5, id, let reason) = $0 { return reason.contains("checksum") }
                return false
            }
            XCTAssertTrue(e?.description.contains("sample \(id)") ?? false)
            XCTAssertTrue(e?.isRecordLevel ?? false)
        }
        XCTAssertNotNil(try reader.entry(id: 1, generation: 4), "other generations are unaffected")

        let report = BankReader.verify(at: dir.url)
        XCTAssertEqual(report.generations, [4, 5])
        XCTAssertEqual(report.recordsChecked, 4)
        XCTAssertEqual(report.problems.compactMap(\.sampleID).sorted(), [1, 2])

        // The prefetcher skips them and reports them; the rest of the batch is decoded.
        let prefetcher = BankPrefetcher(reader: reader, epoch: 6, batches: [[0, 1, 2]], depth: 1)
        let batch = try XCTUnwrap(prefetcher.next())
        XCTAssertEqual(batch.generations, [5, 4])
        XCTAssertEqual(batch.present, [true, true, false, true, false, true])
        XCTAssertEqual(batch.problems.map(\.sampleID), [1, 2])
        XCTAssertEqual(prefetcher.statistics.entriesCorrupt, 2)
        XCTAssertEqual(batch.deltas.scalars[(2 * config.elementCount)..<(3 * config.elementCount)].max(), 0, "skipped entries are zero")

        let strict = BankPrefetcher(reader: reader, epoch: 6, batches: [[0, 1, 2]], depth: 1, corruptEntries: .fail)
        assertBankError(try strict.next()) { $0.sampleID == 1 }
    }

    func test_indexPointingOutsideTheDataRegion_isACorruptRecord() throws {
        // Rewrite index entry 0 with a bad offset and fix the index checksum and header checksum.
        var b = try BankFixtures.readBytes(segment)
        var r = ByteReader(b, offset: 88)
        let indexOffset = Int(r.readLE(UInt64.self))
        let indexBytes = Int(r.readLE(UInt64.self))
        b[indexOffset] = 3  // offset 3 + original high bytes: misaligned / before the data region
        for i in 1..<8 { b[indexOffset + i] = 0 }
        let crc = CRC32C.checksum(Array(b[indexOffset..<(indexOffset + indexBytes)]))
        for i in 0..<4 { b[112 + i] = UInt8(truncatingIfNeeded: crc >> (8 * UInt32(i))) }
        try BankFixtures.writeBytes(b, segment)
        try BankFixtures.patchSegmentHeader(dir: dir.url, generation: 5) { _ in }
        let reader = try BankReader.open(at: dir.url)
        assertBankError(try reader.entry(id: 0, generation: 5)) {
            if case .corruptRecord(_, 5, 0, let reason) = $0 { return reason.contains("outside the data region") }
            return false
        }
    }

    func test_truncatedSegment_isRejectedWithBothSizes() throws {
        let b = try BankFixtures.readBytes(segment)
        try BankFixtures.writeBytes(Array(b[0..<(b.count - 40)]), segment)
        assertBankError(try BankReader.open(at: dir.url, damaged: .reject)) {
            if case .truncated(self.segment.path, b.count, b.count - 40) = $0 { return true }
            return false
        }
        XCTAssertEqual(try Bank.open(at: dir.url).quarantined.map(\.generation), [5])  // quarantined, not fatal (§3.3)
        XCTAssertFalse(BankReader.verify(at: dir.url).isIntact)
    }

    func test_missingSegment_isReported() throws {
        try FileManager.default.removeItem(at: segment)
        assertBankError(try BankReader.open(at: dir.url, damaged: .reject)) { $0 == .segmentMissing(file: self.segment.path, generation: 5) }
        XCTAssertEqual(try Bank.open(at: dir.url).quarantined.first?.error, .segmentMissing(file: self.segment.path, generation: 5))
    }

    func test_unknownMajorVersion_isRejected_unknownMinorIsAccepted() throws {
        try BankFixtures.patchSegmentHeader(dir: dir.url, generation: 5) { $0[10] = 7 }  // minor 7
        XCTAssertNotNil(try BankReader.open(at: dir.url).entry(id: 0, generation: 5))
        try BankFixtures.patchSegmentHeader(dir: dir.url, generation: 5) { $0[8] = 2 }  // major 2
        let e = assertBankError(try BankReader.open(at: dir.url, damaged: .reject)) {
            if case .unsupportedMajor(self.segment.path, 2, 7, 1) = $0 { return true }
            return false
        }
        XCTAssertTrue(e?.description.contains("version 2.7, this reader supports 1.x") ?? false)
    }

    func test_segmentFromAnotherConfiguration_isAConfigMismatch() throws {
        try BankFixtures.patchSegmentHeader(dir: dir.url, generation: 5) { $0[21] = 2 }  // norm L2
        assertBankError(try BankReader.open(at: dir.url, damaged: .reject)) {
            if case .configMismatch(_, "norm", _, _) = $0 { return true }
            return false
        }
    }

    func test_damagedManifest_isRejected() throws {
        let url = dir.url.appendingPathComponent(BankLayout.manifestName)
        try BankFixtures.flipByte(at: 30, in: url)
        assertBankError(try BankReader.open(at: dir.url)) { if case .checksumMismatch(url.path, "manifest", _, _) = $0 { return true }; return false }
        try BankFixtures.flipByte(at: 30, in: url)
        try BankFixtures.flipByte(at: 2, in: url)
        assertBankError(try Bank.open(at: dir.url)) { if case .badMagic(url.path, _, _) = $0 { return true }; return false }
    }
}
