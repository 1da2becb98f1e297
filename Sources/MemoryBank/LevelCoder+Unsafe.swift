// LevelCoder+Unsafe.swift: the entropy stage of the `q8rc` codec (docs/format/membank-v1.md §7.5): an
// adaptive binary range coder (12-bit probabilities, 32-bit range, carry through a pending byte) and
// the context model that turns the q8 levels of one [C, H, W] perturbation into binary decisions
// (saturated?, sign, then an 8-bit tree for the interior levels). Encoder and decoder walk the same
// model in the same order; every constant here is normative. Raw buffers in, raw buffers out: the
// record encoder and decoder own the memory.

/// Probability constants of the adaptive binary model (spec §7.5).
enum LevelModel {
    /// Probabilities are of the bit 0, in units of 2⁻¹² (`probabilityBits`).
    static let probabilityBits: UInt32 = 12
    static let probabilityOne: UInt16 = 1 << 12
    /// Every probability starts at 1/2.
    static let initialProbability: UInt16 = 1 << 11
    /// Adaptation: after a 0, `p += (4096 − p) >> 4`; after a 1, `p −= p >> 4` (p stays in 15…4081).
    static let adaptationShift: UInt16 = 4
    /// Below this the range is renormalised by one byte.
    static let renormalisationLimit: UInt32 = 1 << 24
    /// Neighbour classes: 0 interior, 1 the level +L, 2 the level −L, 3 outside the image.
    static let classCount = 4
    /// Contexts of the class decisions: (left, up, previous channel) neighbour classes.
    static let classContexts = classCount * classCount * classCount
    /// Nodes of the 8-bit tree of an interior level (node 1…255; index 0 unused). One tree for every
    /// context: conditioning it on the neighbours cost 50 B per CIFAR-shaped entry in the measurements
    /// (docs/membank.md), each context learning from too few interior values.
    static let treeNodes = 256
    /// Probabilities per record: saturated?[64], sign[64], tree[256].
    static let probabilityCount = 2 * classContexts + treeNodes
    /// Bytes of the coder's final flush beyond the decisions (pending byte + 4 bytes of `low`).
    static let flushBytes = 5
}

/// Binary range encoder writing into a caller's buffer of `capacity` bytes. Stops writing (and
/// reports `overflowed`) when the output would not fit: the writer then stores the levels directly.
struct RangeEncoder {
    private var low: UInt64 = 0
    private var range: UInt32 = 0xFFFF_FFFF
    private var cache: UInt8 = 0
    private var pending = 1
    private let output: UnsafeMutablePointer<UInt8>
    private let capacity: Int
    private(set) var count = 0
    private(set) var overflowed = false

    init(output: UnsafeMutablePointer<UInt8>, capacity: Int) {
        self.output = output
        self.capacity = capacity
    }

    @inline(__always)
    private mutating func emit(_ byte: UInt8) {
        if count < capacity { output[count] = byte } else { overflowed = true }
        count += 1
    }

    /// Moves the top byte of `low` out, resolving a carry into the pending bytes.
    @inline(__always)
    private mutating func shiftLow() {
        if low < 0xFF00_0000 || low >= 0x1_0000_0000 {
            let carry = UInt8(truncatingIfNeeded: low >> 32)
            var byte = cache
            repeat {
                emit(byte &+ carry)
                byte = 0xFF
                pending -= 1
            } while pending != 0
            cache = UInt8(truncatingIfNeeded: low >> 24)
        }
        pending += 1
        low = (low & 0x00FF_FFFF) << 8
    }

    @inline(__always)
    mutating func encode(_ bit: Int, probability p: inout UInt16) {
        let bound = (range >> LevelModel.probabilityBits) &* UInt32(p)
        if bit == 0 {
            range = bound
            p &+= (LevelModel.probabilityOne &- p) >> LevelModel.adaptationShift
        } else {
            low &+= UInt64(bound)
            range &-= bound
            p &-= p >> LevelModel.adaptationShift
        }
        while range < LevelModel.renormalisationLimit {
            range <<= 8
            shiftLow()
        }
    }

    /// As `encode(_:probability:)` with adaptation shift `shift` (q8rcn's warm-up, spec §7.6).
    @inline(__always)
    mutating func encode(_ bit: Int, probability p: inout UInt16, shift: UInt16) {
        let bound = (range >> LevelModel.probabilityBits) &* UInt32(p)
        if bit == 0 {
            range = bound
            p &+= (LevelModel.probabilityOne &- p) >> shift
        } else {
            low &+= UInt64(bound)
            range &-= bound
            p &-= p >> shift
        }
        while range < LevelModel.renormalisationLimit {
            range <<= 8
            shiftLow()
        }
    }

    /// Writes the last bytes; afterwards `count` is the stream length.
    mutating func finish() {
        for _ in 0..<LevelModel.flushBytes { shiftLow() }
    }
}

/// Binary range decoder over `count` bytes. Reading past the end yields 0 bytes and sets `overrun`
/// (the caller reports the stream as corrupt); it never reads outside the buffer.
struct RangeDecoder {
    private var code: UInt32 = 0
    private var range: UInt32 = 0xFFFF_FFFF
    private let input: UnsafePointer<UInt8>
    private let count: Int
    private(set) var position = 0
    private(set) var overrun = false

    /// Reads the 5-byte preamble: a zero byte (the encoder's initial pending byte), then `code`.
    init(input: UnsafePointer<UInt8>, count: Int) {
        self.input = input
        self.count = count
        let first = next()
        if first != 0 { overrun = true }
        for _ in 0..<4 { code = (code << 8) | UInt32(next()) }
    }

    @inline(__always)
    private mutating func next() -> UInt8 {
        if position < count {
            let b = input[position]
            position += 1
            return b
        }
        overrun = true
        position += 1
        return 0
    }

    @inline(__always)
    mutating func decode(probability p: inout UInt16) -> Int {
        let bound = (range >> LevelModel.probabilityBits) &* UInt32(p)
        let bit: Int
        if code < bound {
            range = bound
            p &+= (LevelModel.probabilityOne &- p) >> LevelModel.adaptationShift
            bit = 0
        } else {
            code &-= bound
            range &-= bound
            p &-= p >> LevelModel.adaptationShift
            bit = 1
        }
        while range < LevelModel.renormalisationLimit {
            range <<= 8
            code = (code << 8) | UInt32(next())
        }
        return bit
    }
}

extension RangeDecoder {
    /// As `decode(probability:)` with adaptation shift `shift` (q8rcn's warm-up, spec §7.6).
    @inline(__always)
    mutating func decode(probability p: inout UInt16, shift: UInt16) -> Int {
        let saved = p
        let bit = decode(probability: &p)
        p = bit == 0 ? saved &+ ((LevelModel.probabilityOne &- saved) >> shift) : saved &- (saved >> shift)
        return bit
    }
}

/// The context model of spec §7.5 over the levels of one [C, H, W] perturbation.
enum LevelCoder {
    /// The neighbour class of a level (0 interior, 1 = +limit, 2 = −limit).
    @inline(__always)
    static func levelClass(_ q: Int8, limit: Int8) -> Int {
        q == limit ? 1 : (q == -limit ? 2 : 0)
    }

    /// Encodes `levels` (C·H·W values in −limit…limit) into `output`. Returns the stream length, or
    /// nil when it would exceed `capacity`.
    static func encode(levels: UnsafePointer<Int8>, shape: (c: Int, h: Int, w: Int), limit: Int8,
                       classes: UnsafeMutablePointer<UInt8>, probabilities: UnsafeMutablePointer<UInt16>,
                       output: UnsafeMutablePointer<UInt8>, capacity: Int) -> Int? {
        probabilities.update(repeating: LevelModel.initialProbability, count: LevelModel.probabilityCount)
        var coder = RangeEncoder(output: output, capacity: capacity)
        let plane = shape.h * shape.w
        let saturated = probabilities, sign = probabilities + LevelModel.classContexts
        let trees = probabilities + 2 * LevelModel.classContexts
        let offset = Int(limit)  // interior level q is coded as the 8-bit number q + limit
        var i = 0
        for c in 0..<shape.c {
            for y in 0..<shape.h {
                for x in 0..<shape.w {
                    let left = x > 0 ? Int(classes[i - 1]) : 3
                    let up = y > 0 ? Int(classes[i - shape.w]) : 3
                    let previous = c > 0 ? Int(classes[i - plane]) : 3
                    let context = (left * 4 + up) * 4 + previous
                    let q = levels[i]
                    let k = levelClass(q, limit: limit)
                    classes[i] = UInt8(k)
                    coder.encode(k == 0 ? 0 : 1, probability: &saturated[context])
                    if k != 0 {
                        coder.encode(k == 2 ? 1 : 0, probability: &sign[context])
                    } else {
                        let u = Int(q) + offset
                        var node = 1
                        for b in stride(from: 7, through: 0, by: -1) {
                            let bit = (u >> b) & 1
                            coder.encode(bit, probability: &trees[node])
                            node = node * 2 + bit
                        }
                    }
                    i += 1
                }
            }
            if coder.overflowed { return nil }
        }
        coder.finish()
        return coder.overflowed ? nil : coder.count
    }

    /// Decodes `count` stream bytes into `levels`. Returns false when the stream is malformed: an
    /// interior level outside −(limit−1)…limit−1, a read past the end, or bytes left over.
    static func decode(input: UnsafePointer<UInt8>, count: Int, shape: (c: Int, h: Int, w: Int), limit: Int8,
                       classes: UnsafeMutablePointer<UInt8>, probabilities: UnsafeMutablePointer<UInt16>,
                       levels: UnsafeMutablePointer<Int8>) -> Bool {
        probabilities.update(repeating: LevelModel.initialProbability, count: LevelModel.probabilityCount)
        var coder = RangeDecoder(input: input, count: count)
        let plane = shape.h * shape.w
        let saturated = probabilities, sign = probabilities + LevelModel.classContexts
        let trees = probabilities + 2 * LevelModel.classContexts
        let offset = Int(limit)
        var i = 0
        for c in 0..<shape.c {
            for y in 0..<shape.h {
                for x in 0..<shape.w {
                    let left = x > 0 ? Int(classes[i - 1]) : 3
                    let up = y > 0 ? Int(classes[i - shape.w]) : 3
                    let previous = c > 0 ? Int(classes[i - plane]) : 3
                    let context = (left * 4 + up) * 4 + previous
                    if coder.decode(probability: &saturated[context]) != 0 {
                        let negative = coder.decode(probability: &sign[context]) != 0
                        levels[i] = negative ? -limit : limit
                        classes[i] = negative ? 2 : 1
                    } else {
                        var node = 1
                        for _ in 0..<8 { node = node * 2 + coder.decode(probability: &trees[node]) }
                        let q = node - 256 - offset
                        if q <= -Int(limit) || q >= Int(limit) { return false }
                        levels[i] = Int8(q)
                        classes[i] = 0
                    }
                    i += 1
                }
            }
            if coder.overrun { return false }
        }
        return !coder.overrun && coder.position == count
    }
}

// MARK: - q8rcn: the levels relative to the regenerated start noise (spec §7.6)

/// Constants of the `q8rcn` model (spec §7.6) beyond q8rc's.
enum NoiseLevelModel {
    /// Modes of a neighbour for the flag context: 0 saturated, 1 interior coded absolute, 2 interior
    /// coded relative to the noise, 3 outside the image.
    static let modeCount = 4
    /// Flag contexts: (left, up) neighbour modes.
    static let flagContexts = modeCount * modeCount
    /// Probabilities per record: saturated?[64], sign[64], relative?[16], absolute tree[256],
    /// relative trees[2 × 256] (one per half h).
    static let probabilityCount = 2 * LevelModel.classContexts + flagContexts + 3 * LevelModel.treeNodes
}

extension LevelCoder {
    /// q8rcn's warm-up (spec §7.6): a model slot holds the probability in its low 12 bits and the
    /// number of bits it has coded, up to 3, in its top 4; the adaptation shift is that count + 1
    /// (1, 2, 3, then 4 for good), so a fresh probability learns from its first bits fast.
    @inline(__always)
    private static func encodeWarm(_ bit: Int, _ slot: UnsafeMutablePointer<UInt16>, _ coder: inout RangeEncoder) {
        var p = slot.pointee & 0x0FFF
        let seen = slot.pointee >> 12
        coder.encode(bit, probability: &p, shift: seen + 1)
        slot.pointee = p | (min(seen + 1, 3) << 12)
    }

    @inline(__always)
    private static func decodeWarm(_ slot: UnsafeMutablePointer<UInt16>, _ coder: inout RangeDecoder) -> Int {
        var p = slot.pointee & 0x0FFF
        let seen = slot.pointee >> 12
        let bit = coder.decode(probability: &p, shift: seen + 1)
        slot.pointee = p | (min(seen + 1, 3) << 12)
        return bit
    }

    @inline(__always)
    private static func encodeTree(_ u: Int, _ tree: UnsafeMutablePointer<UInt16>, _ coder: inout RangeEncoder) {
        var node = 1
        for b in stride(from: 7, through: 0, by: -1) {
            let bit = (u >> b) & 1
            encodeWarm(bit, tree + node, &coder)
            node = node * 2 + bit
        }
    }

    @inline(__always)
    private static func decodeTree(_ tree: UnsafeMutablePointer<UInt16>, _ coder: inout RangeDecoder) -> Int {
        var node = 1
        for _ in 0..<8 { node = node * 2 + decodeWarm(tree + node, &coder) }
        return node - 256
    }

    /// Encodes `levels` relative to the noise bases (spec §7.6): `bases[i]` = b mod 256 and
    /// `halves[i]` = h of element i. `modes` is scratch (n bytes). Returns the stream length, or nil
    /// when it would exceed `capacity`.
    static func encodeRelative(levels: UnsafePointer<Int8>, bases: UnsafePointer<UInt8>, halves: UnsafePointer<UInt8>,
                               shape: (c: Int, h: Int, w: Int), limit: Int8, classes: UnsafeMutablePointer<UInt8>,
                               modes: UnsafeMutablePointer<UInt8>, probabilities: UnsafeMutablePointer<UInt16>,
                               output: UnsafeMutablePointer<UInt8>, capacity: Int) -> Int? {
        probabilities.update(repeating: LevelModel.initialProbability, count: NoiseLevelModel.probabilityCount)
        var coder = RangeEncoder(output: output, capacity: capacity)
        let plane = shape.h * shape.w
        let saturated = probabilities, sign = probabilities + LevelModel.classContexts
        let flags = probabilities + 2 * LevelModel.classContexts
        let absolute = flags + NoiseLevelModel.flagContexts
        let relative = absolute + LevelModel.treeNodes
        let offset = Int(limit)
        // The encoder's choice of representation (not normative: the decoder reads the flag): an
        // interior value is coded relative to the noise when its relative value is more frequent in
        // this record (under its half h) than its absolute value. Noise-spread values concentrate
        // on a few relative values, values on the ε-anchored lattice on a few absolute ones.
        return withUnsafeTemporaryAllocation(of: Int32.self, capacity: 3 * 256) { counts -> Int? in
            counts.initialize(repeating: 0)
            let n = shape.c * plane
            for j in 0..<n where levelClass(levels[j], limit: limit) == 0 {
                let ua = Int(levels[j]) + offset
                counts[ua] += 1
                counts[256 * (1 + Int(halves[j])) + Int(UInt8(truncatingIfNeeded: ua &- Int(bases[j])))] += 1
            }
            var i = 0
            for c in 0..<shape.c {
                for y in 0..<shape.h {
                    for x in 0..<shape.w {
                        let left = x > 0 ? Int(classes[i - 1]) : 3
                        let up = y > 0 ? Int(classes[i - shape.w]) : 3
                        let previous = c > 0 ? Int(classes[i - plane]) : 3
                        let context = (left * 4 + up) * 4 + previous
                        let q = levels[i]
                        let k = levelClass(q, limit: limit)
                        classes[i] = UInt8(k)
                        encodeWarm(k == 0 ? 0 : 1, saturated + context, &coder)
                        if k != 0 {
                            encodeWarm(k == 2 ? 1 : 0, sign + context, &coder)
                            modes[i] = 0
                        } else {
                            let flagContext = (x > 0 ? Int(modes[i - 1]) : 3) * 4 + (y > 0 ? Int(modes[i - shape.w]) : 3)
                            let ua = Int(q) + offset
                            let ur = Int(UInt8(truncatingIfNeeded: ua &- Int(bases[i])))
                            let half = Int(halves[i])
                            if counts[256 * (1 + half) + ur] > counts[ua] {
                                encodeWarm(1, flags + flagContext, &coder)
                                encodeTree(ur, relative + half * LevelModel.treeNodes, &coder)
                                modes[i] = 2
                            } else {
                                encodeWarm(0, flags + flagContext, &coder)
                                encodeTree(ua, absolute, &coder)
                                modes[i] = 1
                            }
                        }
                        i += 1
                    }
                }
                if coder.overflowed { return nil }
            }
            coder.finish()
            return coder.overflowed ? nil : coder.count
        }
    }

    /// Decodes a `q8rcn` stream (spec §7.6) into `levels`. Returns false when it is malformed: a
    /// decoded interior level outside −(limit−1)…limit−1, a read past the end, or bytes left over.
    static func decodeRelative(input: UnsafePointer<UInt8>, count: Int, bases: UnsafePointer<UInt8>, halves: UnsafePointer<UInt8>,
                               shape: (c: Int, h: Int, w: Int), limit: Int8, classes: UnsafeMutablePointer<UInt8>,
                               modes: UnsafeMutablePointer<UInt8>, probabilities: UnsafeMutablePointer<UInt16>,
                               levels: UnsafeMutablePointer<Int8>) -> Bool {
        probabilities.update(repeating: LevelModel.initialProbability, count: NoiseLevelModel.probabilityCount)
        var coder = RangeDecoder(input: input, count: count)
        let plane = shape.h * shape.w
        let saturated = probabilities, sign = probabilities + LevelModel.classContexts
        let flags = probabilities + 2 * LevelModel.classContexts
        let absolute = flags + NoiseLevelModel.flagContexts
        let relative = absolute + LevelModel.treeNodes
        let offset = Int(limit)
        var i = 0
        for c in 0..<shape.c {
            for y in 0..<shape.h {
                for x in 0..<shape.w {
                    let left = x > 0 ? Int(classes[i - 1]) : 3
                    let up = y > 0 ? Int(classes[i - shape.w]) : 3
                    let previous = c > 0 ? Int(classes[i - plane]) : 3
                    let context = (left * 4 + up) * 4 + previous
                    if decodeWarm(saturated + context, &coder) != 0 {
                        let negative = decodeWarm(sign + context, &coder) != 0
                        levels[i] = negative ? -limit : limit
                        classes[i] = negative ? 2 : 1
                        modes[i] = 0
                    } else {
                        let flagContext = (x > 0 ? Int(modes[i - 1]) : 3) * 4 + (y > 0 ? Int(modes[i - shape.w]) : 3)
                        let u: Int
                        if decodeWarm(flags + flagContext, &coder) != 0 {
                            let ur = decodeTree(relative + Int(halves[i]) * LevelModel.treeNodes, &coder)
                            u = Int(UInt8(truncatingIfNeeded: ur &+ Int(bases[i])))
                            modes[i] = 2
                        } else {
                            u = decodeTree(absolute, &coder)
                            modes[i] = 1
                        }
                        let q = u - offset
                        if q <= -Int(limit) || q >= Int(limit) { return false }
                        levels[i] = Int8(q)
                        classes[i] = 0
                    }
                    i += 1
                }
            }
            if coder.overrun { return false }
        }
        return !coder.overrun && coder.position == count
    }

    /// The noise base and half of every element (spec §7.6): η = σ·z, t = η / scale (binary32),
    /// f = floor(t); b = f clamped to −128…128, stored mod 256; h = 1 when t ≥ f + 0.5. A NaN t
    /// (scale 0) gives b = 0, h = 0.
    static func noiseBases(unit z: UnsafePointer<Float>, count n: Int, sigma: Float, scale: Float,
                           bases: UnsafeMutablePointer<UInt8>, halves: UnsafeMutablePointer<UInt8>) {
        for i in 0..<n {
            let t = (sigma * z[i]) / scale
            guard !t.isNaN else { bases[i] = 0; halves[i] = 0; continue }
            let f = min(max(t.rounded(.down), -128), 128)
            bases[i] = UInt8(truncatingIfNeeded: Int(f))
            halves[i] = t >= f + 0.5 ? 1 : 0
        }
    }
}
