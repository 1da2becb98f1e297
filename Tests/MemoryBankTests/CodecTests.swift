// CodecTests.swift: one record through encoder and decoder for every codec and norm: reconstruction
// error within the documented bound (f32 exact), clamping counted, the `levels` palette/bit-width
// choice, the LZ4 10% rule, and the decoder's rejection of damaged payloads behind a valid CRC.

import SystemIO
import Foundation
import Kernels
@testable import MemoryBank
import Tensors
import _TestSupport
import XCTest

final class CodecTests: XCTestCase {
    /// Encodes `delta` as a record, decodes it back.
    private func roundTrip(_ config: BankConfig, _ delta: [Float], id: Int = 3) throws -> ([Float], RecordStatistics, EntryInfo, [UInt8]) {
        let encoder = RecordEncoder(config: config)
        var w = ByteWriter()
        // Generation 1, as decodeRecord decodes (q8rcn's start noise depends on it).
        let stats = encoder.appendRecord(id: id, generation: 1, delta: delta, view: BankFixtures.view(id), metadata: BankFixtures.metadata(id), to: &w)
        XCTAssertEqual(w.count, stats.recordBytes)
        XCTAssertEqual(w.count % 8, 0)
        let (out, info) = try decodeRecord(config, w.bytes, id: id)
        return (out, stats, info, w.bytes)
    }

    private func decodeRecord(_ config: BankConfig, _ record: [UInt8], id: Int) throws -> ([Float], EntryInfo) {
        let decoder = RecordDecoder(config: config)
        var out = [Float](repeating: .nan, count: config.elementCount)
        let info = try record.withUnsafeBytes { r in
            try out.withUnsafeMutableBufferPointer { o in
                try decoder.decode(record: r.baseAddress!, available: r.count, id: id, into: o.baseAddress!, file: "f", generation: 1)
            }
        }
        return (out, info)
    }

    func test_everyCodec_roundTripsWithinItsDocumentedBound_onPGDLikeAndUniformDeltas() throws {
        for codec in BankCodec.allCases {
            for norm in PerturbationNorm.allCases {
                let config = BankFixtures.config(codec: codec, norm: norm, shape: [3, 8, 9])
                for (k, delta) in [BankFixtures.pgdDelta(count: 216, seed: 1), BankFixtures.uniformDelta(count: 216, seed: 2)].enumerated() {
                    let (out, stats, info, _) = try roundTrip(config, delta)
                    let m = delta.map(abs).max()!
                    let bound = norm == .linf ? BankFixtures.epsilon : m
                    for i in 0..<delta.count {
                        let allowed = codec.errorBound(epsilon: bound, value: delta[i])
                        XCTAssertLessThanOrEqual(abs(out[i] - delta[i]), allowed, "\(codec) \(norm) case \(k) i \(i)")
                    }
                    if codec == .f32 { XCTAssertEqual(out.map(\.bitPattern), delta.map(\.bitPattern)) }
                    XCTAssertEqual(stats.clampedCount, 0, "\(codec) \(norm)")
                    XCTAssertEqual(info.view, BankFixtures.view(3))
                    XCTAssertEqual(info.metadata, BankFixtures.metadata(3))
                    XCTAssertEqual(info.storedBytes, stats.storedBytes)
                }
            }
        }
    }

    func test_levels_isBitIdenticalToQ8() throws {
        for seed in 0..<5 {
            let delta = BankFixtures.pgdDelta(count: 3 * 32 * 32, seed: UInt64(seed))
            let (a, _, _, _) = try roundTrip(BankFixtures.config(codec: .q8, shape: [3, 32, 32]), delta)
            let (b, stats, _, _) = try roundTrip(BankFixtures.config(codec: .levels, shape: [3, 32, 32]), delta)
            XCTAssertEqual(a.map(\.bitPattern), b.map(\.bitPattern))
            XCTAssertEqual(stats.bitWidth, Int.bitWidth - (stats.paletteCount - 1).leadingZeroBitCount)
        }
    }

    func test_levels_choosesTheMinimalBitWidth_signOnlyIsOneBitPerValue() throws {
        let n = 3 * 32 * 32
        var g = SplitMix64(seed: 4)
        let signs = (0..<n).map { _ in g.nextFloat() < 0.5 ? BankFixtures.epsilon : -BankFixtures.epsilon }
        let config = BankFixtures.config(codec: .levels, shape: [3, 32, 32])
        let (out, stats, _, _) = try roundTrip(config, signs)
        XCTAssertEqual(stats.paletteCount, 2)
        XCTAssertEqual(stats.bitWidth, 1)
        XCTAssertLessThanOrEqual(stats.storedBytes, 4 + 2 + n / 8)
        XCTAssertLessThanOrEqual(stats.recordBytes + 8, 1229, "sign-only entry meets the 1/10 target")
        assertClose(out, signs, atol: BankFixtures.epsilon / 254 * 1.001, rtol: 0)

        let zeros = [Float](repeating: 0, count: n)
        let (z, zs, _, _) = try roundTrip(config, zeros)
        XCTAssertEqual(zs.paletteCount, 1)
        XCTAssertEqual(zs.bitWidth, 0)
        XCTAssertEqual(zs.rawBytes, 5)
        XCTAssertEqual(z, zeros)

        // All 255 levels → 8 bits.
        let ramp = (0..<n).map { Float($0 % 255 - 127) * (BankFixtures.epsilon / 127) }
        let (_, rs, _, _) = try roundTrip(config, ramp)
        XCTAssertEqual(rs.paletteCount, 255)
        XCTAssertEqual(rs.bitWidth, 8)
    }

    func test_levels_everyLayout_rawAndLZ4_decodesToTheQ8Levels() throws {
        let config = BankFixtures.config(codec: .levels, shape: [3, 16, 16])
        let q8 = BankFixtures.config(codec: .q8, shape: [3, 16, 16])
        let n = config.elementCount
        // Structured (runs of saturated values, LZ4 pays) and noisy (it does not) perturbations.
        let structured = (0..<n).map { i -> Float in (i / 40) % 2 == 0 ? BankFixtures.epsilon : -BankFixtures.epsilon / 4 * Float(i % 3) }
        for (name, delta) in [("structured", structured), ("noisy", BankFixtures.pgdDelta(count: n, seed: 8))] {
            let (expected, _, _, _) = try roundTrip(q8, delta)
            for layout in 0..<3 {
                let encoder = RecordEncoder(config: config)
                encoder.forcedLevelsLayout = layout
                var w = ByteWriter()
                let stats = encoder.appendRecord(id: 3, delta: delta, view: .identity, metadata: .zero, to: &w)
                XCTAssertEqual(stats.layout, layout)
                XCTAssertEqual(stats.rawBytes, RecordCodec.levelsRawBytes(paletteCount: stats.paletteCount, layout: layout, elementCount: n))
                let (out, info) = try decodeRecord(config, w.bytes, id: 3)
                XCTAssertEqual(out.map(\.bitPattern), expected.map(\.bitPattern), "\(name) layout \(layout)")
                if name == "structured" { XCTAssertTrue(info.lz4, "layout \(layout)") }
            }
        }
    }

    func test_q8_clampsValuesBeyondEpsilon_andCountsThem() throws {
        let config = BankFixtures.config(codec: .q8, shape: [1, 1, 4])
        let e = BankFixtures.epsilon
        let (out, stats, info, _) = try roundTrip(config, [2 * e, -1.5 * e, e, 0])
        XCTAssertEqual(stats.clampedCount, 2)
        XCTAssertEqual(info.clampedCount, 2)
        XCTAssertEqual(out[0], 127 * (e / 127))
        XCTAssertEqual(out[1], -127 * (e / 127))
    }

    func test_l2_usesAPerSampleScale_andAllZeroDeltaDecodesToZero() throws {
        let config = BankFixtures.config(codec: .q8, norm: .l2, shape: [1, 1, 3])
        let (out, stats, info, _) = try roundTrip(config, [0.5, -0.25, 0.1])
        XCTAssertEqual(info.scale, Float(0.5) / 127)
        XCTAssertEqual(stats.clampedCount, 0)
        XCTAssertEqual(out[0], 0.5 / 127 * 127)
        let (z, _, zi, _) = try roundTrip(config, [0, 0, 0])
        XCTAssertEqual(zi.scale, 0)
        XCTAssertEqual(z, [0, 0, 0])
    }

    func test_lz4_isKeptOnlyWhenItSavesTenPercent() throws {
        let config = BankFixtures.config(codec: .f32, shape: [3, 8, 8])
        let (_, compressible, _, _) = try roundTrip(config, [Float](repeating: 0.01, count: 192))
        XCTAssertTrue(compressible.lz4)
        XCTAssertLessThanOrEqual(compressible.storedBytes, compressible.rawBytes - compressible.rawBytes / 10)
        let (_, noise, _, _) = try roundTrip(config, BankFixtures.uniformDelta(count: 192, seed: 9))
        XCTAssertFalse(noise.lz4)
        XCTAssertEqual(noise.storedBytes, noise.rawBytes)
    }

    // MARK: - Damaged payloads behind a valid checksum

    /// Applies `change` to a record's bytes and recomputes its CRC.
    private func tamper(_ record: [UInt8], _ change: (inout [UInt8]) -> Void) -> [UInt8] {
        var b = record
        change(&b)
        var h = ByteReader(b, offset: 40)
        let stored = Int(h.readLE(UInt32.self))
        var crc = CRC32C()
        crc.update(b[0..<44])
        crc.update(b[48..<(48 + stored)])
        for i in 0..<4 { b[44 + i] = UInt8(truncatingIfNeeded: crc.value >> (8 * UInt32(i))) }
        return b
    }

    private func assertCorrupt(_ config: BankConfig, _ record: [UInt8], _ fragment: String, line: UInt = #line) {
        let e = assertBankError(try decodeRecord(config, record, id: 3), line: line) {
            if case .corruptRecord("f", 1, 3, _) = $0 { return true }
            return false
        }
        XCTAssertTrue(e?.description.contains(fragment) ?? false, "\(String(describing: e)) lacks \(fragment)", line: line)
    }

    func test_decoder_rejectsDamage_withCorruptRecordNamingFileGenerationAndSample() throws {
        let q8 = BankFixtures.config(codec: .q8, shape: [1, 2, 2])
        let (_, _, _, record) = try roundTrip(q8, [0.01, -0.02, 0.03, 0])
        var flipped = record
        flipped[50] ^= 1
        assertCorrupt(q8, flipped, "record checksum")
        assertCorrupt(q8, tamper(record) { $0[0] = 9 }, "holds sample 9")
        assertCorrupt(q8, tamper(record) { $0[48] = 0x80 }, "−128")
        assertCorrupt(q8, tamper(record) { $0[28] ^= 1 }, "scale")
        assertCorrupt(q8, tamper(record) { $0[4] = 4 }, "codec")
        assertCorrupt(q8, Array(record[0..<40]), "runs past")
        assertBankError(try decodeRecord(q8, tamper(record) { $0[4] = 77 }, id: 3)) {
            if case .unsupportedRecord("f", 1, 3, let reason) = $0 { return reason.contains("codec 77") }
            return false
        }
        assertBankError(try decodeRecord(q8, tamper(record) { $0[5] = 0x80 }, id: 3)) {
            if case .unsupportedRecord(_, _, _, let reason) = $0 { return reason.contains("flags") }
            return false
        }

        let levels = BankFixtures.config(codec: .levels, shape: [1, 2, 2])
        let (_, _, _, lrec) = try roundTrip(levels, [0.01, -0.02, 0.03, 0])  // 4 levels, 2 bits
        assertCorrupt(levels, tamper(lrec) { $0[49] = 3 }, "bitWidth")
        assertBankError(try decodeRecord(levels, tamper(lrec) { $0[50] = 3 }, id: 3)) {
            if case .unsupportedRecord(_, _, _, let reason) = $0 { return reason.contains("layout 3") }
            return false
        }
        let directEncoder = RecordEncoder(config: levels)
        directEncoder.forcedLevelsLayout = 2
        var dw = ByteWriter()
        _ = directEncoder.appendRecord(id: 3, delta: [0.01, -0.02, 0.03, 0], view: .identity, metadata: .zero, to: &dw)
        assertCorrupt(levels, tamper(dw.bytes) { $0[48] = 1 }, "direct layout")
        assertCorrupt(levels, tamper(dw.bytes) { $0[52] = 0x80 }, "−128")
        assertCorrupt(levels, tamper(lrec) { $0.swapAt(52, 53) }, "ascending")
        assertCorrupt(levels, tamper(lrec) { $0[48] = 3; $0[49] = 2 }, "payload")  // P = 3 changes the size

        let q4 = BankFixtures.config(codec: .q4, shape: [1, 2, 2])
        let (_, _, _, qrec) = try roundTrip(q4, [0.01, -0.02, 0.03, 0])
        assertCorrupt(q4, tamper(qrec) { $0[48] &= 0xF0 }, "nibble 0")

        // A corrupt LZ4 block: compressible f32 record, damage its stream.
        let f32 = BankFixtures.config(codec: .f32, shape: [3, 8, 8])
        let (_, stats, _, frec) = try roundTrip(f32, [Float](repeating: 0.01, count: 192))
        XCTAssertTrue(stats.lz4)
        assertCorrupt(f32, tamper(frec) { $0[48] = 0xFF; $0[49] = 0xFF; $0[50] = 0xFF }, "LZ4")
    }
}
