// AtomicFile+Unsafe.swift: the one crash-safe file writer (systems.md recipe R8): write a temporary
// name in the same directory, loop on short writes, fsync the file, close, rename over the target,
// fsync the directory. A streaming form (`AtomicFileWriter`: sequential appends plus positioned
// patches, for dataset files and bank segments far larger than RAM) and a whole-bytes form
// (`AtomicFile.replace`, for checkpoints, manifests, configs). Foundation's `.atomic` option skips the
// directory fsync (systems.md §6), hence this file. It knows nothing about file formats.

import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A file written under a temporary name and moved to its final name by `commit`, so that after a
/// crash at any point the final path holds either its complete old content (or nothing) or the
/// complete new content, never a mix:
///
/// ```
/// open(tmp, O_WRONLY|O_CREAT|O_TRUNC) → write… → fsync(tmp) → close → rename(tmp, path) → fsync(dir)
/// ```
///
/// Not thread-safe: one thread writes at a time (callers order their threads).
public final class AtomicFileWriter {
    /// The final path.
    public let path: String
    /// Where the bytes go until `commit` (same directory as `path`, so `rename` never crosses a file system).
    public let temporaryPath: String
    /// Bytes appended so far (positioned writes do not count).
    public private(set) var bytesWritten = 0
    private var fd: Int32
    private let removesTemporaryOnDeinit: Bool
    /// Test hook: fail with EIO once this many bytes were appended, as a full disk would.
    private let failureLimit: Int

    /// Largest byte count handed to one `write(2)` call (Linux caps a call at 0x7fff_f000 anyway).
    public static let maximumWriteChunk = 1 << 30

    /// Creates (truncating) the temporary file for `path`.
    /// - Parameters:
    ///   - temporaryPath: defaults to `<path>.tmp`.
    ///   - removesTemporaryOnDeinit: when the writer is dropped without `commit`/`discard`, delete
    ///     the temporary file (true) or only close it (false: a crashed writer's leftover that the
    ///     owner's recovery knows how to recognise, as the bank's `.tmp` segments).
    ///   - simulatedFailureAfterBytes: test hook: appends fail with EIO once this many bytes were
    ///     written. nil in production.
    /// - Throws: `SystemIOError` with operation "create temporary file".
    public init(path: String, temporaryPath: String? = nil, removesTemporaryOnDeinit: Bool = true,
                simulatedFailureAfterBytes: Int? = nil) throws(SystemIOError) {
        self.path = path
        let tmp = temporaryPath ?? path + ".tmp"
        self.temporaryPath = tmp
        self.removesTemporaryOnDeinit = removesTemporaryOnDeinit
        failureLimit = simulatedFailureAfterBytes ?? Int.max
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        if fd < 0 { throw .posix("create temporary file", tmp) }
    }

    /// Reopens an existing temporary file left by an earlier writer (a resumed bank segment): cuts it
    /// to `length` bytes and appends from there (`bytesWritten` = `length`). Nothing is created.
    /// - Throws: operations "reopen temporary file", "truncate temporary file", "seek temporary file".
    public init(continuing path: String, temporaryPath: String, length: Int,
                removesTemporaryOnDeinit: Bool = true) throws(SystemIOError) {
        self.path = path
        self.temporaryPath = temporaryPath
        self.removesTemporaryOnDeinit = removesTemporaryOnDeinit
        failureLimit = Int.max
        fd = open(temporaryPath, O_WRONLY | O_CLOEXEC)
        if fd < 0 { throw .posix("reopen temporary file", temporaryPath) }
        if ftruncate(fd, off_t(length)) != 0 {
            let e = SystemIOError.posix("truncate temporary file", temporaryPath)
            _ = closeDescriptor(fd)
            fd = -1
            throw e
        }
        if lseek(fd, off_t(length), SEEK_SET) < 0 {
            let e = SystemIOError.posix("seek temporary file", temporaryPath)
            _ = closeDescriptor(fd)
            fd = -1
            throw e
        }
        bytesWritten = length
    }

    deinit {
        if fd >= 0 {
            _ = closeDescriptor(fd)
            if removesTemporaryOnDeinit { _ = unlink(temporaryPath) }
        }
    }

    /// Appends the first `count` bytes of `bytes` (all by default), looping over short writes.
    /// - Throws: operation "write temporary file".
    public func append(_ bytes: [UInt8], count: Int? = nil) throws(SystemIOError) {
        let n = count ?? bytes.count
        precondition(n >= 0 && n <= bytes.count, "AtomicFileWriter: count \(n) outside 0...\(bytes.count)")
        let code: Int32 = bytes.withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { return 0 }
            return appendRaw(base, n)
        }
        if code != 0 { throw .posix("write temporary file", temporaryPath, code: code) }
    }

    /// Writes `bytes` at `offset` without moving the append position (patching a header).
    /// - Throws: operation "pwrite temporary file".
    public func write(_ bytes: [UInt8], at offset: Int) throws(SystemIOError) {
        precondition(fd >= 0, "AtomicFileWriter: write after commit or discard")
        let code: Int32 = bytes.withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { return 0 }
            var done = 0
            while done < raw.count {
                let r = pwrite(fd, base + done, min(raw.count - done, AtomicFileWriter.maximumWriteChunk), off_t(offset + done))
                if r < 0 {
                    if errno == EINTR { continue }
                    return errno
                }
                if r == 0 { return EIO }
                done += r
            }
            return 0
        }
        if code != 0 { throw .posix("pwrite temporary file", temporaryPath, code: code) }
    }

    /// fsyncs the temporary file and keeps it open for more appends (a durable intermediate state).
    /// - Throws: operation "fsync temporary file".
    public func sync() throws(SystemIOError) {
        precondition(fd >= 0, "AtomicFileWriter: sync after commit or discard")
        if fsync(fd) != 0 { throw .posix("fsync temporary file", temporaryPath) }
    }

    /// Flushes the file (`sync`), closes it, renames it to `path`, and fsyncs the directory so the
    /// rename is durable. With `sync: false` only close and rename (caches that can be rebuilt).
    /// On failure the temporary file is removed and the old file at `path` (if any) is untouched.
    public func commit(sync: Bool = true) throws(SystemIOError) {
        precondition(fd >= 0, "AtomicFileWriter: commit after commit or discard")
        if sync && fsync(fd) != 0 {
            let e = SystemIOError.posix("fsync temporary file", temporaryPath)
            discard()
            throw e
        }
        let closed = closeDescriptor(fd)
        fd = -1
        if closed != 0 {
            let e = SystemIOError.posix("close temporary file", temporaryPath)
            _ = unlink(temporaryPath)
            throw e
        }
        if renameFile(temporaryPath, path) != 0 {
            let e = SystemIOError.posix("rename temporary file over target", path)
            _ = unlink(temporaryPath)
            throw e
        }
        if sync { try FileSystem.syncDirectory(FileSystem.directory(of: path)) }
    }

    /// Closes and deletes the temporary file (abandon). Idempotent; the final path is untouched.
    public func discard() {
        guard fd >= 0 else { return }
        _ = closeDescriptor(fd)
        fd = -1
        _ = unlink(temporaryPath)
    }

    /// Closes the file and leaves the temporary file in place (the crash simulation of tests).
    public func closeLeavingTemporary() {
        guard fd >= 0 else { return }
        _ = closeDescriptor(fd)
        fd = -1
    }

    /// The write loop; returns 0 or the errno that stopped it.
    private func appendRaw(_ base: UnsafeRawPointer, _ count: Int) -> Int32 {
        precondition(fd >= 0, "AtomicFileWriter: append after commit or discard")
        var done = 0
        while done < count {
            if bytesWritten >= failureLimit { return EIO }
            let chunk = min(count - done, AtomicFileWriter.maximumWriteChunk, failureLimit - bytesWritten)
            let r = writeDescriptor(fd, base + done, chunk)
            if r < 0 {
                if errno == EINTR { continue }
                return errno
            }
            if r == 0 { return EIO }
            done += r
            bytesWritten += r
        }
        return 0
    }
}

/// Crash-safe replacement of whole files (checkpoints, manifests, configs, reports).
public enum AtomicFile {
    /// The temporary path used while replacing `path`: `<name>.tmp` in the same directory.
    public static func temporaryPath(for path: String) -> String { path + ".tmp" }

    /// `replace(_:atPath:)` for a file URL.
    public static func replace(_ bytes: [UInt8], at url: URL, simulatedFailureAfterBytes: Int? = nil) throws(SystemIOError) {
        try replace(bytes, atPath: url.path, simulatedFailureAfterBytes: simulatedFailureAfterBytes)
    }

    /// Replaces the file at `path` with `bytes` (`AtomicFileWriter`: temp, write, fsync, rename,
    /// fsync dir). On failure the temporary file is removed and the old file (if any) is untouched.
    /// - Parameter simulatedFailureAfterBytes: test hook: fail with EIO once this many bytes are
    ///   written, as a full disk would. nil in production.
    public static func replace(_ bytes: [UInt8], atPath path: String, simulatedFailureAfterBytes: Int? = nil) throws(SystemIOError) {
        let writer = try AtomicFileWriter(path: path, temporaryPath: temporaryPath(for: path),
                                          simulatedFailureAfterBytes: simulatedFailureAfterBytes)
        do {
            try writer.append(bytes)
            try writer.commit()
        } catch {
            writer.discard()
            throw error
        }
    }
}

/// Directory-level operations of the writers: durable renames and removals.
public enum FileSystem {
    /// Makes renames and unlinks in `directory` durable (`fsync` of the directory).
    public static func syncDirectory(_ directory: String) throws(SystemIOError) {
        let path = directory.isEmpty ? "." : directory
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd < 0 { throw .posix("open directory for fsync", path) }
        defer { _ = closeDescriptor(fd) }
        if fsync(fd) != 0 { throw .posix("fsync directory", path) }
    }

    /// Renames `from` to `to` (atomic within one file system).
    public static func rename(_ from: String, to: String) throws(SystemIOError) {
        if renameFile(from, to) != 0 { throw .posix("rename to \(to)", from) }
    }

    /// Removes `path`; a missing file is not an error.
    public static func remove(_ path: String) throws(SystemIOError) {
        if unlink(path) != 0 && errno != ENOENT { throw .posix("unlink", path) }
    }

    /// The directory part of `path` ("" for a bare name).
    public static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "" }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }
}

// Free functions so that methods named write/rename above do not shadow the system calls.
private func closeDescriptor(_ fd: Int32) -> Int32 { close(fd) }
private func writeDescriptor(_ fd: Int32, _ p: UnsafeRawPointer, _ n: Int) -> Int { write(fd, p, n) }
private func renameFile(_ from: String, _ to: String) -> Int32 { rename(from, to) }
