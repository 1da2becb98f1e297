// BankFiles.swift: the bank's file operations on SystemIO, with MemoryBankError messages naming the
// path and the step: removing and durably unlinking files, the directory fsync, the translation of
// SystemIO's errors, and the single-writer lock (flock on `writer.lock`). No format knowledge here.
// Segment and manifest bytes are written by SystemIO's AtomicFileWriter / AtomicFile.

import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SystemIO

/// File operations of the writer, failing with `MemoryBankError.io`.
enum BankFiles {
    /// Removes `path`; a missing file is not an error.
    static func remove(_ path: String) throws(MemoryBankError) {
        do { try FileSystem.remove(path) } catch { throw .io(error) }
    }

    /// Makes renames and unlinks in `directory` durable.
    static func syncDirectory(_ directory: String) throws(MemoryBankError) {
        do { try FileSystem.syncDirectory(directory) } catch { throw .io(error) }
    }
}

extension MemoryBankError {
    /// A SystemIO failure as the bank's `.io` error (same path, step and reason).
    static func io(_ e: SystemIOError) -> MemoryBankError {
        .io(path: e.path, operation: e.operation, reason: e.reason)
    }
}

/// The single-writer lock: an exclusive, non-blocking flock on `writer.lock`, held while the file
/// descriptor is open (released by the kernel if the process dies).
final class WriterLock {
    private var fd: Int32

    init(directory: String) throws(MemoryBankError) {
        let path = directory + "/" + BankLayout.lockName
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        if fd < 0 { throw .io(.posix("open lock file", path)) }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let code = errno
            _ = close(fd)
            fd = -1
            if code == EWOULDBLOCK { throw .bankLocked(path: directory) }
            throw .io(path: path, operation: "flock", reason: String(cString: strerror(code)))
        }
    }

    func release() {
        if fd >= 0 {
            _ = close(fd)
            fd = -1
        }
    }

    deinit { release() }
}
