// MappedFile.swift: a read-only memory mapping of one sealed segment (mmap PROT_READ, MAP_SHARED,
// madvise MADV_RANDOM: lookups by sample ID jump around; systems.md §6, R7) with bounds-checked
// accessors. One of the files of MemoryBank allowed to touch raw pointers (style.md §4). It knows
// nothing about the format: headers, records and checksums are interpreted by its callers.

import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A whole file mapped read-only. Immutable and safe to read from several threads.
///
/// The mapping lives until deinit (`munmap`). Sealed segments are never modified in place; the writer
/// only deletes whole files, and a file unlinked while mapped stays readable through the mapping.
final class MappedFile: @unchecked Sendable {
    let path: String
    let count: Int
    /// nil for an empty file (mmap rejects length 0).
    private let base: UnsafeRawPointer?

    /// Maps `path` read-only and advises random access.
    init(path: String) throws(MemoryBankError) {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw .io(path: path, operation: "open for reading", reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var info = stat()
        if fstat(fd, &info) != 0 { throw .io(path: path, operation: "stat", reason: String(cString: strerror(errno))) }
        count = Int(info.st_size)
        if count == 0 {
            base = nil
            return
        }
        let p = mmap(nil, count, PROT_READ, MAP_SHARED, fd, 0)
        if p == MAP_FAILED || p == nil {
            throw .io(path: path, operation: "mmap", reason: String(cString: strerror(errno)))
        }
        _ = madvise(p, count, MADV_RANDOM)
        base = UnsafeRawPointer(p!)
    }

    deinit {
        if let base { munmap(UnsafeMutableRawPointer(mutating: base), count) }
    }

    /// True when [offset, offset + length) lies inside the file.
    @inline(__always)
    func contains(offset: Int, length: Int) -> Bool {
        offset >= 0 && length >= 0 && offset <= count && length <= count - offset
    }

    /// A copy of `length` bytes at `offset` (headers and small fields).
    /// - Precondition: the range is inside the file (`contains`).
    func bytes(at offset: Int, count length: Int) -> [UInt8] {
        precondition(contains(offset: offset, length: length), "MappedFile: \(offset)+\(length) outside \(count) bytes")
        guard length > 0, let base else { return [] }
        return Array(UnsafeRawBufferPointer(start: base + offset, count: length))
    }

    /// The little-endian u64 at `offset` (index entries). Precondition: inside the file.
    @inline(__always)
    func loadUInt64(at offset: Int) -> UInt64 {
        precondition(contains(offset: offset, length: 8), "MappedFile: u64 at \(offset) outside \(count) bytes")
        return UInt64(littleEndian: base!.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    /// CRC32C of `length` bytes at `offset`. Precondition: inside the file.
    func checksum(at offset: Int, count length: Int) -> UInt32 {
        precondition(contains(offset: offset, length: length), "MappedFile: \(offset)+\(length) outside \(count) bytes")
        var crc = CRC32C()
        if length > 0, let base { crc.update(raw: UnsafeRawBufferPointer(start: base + offset, count: length)) }
        return crc.value
    }

    /// Calls `body` with a pointer to `offset` and the number of bytes from there to `limit`.
    /// The pointer must not escape `body`. Precondition: offset ≤ limit ≤ count.
    func withBytes<R>(at offset: Int, limit: Int, _ body: (UnsafeRawPointer, Int) throws(MemoryBankError) -> R) throws(MemoryBankError) -> R {
        precondition(offset >= 0 && offset <= limit && limit <= count, "MappedFile: \(offset)..<\(limit) outside \(count) bytes")
        return try body(base! + offset, limit - offset)
    }

    /// Drops this mapping's pages from the process's page tables (`MADV_DONTNEED`): resident memory
    /// (RssFile) falls back, the kernel's page cache keeps the data, and later reads fault pages in
    /// again. Safe while other threads read (a shared, read-only file mapping loses nothing).
    func releaseResidentPages() {
        if let base { _ = madvise(UnsafeMutableRawPointer(mutating: base), count, MADV_DONTNEED) }
    }

    /// This process's file-backed (+ shared memory) resident bytes: field 3 of /proc/self/statm × the
    /// page size; nil off Linux. Cheap enough to call once per batch (one small read, no Foundation).
    static func processResidentFileBytes() -> Int? {
        #if os(Linux)
        let fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC)
        if fd < 0 { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 160)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { return nil }
        var fields: [Int] = [], value = 0, inNumber = false
        for b in buffer[0..<n] {
            if b >= 0x30 && b <= 0x39 {
                value = value * 10 + Int(b - 0x30)
                inNumber = true
            } else if inNumber {
                fields.append(value)
                value = 0
                inNumber = false
                if fields.count == 3 { break }
            }
        }
        guard fields.count == 3 else { return nil }
        return fields[2] * Int(sysconf(Int32(_SC_PAGESIZE)))
        #else
        return nil
        #endif
    }

    /// Size of the file at `path`, or nil if it does not exist.
    static func size(ofFileAt path: String) -> Int? {
        var info = stat()
        return stat(path, &info) == 0 ? Int(info.st_size) : nil
    }
}
