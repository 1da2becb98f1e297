// QuantizeTests.swift: the memory bank's quantisers (docs/format/membank-v1.md §7). Every fast kernel
// must equal its normative scalar twin bit for bit on random and edge inputs, for every tail length;
// round trips must stay within the documented error bounds (named constants below).

import Foundation
import Kernels
import Tensors
import _TestSupport
import XCTest

final class QuantizeTests: XCTestCase {
    /// Binary32 rounding allowance in the q8/q4 bound: |x − x'| ≤ scale/2 + 2u·ε, u = 2⁻²⁴ (spec §7).
    static func levelsBound(epsilon: Float, limit: Int8) -> Float {
        epsilon / Float(limit) / 2 + 2 * 0x1p-24 * epsilon
    }

    /// Edge values for the quantiser with scale s: ties, signed zeros, subnormals, the clamp limits,
    /// infinities and NaN.
    private func edgeInputs(scale s: Float, limit: Int8) -> [Float] {
        let l = Float(limit)
        var v: [Float] = [0, -0.0, 0.5 * s, -0.5 * s, 1.5 * s, -1.5 * s, 2.5 * s, -2.5 * s, l * s, -l * s,
                          (l + 0.5) * s, -(l + 0.5) * s, (l + 0.49) * s, (l + 1) * s, 1e30, -1e30,
                          .infinity, -.infinity, .nan, -.nan, .leastNonzeroMagnitude, -.leastNormalMagnitude,
                          .greatestFiniteMagnitude, Float(bitPattern: 0x7FA0_0001)]
        for k in -3...3 { v.append((Float(k) + 0.5) * s) }
        return v
    }

    private func randomInputs(_ n: Int, magnitude: Float, seed: UInt64) -> [Float] {
        var g = SplitMix64(seed: seed)
        return (0..<n).map { _ in (g.nextFloat() * 2 - 1) * magnitude }
    }

    // MARK: - Levels

    func test_levels_matchesReferenceBitForBit_onRandomAndEdgeInputs_everyTailLength() {
        for (limit, epsilon) in [(Int8(127), Float(8) / 255), (7, 8 / 255), (127, 0.5), (7, 1)] {
            let scale = epsilon / Float(limit)
            let edges = edgeInputs(scale: scale, limit: limit)
            for n in [0, 1, 7, 8, 9, 15, 16, 17, 31, 64, 3072, 3075] {
                var input = randomInputs(n, magnitude: 1.2 * epsilon, seed: UInt64(n) &+ UInt64(limit))
                for i in 0..<min(n, edges.count) { input[(i * 7919) % n] = edges[i] }
                var fast = [Int8](repeating: 99, count: n), slow = [Int8](repeating: -99, count: n)
                let cf = Quantize.levels(output: &fast, input: input, count: n, scale: scale, limit: limit)
                let cs = Reference.quantizeLevels(output: &slow, input: input, count: n, scale: scale, limit: limit)
                XCTAssertEqual(fast, slow, "levels limit \(limit) n \(n)")
                XCTAssertEqual(cf, cs, "clamped count limit \(limit) n \(n)")
            }
        }
    }

    func test_levels_roundsTiesToEven_clampsAndCountsOutliers_mapsNaNToZero() {
        let s: Float = 0.25  // exact divisions
        let input: [Float] = [0.125, 0.375, -0.625, 31.75, 32, 40, -40, .nan, .infinity]
        var out = [Int8](repeating: 0, count: input.count)
        let clamped = Quantize.levels(output: &out, input: input, count: input.count, scale: s, limit: 127)
        XCTAssertEqual(out, [0, 2, -2, 127, 127, 127, -127, 0, 127])
        XCTAssertEqual(clamped, 5)  // 32/0.25 = 128, 40, −40, NaN, ∞
    }

    func test_dequantize_matchesReferenceBitForBit() {
        for n in [0, 1, 8, 13, 255, 3072] {
            let levels = (0..<n).map { Int8(truncatingIfNeeded: ($0 * 37) % 255 - 127) }
            for scale: Float in [8 / 255 / 127, 0.5 / 7, 1e-30, 3.3] {
                var fast = [Float](repeating: .nan, count: n), slow = [Float](repeating: 1, count: n)
                Quantize.dequantize(output: &fast, levels: levels, count: n, scale: scale)
                Reference.dequantizeLevels(output: &slow, levels: levels, count: n, scale: scale)
                XCTAssertEqual(fast.map(\.bitPattern), slow.map(\.bitPattern), "n \(n) scale \(scale)")
            }
        }
    }

    func test_q8AndQ4_roundTrip_staysWithinTheDocumentedBound() {
        for (limit, epsilon) in [(Int8(127), Float(8) / 255), (7, 8 / 255), (127, 0.3), (7, 2)] {
            let scale = epsilon / Float(limit)
            let n = 4096
            var input = randomInputs(n, magnitude: epsilon, seed: 11)
            input[0] = epsilon
            input[1] = -epsilon
            var q = [Int8](repeating: 0, count: n)
            var back = [Float](repeating: 0, count: n)
            let clamped = Quantize.levels(output: &q, input: input, count: n, scale: scale, limit: limit)
            Quantize.dequantize(output: &back, levels: q, count: n, scale: scale)
            XCTAssertEqual(clamped, 0)
            let bound = Self.levelsBound(epsilon: epsilon, limit: limit)
            XCTAssertLessThanOrEqual(maxAbsDifference(input, back), bound, "limit \(limit)")
        }
    }

    func test_lookup_equalsDequantize_andFlagsIndicesOutsideThePalette() {
        let palette: [Int8] = [-127, -3, 0, 64, 127]
        let scale: Float = 8 / 255 / 127
        let values = palette.map { Float($0) * scale }
        let indices: [UInt8] = [0, 1, 2, 3, 4, 4, 0, 2, 1]
        var out = [Float](repeating: 0, count: indices.count)
        XCTAssertTrue(Quantize.lookup(output: &out, indices: indices, count: indices.count, values: values, valueCount: 5))
        var expected = [Float](repeating: 0, count: indices.count)
        Quantize.dequantize(output: &expected, levels: indices.map { palette[Int($0)] }, count: indices.count, scale: scale)
        XCTAssertEqual(out.map(\.bitPattern), expected.map(\.bitPattern))
        XCTAssertFalse(Quantize.lookup(output: &out, indices: [0, 5], count: 2, values: values, valueCount: 5))
    }

    func test_maxAbs_andAllFinite_matchReference() {
        for n in [0, 1, 31, 32, 33, 3072] {
            var x = randomInputs(n, magnitude: 3, seed: UInt64(n))
            XCTAssertEqual(Quantize.maxAbs(x, count: n).bitPattern, Reference.maxAbs(x, count: n).bitPattern)
            XCTAssertTrue(Quantize.allFinite(x, count: n))
            if n > 0 {
                for bad in [Float.nan, .infinity, -.infinity] {
                    let saved = x[n - 1]
                    x[n - 1] = bad
                    XCTAssertFalse(Quantize.allFinite(x, count: n))
                    XCTAssertEqual(Quantize.allFinite(x, count: n), Reference.allFinite(x, count: n))
                    x[n - 1] = saved
                    x[0] = bad
                    XCTAssertFalse(Quantize.allFinite(x, count: n))
                    x[0] = saved
                }
            }
        }
        let zeros: [Float] = Array(repeating: -0.0, count: 40)
        XCTAssertEqual(Quantize.maxAbs(zeros, count: 40).bitPattern, Reference.maxAbs(zeros, count: 40).bitPattern)
    }

    // MARK: - binary16

    func test_halfBits_reference_agreesWithFloat16_onEveryClassOfValue() {
        // The reference is integer bit manipulation; Float16(Float) is the hardware conversion.
        var g = SplitMix64(seed: 5)
        var samples: [Float] = [0, -0.0, 1, -1, 65504, 65519.996, 65520, -65520, 1e9, .infinity, -.infinity,
                                0x1p-14, 0x1p-24, 0x1p-25, 0x1.8p-25, 0x1p-26, 0x1.ffcp-15, 0x1.002p-14,
                                .leastNonzeroMagnitude, .leastNormalMagnitude, 1.0009765625 + 0.00048828125,
                                1.0029296875 + 0.00048828125]
        for _ in 0..<20000 { samples.append(Float(bitPattern: UInt32(truncatingIfNeeded: g.next()))) }
        for x in samples {
            #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
            XCTAssertEqual(Reference.halfBits(x), Float16(x).bitPattern, "x = \(x) bits \(String(x.bitPattern, radix: 16))")
            #endif
        }
        // Every binary16 value converts back exactly (and to itself).
        for h in 0...UInt16.max {
            let f = Reference.floatFromHalfBits(h)
            #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
            XCTAssertEqual(f.bitPattern, Float(Float16(bitPattern: h)).bitPattern, "h = \(h)")
            #endif
            if !f.isNaN { XCTAssertEqual(Reference.halfBits(f), h) }
        }
    }

    func test_halfFromFloat_andBack_matchReferenceBitForBit() {
        var g = SplitMix64(seed: 9)
        for n in [0, 1, 7, 8, 9, 3072, 3077] {
            var x = (0..<n).map { _ in (g.nextFloat() * 2 - 1) * 0.05 }
            let specials: [Float] = [.nan, .infinity, -0.0, 70000, 0x1p-20, -0x1.8p-25]
            for (k, v) in specials.enumerated() where k < n { x[(k * 131) % n] = v }
            var fast = [UInt16](repeating: 1, count: n), slow = [UInt16](repeating: 2, count: n)
            Quantize.halfFromFloat(output: &fast, input: x, count: n)
            Reference.halfFromFloat(output: &slow, input: x, count: n)
            XCTAssertEqual(fast, slow, "n \(n)")
            var backFast = [Float](repeating: 0, count: n), backSlow = [Float](repeating: 1, count: n)
            Quantize.floatFromHalf(output: &backFast, input: fast, count: n)
            Reference.floatFromHalf(output: &backSlow, input: slow, count: n)
            XCTAssertEqual(backFast.map(\.bitPattern), backSlow.map(\.bitPattern), "n \(n)")
        }
    }

    func test_f16_roundTrip_isWithinHalfAnUlp() {
        let x = randomInputs(5000, magnitude: 8 / 255, seed: 3)
        var h = [UInt16](repeating: 0, count: x.count)
        var back = [Float](repeating: 0, count: x.count)
        Quantize.halfFromFloat(output: &h, input: x, count: x.count)
        Quantize.floatFromHalf(output: &back, input: h, count: x.count)
        for i in 0..<x.count {
            // Half an ulp of binary16: 2⁻¹¹·|x| for normal halves (|x| ≥ 2⁻¹⁴), 2⁻²⁵ below.
            let bound = abs(x[i]) >= 0x1p-14 ? abs(x[i]) * 0x1p-11 : 0x1p-25
            XCTAssertLessThanOrEqual(abs(x[i] - back[i]), bound, "x = \(x[i])")
        }
    }

    // MARK: - Packing

    func test_nibbles_matchReference_andRejectTheZeroNibble() {
        for n in [0, 1, 2, 3, 16, 3072, 3073] {
            let levels = (0..<n).map { Int8(($0 * 5) % 15 - 7) }
            var fast = [UInt8](repeating: 0xAA, count: (n + 1) / 2), slow = [UInt8](repeating: 0x55, count: (n + 1) / 2)
            Quantize.packNibbles(output: &fast, levels: levels, count: n)
            Reference.packNibbles(output: &slow, levels: levels, count: n)
            XCTAssertEqual(fast, slow, "n \(n)")
            var back = [Int8](repeating: 0, count: n), backSlow = [Int8](repeating: 1, count: n)
            XCTAssertTrue(Quantize.unpackNibbles(output: &back, input: fast, count: n))
            XCTAssertTrue(Reference.unpackNibbles(output: &backSlow, input: fast, count: n))
            XCTAssertEqual(back, levels)
            XCTAssertEqual(backSlow, levels)
        }
        var out = [Int8](repeating: 0, count: 3)
        XCTAssertFalse(Quantize.unpackNibbles(output: &out, input: [0x18, 0x00], count: 3))
        XCTAssertFalse(Quantize.unpackNibbles(output: &out, input: [0x08, 0x01], count: 3))
        XCTAssertTrue(Quantize.unpackNibbles(output: &out, input: [0x18, 0x01], count: 3))  // high nibble of the tail unused
        XCTAssertEqual(out, [0, -7, -7])
    }

    func test_packBits_andBitPlanes_matchReference_forEveryWidthAndTail() {
        var g = SplitMix64(seed: 21)
        for b in 0...8 {
            for n in [0, 1, 3, 7, 8, 9, 31, 32, 33, 100, 3072, 3075] {
                let indices = (0..<n).map { _ in b == 0 ? UInt8(0) : UInt8(truncatingIfNeeded: g.next()) & UInt8((1 << b) - 1) }
                let packedCount = (n * b + 7) / 8
                var fast = [UInt8](repeating: 0xEE, count: packedCount), slow = [UInt8](repeating: 0x11, count: packedCount)
                Quantize.packBits(output: &fast, indices: indices, count: n, bitWidth: b)
                Reference.packBits(output: &slow, indices: indices, count: n, bitWidth: b)
                XCTAssertEqual(fast, slow, "packBits b \(b) n \(n)")
                var back = [UInt8](repeating: 0xFF, count: n), backSlow = [UInt8](repeating: 0xFE, count: n)
                Quantize.unpackBits(output: &back, input: fast, count: n, bitWidth: b)
                Reference.unpackBits(output: &backSlow, input: fast, count: n, bitWidth: b)
                XCTAssertEqual(back, indices, "unpackBits b \(b) n \(n)")
                XCTAssertEqual(backSlow, indices)

                let planeCount = b * ((n + 7) / 8)
                var pf = [UInt8](repeating: 0xEE, count: planeCount), ps = [UInt8](repeating: 0x11, count: planeCount)
                Quantize.packBitPlanes(output: &pf, indices: indices, count: n, bitWidth: b)
                Reference.packBitPlanes(output: &ps, indices: indices, count: n, bitWidth: b)
                XCTAssertEqual(pf, ps, "packBitPlanes b \(b) n \(n)")
                var pb = [UInt8](repeating: 0xFF, count: n), pbs = [UInt8](repeating: 0xFE, count: n)
                Quantize.unpackBitPlanes(output: &pb, input: pf, count: n, bitWidth: b)
                Reference.unpackBitPlanes(output: &pbs, input: pf, count: n, bitWidth: b)
                XCTAssertEqual(pb, indices, "unpackBitPlanes b \(b) n \(n)")
                XCTAssertEqual(pbs, indices)
            }
        }
    }

    func test_packBits_layout_isLSBFirst() {
        // Indices 1, 2, 3 at 2 bits: stream bits 10 01 11 (LSB first) → byte 0b00_11_10_01.
        var out = [UInt8](repeating: 0, count: 1)
        Quantize.packBits(output: &out, indices: [1, 2, 3], count: 3, bitWidth: 2)
        XCTAssertEqual(out, [0b0011_1001])
        var planes = [UInt8](repeating: 0, count: 2)
        Quantize.packBitPlanes(output: &planes, indices: [1, 2, 3], count: 3, bitWidth: 2)
        XCTAssertEqual(planes, [0b101, 0b110])
    }

    func test_histogram_andMapLevels() {
        let levels: [Int8] = [-127, 0, 0, 5, 127, 5]
        var counts = [Int32](repeating: 0, count: 256)
        Quantize.histogram(counts: &counts, levels: levels, count: levels.count)
        XCTAssertEqual(counts[1], 1)
        XCTAssertEqual(counts[128], 2)
        XCTAssertEqual(counts[133], 2)
        XCTAssertEqual(counts[255], 1)
        var table = [UInt8](repeating: 0, count: 256)
        table[1] = 0; table[128] = 1; table[133] = 2; table[255] = 3
        var out = [UInt8](repeating: 9, count: levels.count)
        Quantize.mapLevels(output: &out, levels: levels, count: levels.count, table: table)
        XCTAssertEqual(out, [0, 1, 1, 2, 3, 2])
    }
}
