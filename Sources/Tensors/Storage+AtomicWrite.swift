// Storage+AtomicWrite.swift: crash-safe whole-file replacement with plain POSIX calls
// (systems.md recipe R8): write `<name>.tmp` in the same directory, loop on short writes, fsync,
// close, rename over the target, fsync the directory. Foundation's `.atomic` option skips the
// directory fsync (systems.md §6), hence this file. It knows nothing about file formats.

import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why an atomic replacement failed: the step, the path it concerned, and the `errno` text.
public struct AtomicWriteFailure: Error, CustomStringConvertible, Equatable {
    public var operation: String
    public var path: String
    public var reason: String

    public var description: String {
        "\(path): \(operation) failed: \(reason)\nhint: check permissions and free disk space of the directory."
    }
}

/// Crash-safe replacement of whole files (checkpoints, manifests, configs).
public enum AtomicFile {
    /// Largest byte count handed to one `write(2)` call (Linux caps a call at 0x7fff_f000 anyway).
    public static let maximumWriteChunk = 1 << 30

    /// The temporary path used while replacing `url`: `<name>.tmp` in the same directory, so the
    /// final `rename` never crosses a file system.
    public static func temporaryURL(for url: URL) -> URL {
        url.deletingLastPathComponent().appendingPathComponent(url.lastPathComponent + ".tmp")
    }

    /// Replaces the file at `url` with `bytes` so that, after a crash at any point, the path holds
    /// either the complete old content or the complete new content, never a mix.
    ///
    /// ```
    /// open(tmp, O_WRONLY|O_CREAT|O_TRUNC) → write… → fsync(tmp) → close → rename(tmp, url) → fsync(dir)
    /// ```
    /// On failure the temporary file is removed and the old file (if any) is untouched.
    ///
    /// - Parameter simulatedFailureAfterBytes: test hook: fail with EIO once this many bytes are
    ///   written, as a full disk would. `nil` in production.
    public static func replace(_ bytes: [UInt8], at url: URL, simulatedFailureAfterBytes: Int? = nil) throws(AtomicWriteFailure) {
        let path = url.path
        let tmpPath = temporaryURL(for: url).path
        let directory = url.deletingLastPathComponent().path

        let fd = open(tmpPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        if fd < 0 { throw failure("create temporary file", tmpPath) }
        var closed = false
        var renamed = false
        defer {
            if !closed { _ = close(fd) }
            if !renamed { _ = unlink(tmpPath) }
        }

        var written = 0
        let limit = simulatedFailureAfterBytes ?? Int.max
        let writeError: Int32 = bytes.withUnsafeBytes { raw -> Int32 in
            guard let base = raw.baseAddress else { return 0 }
            while written < raw.count {
                if written >= limit { return EIO }
                let chunk = min(raw.count - written, AtomicFile.maximumWriteChunk, limit - written)
                let n = write(fd, base + written, chunk)
                if n < 0 {
                    if errno == EINTR { continue }
                    return errno
                }
                if n == 0 { return EIO }
                written += n
            }
            return 0
        }
        if writeError != 0 { throw failure("write temporary file", tmpPath, code: writeError) }
        if fsync(fd) != 0 { throw failure("fsync temporary file", tmpPath) }
        closed = true
        if close(fd) != 0 { throw failure("close temporary file", tmpPath) }
        if rename(tmpPath, path) != 0 { throw failure("rename temporary file over target", path) }
        renamed = true

        // The rename is durable only once the directory entry is: fsync the directory.
        let dirFD = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dirFD < 0 { throw failure("open directory for fsync", directory) }
        defer { _ = close(dirFD) }
        if fsync(dirFD) != 0 { throw failure("fsync directory", directory) }
    }

    private static func failure(_ operation: String, _ path: String, code: Int32 = errno) -> AtomicWriteFailure {
        AtomicWriteFailure(operation: operation, path: path, reason: String(cString: strerror(code)))
    }
}
