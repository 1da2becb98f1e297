// Q8rcCodecTests.swift: the `q8rc` codec of docs/format/membank-v1.md §7.5. The range coder alone
// (random decisions under random probabilities round-trip, the stream length is exact), the codec
// bit-identical to q8 on random, PGD-like, sign-only, zero and attack-shaped δ (L∞ and L2), the direct
// fallback, values inside the ε-ball and the box after decode + clamp, the golden records
// (Fixtures/golden-q8rc-records.bin), and damaged payloads behind a valid CRC (every truncation, a
// byte-mutation sweep, bad layout and reserved bytes): a typed error or valid levels, never a trap.

import Foundation
import SystemIO
@testable import MemoryBank
import Tensors
import _TestSupport
import XCTest

final class Q8rcCodecTests: XCTestCase {
    private let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/golden-q8rc-records.bin")

    private func encode(_ config: BankConfig, _ delta: [Float], id: Int = 3) -> ([UInt8], RecordStatistics) {
        let encoder = RecordEncoder(config: config)
        var w = ByteWriter()
        let stats = encoder.appendRecord(id: id, delta: delta, view: BankFixtures.view(id), metadata: BankFixtures.metadata(id), to: &w)
        return (w.bytes, stats)
    }

    private func decode(_ config: BankConfig, _ record: [UInt8], id: Int = 3) throws -> [Float] {
        let decoder = RecordDecoder(config: config)
        var out = [Float](repeating: .nan, count: config.elementCount)
        _ = try decoder.decode(record: record, id: id, into: &out, file: "f", generation: 1)
        return out
    }

    /// A δ shaped like a 10-step sign-PGD one (α = ε/4 from a σ = 0.001 Gaussian start, clipped at
    /// ±ε), with spatially correlated signs: what the context model is for.
    static func attackShapedDelta(shape: [Int], seed: UInt64, epsilon: Float = BankFixtures.epsilon) -> [Float] {
        var g = SplitMix64(seed: seed)
        let (c, h, w) = (shape[0], shape[1], shape[2])
        // A smooth sign field per channel: the sign of a sum of a few random plane waves.
        let waves = (0..<4).map { _ in (g.nextFloat() * 0.8, g.nextFloat() * 0.8, g.nextFloat() * 6.3) }
        var delta = [Float](repeating: 0, count: c * h * w)
        for ch in 0..<c {
            for y in 0..<h {
                for x in 0..<w {
                    let i = (ch * h + y) * w + x
                    var d = 0.001 * (g.nextFloat() + g.nextFloat() + g.nextFloat() - 1.5) * 2
                    for _ in 0..<10 {
                        let field = waves.reduce(Float(ch)) { $0 + sin($1.0 * Float(x) + $1.1 * Float(y) + $1.2) }
                        let flip = g.nextFloat() < 0.15
                        let up = (field > 0) != flip
                        d = min(max(d + (up ? epsilon / 4 : -epsilon / 4), -epsilon), epsilon)
                    }
                    delta[i] = d
                }
            }
        }
        return delta
    }

    // MARK: - The range coder

    func test_rangeCoder_roundTripsRandomDecisions_andTheStreamLengthIsExact() {
        var g = SplitMix64(seed: 11)
        for trial in 0..<40 {
            let count = trial == 0 ? 0 : Int(g.next() % 5000)
            let skew = g.nextFloat()
            let bits = (0..<count).map { _ in g.nextFloat() < skew * skew ? 1 : 0 }
            let contexts = (0..<count).map { _ in Int(g.next() % 7) }
            var encodeP = [UInt16](repeating: LevelModel.initialProbability, count: 7)
            var out = [UInt8](repeating: 0, count: count + 16)
            let length = out.withUnsafeMutableBufferPointer { o -> Int in
                var e = RangeEncoder(output: o.baseAddress!, capacity: o.count)
                for k in 0..<count { e.encode(bits[k], probability: &encodeP[contexts[k]]) }
                e.finish()
                XCTAssertFalse(e.overflowed)
                return e.count
            }
            XCTAssertGreaterThanOrEqual(length, LevelModel.flushBytes)
            XCTAssertEqual(out[0], 0, "the first byte is the encoder's initial pending byte")
            var decodeP = [UInt16](repeating: LevelModel.initialProbability, count: 7)
            out.withUnsafeBufferPointer { o in
                var d = RangeDecoder(input: o.baseAddress!, count: length)
                for k in 0..<count {
                    if d.decode(probability: &decodeP[contexts[k]]) != bits[k] { XCTFail("trial \(trial): bit \(k) differs"); return }
                }
                XCTAssertFalse(d.overrun)
                XCTAssertEqual(d.position, length, "trial \(trial): the decoder reads exactly the stream")
            }
            XCTAssertEqual(encodeP, decodeP)
        }
    }

    func test_rangeCoder_reportsOverflowInsteadOfWritingPastTheCapacity() {
        var out = [UInt8](repeating: 0xAB, count: 12)
        out.withUnsafeMutableBufferPointer { o in
            var e = RangeEncoder(output: o.baseAddress!, capacity: 8)
            var p = LevelModel.initialProbability
            for k in 0..<400 { e.encode(k % 2, probability: &p) }
            e.finish()
            XCTAssertTrue(e.overflowed)
        }
        XCTAssertEqual(Array(out[8...]), [0xAB, 0xAB, 0xAB, 0xAB], "nothing written past the capacity")
    }

    // MARK: - The codec

    func test_q8rc_isBitIdenticalToQ8_onEveryKindOfDelta_bothNorms() throws {
        let shapes = [[1, 1, 1], [1, 2, 2], [3, 8, 9], [1, 28, 28], [3, 32, 32]]
        for norm in PerturbationNorm.allCases {
            for shape in shapes {
                let n = shape.reduce(1, *)
                let q8 = BankFixtures.config(codec: .q8, norm: norm, shape: shape)
                let rc = BankFixtures.config(codec: .q8rc, norm: norm, shape: shape)
                var g = SplitMix64(seed: UInt64(n))
                let e = BankFixtures.epsilon
                let cases: [(String, [Float])] = [
                    ("pgd", BankFixtures.pgdDelta(count: n, seed: 1)),
                    ("uniform", BankFixtures.uniformDelta(count: n, seed: 2)),
                    ("attack", Self.attackShapedDelta(shape: shape, seed: 3)),
                    ("signs", (0..<n).map { _ in g.nextFloat() < 0.5 ? e : -e }),
                    ("zeros", [Float](repeating: 0, count: n)),
                    ("clamped", (0..<n).map { i in Float(i % 5 - 2) * e }),
                ]
                for (name, delta) in cases {
                    let (a, _) = encode(q8, delta)
                    let (b, stats) = encode(rc, delta)
                    XCTAssertEqual(try decode(rc, b).map(\.bitPattern), try decode(q8, a).map(\.bitPattern), "\(norm) \(shape) \(name)")
                    XCTAssertLessThanOrEqual(stats.rawBytes, RecordCodec.q8rcHeaderBytes + n, "never more than q8 + 4 bytes")
                    XCTAssertFalse(stats.lz4)
                    if name == "clamped" {  // ±2ε are clamped under L∞; under L2 the scale is max|δ|/127
                        XCTAssertEqual(stats.clampedCount, norm == .linf ? (0..<n).filter { $0 % 5 == 0 || $0 % 5 == 4 }.count : 0)
                    }
                }
            }
        }
    }

    func test_q8rc_staysWithinQ8sBound_andInsideTheBallAndTheBox_afterDecodeAndClamp() throws {
        let shape = [3, 32, 32], n = 3072, e = BankFixtures.epsilon
        let config = BankFixtures.config(codec: .q8rc, shape: shape)
        var g = SplitMix64(seed: 21)
        for seed in 0..<6 {
            // Clean pixels with saturated regions (0 and 1), and a δ kept inside the box as PGD keeps it.
            let x = (0..<n).map { _ -> Float in let u = g.nextFloat(); return u < 0.2 ? 0 : (u > 0.8 ? 1 : g.nextFloat()) }
            let raw = seed % 2 == 0 ? Self.attackShapedDelta(shape: shape, seed: UInt64(seed)) : BankFixtures.uniformDelta(count: n, seed: UInt64(seed))
            let delta = (0..<n).map { i in min(max(x[i] + raw[i], 0), 1) - x[i] }
            let (record, _) = encode(config, delta)
            let out = try decode(config, record)
            for i in 0..<n {
                XCTAssertLessThanOrEqual(abs(out[i] - delta[i]), BankCodec.q8rc.errorBound(epsilon: e), "seed \(seed) i \(i)")
                let clamped = min(max(out[i], -e), e)
                let adversarial = min(max(x[i] + clamped, 0), 1)
                XCTAssertLessThanOrEqual(abs(adversarial - x[i]), e * (1 + 0x1p-22))
                XCTAssertTrue(adversarial >= 0 && adversarial <= 1)
            }
        }
    }

    func test_q8rc_fallsBackToDirectLevels_whenCodingDoesNotPay_andCodesStructuredDeltasSmall() throws {
        let shape = [3, 32, 32], n = 3072
        let config = BankFixtures.config(codec: .q8rc, shape: shape)
        // Uniform levels over −127…127: about 8 bits per value plus the class decisions > n bytes.
        var g = SplitMix64(seed: 5)
        let scale = BankFixtures.epsilon / 127
        let noise = (0..<n).map { _ in Float(Int(g.next() % 255) - 127) * scale }
        let (_, direct) = encode(config, noise)
        XCTAssertEqual(direct.layout, RecordCodec.q8rcDirectLayout)
        XCTAssertEqual(direct.rawBytes, 4 + n)
        // Sign-only, spatially smooth: a few bits per row.
        let smooth = (0..<n).map { i in (i / 64) % 2 == 0 ? BankFixtures.epsilon : -BankFixtures.epsilon }
        let (_, coded) = encode(config, smooth)
        XCTAssertEqual(coded.layout, RecordCodec.q8rcCodedLayout)
        XCTAssertLessThan(coded.rawBytes, 200)
        // Attack-shaped δ (75% saturated, the rest spread by the start noise) under the 1/10 target.
        let (_, attack) = encode(config, Self.attackShapedDelta(shape: shape, seed: 9))
        XCTAssertEqual(attack.layout, RecordCodec.q8rcCodedLayout)
        XCTAssertLessThanOrEqual(attack.recordBytes + 8, 1229)
    }

    // MARK: - Golden records

    /// Three records of shape 2×3×4, ε = 8/255, L∞: an attack-shaped δ, zeros, and a spread-out δ
    /// stored directly.
    static func goldenRecords() -> ([UInt8], [[Float]]) {
        let config = BankFixtures.config(codec: .q8rc, shape: [2, 3, 4])
        let e = BankFixtures.epsilon
        let attack: [Float] = [e, e, e, -e, e, e, 0.5 * e, -e, e, 0.004, -e, -e,
                               e, e, -e, -e, e, -0.25 * e, -e, -e, e, e, -e, 0.0011]
        let zeros = [Float](repeating: 0, count: 24)
        let spread = (0..<24).map { i in Float((i * 37) % 255 - 127) * (e / 127) }
        let encoder = RecordEncoder(config: config)
        var w = ByteWriter()
        for (id, d) in [attack, zeros, spread].enumerated() {
            _ = encoder.appendRecord(id: id, delta: d, view: BankFixtures.view(id), metadata: BankFixtures.metadata(id), to: &w)
        }
        return (w.bytes, [attack, zeros, spread])
    }

    func test_goldenRecords_matchTheCommittedBytes_andDecodeToTheQ8Levels() throws {
        let (bytes, deltas) = Self.goldenRecords()
        if ProcessInfo.processInfo.environment["MEMBANK_REGENERATE_GOLDEN"] == "1" { try Data(bytes).write(to: fixture) }
        let committed = [UInt8](try Data(contentsOf: fixture))
        XCTAssertEqual(bytes, committed, "q8rc records differ from Fixtures/golden-q8rc-records.bin")
        let rc = BankFixtures.config(codec: .q8rc, shape: [2, 3, 4]), q8 = BankFixtures.config(codec: .q8, shape: [2, 3, 4])
        var offset = 0
        for (id, d) in deltas.enumerated() {
            let length = try XCTUnwrap(Self.recordLength(committed, at: offset))
            let record = Array(committed[offset..<(offset + length)])
            XCTAssertEqual(record[4], 6, "codec byte")
            XCTAssertEqual(record[48], id == 2 ? 1 : 0, "layout: coded, coded, direct")
            XCTAssertEqual(try decode(rc, record, id: id).map(\.bitPattern), try decode(q8, encode(q8, d, id: id).0, id: id).map(\.bitPattern))
            offset += length
        }
        XCTAssertEqual(offset, committed.count)
        // The spec's worked example lists the first record's payload.
        let spec = fixture.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("docs/format/membank-v1.md")
        let text = try String(contentsOf: spec, encoding: .utf8)
        let stored = try XCTUnwrap(Self.recordLength(committed, at: 0)) > 0 ? Int(committed[40]) : 0
        let hex = committed[52..<(48 + stored)].map { String(format: "%02X", $0) }.joined(separator: " ")
        XCTAssertTrue(text.contains("00 00 00 00                                layout 0 (coded), reserved\n         " + hex + "  stream"),
                      "docs/format/membank-v1.md §7.5 must list the stream \(hex)")
    }

    /// 48 + storedBytes rounded up to 8.
    static func recordLength(_ bytes: [UInt8], at offset: Int) -> Int? {
        guard offset + 48 <= bytes.count else { return nil }
        let stored = Int(bytes[offset + 40]) | Int(bytes[offset + 41]) << 8 | Int(bytes[offset + 42]) << 16 | Int(bytes[offset + 43]) << 24
        return (48 + stored + 7) / 8 * 8
    }

    // MARK: - Damaged payloads behind a valid checksum

    /// The record with its payload replaced (rawBytes = storedBytes = the new length, LZ4 bit clear)
    /// and the checksum recomputed, so the decoder itself must catch what is wrong.
    static func reseal(_ record: [UInt8], payload: [UInt8]) -> [UInt8] {
        var r = Array(record[0..<48]) + payload
        r[5] = 0
        for (at, v) in [(36, payload.count), (40, payload.count)] {
            for k in 0..<4 { r[at + k] = UInt8(truncatingIfNeeded: v >> (8 * k)) }
        }
        var crc = CRC32C()
        crc.update(r[0..<44])
        crc.update(r[48...])
        for k in 0..<4 { r[44 + k] = UInt8(truncatingIfNeeded: crc.value >> (8 * k)) }
        while r.count % 8 != 0 { r.append(0) }
        return r
    }

    private func assertTypedErrorOrValidLevels(_ config: BankConfig, _ record: [UInt8], _ message: String) {
        do {
            let out = try decode(config, record)
            let limit = 127 * (config.epsilon / 127)
            for v in out where !(abs(v) <= limit) { XCTFail("\(message): decoded \(v) outside ±L·scale"); return }
        } catch let error as MemoryBankError {
            switch error {
            case .corruptRecord, .unsupportedRecord: break
            default: XCTFail("\(message): unexpected error \(error)")
            }
        } catch {
            XCTFail("\(message): untyped error \(error)")
        }
    }

    func test_damagedPayloads_everyTruncationAndAMutationSweep_giveATypedErrorOrValidLevels() throws {
        let shape = [3, 16, 16]
        let config = BankFixtures.config(codec: .q8rc, shape: shape)
        let (record, stats) = encode(config, Self.attackShapedDelta(shape: shape, seed: 4))
        XCTAssertEqual(stats.layout, RecordCodec.q8rcCodedLayout)
        let payload = Array(record[48..<(48 + stats.storedBytes)])
        // Every truncation of the payload is refused (the stream length is exact).
        for cut in 0..<payload.count {
            let damaged = Self.reseal(record, payload: Array(payload[0..<cut]))
            assertBankError(try decode(config, damaged), "truncated to \(cut)") { if case .corruptRecord = $0 { return true }; return false }
        }
        // One byte appended: bytes left over.
        assertBankError(try decode(config, Self.reseal(record, payload: payload + [0]))) { if case .corruptRecord = $0 { return true }; return false }
        // Every byte of the payload, three mutations each.
        for i in 0..<payload.count {
            for m: UInt8 in [0x01, 0x80, 0xFF] {
                var p = payload
                p[i] ^= m
                assertTypedErrorOrValidLevels(config, Self.reseal(record, payload: p), "byte \(i) ^ \(m)")
            }
        }
        // Header bytes of the payload.
        var badLayout = payload
        badLayout[0] = 7
        assertBankError(try decode(config, Self.reseal(record, payload: badLayout))) { if case .unsupportedRecord = $0 { return true }; return false }
        var badReserved = payload
        badReserved[2] = 1
        assertBankError(try decode(config, Self.reseal(record, payload: badReserved))) { if case .corruptRecord = $0 { return true }; return false }
        // Direct layout: wrong length, and the invalid level −128.
        let (directRecord, direct) = encode(config, BankFixtures.uniformDelta(count: 768, seed: 1).map { $0 * 0.999 })
        if direct.layout == RecordCodec.q8rcDirectLayout {
            var d = Array(directRecord[48..<(48 + direct.storedBytes)])
            assertBankError(try decode(config, Self.reseal(directRecord, payload: Array(d.dropLast())))) { if case .corruptRecord = $0 { return true }; return false }
            d[100] = 0x80
            assertBankError(try decode(config, Self.reseal(directRecord, payload: d))) { if case .corruptRecord = $0 { return true }; return false }
        } else {
            XCTFail("a uniform δ should be stored directly")
        }
        // Random streams of every short length.
        var g = SplitMix64(seed: 99)
        for length in 0..<64 {
            let p = [0, 0, 0, 0] + (0..<length).map { _ in UInt8(truncatingIfNeeded: g.next()) }
            assertTypedErrorOrValidLevels(config, Self.reseal(record, payload: p), "random stream of \(length)")
        }
    }
}
