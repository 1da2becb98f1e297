// CRC32C+Unsafe.swift: the slice-by-8 loop of CRC32C over raw memory (byte arrays and mapped files).
// The tables and the safe API are in CRC32C.swift.

extension CRC32C {
    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update(raw: $0) }
    }

    public mutating func update(_ bytes: ArraySlice<UInt8>) {
        bytes.withUnsafeBytes { update(raw: $0) }
    }

    /// Feeds `buffer` (any length, any alignment).
    public mutating func update(raw buffer: UnsafeRawBufferPointer) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        var crc = state
        var p = base
        var remaining = buffer.count
        CRC32C.tables.withUnsafeBufferPointer { t in
            while remaining >= 8 {
                let word = UInt64(littleEndian: p.loadUnaligned(as: UInt64.self)) ^ UInt64(crc)
                // Split into typed partial XORs: one long chain is slow to type-check (systems.md §3.8).
                let a: UInt32 = t[7 * 256 + Int(word & 0xFF)] ^ t[6 * 256 + Int((word >> 8) & 0xFF)]
                let b: UInt32 = t[5 * 256 + Int((word >> 16) & 0xFF)] ^ t[4 * 256 + Int((word >> 24) & 0xFF)]
                let c: UInt32 = t[3 * 256 + Int((word >> 32) & 0xFF)] ^ t[2 * 256 + Int((word >> 40) & 0xFF)]
                let d: UInt32 = t[1 * 256 + Int((word >> 48) & 0xFF)] ^ t[Int(word >> 56)]
                crc = (a ^ b) ^ (c ^ d)
                p += 8
                remaining -= 8
            }
            while remaining > 0 {
                crc = (crc >> 8) ^ t[Int((crc ^ UInt32(p.load(as: UInt8.self))) & 0xFF)]
                p += 1
                remaining -= 1
            }
        }
        state = crc
    }
}
