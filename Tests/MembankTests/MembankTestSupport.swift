// MembankTestSupport.swift: helpers of the membank tests: running the built `membank` binary,
// little-endian reads and byte surgery on bank files, and an independent PNG decoder (chunk walk with
// a bitwise CRC-32, zlib inflate through the Datasets module's own inflater, filter-0 rows).

@testable import Datasets
import Foundation
import MemoryBank
import XCTest
import _TestSupport

enum MembankTestSupport {
    // MARK: - The binary

    /// Runs the built `membank args…`; returns the exit status, stdout and stderr.
    static func run(_ args: [String]) throws -> (status: Int32, out: String, err: String) {
        try BuiltExecutable.run("membank", args)
    }

    // MARK: - Bytes

    static func le(_ b: [UInt8], _ offset: Int, _ count: Int) -> UInt64 {
        (0..<count).reduce(UInt64(0)) { $0 | UInt64(b[offset + $1]) << UInt64(8 * $1) }
    }

    static func be32(_ b: [UInt8], _ offset: Int) -> UInt32 {
        (0..<4).reduce(UInt32(0)) { $0 << 8 | UInt32(b[offset + $1]) }
    }

    static func segmentURL(_ bank: URL, _ generation: Int) -> URL {
        bank.appendingPathComponent("gen-" + String(format: "%010d", generation) + ".mbs")
    }

    /// The absolute offset of sample `id`'s record in a segment (spec §5.1: indexOffset at byte 88).
    static func recordOffset(_ segment: [UInt8], id: Int) -> Int {
        let indexOffset = Int(le(segment, 88, 8))
        return Int(le(segment, indexOffset + 8 * id, 8))
    }

    // MARK: - PNG decoding

    struct DecodedPNG {
        var width: Int
        var height: Int
        var channels: Int
        var pixels: [UInt8]
        var chunkTypes: [String]
    }

    /// CRC-32 bit by bit (no table), independent of the encoder's table-driven one.
    static func bitwiseCRC32(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes {
            c ^= UInt32(b)
            for _ in 0..<8 { c = (c >> 1) ^ (c & 1 == 1 ? 0xEDB8_8320 : 0) }
        }
        return ~c
    }

    /// Decodes an 8-bit grey or RGB, non-interlaced PNG; fails the test on any malformation.
    static func decodePNG(_ file: [UInt8], file path: StaticString = #filePath, line: UInt = #line) throws -> DecodedPNG {
        XCTAssertEqual(Array(file.prefix(8)), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A], "signature", file: path, line: line)
        var p = 8
        var types: [String] = [], idat: [UInt8] = []
        var width = 0, height = 0, channels = 0
        while p + 12 <= file.count {
            let length = Int(be32(file, p))
            let type = String(decoding: file[(p + 4)..<(p + 8)], as: UTF8.self)
            let body = Array(file[(p + 8)..<(p + 8 + length)])
            let stored = be32(file, p + 8 + length)
            XCTAssertEqual(stored, bitwiseCRC32(Array(file[(p + 4)..<(p + 8)]) + body), "CRC of \(type)", file: path, line: line)
            types.append(type)
            if type == "IHDR" {
                width = Int(be32(body, 0))
                height = Int(be32(body, 4))
                XCTAssertEqual(body[8], 8, "bit depth", file: path, line: line)
                XCTAssert(body[9] == 0 || body[9] == 2, "colour type \(body[9])", file: path, line: line)
                XCTAssertEqual(Array(body[10...12]), [0, 0, 0], "compression, filter, interlace", file: path, line: line)
                channels = body[9] == 0 ? 1 : 3
            }
            if type == "IDAT" { idat += body }
            p += 12 + length
        }
        XCTAssertEqual(p, file.count, "chunks end at the end of the file", file: path, line: line)
        XCTAssertEqual(types.first, "IHDR", file: path, line: line)
        XCTAssertEqual(types.last, "IEND", file: path, line: line)
        var raw: [UInt8] = []
        _ = try idat.withUnsafeBytes { buffer in
            try Inflater.inflateZlib(buffer) { chunk, count in raw += chunk.prefix(count) }
        }
        let rowBytes = width * channels
        XCTAssertEqual(raw.count, height * (rowBytes + 1), "inflated size", file: path, line: line)
        var pixels: [UInt8] = []
        for y in 0..<height {
            XCTAssertEqual(raw[y * (rowBytes + 1)], 0, "filter type of row \(y)", file: path, line: line)
            pixels += raw[(y * (rowBytes + 1) + 1)..<((y + 1) * (rowBytes + 1))]
        }
        return DecodedPNG(width: width, height: height, channels: channels, pixels: pixels, chunkTypes: types)
    }
}
