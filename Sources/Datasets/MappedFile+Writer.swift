// MappedFile+Writer.swift: the streaming file writer used to produce dataset files (synthetic sets,
// conversions, inflated caches). Raw `write(2)` on a temporary name, then fsync + rename (systems.md
// R8), so a crash never leaves a half-written file under the final name. No mmap for writing:
// generation streams in chunks and never holds the file in RAM.

import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Sequential writer: `append` chunks, then `finish()` (fsync, rename to the final path, fsync dir).
/// If `finish()` is never called the temporary file is removed on deinit.
final class OutputFile {
    let path: String
    private let temporaryPath: String
    private var fd: Int32
    private(set) var bytesWritten: Int = 0

    init(path: String) throws {
        self.path = path
        temporaryPath = path + ".partial-\(getpid())"
        fd = open(temporaryPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        if fd < 0 {
            throw DatasetError.cannotWrite(path: path, reason: String(cString: strerror(errno)))
        }
    }

    deinit {
        if fd >= 0 {
            close(fd)
            unlink(temporaryPath)
        }
    }

    /// Appends `bytes` (loops over short writes).
    func append(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try append(raw: $0) }
    }

    /// Appends the first `count` bytes of `bytes`.
    func append(_ bytes: [UInt8], count n: Int) throws {
        precondition(n >= 0 && n <= bytes.count)
        try bytes.withUnsafeBytes { try append(raw: UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
    }

    private func append(raw: UnsafeRawBufferPointer) throws {
        guard var p = raw.baseAddress else { return }
        var left = raw.count
        while left > 0 {
            let r = write(fd, p, left)
            if r < 0 {
                if errno == EINTR { continue }
                throw DatasetError.cannotWrite(path: path, reason: String(cString: strerror(errno)))
            }
            p += r
            left -= r
            bytesWritten += r
        }
    }

    /// Flushes to disk and moves the file to its final name.
    func finish(sync: Bool = true) throws {
        precondition(fd >= 0, "OutputFile.finish called twice")
        if sync && fsync(fd) != 0 {
            throw DatasetError.cannotWrite(path: path, reason: "fsync: \(String(cString: strerror(errno)))")
        }
        close(fd)
        fd = -1
        if rename(temporaryPath, path) != 0 {
            let reason = String(cString: strerror(errno))
            unlink(temporaryPath)
            throw DatasetError.cannotWrite(path: path, reason: "rename: \(reason)")
        }
        if sync {
            let dir = (path as NSString).deletingLastPathComponent
            let dfd = open(dir.isEmpty ? "." : dir, O_RDONLY | O_DIRECTORY)
            if dfd >= 0 {
                _ = fsync(dfd)
                close(dfd)
            }
        }
    }
}
