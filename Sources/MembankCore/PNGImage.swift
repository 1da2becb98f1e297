// PNGImage.swift: a minimal PNG encoder for `membank show/render`: 8-bit grayscale or RGB, one IDAT
// holding a zlib stream of stored (uncompressed) DEFLATE blocks, filter type 0 on every row. Written
// from the PNG (ISO/IEC 15948), zlib (RFC 1950) and DEFLATE (RFC 1951) specifications; no dependency.
// Not a general encoder: no palettes, no 16-bit, no compression.

import Foundation

/// An 8-bit image, rows top to bottom, pixels interleaved (gray: 1 byte, RGB: 3 bytes per pixel).
public struct PNGImage: Equatable, Sendable {
    public var width: Int
    public var height: Int
    /// 1 (grayscale, PNG colour type 0) or 3 (RGB, colour type 2).
    public var channels: Int
    /// `height · width · channels` bytes.
    public var pixels: [UInt8]

    public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) {
        precondition(width >= 1 && height >= 1 && (channels == 1 || channels == 3), "PNGImage: \(width)×\(height)×\(channels)")
        precondition(pixels.count == width * height * channels, "PNGImage: \(pixels.count) bytes for \(width)×\(height)×\(channels)")
        self.width = width
        self.height = height
        self.channels = channels
        self.pixels = pixels
    }

    /// A blank image filled with `value`.
    public init(width: Int, height: Int, channels: Int, fill value: UInt8) {
        self.init(width: width, height: height, channels: channels,
                  pixels: [UInt8](repeating: value, count: width * height * channels))
    }

    /// The 8 PNG signature bytes.
    public static let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

    /// The PNG file:
    /// ```
    /// signature, IHDR(width, height, bit depth 8, colour type 0|2, compression 0, filter 0, interlace 0),
    /// IDAT(zlib(for each row: filter byte 0, row bytes)), IEND
    /// chunk = length (u32 BE) ‖ type ‖ data ‖ CRC-32(type ‖ data) (u32 BE)
    /// ```
    public func encode() -> [UInt8] {
        var out = PNGImage.signature
        var ihdr: [UInt8] = []
        appendBE(&ihdr, UInt32(width))
        appendBE(&ihdr, UInt32(height))
        ihdr += [8, channels == 1 ? 0 : 2, 0, 0, 0]
        appendChunk(&out, "IHDR", ihdr)
        let rowBytes = width * channels
        var filtered = [UInt8]()
        filtered.reserveCapacity(height * (rowBytes + 1))
        for y in 0..<height {
            filtered.append(0)  // filter type 0 (None)
            filtered += pixels[(y * rowBytes)..<((y + 1) * rowBytes)]
        }
        appendChunk(&out, "IDAT", ZlibStored.compress(filtered))
        appendChunk(&out, "IEND", [])
        return out
    }

    /// Writes the PNG to `path`.
    /// - Throws: `MembankError.io` naming the path.
    public func write(to path: String) throws(MembankError) {
        do {
            try Data(encode()).write(to: URL(fileURLWithPath: path))
        } catch {
            throw .io(path: path, operation: "write PNG", reason: error.localizedDescription)
        }
    }

    private func appendChunk(_ out: inout [UInt8], _ type: String, _ data: [UInt8]) {
        let typeBytes = Array(type.utf8)
        appendBE(&out, UInt32(data.count))
        out += typeBytes
        out += data
        appendBE(&out, CRC32.checksum(typeBytes + data))
    }
}

func appendBE(_ out: inout [UInt8], _ v: UInt32) {
    out += [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)]
}

/// CRC-32 of PNG chunks and zip (ISO 3309 / ITU-T V.42): reflected polynomial 0xEDB88320, initial
/// value 0xFFFFFFFF, final XOR 0xFFFFFFFF. Check value: "123456789" → 0xCBF43926.
public enum CRC32 {
    static let table: [UInt32] = (0..<256).map { n -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes { c = table[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }
}

/// A zlib stream (RFC 1950) whose DEFLATE data is stored blocks only (RFC 1951 §3.2.4).
enum ZlibStored {
    /// Largest stored block: LEN is a u16.
    static let maximumBlock = 65_535

    /// ```
    /// 0x78 0x01 (CM 8, CINFO 7 = 32 KiB window, FCHECK so that (CMF·256 + FLG) % 31 == 0, level 0)
    /// per block: BFINAL|BTYPE=00 byte, LEN (u16 LE), NLEN = ~LEN (u16 LE), LEN bytes
    /// Adler-32 of the data (u32 BE)
    /// ```
    static func compress(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0x78, 0x01]
        var start = 0
        repeat {
            let length = min(maximumBlock, data.count - start)
            let final = start + length == data.count
            out.append(final ? 1 : 0)
            let len = UInt16(length), nlen = ~len
            out += [UInt8(len & 0xFF), UInt8(len >> 8), UInt8(nlen & 0xFF), UInt8(nlen >> 8)]
            out += data[start..<(start + length)]
            start += length
        } while start < data.count
        appendBE(&out, adler32(data))
        return out
    }

    /// Adler-32 (RFC 1950 §8.2): `A = 1 + Σ bytes`, `B = Σ A_i`, both mod 65521; result `B·65536 + A`.
    static func adler32(_ data: [UInt8]) -> UInt32 {
        var a: UInt32 = 1, b: UInt32 = 0
        // 5552 bytes is the longest run before B can overflow a UInt32 (zlib's NMAX).
        var i = 0
        while i < data.count {
            let end = min(data.count, i + 5552)
            while i < end {
                a += UInt32(data[i])
                b += a
                i += 1
            }
            a %= 65521
            b %= 65521
        }
        return b << 16 | a
    }
}
