// LevelCoder+Unsafe.swift: the entropy stage of the `q8rc` and `q8rcn` codecs (docs/format/membank-v1.md
// §7.5, §7.6): an adaptive binary range coder (12-bit probabilities, 32-bit range, carry through a
// pending byte) and the context model that turns the q8 levels of one [C, H, W] perturbation into
// binary decisions (saturated?, sign, then an 8-bit tree for the interior levels; q8rcn adds a flag
// and trees relative to the regenerated noise). One element walk, one class coder and one tree coder
// serve both codecs, specialised per slot adaptation (fixed shift or warm-up). Encoder and decoder
// walk the same model in the same order; every constant here is normative. Raw buffers in, raw
// buffers out: the record encoder and decoder own the memory.

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

    /// Codes `bit` with probability `p` (of a 0, units of 2⁻¹²) and adapts `p` by `shift`:
    /// `p += (4096 − p) >> shift` after a 0, `p −= p >> shift` after a 1 (spec §7.5; q8rcn's warm-up
    /// passes 1…4, §7.6). Every caller passes a constant or a slot's count: inlined, no branch on it.
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

    /// As `encode(_:probability:shift:)` with q8rc's fixed shift (`LevelModel.adaptationShift`).
    @inline(__always)
    mutating func encode(_ bit: Int, probability p: inout UInt16) {
        encode(bit, probability: &p, shift: LevelModel.adaptationShift)
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

    /// Decodes a bit with probability `p` and adapts `p` by `shift` exactly as the encoder does.
    @inline(__always)
    mutating func decode(probability p: inout UInt16, shift: UInt16) -> Int {
        let bound = (range >> LevelModel.probabilityBits) &* UInt32(p)
        let bit: Int
        if code < bound {
            range = bound
            p &+= (LevelModel.probabilityOne &- p) >> shift
            bit = 0
        } else {
            code &-= bound
            range &-= bound
            p &-= p >> shift
            bit = 1
        }
        while range < LevelModel.renormalisationLimit {
            range <<= 8
            code = (code << 8) | UInt32(next())
        }
        return bit
    }

    /// As `decode(probability:shift:)` with q8rc's fixed shift (`LevelModel.adaptationShift`).
    @inline(__always)
    mutating func decode(probability p: inout UInt16) -> Int {
        decode(probability: &p, shift: LevelModel.adaptationShift)
    }
}

// MARK: - Slot adaptation: q8rc's fixed shift, q8rcn's warm-up

/// How a model slot codes a bit and adapts: q8rc's fixed shift (spec §7.5) or q8rcn's warm-up
/// (§7.6). Only static requirements, and every generic caller below names the concrete type at the
/// call site (`FixedAdaptation.self`, `WarmAdaptation.self`) and is `@_transparent` (mandatory
/// inlining), so the per-bit code is specialised and inlined: no witness-table call, no call at all,
/// in the inner loop. (`@inline(__always)` on the walk and the tree coders was only a hint: in the -O
/// assembly of Swift 6.3 the tree coders stayed out of line inside the element closure, one call per
/// element; with `@_transparent` the four codec functions call nothing per element, as before.)
protocol SlotAdaptation {
    static func encode(_ bit: Int, _ slot: UnsafeMutablePointer<UInt16>, _ coder: inout RangeEncoder)
    static func decode(_ slot: UnsafeMutablePointer<UInt16>, _ coder: inout RangeDecoder) -> Int
}

/// q8rc (spec §7.5): a slot is a probability, adapted with shift 4.
enum FixedAdaptation: SlotAdaptation {
    @inline(__always)
    static func encode(_ bit: Int, _ slot: UnsafeMutablePointer<UInt16>, _ coder: inout RangeEncoder) {
        coder.encode(bit, probability: &slot.pointee)
    }

    @inline(__always)
    static func decode(_ slot: UnsafeMutablePointer<UInt16>, _ coder: inout RangeDecoder) -> Int {
        coder.decode(probability: &slot.pointee)
    }
}

/// q8rcn's warm-up (spec §7.6): a slot holds the probability in its low 12 bits and the number of
/// bits it has coded, up to 3, in its top 4; the adaptation shift is that count + 1 (1, 2, 3, then 4
/// for good), so a fresh probability learns from its first bits fast.
enum WarmAdaptation: SlotAdaptation {
    @inline(__always)
    static func encode(_ bit: Int, _ slot: UnsafeMutablePointer<UInt16>, _ coder: inout RangeEncoder) {
        var p = slot.pointee & 0x0FFF
        let seen = slot.pointee >> 12
        coder.encode(bit, probability: &p, shift: seen + 1)
        slot.pointee = p | (min(seen + 1, 3) << 12)
    }

    @inline(__always)
    static func decode(_ slot: UnsafeMutablePointer<UInt16>, _ coder: inout RangeDecoder) -> Int {
        var p = slot.pointee & 0x0FFF
        let seen = slot.pointee >> 12
        let bit = coder.decode(probability: &p, shift: seen + 1)
        slot.pointee = p | (min(seen + 1, 3) << 12)
        return bit
    }
}

// MARK: - The decisions shared by q8rc and q8rcn (spec §7.5 steps 1–3)

/// The context model of spec §7.5 over the levels of one [C, H, W] perturbation, and the pieces of it
/// that §7.6 (q8rcn) reuses: the element walk with its class context, the class decisions, the tree.
enum LevelCoder {
    /// The neighbour class of a level (0 interior, 1 = +limit, 2 = −limit).
    @inline(__always)
    static func levelClass(_ q: Int8, limit: Int8) -> Int {
        q == limit ? 1 : (q == -limit ? 2 : 0)
    }

    /// Visits the elements in spec order (channel, row, column) with the class context
    /// `ctx = (kL·4 + kU)·4 + kC` of their left, upper and previous-channel neighbours (3 outside),
    /// read from `classes`, which `element` must fill for element i before returning.
    /// `element(i, x, y, ctx)` returns false to stop (a malformed stream); `channelEnd()` runs after
    /// each channel and returns false to stop (the coder overflowed or overran).
    /// - Returns: true when every element was visited.
    @_transparent
    static func walk(shape: (c: Int, h: Int, w: Int), classes: UnsafeMutablePointer<UInt8>,
                     element: (_ i: Int, _ x: Int, _ y: Int, _ context: Int) -> Bool, channelEnd: () -> Bool) -> Bool {
        let plane = shape.h * shape.w
        var i = 0
        for c in 0..<shape.c {
            for y in 0..<shape.h {
                for x in 0..<shape.w {
                    let left = x > 0 ? Int(classes[i - 1]) : 3
                    let up = y > 0 ? Int(classes[i - shape.w]) : 3
                    let previous = c > 0 ? Int(classes[i - plane]) : 3
                    if !element(i, x, y, (left * 4 + up) * 4 + previous) { return false }
                    i += 1
                }
            }
            if !channelEnd() { return false }
        }
        return true
    }

    /// Steps 1–2: the bit `k ≠ 0` under `saturated`, then for a saturated level its sign under `sign`.
    @_transparent
    static func encodeClass<A: SlotAdaptation>(_: A.Type, _ k: Int, saturated: UnsafeMutablePointer<UInt16>,
                                               sign: UnsafeMutablePointer<UInt16>, _ coder: inout RangeEncoder) {
        A.encode(k == 0 ? 0 : 1, saturated, &coder)
        if k != 0 { A.encode(k == 2 ? 1 : 0, sign, &coder) }
    }

    /// Steps 1–2 decoded: the class k (0 interior, 1 = +limit, 2 = −limit).
    @_transparent
    static func decodeClass<A: SlotAdaptation>(_: A.Type, saturated: UnsafeMutablePointer<UInt16>,
                                               sign: UnsafeMutablePointer<UInt16>, _ coder: inout RangeDecoder) -> Int {
        if A.decode(saturated, &coder) == 0 { return 0 }
        return A.decode(sign, &coder) != 0 ? 2 : 1
    }

    /// Step 3: the 8 bits of `u`, most significant first, under the tree `tree` (node 1 first, then
    /// node = 2·node + bit).
    @_transparent
    static func encodeTree<A: SlotAdaptation>(_: A.Type, _ u: Int, _ tree: UnsafeMutablePointer<UInt16>, _ coder: inout RangeEncoder) {
        var node = 1
        for b in stride(from: 7, through: 0, by: -1) {
            let bit = (u >> b) & 1
            A.encode(bit, tree + node, &coder)
            node = node * 2 + bit
        }
    }

    /// Step 3 decoded: u in 0…255.
    @_transparent
    static func decodeTree<A: SlotAdaptation>(_: A.Type, _ tree: UnsafeMutablePointer<UInt16>, _ coder: inout RangeDecoder) -> Int {
        var node = 1
        for _ in 0..<8 { node = node * 2 + A.decode(tree + node, &coder) }
        return node - 256
    }

    // MARK: - q8rc (spec §7.5)

    /// Encodes `levels` (C·H·W values in −limit…limit) into `output`. Returns the stream length, or
    /// nil when it would exceed `capacity`.
    static func encode(levels: UnsafePointer<Int8>, shape: (c: Int, h: Int, w: Int), limit: Int8,
                       classes: UnsafeMutablePointer<UInt8>, probabilities: UnsafeMutablePointer<UInt16>,
                       output: UnsafeMutablePointer<UInt8>, capacity: Int) -> Int? {
        probabilities.update(repeating: LevelModel.initialProbability, count: LevelModel.probabilityCount)
        var coder = RangeEncoder(output: output, capacity: capacity)
        let saturated = probabilities, sign = probabilities + LevelModel.classContexts
        let trees = probabilities + 2 * LevelModel.classContexts
        let offset = Int(limit)  // interior level q is coded as the 8-bit number q + limit
        let complete = walk(shape: shape, classes: classes, element: { i, _, _, context in
            let q = levels[i]
            let k = levelClass(q, limit: limit)
            classes[i] = UInt8(k)
            encodeClass(FixedAdaptation.self, k, saturated: saturated + context, sign: sign + context, &coder)
            if k == 0 { encodeTree(FixedAdaptation.self, Int(q) + offset, trees, &coder) }
            return true
        }, channelEnd: { !coder.overflowed })
        guard complete else { return nil }
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
        let saturated = probabilities, sign = probabilities + LevelModel.classContexts
        let trees = probabilities + 2 * LevelModel.classContexts
        let offset = Int(limit)
        let complete = walk(shape: shape, classes: classes, element: { i, _, _, context in
            let k = decodeClass(FixedAdaptation.self, saturated: saturated + context, sign: sign + context, &coder)
            classes[i] = UInt8(k)
            if k != 0 {
                levels[i] = k == 2 ? -limit : limit
                return true
            }
            let q = decodeTree(FixedAdaptation.self, trees, &coder) - offset
            if q <= -Int(limit) || q >= Int(limit) { return false }
            levels[i] = Int8(q)
            return true
        }, channelEnd: { !coder.overrun })
        return complete && !coder.overrun && coder.position == count
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
    /// The flag context `fctx = mL·4 + mU` of element i from the modes of its left and upper
    /// neighbours (3 outside the image).
    @inline(__always)
    private static func flagContext(_ modes: UnsafeMutablePointer<UInt8>, _ i: Int, x: Int, y: Int, w: Int) -> Int {
        (x > 0 ? Int(modes[i - 1]) : 3) * 4 + (y > 0 ? Int(modes[i - w]) : 3)
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
            let n = shape.c * shape.h * shape.w
            for j in 0..<n where levelClass(levels[j], limit: limit) == 0 {
                let ua = Int(levels[j]) + offset
                counts[ua] += 1
                counts[256 * (1 + Int(halves[j])) + Int(UInt8(truncatingIfNeeded: ua &- Int(bases[j])))] += 1
            }
            let complete = walk(shape: shape, classes: classes, element: { i, x, y, context in
                let q = levels[i]
                let k = levelClass(q, limit: limit)
                classes[i] = UInt8(k)
                encodeClass(WarmAdaptation.self, k, saturated: saturated + context, sign: sign + context, &coder)
                if k != 0 {
                    modes[i] = 0
                    return true
                }
                let flag = flags + flagContext(modes, i, x: x, y: y, w: shape.w)
                let ua = Int(q) + offset
                let ur = Int(UInt8(truncatingIfNeeded: ua &- Int(bases[i])))
                let half = Int(halves[i])
                // Two branches, not a selected tree pointer and symbol: measured faster (the tree
                // walk keeps its base in a register per branch).
                if counts[256 * (1 + half) + ur] > counts[ua] {
                    WarmAdaptation.encode(1, flag, &coder)
                    encodeTree(WarmAdaptation.self, ur, relative + half * LevelModel.treeNodes, &coder)
                    modes[i] = 2
                } else {
                    WarmAdaptation.encode(0, flag, &coder)
                    encodeTree(WarmAdaptation.self, ua, absolute, &coder)
                    modes[i] = 1
                }
                return true
            }, channelEnd: { !coder.overflowed })
            guard complete else { return nil }
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
        let saturated = probabilities, sign = probabilities + LevelModel.classContexts
        let flags = probabilities + 2 * LevelModel.classContexts
        let absolute = flags + NoiseLevelModel.flagContexts
        let relative = absolute + LevelModel.treeNodes
        let offset = Int(limit)
        let complete = walk(shape: shape, classes: classes, element: { i, x, y, context in
            let k = decodeClass(WarmAdaptation.self, saturated: saturated + context, sign: sign + context, &coder)
            classes[i] = UInt8(k)
            if k != 0 {
                levels[i] = k == 2 ? -limit : limit
                modes[i] = 0
                return true
            }
            // One tree decode for both modes: r = 1 reads v under R[h] (u = v + b mod 256), r = 0 u under A.
            let isRelative = WarmAdaptation.decode(flags + flagContext(modes, i, x: x, y: y, w: shape.w), &coder) != 0
            let tree = isRelative ? relative + Int(halves[i]) * LevelModel.treeNodes : absolute
            let v = decodeTree(WarmAdaptation.self, tree, &coder)
            let u = isRelative ? Int(UInt8(truncatingIfNeeded: v &+ Int(bases[i]))) : v
            modes[i] = isRelative ? 2 : 1
            let q = u - offset
            if q <= -Int(limit) || q >= Int(limit) { return false }
            levels[i] = Int8(q)
            return true
        }, channelEnd: { !coder.overrun })
        return complete && !coder.overrun && coder.position == count
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
