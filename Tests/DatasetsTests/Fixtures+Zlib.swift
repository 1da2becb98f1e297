// Fixtures+Zlib.swift: a tiny fixed-Huffman DEFLATE writer for the reader tests: a literal prefix
// followed by a long run of zero bytes encoded as length-258/distance-1 matches, i.e. a zlib "bomb"
// (about 160:1). It exists so a test can build a MAT-file whose compressed element inflates far past
// the size its own tag declares. Encoding only what the tests need: no general compressor.

import Foundation

extension Fixtures {
    /// LSB-first bit packer (RFC 1951 §3.1.1).
    private struct BitWriter {
        var bytes: [UInt8] = []
        private var buffer: UInt64 = 0
        private var count = 0

        /// `n` bits of `value`, least significant first (header fields and extra bits).
        mutating func bits(_ value: Int, _ n: Int) {
            buffer |= UInt64(value) << UInt64(count)
            count += n
            while count >= 8 {
                bytes.append(UInt8(truncatingIfNeeded: buffer))
                buffer >>= 8
                count -= 8
            }
        }

        /// A Huffman code of `length` bits, most significant bit first.
        mutating func code(_ value: Int, _ length: Int) {
            for i in stride(from: length - 1, through: 0, by: -1) { bits((value >> i) & 1, 1) }
        }

        mutating func align() { if count > 0 { bits(0, 8 - count) } }
    }

    /// Fixed-Huffman code of literal/length symbol `sym` (RFC 1951 §3.2.6).
    private static func fixedLiteral(_ sym: Int, into w: inout BitWriter) {
        switch sym {
        case 0...143: w.code(0x30 + sym, 8)
        case 144...255: w.code(0x190 + sym - 144, 9)
        case 256...279: w.code(sym - 256, 7)
        default: w.code(0xC0 + sym - 280, 8)
        }
    }

    /// A zlib stream that inflates to `prefix` followed by `zeroRun` zero bytes (`prefix` must end
    /// in a 0 byte when `zeroRun > 0`, so the distance-1 matches copy zeros). One fixed-Huffman block.
    static func zlibZeroRun(prefix: [UInt8], zeroRun: Int) -> [UInt8] {
        precondition(zeroRun == 0 || prefix.last == 0, "zlibZeroRun: prefix must end in 0")
        var w = BitWriter()
        w.bits(1, 1)  // BFINAL
        w.bits(1, 2)  // BTYPE = 01, fixed Huffman
        for b in prefix { fixedLiteral(Int(b), into: &w) }
        var left = zeroRun
        while left > 0 {
            if left >= 258 {
                fixedLiteral(285, into: &w)  // length 258, no extra bits
                w.code(0, 5)  // distance code 0: distance 1
                left -= 258
            } else {
                fixedLiteral(0, into: &w)
                left -= 1
            }
        }
        fixedLiteral(256, into: &w)  // end of block
        w.align()
        var a: UInt64 = 1, b: UInt64 = 0
        for byte in prefix { a = (a + UInt64(byte)) % 65_521; b = (b + a) % 65_521 }
        b = (b + UInt64(zeroRun % 65_521) * a) % 65_521  // zeros leave a unchanged, add a to b each
        let adler = UInt32(b << 16 | a)
        return [0x78, 0x01] + w.bytes + [UInt8(adler >> 24), UInt8(adler >> 16 & 0xFF), UInt8(adler >> 8 & 0xFF), UInt8(adler & 0xFF)]
    }

    /// A MAT-file whose first miCOMPRESSED element declares a miMATRIX of `declaredBytes` but inflates
    /// to `8 + inflatedBytes` bytes (the tag, then zeros), followed by a valid compressed `y`.
    static func matBomb(declaredBytes: Int, inflatedBytes: Int) -> [UInt8] {
        let tag = le32(miMATRIX) + le32(UInt32(declaredBytes))
        let z = zlibZeroRun(prefix: tag, zeroRun: inflatedBytes)
        let y = matrix(name: "y", arrayClass: mxDOUBLE, dims: [1, 1], dataType: miDOUBLE, data: le64(Double(1).bitPattern))
        return matHeader() + le32(miCOMPRESSED) + le32(UInt32(z.count)) + z + compressed(y)
    }
}
