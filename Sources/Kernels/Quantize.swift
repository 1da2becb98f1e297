// Quantize.swift: the memory bank's codec kernels (docs/format/membank-v1.md §7): float → clamped
// integer levels, levels → float, float32 ↔ binary16, and the byte/bit packings of q4 and `levels`.
// Every kernel matches its scalar twin in Quantize+Reference.swift bit for bit (the twins are the
// normative definition; Tests/KernelsTests/QuantizeTests.swift checks equality). No file formats,
// checksums or compression here: those live in MemoryBank.

/// Quantisation and bit-packing kernels over contiguous buffers. Single-threaded: a record is a few
/// thousand values, far below what a dispatch to the other core pays for (Elementwise.parallelThreshold).
public enum Quantize {
    // MARK: - Levels

    /// Quantises `count` floats to clamped integer levels and returns how many were clamped (or NaN):
    /// ```
    /// q = roundToNearestEven(input[i] / scale),  NaN → 0,  clamped to [−limit, limit]
    /// ```
    /// - Parameters:
    ///   - scale: the quantisation step (e.g. ε/127 for q8), finite and > 0.
    ///   - limit: the largest level, 1…127 (127 for q8 and `levels`, 7 for q4).
    /// - Complexity: one division, two additions and a few compares per value, 8 lanes at a time
    ///   (≈ 5 µs per 3,072 values on Zen1).
    public static func levels(output: UnsafeMutablePointer<Int8>, input: UnsafePointer<Float>,
                              count: Int, scale: Float, limit: Int8) -> Int {
        let l = Float(limit)
        let step = FloatVector(repeating: scale)
        let upper = FloatVector(repeating: l)
        let lower = FloatVector(repeating: -l)
        let zero = FloatVector(repeating: 0)
        let one = SIMD8<Int32>(repeating: 1)
        // Rounding by the magic number 1.5·2²³: (r + M) − M is r rounded to nearest even for |r| ≤ 2²²
        // (the sum's ulp is 1). Larger |r| come out still larger than any limit, so after clamping the
        // result equals the reference's on every input. SIMD `rounded(_:)` and float → int SIMD
        // conversions are scalarised by the compiler (17× slower, measured); this stays in vector
        // registers. The clamped q + M then holds q in its low mantissa bits: bits − bits(M) = q.
        let magic = FloatVector(repeating: 0x1.8p23)
        let magicBits = SIMD8<Int32>(repeating: 0x4B40_0000)
        var clampedLanes = SIMD8<Int32>(repeating: 0)
        let vectorCount = max(count, 0) / FloatVector.scalarCount
        for v in 0..<vectorCount {
            let i = v * FloatVector.scalarCount
            let r = loadVector(input + i) / step
            var q = (r + magic) - magic
            let isNaN = q .!= q
            let outside = (q .> upper) .| (q .< lower) .| isNaN
            clampedLanes.replace(with: clampedLanes &+ one, where: outside)
            q.replace(with: zero, where: isNaN)
            q = pointwiseMin(pointwiseMax(q, lower), upper)
            let integers = unsafeBitCast(q + magic, to: SIMD8<Int32>.self) &- magicBits
            UnsafeMutableRawPointer(output + i).storeBytes(of: SIMD8<Int8>(truncatingIfNeeded: integers), as: SIMD8<Int8>.self)
        }
        var clamped = Int(clampedLanes.wrappedSum())
        for i in (vectorCount * FloatVector.scalarCount)..<max(count, 0) {
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

    /// `output[i] = Float(levels[i]) · scale` (exact conversion, one rounding in the product).
    public static func dequantize(output: UnsafeMutablePointer<Float>, levels: UnsafePointer<Int8>,
                                  count: Int, scale: Float) {
        let step = FloatVector(repeating: scale)
        let vectorCount = max(count, 0) / FloatVector.scalarCount
        for v in 0..<vectorCount {
            let i = v * FloatVector.scalarCount
            let q = UnsafeRawPointer(levels + i).loadUnaligned(as: SIMD8<Int8>.self)
            storeVector(FloatVector(SIMD8<Int32>(truncatingIfNeeded: q)) * step, output + i)
        }
        for i in (vectorCount * FloatVector.scalarCount)..<max(count, 0) { output[i] = Float(levels[i]) * scale }
    }

    /// `output[i] = values[indices[i]]` for a palette already scaled to floats (the `levels` decoder:
    /// `values[j] = Float(palette[j]) · scale`, so the result equals `dequantize` bit for bit).
    /// - Returns: false if some index is ≥ `valueCount` (those outputs are set to 0).
    public static func lookup(output: UnsafeMutablePointer<Float>, indices: UnsafePointer<UInt8>, count: Int,
                              values: UnsafePointer<Float>, valueCount: Int) -> Bool {
        var valid = true
        for i in 0..<max(count, 0) {
            let j = Int(indices[i])
            if j < valueCount {
                output[i] = values[j]
            } else {
                output[i] = 0
                valid = false
            }
        }
        return valid
    }

    /// `max_i |input[i]|`, 0 for an empty buffer. Inputs must be finite (check with `allFinite`).
    /// Four accumulators hide the latency of the max; max is exact, so the order does not matter.
    public static func maxAbs(_ input: UnsafePointer<Float>, count: Int) -> Float {
        var m0 = FloatVector(repeating: 0), m1 = m0, m2 = m0, m3 = m0
        let width = FloatVector.scalarCount
        let blockCount = max(count, 0) / (4 * width)
        @inline(__always) func magnitude(_ p: UnsafePointer<Float>) -> FloatVector {
            let v = loadVector(p)
            return pointwiseMax(v, -v)
        }
        for b in 0..<blockCount {
            let p = input + b * 4 * width
            m0 = pointwiseMax(m0, magnitude(p))
            m1 = pointwiseMax(m1, magnitude(p + width))
            m2 = pointwiseMax(m2, magnitude(p + 2 * width))
            m3 = pointwiseMax(m3, magnitude(p + 3 * width))
        }
        var m = pointwiseMax(pointwiseMax(m0, m1), pointwiseMax(m2, m3)).max()
        for i in (blockCount * 4 * width)..<max(count, 0) where abs(input[i]) > m { m = abs(input[i]) }
        return m + 0  // pointwiseMax may keep a −0 lane; + 0 turns −0 into +0 like the reference
    }

    /// True when no value is NaN or ±∞ (`x · 0` is 0 for finite x and NaN otherwise; NaN sticks).
    public static func allFinite(_ input: UnsafePointer<Float>, count: Int) -> Bool {
        var acc = FloatVector(repeating: 0)
        let vectorCount = max(count, 0) / FloatVector.scalarCount
        for v in 0..<vectorCount {
            acc += loadVector(input + v * FloatVector.scalarCount) * FloatVector(repeating: 0)
        }
        var tail: Float = acc.sum()
        for i in (vectorCount * FloatVector.scalarCount)..<max(count, 0) { tail += input[i] * 0 }
        return tail == 0
    }

    // MARK: - binary16

    /// binary32 → binary16 bit patterns, round to nearest even (`Reference.halfBits` is normative).
    public static func halfFromFloat(output: UnsafeMutablePointer<UInt16>, input: UnsafePointer<Float>, count: Int) {
        #if (os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64)
        Reference.halfFromFloat(output: output, input: input, count: count)  // no Float16 on Intel macOS
        #else
        let vectorCount = max(count, 0) / FloatVector.scalarCount
        for v in 0..<vectorCount {
            let i = v * FloatVector.scalarCount
            let h = SIMD8<Float16>(loadVector(input + i))  // vcvtps2ph with a target CPU set
            UnsafeMutableRawPointer(output + i).storeBytes(of: h, as: SIMD8<Float16>.self)
        }
        for i in (vectorCount * FloatVector.scalarCount)..<max(count, 0) { output[i] = Float16(input[i]).bitPattern }
        #endif
    }

    /// binary16 bit patterns → binary32 (exact).
    public static func floatFromHalf(output: UnsafeMutablePointer<Float>, input: UnsafePointer<UInt16>, count: Int) {
        #if (os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64)
        Reference.floatFromHalf(output: output, input: input, count: count)
        #else
        let vectorCount = max(count, 0) / FloatVector.scalarCount
        for v in 0..<vectorCount {
            let i = v * FloatVector.scalarCount
            let h = UnsafeRawPointer(input + i).loadUnaligned(as: SIMD8<Float16>.self)
            storeVector(FloatVector(h), output + i)
        }
        for i in (vectorCount * FloatVector.scalarCount)..<max(count, 0) {
            output[i] = Float(Float16(bitPattern: input[i]))
        }
        #endif
    }

    // MARK: - Nibbles (q4)

    /// Two levels per byte: byte j = (levels[2j] + 8) | (levels[2j+1] + 8) << 4; for odd `count` the
    /// last high nibble is 0. Writes ⌈count/2⌉ bytes. Levels must lie in −7…7.
    public static func packNibbles(output: UnsafeMutablePointer<UInt8>, levels: UnsafePointer<Int8>, count: Int) {
        let pairs = max(count, 0) / 2
        for j in 0..<pairs {
            let low = UInt8(bitPattern: levels[2 * j] &+ 8)
            let high = UInt8(bitPattern: levels[2 * j + 1] &+ 8)
            output[j] = low | (high << 4)
        }
        if count % 2 == 1 { output[pairs] = UInt8(bitPattern: levels[count - 1] &+ 8) }
    }

    /// Inverse of `packNibbles`. Returns false if a used nibble is 0 (not a valid q4 value).
    public static func unpackNibbles(output: UnsafeMutablePointer<Int8>, input: UnsafePointer<UInt8>, count: Int) -> Bool {
        var anyZero = false
        let pairs = max(count, 0) / 2
        for j in 0..<pairs {
            let byte = input[j]
            let low = byte & 0x0F, high = byte >> 4
            anyZero = anyZero || low == 0 || high == 0
            output[2 * j] = Int8(bitPattern: low) &- 8
            output[2 * j + 1] = Int8(bitPattern: high) &- 8
        }
        if count % 2 == 1 {
            let low = input[pairs] & 0x0F
            anyZero = anyZero || low == 0
            output[count - 1] = Int8(bitPattern: low) &- 8
        }
        return !anyZero
    }

    // MARK: - Bit packing (`levels`)

    /// Packs `count` indices of `bitWidth` bits (0…8) LSB-first into ⌈count·b/8⌉ bytes: index i takes
    /// stream bits [i·b, i·b + b), stream bit t = bit t mod 8 of byte t/8. Indices must be < 2^b.
    /// A 64-bit accumulator flushes 32 bits at a time.
    public static func packBits(output: UnsafeMutablePointer<UInt8>, indices: UnsafePointer<UInt8>,
                                count: Int, bitWidth: Int) {
        guard bitWidth > 0 else { return }
        var accumulator: UInt64 = 0
        var bits = 0
        var o = 0
        for i in 0..<max(count, 0) {
            accumulator |= UInt64(indices[i]) << UInt64(bits)
            bits += bitWidth
            if bits >= 32 {
                UnsafeMutableRawPointer(output + o).storeBytes(of: UInt32(truncatingIfNeeded: accumulator).littleEndian,
                                                               as: UInt32.self)
                o += 4
                accumulator >>= 32
                bits -= 32
            }
        }
        while bits > 0 {
            output[o] = UInt8(truncatingIfNeeded: accumulator)
            o += 1
            accumulator >>= 8
            bits -= 8
        }
    }

    /// Inverse of `packBits`: reads ⌈count·b/8⌉ bytes. `bitWidth` 0 yields all-zero indices.
    public static func unpackBits(output: UnsafeMutablePointer<UInt8>, input: UnsafePointer<UInt8>,
                                  count: Int, bitWidth: Int) {
        guard bitWidth > 0 else {
            for i in 0..<max(count, 0) { output[i] = 0 }
            return
        }
        let byteCount = (max(count, 0) * bitWidth + 7) / 8
        let mask = (UInt64(1) << UInt64(bitWidth)) - 1
        var accumulator: UInt64 = 0
        var bits = 0
        var position = 0
        for i in 0..<max(count, 0) {
            if bits < bitWidth {
                if position + 4 <= byteCount {
                    let word = UnsafeRawPointer(input + position).loadUnaligned(as: UInt32.self)
                    accumulator |= UInt64(UInt32(littleEndian: word)) << UInt64(bits)
                    bits += 32
                    position += 4
                } else {
                    while bits < bitWidth && position < byteCount {
                        accumulator |= UInt64(input[position]) << UInt64(bits)
                        bits += 8
                        position += 1
                    }
                }
            }
            output[i] = UInt8(truncatingIfNeeded: accumulator & mask)
            accumulator >>= UInt64(bitWidth)
            bits -= bitWidth
        }
    }

    /// Bit shuffle: `bitWidth` planes of ⌈count/8⌉ bytes; bit p of index i is bit i mod 8 of byte i/8
    /// of plane p. Eight indices at a time: their bit p is gathered into one byte by a multiply
    /// (`(x >> p) & 0x01…01` times `0x0102040810204080` moves byte j's bit to bit 56 + j, no carries).
    public static func packBitPlanes(output: UnsafeMutablePointer<UInt8>, indices: UnsafePointer<UInt8>,
                                     count: Int, bitWidth: Int) {
        let n = max(count, 0)
        let planeBytes = (n + 7) / 8
        let fullGroups = n / 8
        for g in 0..<planeBytes {
            var word: UInt64 = 0
            if g < fullGroups {
                word = UInt64(littleEndian: UnsafeRawPointer(indices + 8 * g).loadUnaligned(as: UInt64.self))
            } else {
                for j in 0..<(n - 8 * g) { word |= UInt64(indices[8 * g + j]) << UInt64(8 * j) }
            }
            for p in 0..<bitWidth {
                let lsbs = (word >> UInt64(p)) & 0x0101_0101_0101_0101
                output[p * planeBytes + g] = UInt8(truncatingIfNeeded: (lsbs &* 0x0102_0408_1020_4080) >> 56)
            }
        }
    }

    /// Inverse of `packBitPlanes`, eight indices at a time through a 256-entry spread table.
    public static func unpackBitPlanes(output: UnsafeMutablePointer<UInt8>, input: UnsafePointer<UInt8>,
                                       count: Int, bitWidth: Int) {
        let n = max(count, 0)
        let planeBytes = (n + 7) / 8
        let fullGroups = n / 8
        spreadTable.withUnsafeBufferPointer { spread in
            for g in 0..<planeBytes {
                var word: UInt64 = 0
                for p in 0..<bitWidth { word |= spread[Int(input[p * planeBytes + g])] << UInt64(p) }
                if g < fullGroups {
                    UnsafeMutableRawPointer(output + 8 * g).storeBytes(of: word.littleEndian, as: UInt64.self)
                } else {
                    for j in 0..<(n - 8 * g) { output[8 * g + j] = UInt8(truncatingIfNeeded: word >> UInt64(8 * j)) }
                }
            }
        }
    }

    /// spreadTable[x]: byte j = bit j of x (0 or 1).
    static let spreadTable: [UInt64] = (0..<256).map { x in
        var word: UInt64 = 0
        for j in 0..<8 where (x >> j) & 1 == 1 { word |= UInt64(1) << UInt64(8 * j) }
        return word
    }

    // MARK: - Palette helpers (`levels`)

    /// counts[q + 128] += 1 for every level q (counts has 256 entries, not cleared here).
    public static func histogram(counts: UnsafeMutablePointer<Int32>, levels: UnsafePointer<Int8>, count: Int) {
        for i in 0..<max(count, 0) { counts[Int(levels[i]) + 128] += 1 }
    }

    /// output[i] = table[levels[i] + 128]: levels → palette indices (table has 256 entries).
    public static func mapLevels(output: UnsafeMutablePointer<UInt8>, levels: UnsafePointer<Int8>, count: Int,
                                 table: UnsafePointer<UInt8>) {
        for i in 0..<max(count, 0) { output[i] = table[Int(levels[i]) + 128] }
    }
}
