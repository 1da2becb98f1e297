// FormatTests.swift: the byte-level conventions of docs/format/membank-v1.md: CRC32C check values,
// alignUp, and for the segment header, manifest and record header: size, each field's offset (the
// encoder writes distinctive values where the spec says), and encode → decode round trips.

import SystemIO
import Foundation
@testable import MemoryBank
import Tensors
import XCTest

final class FormatTests: XCTestCase {
    // MARK: - CRC32C

    /// Bit-at-a-time CRC32C: the definition the tables must reproduce.
    private func bitwiseCRC32C(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes {
            c ^= UInt32(b)
            for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
        }
        return c ^ 0xFFFF_FFFF
    }

    func test_crc32c_matchesTheRFC3720CheckValues() {
        XCTAssertEqual(CRC32C.checksum(Array("123456789".utf8)), 0xE306_9283)
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0, count: 32)), 0x8A91_36AA)
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)), 0x62A8_AB43)
        XCTAssertEqual(CRC32C.checksum((0..<32).map { UInt8($0) }), 0x46DD_794E)
        XCTAssertEqual(CRC32C.checksum((0..<32).map { UInt8(31 - $0) }), 0x113F_DB5C)
        XCTAssertEqual(CRC32C.checksum([]), 0)
    }

    func test_crc32c_sliceBy8_equalsBitwise_forEveryLengthAndSplit() {
        var g = SplitMix64(seed: 1)
        let data = (0..<300).map { _ in UInt8(truncatingIfNeeded: g.next()) }
        for n in [0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 299] {
            let slice = Array(data[0..<n])
            XCTAssertEqual(CRC32C.checksum(slice), bitwiseCRC32C(slice), "n \(n)")
            for split in [0, 1, n / 2, n] where split <= n {
                var c = CRC32C()
                c.update(slice[0..<split])
                c.update(slice[split..<n])
                XCTAssertEqual(c.value, bitwiseCRC32C(slice), "n \(n) split \(split)")
            }
        }
    }

    func test_alignUp_roundsUpToPowersOfTwo() {
        XCTAssertEqual(alignUp(0, to: 8), 0)
        XCTAssertEqual(alignUp(1, to: 8), 8)
        XCTAssertEqual(alignUp(8, to: 8), 8)
        XCTAssertEqual(alignUp(134, to: 64), 192)
        XCTAssertEqual(alignUp(65, to: 64), 128)
    }

    // MARK: - Segment header

    func test_segmentHeader_is128Bytes_withEveryFieldAtItsDocumentedOffset() {
        var h = SegmentHeader(config: BankFixtures.config(codec: .q4, norm: .l2, sampleCount: 0x0102_0304,
                                                          shape: [3, 32, 31], window: 5, stride: 7),
                              generation: 0x1122_3344_5566)
        h.flags = 1
        h.indexOffset = 0xAABB_CCDD
        h.indexBytes = 0x0808
        h.recordCount = 0x0707
        h.indexChecksum = 0xDEAD_BEEF
        let b = h.encode()
        XCTAssertEqual(b.count, SegmentHeader.encodedByteCount)
        XCTAssertEqual(SegmentHeader.encodedByteCount, 128)
        func u16(_ o: Int) -> UInt16 { var r = ByteReader(b, offset: o); return r.readLE() }
        func u32(_ o: Int) -> UInt32 { var r = ByteReader(b, offset: o); return r.readLE() }
        func u64(_ o: Int) -> UInt64 { var r = ByteReader(b, offset: o); return r.readLE() }
        let at = Dictionary(uniqueKeysWithValues: SegmentHeader.fieldOffsets)
        XCTAssertEqual(Array(b[0..<8]), Array("MBANKSEG".utf8))
        XCTAssertEqual(u16(at["versionMajor"]!), 1)
        XCTAssertEqual(u16(at["versionMinor"]!), 0)
        XCTAssertEqual(u32(at["headerBytes"]!), 128)
        XCTAssertEqual(u32(at["flags"]!), 1)
        XCTAssertEqual(b[at["codec"]!], 4)
        XCTAssertEqual(b[at["norm"]!], 2)
        XCTAssertEqual(u16(at["window"]!), 5)
        XCTAssertEqual(u16(at["stride"]!), 7)
        XCTAssertEqual(u32(at["epsilon"]!), BankFixtures.epsilon.bitPattern)
        XCTAssertEqual([u32(32), u32(36), u32(40), u32(44)], [3, 32, 31, 1])
        XCTAssertEqual(u64(at["sampleCount"]!), 0x0102_0304)
        XCTAssertEqual(u64(at["generation"]!), 0x1122_3344_5566)
        XCTAssertEqual(u64(at["createdByOffset"]!), 128)
        XCTAssertEqual(u32(at["createdByLength"]!), UInt32(BankFixtures.config().createdBy.utf8.count))
        XCTAssertEqual(u32(at["createdByChecksum"]!), CRC32C.checksum(Array(BankFixtures.config().createdBy.utf8)))
        XCTAssertEqual(u64(at["dataOffset"]!), UInt64(alignUp(128 + BankFixtures.config().createdBy.utf8.count, to: 64)))
        XCTAssertEqual(u64(at["indexOffset"]!), 0xAABB_CCDD)
        XCTAssertEqual(u64(at["indexBytes"]!), 0x0808)
        XCTAssertEqual(u64(at["recordCount"]!), 0x0707)
        XCTAssertEqual(u32(at["indexChecksum"]!), 0xDEAD_BEEF)
        XCTAssertEqual(u32(at["headerChecksum"]!), CRC32C.checksum(Array(b[0..<124])))
        XCTAssertEqual(at["headerChecksum"], 124)

        let decoded = try? SegmentHeader.decode(fileSize: b.count, file: "h") { Array(b[$0..<($0 + $1)]) }
        var expected = h
        expected.headerChecksum = u32(124)
        XCTAssertEqual(decoded, expected)
    }

    func test_segmentHeader_decode_rejectsMagicMajorSizeAndChecksumWithTheRightError() {
        let b = SegmentHeader(config: BankFixtures.config(), generation: 3).encode()
        func decode(_ bytes: [UInt8]) throws -> SegmentHeader {
            try SegmentHeader.decode(fileSize: bytes.count, file: "seg") { Array(bytes[$0..<($0 + $1)]) }
        }
        var bad = b
        bad[0] = 0x50
        assertBankError(try decode(bad)) { if case .badMagic(_, let found, _) = $0 { return found[0] == 0x50 }; return false }
        bad = b
        bad[8] = 2
        assertBankError(try decode(bad)) { if case .unsupportedMajor(_, 2, 0, 1) = $0 { return true }; return false }
        assertBankError(try decode(Array(b[0..<100]))) { if case .truncated(_, 128, 100) = $0 { return true }; return false }
        bad = b
        bad[60] ^= 1
        assertBankError(try decode(bad)) { if case .checksumMismatch(_, "header", _, _) = $0 { return true }; return false }
        // A newer minor version is accepted.
        bad = b
        bad[10] = 3
        let crc = CRC32C.checksum(Array(bad[0..<124]))
        for i in 0..<4 { bad[124 + i] = UInt8(truncatingIfNeeded: crc >> (8 * UInt32(i))) }
        XCTAssertEqual(try decode(bad).versionMinor, 3)
    }

    // MARK: - Manifest

    func test_manifest_layout_andRoundTrip() throws {
        let config = BankFixtures.config(codec: .levels, sampleCount: 50_000, shape: [3, 32, 32], window: 2, stride: 3)
        let m = Manifest(sequence: 9, config: config, generations: [
            ManifestGeneration(generation: 4, segmentBytes: 1000, segmentHeaderChecksum: 0xABCD),
            ManifestGeneration(generation: 7, segmentBytes: 2000, segmentHeaderChecksum: 0x1234),
        ])
        let b = m.encode()
        let text = config.createdBy.utf8.count
        XCTAssertEqual(b.count, alignUp(72 + 48 + text, to: 4) + 4)
        let at = Dictionary(uniqueKeysWithValues: Manifest.fieldOffsets)
        var r = ByteReader(b, offset: at["sequence"]!)
        XCTAssertEqual(r.readLE(UInt64.self), 9)
        XCTAssertEqual(r.readLE(UInt64.self), 50_000)
        XCTAssertEqual(b[at["codec"]!], 5)
        XCTAssertEqual(b[at["norm"]!], 1)
        r = ByteReader(b, offset: at["generationCount"]!)
        XCTAssertEqual(r.readLE(UInt32.self), 2)
        XCTAssertEqual(r.readLE(UInt32.self), UInt32(text))
        r = ByteReader(b, offset: 72 + 24)
        XCTAssertEqual(r.readLE(UInt64.self), 7)
        XCTAssertEqual(try Manifest.decode(b, file: "m"), m)

        var bad = b
        bad[20] ^= 4
        assertBankError(try Manifest.decode(bad, file: "m")) { if case .checksumMismatch(_, "manifest", _, _) = $0 { return true }; return false }
        assertBankError(try Manifest.decode(Array(b.dropLast()), file: "m")) { if case .truncated = $0 { return true }; return false }
    }

    // MARK: - Record header

    func test_recordHeader_is48Bytes_withEveryFieldAtItsDocumentedOffset() {
        let h = RecordHeader(sampleID: 0x0A0B_0C0D, codec: 3, flags: 1, view: [1, 2, 3, 4], label: -2, pY: 0.5, margin: -1,
                             loss: 2, scale: 0.25, clampedCount: 7, rawBytes: 300, storedBytes: 200, checksum: 0xCAFE)
        var w = ByteWriter()
        h.encode(into: &w)
        XCTAssertEqual(w.count, RecordHeader.encodedByteCount)
        let at = Dictionary(uniqueKeysWithValues: RecordHeader.fieldOffsets)
        var r = ByteReader(w.bytes, offset: at["sampleID"]!)
        XCTAssertEqual(r.readLE(UInt32.self), 0x0A0B_0C0D)
        XCTAssertEqual(w.bytes[at["codec"]!], 3)
        XCTAssertEqual(w.bytes[at["flags"]!], 1)
        r = ByteReader(w.bytes, offset: at["headerBytes"]!)
        XCTAssertEqual(r.readLE(UInt16.self), 48)
        XCTAssertEqual(Array(w.bytes[8..<12]), [1, 2, 3, 4])
        r = ByteReader(w.bytes, offset: at["label"]!)
        XCTAssertEqual(r.readLE(Int32.self), -2)
        r = ByteReader(w.bytes, offset: at["scale"]!)
        XCTAssertEqual(r.readFloat(), 0.25)
        r = ByteReader(w.bytes, offset: at["storedBytes"]!)
        XCTAssertEqual(r.readLE(UInt32.self), 200)
        XCTAssertEqual(at["checksum"], RecordHeader.checksumOffset)
        XCTAssertEqual(RecordHeader.decode(w.bytes), h)
    }

    func test_segmentNames_roundTrip_andIgnoreOtherFiles() {
        XCTAssertEqual(BankLayout.segmentName(7), "gen-0000000007.mbs")
        XCTAssertEqual(BankLayout.generation(ofSegmentName: "gen-0000000007.mbs"), 7)
        XCTAssertEqual(BankLayout.generation(ofSegmentName: BankLayout.segmentName(12_345_678_901)), 12_345_678_901)
        XCTAssertNil(BankLayout.generation(ofSegmentName: "gen-0000000007.mbs.tmp"))
        XCTAssertNil(BankLayout.generation(ofSegmentName: "gen-7.mbs"))
        XCTAssertNil(BankLayout.generation(ofSegmentName: "manifest.mbm"))
    }
}
