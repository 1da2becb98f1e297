// ByteIO.swift: little-endian integer/float encoding into and out of byte arrays with cursor semantics,
// and the one alignment formula of the format (docs/format/membank-v1.md §2). Every header, manifest
// and record field goes through these helpers. No file I/O and no raw pointers here.

/// `alignUp(x, a) = (x + a − 1) & ~(a − 1)`, `a` a power of two (spec §2).
@inline(__always)
func alignUp(_ x: Int, to alignment: Int) -> Int {
    assert(alignment > 0 && alignment & (alignment - 1) == 0, "alignUp: \(alignment) is not a power of two")
    return (x + alignment - 1) & ~(alignment - 1)
}

/// Appends little-endian values to a growing byte array. The cursor is the end of `bytes`.
struct ByteWriter {
    var bytes: [UInt8]

    init(capacity: Int = 0) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    var count: Int { bytes.count }

    mutating func writeLE<T: FixedWidthInteger>(_ value: T) {
        var v = value.littleEndian
        for _ in 0..<MemoryLayout<T>.size {
            bytes.append(UInt8(truncatingIfNeeded: v))
            v >>= 8
        }
    }

    mutating func writeLE(_ value: Float) { writeLE(value.bitPattern) }

    mutating func write<S: Sequence>(_ raw: S) where S.Element == UInt8 { bytes.append(contentsOf: raw) }

    /// Appends zero bytes until `count` is a multiple of `alignment`.
    mutating func pad(toMultipleOf alignment: Int) {
        let target = alignUp(bytes.count, to: alignment)
        if target > bytes.count { bytes.append(contentsOf: repeatElement(0, count: target - bytes.count)) }
    }

    /// Overwrites a little-endian value at `offset` (which must already be written).
    mutating func setLE<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        var v = value.littleEndian
        for i in 0..<MemoryLayout<T>.size {
            bytes[offset + i] = UInt8(truncatingIfNeeded: v)
            v >>= 8
        }
    }
}

/// Reads little-endian values from a byte array; each read advances `offset`.
/// - Precondition: the caller checked that the bytes it reads exist (`remaining`). MemoryBank is built
///   with -Ounchecked, so the `precondition`s below vanish and reading past the end is undefined: every
///   decoder bounds its reads through a validated layout first (docs/format/membank-v1.md §5.4).
struct ByteReader {
    let bytes: [UInt8]
    private(set) var offset: Int

    init(_ bytes: [UInt8], offset: Int = 0) {
        self.bytes = bytes
        self.offset = offset
    }

    var remaining: Int { bytes.count - offset }

    mutating func readLE<T: FixedWidthInteger>(_: T.Type = T.self) -> T {
        precondition(offset + MemoryLayout<T>.size <= bytes.count, "ByteReader: read past the end")
        var v: T = 0
        for i in 0..<MemoryLayout<T>.size { v |= T(truncatingIfNeeded: bytes[offset + i]) << (8 * i) }
        offset += MemoryLayout<T>.size
        return v
    }

    mutating func readFloat() -> Float { Float(bitPattern: readLE(UInt32.self)) }

    mutating func readBytes(_ count: Int) -> [UInt8] {
        precondition(offset + count <= bytes.count, "ByteReader: read past the end")
        defer { offset += count }
        return Array(bytes[offset..<(offset + count)])
    }

    mutating func skip(_ count: Int) { offset += count }

    mutating func seek(to position: Int) { offset = position }
}

/// `4D 42 41 4E …` plus the ASCII text when printable (error messages and dumps).
func describeBytes(_ bytes: [UInt8]) -> String {
    let hex = bytes.map { String(format2Hex: $0) }.joined(separator: " ")
    let printable = bytes.allSatisfy { $0 >= 0x20 && $0 < 0x7F }
    return printable ? "\(hex) (\"\(String(decoding: bytes, as: UTF8.self))\")" : hex
}

extension String {
    /// Two upper-case hex digits.
    init(format2Hex byte: UInt8) {
        let digits = Array("0123456789ABCDEF")
        self = String([digits[Int(byte >> 4)], digits[Int(byte & 0xF)]])
    }

    /// `0x` + eight upper-case hex digits.
    init(hex32 value: UInt32) {
        let s = String(value, radix: 16, uppercase: true)
        self = "0x" + String(repeating: "0", count: 8 - s.count) + s
    }
}
