// MappedFile.swift: the one read-only memory mapping of a whole file (open, fstat, mmap PROT_READ,
// madvise, munmap) with bounds-checked byte and integer accessors. Datasets (image files) and
// MemoryBank (sealed segments) both read through it. One of SystemIO's files allowed raw pointers
// (style.md §4); it knows nothing about any file format.
// Pages come in on demand and can be dropped again (`releaseResidentPages`), so resident memory stays
// bounded while reading files much larger than RAM.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A whole file mapped read-only. Immutable and safe to read from several threads.
///
/// The mapping lives until the object is deinitialised (`munmap`). Readers keep the object, never the
/// pointer. A file unlinked while mapped stays readable through the mapping; a file *truncated*
/// while mapped makes later reads fault (SIGBUS), so mapped files are treated as read-only inputs.
public final class MappedFile: @unchecked Sendable {
    /// `MAP_PRIVATE` or `MAP_SHARED`. For a read-only mapping both read the same bytes; a shared
    /// mapping sees later writes by other processes to the file (the bank maps its segments shared,
    /// the datasets private).
    public enum Sharing: Sendable {
        case `private`, shared
    }

    /// The access pattern hinted to the kernel (`madvise`).
    public enum Access: Sendable {
        /// No hint (the kernel's read-ahead default).
        case normal
        /// `MADV_SEQUENTIAL`: aggressive read-ahead, pages dropped soon after use.
        case sequential
        /// `MADV_RANDOM`: no read-ahead (lookups by ID jump around).
        case random
    }

    /// Why `init` refused the path (the callers word their own messages from these).
    public enum OpenFailure: Error, Sendable, Equatable {
        /// Nothing exists at the path.
        case notFound(SystemIOError)
        /// The path is a directory.
        case isDirectory(path: String)
        /// `open`, `fstat` or `mmap` failed.
        case failed(SystemIOError)
    }

    /// The path the file was opened with (used in error messages).
    public let path: String
    /// Length in bytes.
    public let count: Int
    /// Base of the mapping; nil for an empty file (mmap rejects length 0).
    private let base: UnsafeRawPointer?

    /// Maps the whole file at `path` read-only (`PROT_READ`) and hints `access`.
    /// - Throws: `.notFound` (ENOENT), `.isDirectory`, or `.failed` naming the step (`open`,
    ///   `stat`, `mmap`) and the `errno` text.
    public init(path: String, sharing: Sharing = .private, access: Access = .normal) throws(OpenFailure) {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            let code = errno
            if code == ENOENT { throw .notFound(.posix("open for reading", path, code: code)) }
            throw .failed(.posix("open for reading", path, code: code))
        }
        defer { close(fd) }
        var info = stat()
        if fstat(fd, &info) != 0 { throw .failed(.posix("stat", path)) }
        if (info.st_mode & S_IFMT) == S_IFDIR { throw .isDirectory(path: path) }
        count = Int(info.st_size)
        if count == 0 {
            base = nil
            return
        }
        let flags = sharing == .shared ? MAP_SHARED : MAP_PRIVATE
        let p = mmap(nil, count, PROT_READ, flags, fd, 0)
        if p == MAP_FAILED || p == nil { throw .failed(.posix("mmap", path)) }
        base = UnsafeRawPointer(p!)
        if access != .normal { advise(access) }
    }

    deinit {
        if let base { munmap(UnsafeMutableRawPointer(mutating: base), count) }
    }

    /// Size of the file at `path`, or nil if nothing is there.
    public static func size(ofFileAt path: String) -> Int? {
        var info = stat()
        return stat(path, &info) == 0 ? Int(info.st_size) : nil
    }

    // MARK: - Residency

    /// Drops this process's page-table entries for the whole mapping (`MADV_DONTNEED`): resident
    /// memory (RssFile) falls back, the kernel's page cache keeps the data, and the next access
    /// refaults it (a minor fault when cached). Safe while other threads read: a read-only file
    /// mapping loses nothing, they simply refault.
    public func releaseResidentPages() {
        guard let base else { return }
        _ = madvise(UnsafeMutableRawPointer(mutating: base), count, MADV_DONTNEED)
    }

    /// Access-pattern hint for the whole mapping.
    public func advise(_ access: Access) {
        guard let base else { return }
        let advice: Int32
        switch access {
        case .normal: advice = MADV_NORMAL
        case .sequential: advice = MADV_SEQUENTIAL
        case .random: advice = MADV_RANDOM
        }
        _ = madvise(UnsafeMutableRawPointer(mutating: base), count, advice)
    }

    // MARK: - Bounds-checked reads

    /// True if `offset..<offset+length` lies inside the file.
    @inline(__always)
    public func contains(offset: Int, length: Int) -> Bool {
        offset >= 0 && length >= 0 && offset <= count && length <= count - offset
    }

    /// The byte at `offset`. - Precondition: inside the file.
    @inline(__always)
    public func byte(at offset: Int) -> UInt8 {
        precondition(offset >= 0 && offset < count, "MappedFile \(path): byte offset \(offset) out of 0..<\(count)")
        return base!.load(fromByteOffset: offset, as: UInt8.self)
    }

    /// A copy of `length` bytes from `offset`, clipped to the end of the file (so a short file gives
    /// fewer bytes: format sniffing reads "up to n bytes").
    public func bytes(at offset: Int, upTo length: Int) -> [UInt8] {
        let n = max(0, min(length, count - offset))
        guard n > 0, offset >= 0, let base else { return [] }
        return Array(UnsafeRawBufferPointer(start: base + offset, count: n))
    }

    /// A copy of exactly `length` bytes at `offset`. - Precondition: the range is inside the file.
    public func bytes(at offset: Int, count length: Int) -> [UInt8] {
        precondition(contains(offset: offset, length: length), "MappedFile \(path): \(offset)+\(length) outside \(count) bytes")
        guard length > 0, let base else { return [] }
        return Array(UnsafeRawBufferPointer(start: base + offset, count: length))
    }

    /// Unsigned integer of `width` bytes (1…8) at `offset`, in the given byte order.
    /// - Precondition: inside the file.
    public func unsigned(at offset: Int, width: Int, bigEndian: Bool) -> UInt64 {
        precondition(width >= 1 && width <= 8 && contains(offset: offset, length: width), "MappedFile \(path): read past end")
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

    public func uint16LE(at offset: Int) -> UInt16 { UInt16(unsigned(at: offset, width: 2, bigEndian: false)) }
    public func uint32LE(at offset: Int) -> UInt32 { UInt32(unsigned(at: offset, width: 4, bigEndian: false)) }
    public func uint32BE(at offset: Int) -> UInt32 { UInt32(unsigned(at: offset, width: 4, bigEndian: true)) }

    /// The little-endian u64 at `offset` (one unaligned load). - Precondition: inside the file.
    @inline(__always)
    public func uint64LE(at offset: Int) -> UInt64 {
        precondition(contains(offset: offset, length: 8), "MappedFile \(path): u64 at \(offset) outside \(count) bytes")
        return UInt64(littleEndian: base!.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    /// Calls `body` with the bytes `offset..<offset+length` viewed in place (no copy). The buffer must
    /// not escape `body`. - Precondition: the range is inside the file.
    @inline(__always)
    public func withBytes<R, E: Error>(at offset: Int, length: Int,
                                       _ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        precondition(contains(offset: offset, length: length), "MappedFile \(path): \(offset)+\(length) outside \(count) bytes")
        return try body(UnsafeRawBufferPointer(start: base.map { $0 + offset }, count: length))
    }
}
