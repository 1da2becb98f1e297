// ReaderValidationTests.swift: the reader's "Reader validation" rules (docs/format/membank-v1.md §5.4):
// header fields whose arithmetic overflowed or pointed past the file, index-free sample counts,
// non-finite payload values and scales behind valid checksums, and `membank dump`'s listing of files
// no reader accepts (huge dataOffset, huge generationCount, unsealed or random segments). Each test
// here reproduces a crash or a silent acceptance found by fault injection (issue 14).

import SystemIO
import Tensors
import Foundation
@testable import MemoryBank
import _TestSupport
import XCTest

final class ReaderValidationTests: XCTestCase {
    private var dir: TempDirectory!

    override func setUpWithError() throws {
        dir = TempDirectory("bank-validation")
    }

    private func makeBank(codec: BankCodec = .q8, norm: PerturbationNorm = .linf, ids: [Int] = [0, 1, 2]) throws -> BankConfig {
        let config = BankFixtures.config(codec: codec, norm: norm, sampleCount: 4, shape: [1, 2, 3])
        let bank = try Bank.create(at: dir.url, config: config, options: BankFixtures.options())
        try BankFixtures.fill(bank, generations: [3], ids: ids)
        bank.close()
        return config
    }

    private var segment: URL { BankFixtures.segmentURL(dir.url, 3) }

    private func setLE(_ value: UInt64, at offset: Int, width: Int, in b: inout [UInt8]) {
        for k in 0..<width { b[offset + k] = UInt8(truncatingIfNeeded: value >> UInt64(8 * k)) }
    }

    // MARK: - Segment layout

    /// 8·sampleCount overflowing past Int.max used to trap in the file-size comparison.
    func test_indexBytesBeyondTheFile_isAnInvalidField_notATrap() throws {
        _ = try makeBank()
        try BankFixtures.patchSegmentHeader(dir: dir.url, generation: 3) { b in
            self.setLE(1 << 60, at: 48, width: 8, in: &b)        // sampleCount
            self.setLE(1 << 63, at: 96, width: 8, in: &b)        // indexBytes = 8·sampleCount
        }
        let e = assertBankError(try BankReader.open(at: dir.url, damaged: .reject)) { if case .invalidField = $0 { return true }; return false }
        XCTAssertTrue(e?.description.contains(segment.path) ?? false)
        // The default open quarantines the generation with that error instead of failing.
        let q = try BankReader.open(at: dir.url).quarantined
        XCTAssertEqual(q.map(\.generation), [3])
        if case .invalidField = q.first?.error {} else { XCTFail("\(q)") }
    }

    /// sampleCount·8 wrapping to 0 must not leave an index of 0 bytes for 2⁶¹ samples.
    func test_wrappingIndexSize_isRejected() throws {
        _ = try makeBank()
        try BankFixtures.patchSegmentHeader(dir: dir.url, generation: 3) { b in
            self.setLE(1 << 61, at: 48, width: 8, in: &b)
            self.setLE(0, at: 96, width: 8, in: &b)
        }
        assertBankError(try BankReader.open(at: dir.url, damaged: .reject)) { if case .invalidField = $0 { return true }; return false }
    }

    /// A manifest larger than any valid one is refused from its size, before it is read into memory
    /// (a sparse file: the test allocates nothing).
    func test_manifestLargerThanAnyValidOne_isRefusedBeforeReading() throws {
        _ = try makeBank()
        let url = dir.url.appendingPathComponent(BankLayout.manifestName)
        let h = try FileHandle(forWritingTo: url)
        try h.truncate(atOffset: UInt64(Manifest.maximumFileBytes + 1))
        try h.close()
        assertBankError(try BankReader.open(at: dir.url)) {
            if case .invalidField(_, let field, _, _) = $0 { return field == "file size" }
            return false
        }
    }

    func test_layoutErrorsNameTheFieldTheValueAndTheBound() throws {
        _ = try makeBank()
        let b = try BankFixtures.readBytes(segment)
        var h = try SegmentHeader.decode(fileSize: b.count, file: "s") { Array(b[$0..<($0 + $1)]) }
        h.indexOffset = 0xFFFF_FFFF_FFFF_FFC0
        XCTAssertThrowsError(try h.layout(fileSize: b.count, file: "s")) { e in
            let text = "\(e)"
            XCTAssertTrue(text.contains("indexOffset"), text)
            XCTAssertTrue(text.contains("18446744073709551552"), text)
            XCTAssertTrue(text.contains("\(b.count)"), text)
            XCTAssertTrue(text.contains("\nhint: "), text)
        }
        let good = try SegmentHeader.decode(fileSize: b.count, file: "s") { Array(b[$0..<($0 + $1)]) }
        let layout = try good.layout(fileSize: b.count, file: "s")
        XCTAssertEqual(layout.index.upperBound, b.count)
        XCTAssertEqual(layout.index.count, 8 * 4)
        XCTAssertEqual(layout.recordCount, 3)
    }

    // MARK: - Non-finite values behind a valid checksum

    /// An f32 payload value of NaN (record checksum fixed up) is a corrupt record, not a δ.
    func test_nonFiniteF32Value_isACorruptRecord_namingTheValue() throws {
        _ = try makeBank(codec: .f32)
        try BankFixtures.patchRecord(dir: dir.url, generation: 3, id: 1) { b, offset in
            let nan = Float.nan.bitPattern
            for k in 0..<4 { b[offset + 48 + 8 + k] = UInt8(truncatingIfNeeded: nan >> UInt32(8 * k)) }
        }
        let reader = try BankReader.open(at: dir.url)
        let e = assertBankError(try reader.entry(id: 1, generation: 3)) {
            if case .corruptRecord(_, 3, 1, let reason) = $0 { return reason.contains("δ[2]") && reason.contains("nan") }
            return false
        }
        XCTAssertEqual(e?.isRecordLevel, true)
        XCTAssertNotNil(try reader.entry(id: 0, generation: 3))
        let v = BankReader.verify(at: dir.url)
        XCTAssertEqual(v.problems.count, 1, "\(v.problems)")
        XCTAssertEqual(v.problems.first?.sampleID, 1)
    }

    /// An L2 q8 scale so large that 127·scale overflows would dequantise to ±∞.
    func test_l2ScaleOverflowingOnDequantisation_isACorruptRecord() throws {
        _ = try makeBank(codec: .q8, norm: .l2)
        try BankFixtures.patchRecord(dir: dir.url, generation: 3, id: 0) { b, offset in
            let huge = Float.greatestFiniteMagnitude.bitPattern
            for k in 0..<4 { b[offset + 28 + k] = UInt8(truncatingIfNeeded: huge >> UInt32(8 * k)) }
        }
        let reader = try BankReader.open(at: dir.url)
        assertBankError(try reader.entry(id: 0, generation: 3)) {
            if case .corruptRecord(_, 3, 0, let reason) = $0 { return reason.contains("scale") }
            return false
        }
    }

    func test_nonFiniteMetadata_isReportedByVerify_namingTheField() throws {
        _ = try makeBank()
        try BankFixtures.patchRecord(dir: dir.url, generation: 3, id: 2) { b, offset in
            let inf = Float.infinity.bitPattern
            for k in 0..<4 { b[offset + 20 + k] = UInt8(truncatingIfNeeded: inf >> UInt32(8 * k)) }  // margin
        }
        let v = BankReader.verify(at: dir.url)
        XCTAssertEqual(v.problems.count, 1, "\(v.problems)")
        guard case .nonFiniteMetadata(_, 3, 2, "margin", _)? = v.problems.first else {
            return XCTFail("expected nonFiniteMetadata for margin, got \(v.problems)")
        }
        XCTAssertTrue(v.problems[0].description.contains("\nhint: "))
        // Reading still works: the trainer does not use the metadata.
        XCTAssertNotNil(try BankReader.open(at: dir.url).entry(id: 2, generation: 3))
    }

    // MARK: - dump

    func test_dumpOfASegmentWithAHugeDataOffset_listsTheHeaderAndStops() throws {
        _ = try makeBank()
        var b = try BankFixtures.readBytes(segment)
        for value: UInt64 in [0xFFFF_FFFF_FFFF_FFFF, 0x7FFF_FFFF_FFFF_FFF0, 0x8000_0000_0000_0000] {
            setLE(value, at: 80, width: 8, in: &b)
            let text = BankDump.segment(b)
            XCTAssertTrue(text.contains("dataOffset"), text)
            XCTAssertEqual(BankDump.bytes(fromListing: text), b, "the listing must cover the file exactly")
        }
    }

    func test_dumpOfAManifestWithAHugeGenerationCount_isImmediate() throws {
        _ = try makeBank()
        var b = try BankFixtures.readBytes(dir.url.appendingPathComponent(BankLayout.manifestName))
        setLE(0xFFFF_FFFF, at: 60, width: 4, in: &b)
        let start = Date()
        let text = BankDump.manifest(b)
        XCTAssertLessThan(Date().timeIntervalSince(start), 0.5, "work proportional to generationCount")
        XCTAssertEqual(BankDump.bytes(fromListing: text), b)
    }

    func test_dumpOfUnsealedAndRandomSegments_coversTheFile() throws {
        _ = try makeBank()
        let sealed = try BankFixtures.readBytes(segment)
        var unsealed = sealed
        setLE(0, at: 16, width: 4, in: &unsealed)  // flags: unsealed
        setLE(0, at: 88, width: 8, in: &unsealed)  // indexOffset
        var random = FuzzRandom(seed: 14)
        let noise = (0..<777).map { _ in UInt8(truncatingIfNeeded: random.next()) }
        for bytes in [unsealed, SegmentHeader.magic + noise, noise, Array(sealed.prefix(100)), [], Array(sealed.prefix(200))] {
            let text = BankDump.segment(bytes)
            XCTAssertEqual(BankDump.bytes(fromListing: text), bytes, text)
        }
    }
}
