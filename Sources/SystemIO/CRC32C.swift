// CRC32C.swift: the Castagnoli CRC used by every memloss file format with a checksum (the bank,
// docs/format/membank-v1.md §2; checkpoints): reflected polynomial
// 0x82F63B78, init and final XOR 0xFFFFFFFF, slice-by-8 tables. This file holds the tables and the
// array API; the 8-bytes-at-a-time loop over raw memory is in CRC32C+Unsafe.swift.

/// A running CRC32C. `CRC32C.checksum(bytes)` for one buffer; `update` to chain regions.
///
/// Check values (RFC 3720 §B.4): "123456789" → 0xE3069283, 32 × 0x00 → 0x8A9136AA,
/// 32 × 0xFF → 0x62A8AB43, 00 01 … 1F → 0x46DD794E.
public struct CRC32C: Sendable {
    /// The reflected Castagnoli polynomial.
    public static let polynomial: UInt32 = 0x82F6_3B78

    /// The internal register (pre-inverted). `value` is the CRC of everything fed so far.
    var state: UInt32 = 0xFFFF_FFFF

    public init() {}

    /// The CRC32C of the bytes fed so far.
    public var value: UInt32 { state ^ 0xFFFF_FFFF }

    /// The CRC32C of one buffer.
    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        var c = CRC32C()
        c.update(bytes)
        return c.value
    }

    /// Eight 256-entry tables, flat: tables[k·256 + b]. Table 0 is the byte-at-a-time table; table k
    /// advances a byte through k further zero bytes, so eight bytes fold in one step.
    static let tables: [UInt32] = {
        var t = [UInt32](repeating: 0, count: 8 * 256)
        for b in 0..<256 {
            var c = UInt32(b)
            for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ polynomial : c >> 1 }
            t[b] = c
        }
        for k in 1..<8 {
            for b in 0..<256 {
                let previous = t[(k - 1) * 256 + b]
                t[k * 256 + b] = (previous >> 8) ^ t[Int(previous & 0xFF)]
            }
        }
        return t
    }()
}
