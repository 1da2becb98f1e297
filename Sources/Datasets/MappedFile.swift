// MappedFile.swift: a read-only memory mapping of one file (mmap, madvise, munmap) with bounds-checked
// byte, integer and float accessors. One of the few files in Datasets allowed to touch raw pointers
// (style.md §4); nothing here knows about image formats, labels or tensors.
// It never reads a file into RAM: pages come in on demand and can be dropped again
// (`releaseResidentPages`), so resident memory stays bounded while streaming through huge files.

import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A whole file mapped read-only (`PROT_READ`, `MAP_PRIVATE`). Immutable and thread-safe to read.
///
/// The mapping lives until the object is deinitialised (`munmap`). Readers keep the object, never the
/// pointer. Truncating the file on disk while it is mapped makes later reads fault (SIGBUS): datasets
/// are treated as read-only inputs.
final class MappedFile: @unchecked Sendable {
    /// The path the file was opened with (used in error messages).
    let path: String
    /// Length in bytes.
    let count: Int
    /// Base of the mapping; nil for an empty file (mmap rejects length 0).
    private let base: UnsafeRawPointer?

    /// Maps `path` read-only.
    /// - Throws: `DatasetError.fileNotFound` / `.cannotOpen` naming the file; `expected` says what
    ///   the caller was looking for.
    init(path: String, expected: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY)
        if fd < 0 {
            let code = errno
            if code == ENOENT { throw DatasetError.fileNotFound(path: path, expected: expected) }
            throw DatasetError.cannotOpen(path: path, reason: String(cString: strerror(code)))
        }
        defer { close(fd) }
        var info = stat()
        if fstat(fd, &info) != 0 {
            throw DatasetError.cannotOpen(path: path, reason: String(cString: strerror(errno)))
        }
        if (info.st_mode & S_IFMT) == S_IFDIR {
            throw DatasetError.wrongFormat(path: path, expected: expected, found: "a directory")
        }
        count = Int(info.st_size)
        if count == 0 {
            base = nil
            return
        }
        let p = mmap(nil, count, PROT_READ, MAP_PRIVATE, fd, 0)
        if p == MAP_FAILED || p == nil {
            throw DatasetError.cannotOpen(path: path, reason: "mmap failed: \(String(cString: strerror(errno)))")
        }
        base = UnsafeRawPointer(p!)
    }

    deinit {
        if let base { munmap(UnsafeMutableRawPointer(mutating: base), count) }
    }

    // MARK: - Residency

    /// Drops this process's page-table entries for the whole mapping (`MADV_DONTNEED`). The data stays
    /// in the kernel page cache; the next access refaults it (a minor fault when cached). Always safe
    /// for a read-only mapping, even while other threads read: they simply refault.
    func releaseResidentPages() {
        guard let base else { return }
        _ = madvise(UnsafeMutableRawPointer(mutating: base), count, MADV_DONTNEED)
    }

    /// Access-pattern hint for the whole mapping.
    func advise(sequential: Bool) {
        guard let base else { return }
        _ = madvise(UnsafeMutableRawPointer(mutating: base), count, sequential ? MADV_SEQUENTIAL : MADV_RANDOM)
    }

    // MARK: - Bounds-checked reads

    /// True if `offset..<offset+length` lies inside the file.
    @inline(__always)
    func contains(offset: Int, length: Int) -> Bool {
        offset >= 0 && length >= 0 && offset <= count && length <= count - offset
    }

    /// Byte at `offset`. - Precondition: inside the file.
    @inline(__always)
    func byte(at offset: Int) -> UInt8 {
        precondition(offset >= 0 && offset < count, "MappedFile \(path): byte offset \(offset) out of 0..<\(count)")
        return base!.load(fromByteOffset: offset, as: UInt8.self)
    }

    /// A copy of `length` bytes from `offset` (clipped to the end of the file).
    func bytes(at offset: Int, length: Int) -> [UInt8] {
        let n = max(0, min(length, count - offset))
        guard n > 0, let base else { return [] }
        return Array(UnsafeRawBufferPointer(start: base + offset, count: n))
    }

    /// Unsigned integer of `width` bytes (1, 2, 4 or 8) at `offset`, in the given byte order.
    func unsigned(at offset: Int, width: Int, bigEndian: Bool) -> UInt64 {
        precondition(contains(offset: offset, length: width), "MappedFile \(path): read past end")
        var v: UInt64 = 0
        let p = base! + offset
        if bigEndian {
            for i in 0..<width { v = (v << 8) | UInt64(p.load(fromByteOffset: i, as: UInt8.self)) }
        } else {
            for i in stride(from: width - 1, through: 0, by: -1) {
                v = (v << 8) | UInt64(p.load(fromByteOffset: i, as: UInt8.self))
            }
        }
        return v
    }

    func uint16LE(at offset: Int) -> UInt16 { UInt16(unsigned(at: offset, width: 2, bigEndian: false)) }
    func uint32LE(at offset: Int) -> UInt32 { UInt32(unsigned(at: offset, width: 4, bigEndian: false)) }
    func uint64LE(at offset: Int) -> UInt64 { unsigned(at: offset, width: 8, bigEndian: false) }
    func uint32BE(at offset: Int) -> UInt32 { UInt32(unsigned(at: offset, width: 4, bigEndian: true)) }

    /// Reads `count` elements of a numeric type stored from `offset`, converted to Double. Used for
    /// label arrays, whose storage type varies by format (SVHN stores labels as doubles or smaller
    /// integer types; `.npy` labels may be int8…uint64).
    func numbers(at offset: Int, count n: Int, type: StoredNumber, bigEndian: Bool = false) -> [Double] {
        precondition(contains(offset: offset, length: n * type.byteWidth), "MappedFile \(path): read past end")
        var out = [Double](repeating: 0, count: n)
        let w = type.byteWidth
        for i in 0..<n {
            let raw = unsigned(at: offset + i * w, width: w, bigEndian: bigEndian)
            out[i] = type.decode(raw)
        }
        return out
    }

    /// Calls `body` with the bytes `offset..<offset+length` viewed as a buffer (no copy). Internal to
    /// the unsafe files of this module; the buffer must not escape.
    @inline(__always)
    func withBytes<R>(at offset: Int, length: Int, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        precondition(contains(offset: offset, length: length), "MappedFile \(path): range out of file")
        return try body(UnsafeRawBufferPointer(start: base.map { $0 + offset }, count: length))
    }
}

/// A numeric storage type found in dataset files (label arrays).
enum StoredNumber: Sendable, Equatable {
    case int8, uint8, int16, uint16, int32, uint32, int64, uint64, float32, float64

    var byteWidth: Int {
        switch self {
        case .int8, .uint8: return 1
        case .int16, .uint16: return 2
        case .int32, .uint32, .float32: return 4
        case .int64, .uint64, .float64: return 8
        }
    }

    var isInteger: Bool { self != .float32 && self != .float64 }

    /// Interprets `raw` (the low `byteWidth` bytes, already in native order) as this type.
    func decode(_ raw: UInt64) -> Double {
        switch self {
        case .int8: return Double(Int8(truncatingIfNeeded: raw))
        case .uint8: return Double(UInt8(truncatingIfNeeded: raw))
        case .int16: return Double(Int16(truncatingIfNeeded: raw))
        case .uint16: return Double(UInt16(truncatingIfNeeded: raw))
        case .int32: return Double(Int32(truncatingIfNeeded: raw))
        case .uint32: return Double(UInt32(truncatingIfNeeded: raw))
        case .int64: return Double(Int64(bitPattern: raw))
        case .uint64: return Double(raw)
        case .float32: return Double(Float(bitPattern: UInt32(truncatingIfNeeded: raw)))
        case .float64: return Double(bitPattern: raw)
        }
    }
}

/// Resident-memory figures of this process, read without Foundation (cheap enough to call per batch).
enum ProcessMemory {
    /// File-backed (+ shared memory) resident bytes: field 3 of /proc/self/statm × page size; nil off Linux.
    static func residentFileBytes() -> Int? {
        #if os(Linux)
        let fd = open("/proc/self/statm", O_RDONLY)
        if fd < 0 { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 160)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { return nil }
        var fields: [Int] = []
        var value = 0, inNumber = false
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
}
