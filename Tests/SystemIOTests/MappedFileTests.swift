// MappedFileTests.swift: the one read-only mapping: bytes and integers read back what was written, in
// both byte orders, for private and shared mappings; a short read is clipped where asked; missing files,
// directories and empty files give the documented results; dropping resident pages keeps the data.

import Foundation
import SystemIO
import XCTest
import _TestSupport

final class MappedFileTests: XCTestCase {
    func write(_ bytes: [UInt8], _ dir: TempDirectory, _ name: String = "f.bin") throws -> String {
        let path = dir.path(name).path
        try AtomicFile.replace(bytes, atPath: path)
        return path
    }

    func test_readsBytesAndIntegers_inBothByteOrders_forBothSharings() throws {
        let dir = TempDirectory("mapped")
        let bytes: [UInt8] = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0xFF]
        let path = try write(bytes, dir)
        for sharing in [MappedFile.Sharing.private, .shared] {
            let f = try MappedFile(path: path, sharing: sharing, access: .random)
            XCTAssertEqual(f.count, 10)
            XCTAssertEqual(f.byte(at: 9), 0xFF)
            XCTAssertEqual(f.bytes(at: 2, count: 3), [3, 4, 5])
            XCTAssertEqual(f.bytes(at: 8, upTo: 100), [0x09, 0xFF], "clipped at the end of the file")
            XCTAssertEqual(f.bytes(at: 10, upTo: 4), [])
            XCTAssertEqual(f.uint16LE(at: 0), 0x0201)
            XCTAssertEqual(f.uint32LE(at: 0), 0x0403_0201)
            XCTAssertEqual(f.uint32BE(at: 0), 0x0102_0304)
            XCTAssertEqual(f.uint64LE(at: 1), 0x0908_0706_0504_0302, "unaligned load")
            XCTAssertEqual(f.unsigned(at: 7, width: 3, bigEndian: true), 0x08_09FF)
            XCTAssertTrue(f.contains(offset: 0, length: 10))
            XCTAssertFalse(f.contains(offset: 1, length: 10))
            XCTAssertFalse(f.contains(offset: -1, length: 1))
            let sum = f.withBytes(at: 1, length: 3) { raw in raw.reduce(0) { $0 + Int($1) } }
            XCTAssertEqual(sum, 2 + 3 + 4)
        }
    }

    func test_releaseResidentPages_keepsTheData() throws {
        let dir = TempDirectory("mapped")
        let bytes = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let path = try write(bytes, dir)
        let f = try MappedFile(path: path, access: .sequential)
        XCTAssertEqual(f.bytes(at: 0, count: f.count), bytes)
        f.releaseResidentPages()
        f.advise(.normal)
        XCTAssertEqual(f.bytes(at: 0, count: f.count), bytes, "refaulted from the page cache, unchanged")
    }

    func test_missingFile_directory_andEmptyFile() throws {
        let dir = TempDirectory("mapped")
        XCTAssertThrowsError(try MappedFile(path: dir.path("absent").path)) { error in
            guard case .notFound(let e)? = error as? MappedFile.OpenFailure else { return XCTFail("\(error)") }
            XCTAssertEqual(e.code, ENOENT)
            XCTAssertEqual(e.path, dir.path("absent").path)
        }
        XCTAssertThrowsError(try MappedFile(path: dir.url.path)) { error in
            XCTAssertEqual(error as? MappedFile.OpenFailure, .isDirectory(path: dir.url.path))
        }
        let empty = try MappedFile(path: try write([], dir, "empty.bin"))
        XCTAssertEqual(empty.count, 0)
        XCTAssertEqual(empty.bytes(at: 0, upTo: 8), [])
        empty.releaseResidentPages()
        XCTAssertEqual(MappedFile.size(ofFileAt: dir.path("empty.bin").path), 0)
        XCTAssertNil(MappedFile.size(ofFileAt: dir.path("absent").path))
    }

    func test_anUnlinkedFile_staysReadableThroughItsMapping() throws {
        let dir = TempDirectory("mapped")
        let path = try write([1, 2, 3, 4], dir)
        let f = try MappedFile(path: path, sharing: .shared)
        try FileSystem.remove(path)
        XCTAssertEqual(f.bytes(at: 0, count: 4), [1, 2, 3, 4])
    }
}
