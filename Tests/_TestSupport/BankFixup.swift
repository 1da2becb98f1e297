// BankFixup.swift: checksum repair of mutated membank files for the bank fuzz targets
// (docs/fuzzing.md, docs/format/membank-v1.md §4–§6). A mutant whose CRC32Cs are recomputed gets past
// the checksums and exercises the structural checks behind them. It knows only the byte offsets of
// the spec and carries its own bitwise CRC32C, independent of SystemIO's table-driven one; it never
// trusts a field: whatever does not fit in the bytes is left as it is.

/// Best-effort checksum repair of segment and manifest bytes.
public enum BankFixup {
    /// CRC32C (Castagnoli, reflected polynomial 0x82F63B78) bit by bit.
    public static func crc32c<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes {
            c ^= UInt32(b)
            for _ in 0..<8 { c = (c >> 1) ^ (c & 1 == 1 ? 0x82F6_3B78 : 0) }
        }
        return ~c
    }

    /// The little-endian integer of `width` bytes at `at`, nil when it does not fit.
    public static func le(_ b: [UInt8], _ at: Int, _ width: Int) -> UInt64? {
        guard at >= 0, width <= 8, at <= b.count - width else { return nil }
        return (0..<width).reduce(UInt64(0)) { $0 | UInt64(b[at + $1]) << UInt64(8 * $1) }
    }

    static func put32(_ v: UInt32, _ at: Int, _ b: inout [UInt8]) {
        guard at >= 0, at <= b.count - 4 else { return }
        for k in 0..<4 { b[at + k] = UInt8(truncatingIfNeeded: v >> UInt32(8 * k)) }
    }

    /// A range `[start, start + count)` when it lies inside `size` bytes.
    static func span(_ start: UInt64?, _ count: UInt64?, size: Int) -> Range<Int>? {
        guard let s = start, let n = count, s <= UInt64(size), n <= UInt64(size) - s else { return nil }
        return Int(s)..<Int(s + n)
    }

    /// Recomputes every record checksum reachable through the index, then the index, createdBy and
    /// header checksums of segment bytes (spec §5.1, §6). At most `maxRecords` index entries are used.
    public static func segment(_ input: [UInt8], maxRecords: Int = 4096) -> [UInt8] {
        var b = input
        guard let hb64 = le(b, 12, 4), hb64 >= 128, hb64 % 8 == 0, hb64 <= UInt64(b.count) else { return b }
        let hb = Int(hb64)
        if let index = span(le(b, 88, 8), le(b, 96, 8), size: b.count) {
            var p = index.lowerBound
            while p + 8 <= index.upperBound && (p - index.lowerBound) / 8 < maxRecords {
                defer { p += 8 }
                guard let o = le(b, p, 8), o > 0, o <= UInt64(b.count), let rhb = le(b, Int(o) + 6, 2),
                      let stored = le(b, Int(o) + 40, 4), rhb >= 48, let whole = span(o, rhb + stored, size: b.count) else { continue }
                let start = whole.lowerBound
                let crc = crc32c(Array(b[start..<(start + 44)]) + Array(b[(start + 48)..<whole.upperBound]))
                put32(crc, start + 44, &b)
            }
            put32(crc32c(b[index]), 112, &b)
        }
        if let text = span(le(b, 64, 8), le(b, 72, 4), size: b.count) { put32(crc32c(b[text]), 76, &b) }
        put32(crc32c(b[0..<(hb - 4)]), hb - 4, &b)
        return b
    }

    /// Recomputes a manifest's final checksum; when `segment` is given, first points the entry of
    /// `generation` at it (its size and header checksum), as the writer's seal would.
    public static func manifest(_ input: [UInt8], generation: UInt64? = nil, segment: [UInt8]? = nil) -> [UInt8] {
        var b = input
        guard b.count >= 76 else { return b }
        if let g = generation, let s = segment, let hb = le(b, 12, 4), let count = le(b, 60, 4) {
            var p = Int(min(hb, UInt64(b.count)))
            for _ in 0..<min(Int(count), b.count / 24) {
                guard let entry = le(b, p, 8) else { break }
                if entry == g {
                    let size = UInt64(s.count)
                    put32(UInt32(truncatingIfNeeded: size), p + 8, &b)
                    put32(UInt32(truncatingIfNeeded: size >> 32), p + 12, &b)
                    let shb = Int(min(le(s, 12, 4) ?? 128, UInt64(s.count)))
                    put32(UInt32(truncatingIfNeeded: le(s, shb - 4, 4) ?? 0), p + 16, &b)
                }
                p += 24
            }
        }
        put32(crc32c(b[0..<(b.count - 4)]), b.count - 4, &b)
        return b
    }
}
