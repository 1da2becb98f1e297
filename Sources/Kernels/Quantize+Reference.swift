// Quantize+Reference.swift: the normative scalar twins of the Quantize kernels (docs/format/membank-v1.md
// §7): level quantisation with clamping, dequantisation, float32 ↔ binary16 by integer bit manipulation,
// nibble packing and the bit packings of the `levels` codec. Plain loops, obviously correct and slow;
// the fast kernels in Quantize.swift must match them bit for bit. No SIMD, no threads.

extension Reference {
    /// Twin of `Quantize.levels` (normative): for each value
    /// ```
    /// q = roundToNearestEven(input[i] / scale)      // one binary32 division
    /// NaN → 0, q > limit → limit, q < −limit → −limit   (each of these counted)
    /// ```
    /// - Returns: the number of values that were NaN or clamped.
    public static func quantizeLevels(output: UnsafeMutablePointer<Int8>, input: UnsafePointer<Float>,
                                      count: Int, scale: Float, limit: Int8) -> Int {
        let l = Float(limit)
        var clamped = 0
        for i in 0..<max(count, 0) {
            var q = (input[i] / scale).rounded(.toNearestOrEven)
            if q.isNaN {
                q = 0
                clamped += 1
            } else if q > l {
                q = l
                clamped += 1
            } else if q < -l {
                q = -l
                clamped += 1
            }
            output[i] = Int8(q)
        }
        return clamped
    }

    /// Twin of `Quantize.dequantize`: `output[i] = Float(levels[i]) · scale`.
    public static func dequantizeLevels(output: UnsafeMutablePointer<Float>, levels: UnsafePointer<Int8>,
                                        count: Int, scale: Float) {
        for i in 0..<max(count, 0) { output[i] = Float(levels[i]) * scale }
    }

    /// Twin of `Quantize.maxAbs`: `max_i |input[i]|` (0 for an empty input). Inputs must be finite.
    public static func maxAbs(_ input: UnsafePointer<Float>, count: Int) -> Float {
        var m: Float = 0
        for i in 0..<max(count, 0) where abs(input[i]) > m { m = abs(input[i]) }
        return m
    }

    /// Twin of `Quantize.allFinite`.
    public static func allFinite(_ input: UnsafePointer<Float>, count: Int) -> Bool {
        for i in 0..<max(count, 0) where !input[i].isFinite { return false }
        return true
    }

    // MARK: - binary16

    /// binary32 → binary16 bit pattern, round to nearest even (normative; IEEE 754 conversion):
    /// overflow → ±∞, subnormal results kept, binary32 subnormals → ±0, NaN → quiet NaN keeping the
    /// top 9 payload bits (`sign | 0x7E00 | mantissa >> 13`), as x86 `vcvtps2ph` does.
    public static func halfBits(_ x: Float) -> UInt16 {
        let bits = x.bitPattern
        let sign = UInt16(truncatingIfNeeded: (bits >> 16) & 0x8000)
        let exponent = Int((bits >> 23) & 0xFF)
        let mantissa = bits & 0x7F_FFFF
        if exponent == 0xFF {
            if mantissa != 0 { return sign | 0x7E00 | UInt16(truncatingIfNeeded: mantissa >> 13) }
            return sign | 0x7C00
        }
        if exponent == 0 { return sign }  // zero or binary32 subnormal (< 2⁻¹²⁶): rounds to ±0
        let halfExponent = exponent - 127 + 15
        if halfExponent >= 31 { return sign | 0x7C00 }
        if halfExponent <= 0 {
            // Subnormal half: value = m · 2^(exponent − 150), unit 2⁻²⁴ → h = m >> (126 − exponent).
            let m = mantissa | 0x80_0000
            let shift = 126 - exponent
            if shift > 24 { return sign }  // below half the smallest subnormal
            var h = m >> UInt32(shift)
            let remainder = m & ((1 << UInt32(shift)) - 1)
            let halfway: UInt32 = 1 << UInt32(shift - 1)
            if remainder > halfway || (remainder == halfway && (h & 1) == 1) { h += 1 }
            return sign | UInt16(truncatingIfNeeded: h)
        }
        var h = (UInt32(halfExponent) << 10) | (mantissa >> 13)
        let remainder = mantissa & 0x1FFF
        if remainder > 0x1000 || (remainder == 0x1000 && (h & 1) == 1) { h += 1 }  // may carry to ∞
        return sign | UInt16(truncatingIfNeeded: h)
    }

    /// binary16 bit pattern → binary32 (exact; a NaN keeps its payload at the top of the binary32
    /// mantissa and comes out quiet).
    public static func floatFromHalfBits(_ h: UInt16) -> Float {
        let sign = UInt32(h & 0x8000) << 16
        let exponent = UInt32((h >> 10) & 0x1F)
        let mantissa = UInt32(h & 0x3FF)
        if exponent == 0 {
            let magnitude = Float(mantissa) * 0x1p-24  // exact: mantissa < 2¹⁰
            return Float(bitPattern: sign | magnitude.bitPattern)
        }
        if exponent == 31 {
            if mantissa == 0 { return Float(bitPattern: sign | 0x7F80_0000) }
            return Float(bitPattern: sign | 0x7FC0_0000 | (mantissa << 13))  // NaN: quieted, as vcvtph2ps does
        }
        return Float(bitPattern: sign | ((exponent + 112) << 23) | (mantissa << 13))
    }

    /// Twin of `Quantize.halfFromFloat`.
    public static func halfFromFloat(output: UnsafeMutablePointer<UInt16>, input: UnsafePointer<Float>, count: Int) {
        for i in 0..<max(count, 0) { output[i] = halfBits(input[i]) }
    }

    /// Twin of `Quantize.floatFromHalf`.
    public static func floatFromHalf(output: UnsafeMutablePointer<Float>, input: UnsafePointer<UInt16>, count: Int) {
        for i in 0..<max(count, 0) { output[i] = floatFromHalfBits(input[i]) }
    }

    // MARK: - Packing

    /// Twin of `Quantize.packNibbles`: byte j = (levels[2j] + 8) | (levels[2j+1] + 8) << 4; an odd
    /// tail leaves the last high nibble 0. Levels must lie in −7…7.
    public static func packNibbles(output: UnsafeMutablePointer<UInt8>, levels: UnsafePointer<Int8>, count: Int) {
        for j in 0..<((max(count, 0) + 1) / 2) {
            let low = UInt8(Int(levels[2 * j]) + 8)
            let high: UInt8 = 2 * j + 1 < count ? UInt8(Int(levels[2 * j + 1]) + 8) : 0
            output[j] = low | (high << 4)
        }
    }

    /// Twin of `Quantize.unpackNibbles`. Returns false if any used nibble is 0 (invalid).
    public static func unpackNibbles(output: UnsafeMutablePointer<Int8>, input: UnsafePointer<UInt8>, count: Int) -> Bool {
        var valid = true
        for i in 0..<max(count, 0) {
            let byte = input[i / 2]
            let nibble = i % 2 == 0 ? byte & 0x0F : byte >> 4
            if nibble == 0 { valid = false }
            output[i] = Int8(Int(nibble) - 8)
        }
        return valid
    }

    /// Twin of `Quantize.packBits`, one bit at a time: bit k of index i goes to stream bit i·b + k,
    /// stream bit t = bit t mod 8 of byte t / 8. Writes exactly ⌈count·b/8⌉ bytes.
    public static func packBits(output: UnsafeMutablePointer<UInt8>, indices: UnsafePointer<UInt8>,
                                count: Int, bitWidth b: Int) {
        let byteCount = (max(count, 0) * b + 7) / 8
        for j in 0..<byteCount { output[j] = 0 }
        for i in 0..<max(count, 0) {
            for k in 0..<b where (indices[i] >> UInt8(k)) & 1 == 1 {
                let t = i * b + k
                output[t / 8] |= 1 << UInt8(t % 8)
            }
        }
    }

    /// Twin of `Quantize.unpackBits`.
    public static func unpackBits(output: UnsafeMutablePointer<UInt8>, input: UnsafePointer<UInt8>,
                                  count: Int, bitWidth b: Int) {
        for i in 0..<max(count, 0) {
            var v: UInt8 = 0
            for k in 0..<b {
                let t = i * b + k
                if (input[t / 8] >> UInt8(t % 8)) & 1 == 1 { v |= 1 << UInt8(k) }
            }
            output[i] = v
        }
    }

    /// Twin of `Quantize.packBitPlanes`: b planes of ⌈count/8⌉ bytes; bit p of index i is bit i mod 8
    /// of byte i/8 of plane p.
    public static func packBitPlanes(output: UnsafeMutablePointer<UInt8>, indices: UnsafePointer<UInt8>,
                                     count: Int, bitWidth b: Int) {
        let planeBytes = (max(count, 0) + 7) / 8
        for j in 0..<(planeBytes * b) { output[j] = 0 }
        for i in 0..<max(count, 0) {
            for p in 0..<b where (indices[i] >> UInt8(p)) & 1 == 1 {
                output[p * planeBytes + i / 8] |= 1 << UInt8(i % 8)
            }
        }
    }

    /// Twin of `Quantize.unpackBitPlanes`.
    public static func unpackBitPlanes(output: UnsafeMutablePointer<UInt8>, input: UnsafePointer<UInt8>,
                                       count: Int, bitWidth b: Int) {
        let planeBytes = (max(count, 0) + 7) / 8
        for i in 0..<max(count, 0) {
            var v: UInt8 = 0
            for p in 0..<b where (input[p * planeBytes + i / 8] >> UInt8(i % 8)) & 1 == 1 { v |= 1 << UInt8(p) }
            output[i] = v
        }
    }
}
