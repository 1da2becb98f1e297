// RecordCodec.swift: the codec rules of docs/format/membank-v1.md §6–§7 that need no memory access:
// payload sizes, the quantisation scale, the LZ4 10% rule, the `levels` bit width, the `q8rc` layouts, and the per-record
// encode statistics. The encoder and decoder themselves work on raw buffers: RecordCodec+Unsafe.swift.

/// Statistics of one encoded record (summed per generation and in benches).
public struct RecordStatistics: Sendable, Equatable {
    /// Record bytes on disk: 48-byte header + stored payload + padding to 8.
    public var recordBytes = 0
    /// Payload bytes after LZ4 decoding.
    public var rawBytes = 0
    /// Payload bytes on disk.
    public var storedBytes = 0
    public var lz4 = false
    /// Values clamped at ±L (or NaN) by the quantiser.
    public var clampedCount = 0
    /// `levels` only: palette size P, bit width b.
    public var paletteCount = 0
    public var bitWidth = 0
    /// The payload layout: `levels` 0 packed, 1 bit planes, 2 direct; `q8rc` 0 coded, 1 direct.
    public var layout = 0
}

enum RecordCodec {
    /// LZ4 is kept only when it saves at least 1/10 of the raw payload (spec §6): the largest
    /// acceptable compressed size.
    static func lz4Capacity(rawBytes: Int) -> Int { rawBytes - rawBytes / 10 }

    /// `levels` payload header: count, width, layout, reserved.
    static let levelsHeaderBytes = 4

    /// b = ⌈log2 P⌉ (0 for P = 1).
    static func bitWidth(paletteCount p: Int) -> Int {
        p <= 1 ? 0 : Int.bitWidth - (p - 1).leadingZeroBitCount
    }

    /// Raw payload bytes for a fixed-size codec; nil for `levels` (its size depends on the palette).
    static func fixedRawBytes(_ codec: BankCodec, elementCount n: Int) -> Int? {
        switch codec {
        case .f32: return 4 * n
        case .f16: return 2 * n
        case .q8: return n
        case .q4: return (n + 1) / 2
        case .levels, .q8rc, .q8rcn: return nil
        }
    }

    /// `q8rc` payload header: layout, three reserved bytes (spec §7.5).
    static let q8rcHeaderBytes = 4
    /// `q8rc` layouts: 0 the range-coded stream, 1 the int8 levels directly (when coding does not pay).
    static let q8rcCodedLayout = 0
    static let q8rcDirectLayout = 1
    /// The smallest coded stream: the coder's flush alone.
    static let q8rcMinimumStreamBytes = LevelModel.flushBytes

    /// Whether `q8rcn`'s start noise is defined for a record (spec §7.6: generation and sample ID both
    /// in 0..<2³², the stream index g·2³² + id of the generator). The writer refuses other generations,
    /// the reader reports such a record as corrupt (StartNoise would trap on them).
    static func startNoiseCovers(generation: Int, id: Int) -> Bool {
        generation >= 0 && generation < 1 << 32 && id >= 0 && id < 1 << 32
    }

    /// `levels` layouts (spec §7.4): 0 packed indices, 1 bit planes, 2 direct (the int8 levels, no palette).
    static let levelsLayoutCount = 3
    static let directLayout = 2

    /// `levels` raw size for P palette entries in `layout` (the direct layout ignores P).
    static func levelsRawBytes(paletteCount p: Int, layout: Int, elementCount n: Int) -> Int {
        let b = bitWidth(paletteCount: p)
        switch layout {
        case 0: return levelsHeaderBytes + p + (n * b + 7) / 8
        case 1: return levelsHeaderBytes + p + b * ((n + 7) / 8)
        default: return levelsHeaderBytes + n
        }
    }

    /// The largest raw payload any record of this configuration can have.
    static func maximumRawBytes(_ codec: BankCodec, elementCount n: Int) -> Int {
        if codec == .q8rc || codec == .q8rcn { return q8rcHeaderBytes + n }  // the coded stream is kept only when ≤ n bytes
        return fixedRawBytes(codec, elementCount: n)
            ?? (0..<levelsLayoutCount).map { levelsRawBytes(paletteCount: 255, layout: $0, elementCount: n) }.max()!
    }

    /// The quantisation step (spec §7): ε/L for L∞; m/L for L2 with m = max|δ| of the record (0 → 0);
    /// 0 for f32/f16.
    static func scale(config: BankConfig, maxAbs: () -> Float) -> Float {
        guard let limit = config.codec.levelLimit else { return 0 }
        switch config.norm {
        case .linf: return config.epsilon / Float(limit)
        case .l2: return maxAbs() / Float(limit)
        }
    }
}
