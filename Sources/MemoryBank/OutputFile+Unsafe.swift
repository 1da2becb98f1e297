// OutputFile+Unsafe.swift: the writer's POSIX file operations (systems.md R8): sequential and positioned
// writes that loop on short writes, fsync of files and directories, rename, unlink, and the writer's
// flock. Errors become MemoryBankError.io naming the path. No format knowledge here.

import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An open file descriptor for writing a segment. Closed on `close()` or deinit.
final class OutputFile {
    let path: String
    private var fd: Int32

    /// Creates (truncating) `path` for writing.
    init(creating path: String) throws(MemoryBankError) {
        self.path = path
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        if fd < 0 { throw OutputFile.failure("create", path) }
    }

    deinit { if fd >= 0 { _ = closeDescriptor(fd) } }

    /// Appends `bytes[range]` at the current position.
    func write(_ bytes: [UInt8], count length: Int? = nil) throws(MemoryBankError) {
        let total = length ?? bytes.count
        var done = 0
        while done < total {
            let n = bytes.withContiguousStorageIfAvailable { writeDescriptor(fd, UnsafeRawPointer($0.baseAddress! + done), total - done) } ?? -1
            if n < 0 {
                if errno == EINTR { continue }
                throw OutputFile.failure("write", path)
            }
            if n == 0 { throw .io(path: path, operation: "write", reason: "no progress (disk full?)") }
            done += n
        }
    }

    /// Writes `bytes` at `offset` without moving the position.
    func write(_ bytes: [UInt8], at offset: Int) throws(MemoryBankError) {
        var done = 0
        while done < bytes.count {
            let n = bytes.withContiguousStorageIfAvailable { pwrite(fd, UnsafeRawPointer($0.baseAddress! + done), bytes.count - done, off_t(offset + done)) } ?? -1
            if n < 0 {
                if errno == EINTR { continue }
                throw OutputFile.failure("pwrite", path)
            }
            if n == 0 { throw .io(path: path, operation: "pwrite", reason: "no progress (disk full?)") }
            done += n
        }
    }

    func sync() throws(MemoryBankError) {
        if fsync(fd) != 0 { throw OutputFile.failure("fsync", path) }
    }

    func close() throws(MemoryBankError) {
        guard fd >= 0 else { return }
        let result = closeDescriptor(fd)
        fd = -1
        if result != 0 { throw OutputFile.failure("close", path) }
    }

    // MARK: - Directory operations

    static func rename(_ from: String, to: String) throws(MemoryBankError) {
        if renameFile(from, to) != 0 { throw failure("rename to \(to)", from) }
    }

    /// Makes renames and unlinks in `directory` durable.
    static func syncDirectory(_ directory: String) throws(MemoryBankError) {
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd < 0 { throw failure("open directory", directory) }
        defer { _ = closeDescriptor(fd) }
        if fsync(fd) != 0 { throw failure("fsync directory", directory) }
    }

    /// Removes `path`; a missing file is not an error.
    static func remove(_ path: String) throws(MemoryBankError) {
        if unlink(path) != 0 && errno != ENOENT { throw failure("unlink", path) }
    }

    static func failure(_ operation: String, _ path: String) -> MemoryBankError {
        .io(path: path, operation: operation, reason: String(cString: strerror(errno)))
    }
}

/// The single-writer lock: an exclusive, non-blocking flock on `writer.lock`, held while the file
/// descriptor is open (released by the kernel if the process dies).
final class WriterLock {
    private var fd: Int32

    init(directory: String) throws(MemoryBankError) {
        let path = directory + "/" + BankLayout.lockName
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        if fd < 0 { throw OutputFile.failure("open lock file", path) }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let code = errno
            _ = closeDescriptor(fd)
            fd = -1
            if code == EWOULDBLOCK { throw .bankLocked(path: directory) }
            throw .io(path: path, operation: "flock", reason: String(cString: strerror(code)))
        }
    }

    func release() {
        if fd >= 0 {
            _ = closeDescriptor(fd)
            fd = -1
        }
    }

    deinit { release() }
}

// Free functions so that the methods named close/write/rename above do not shadow the system calls.
private func closeDescriptor(_ fd: Int32) -> Int32 { close(fd) }
private func writeDescriptor(_ fd: Int32, _ p: UnsafeRawPointer, _ n: Int) -> Int { write(fd, p, n) }
private func renameFile(_ from: String, _ to: String) -> Int32 { rename(from, to) }
