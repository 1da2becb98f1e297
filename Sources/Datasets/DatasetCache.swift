// DatasetCache.swift: where derived copies of dataset files live (uint8 copies of float `.npy`
// images; the same directory and key as MATInflate's inflated MAT-files): `$MEMLOSS_CACHE_DIR`, else
// `<tmp>/memloss-cache`, one file per source keyed by its absolute path, size and modification time.
// Copies are written only through `write(_:_:)`: atomically (a temporary renamed on success), the
// temporary removed on any error, and temporaries of writers that died (kill -9) removed first.

import Foundation
import SystemIO

/// Names and directory of cached derived copies of dataset files.
enum DatasetCache {
    /// `$MEMLOSS_CACHE_DIR`, else `<tmp>/memloss-cache`.
    static var directory: String {
        if let dir = ProcessInfo.processInfo.environment["MEMLOSS_CACHE_DIR"], !dir.isEmpty { return dir }
        return (NSTemporaryDirectory() as NSString).appendingPathComponent("memloss-cache")
    }

    /// `<directory>/<base>-<FNV-1a of the absolute path, hex>-<size>-<mtime>.<suffix>`, where base is
    /// the source's file name without extension: a copy is reused only while the source keeps its
    /// path, size and modification time (in microseconds, so a file rewritten with the same size
    /// within one second does not reuse the copy of its old content).
    static func path(for source: MappedFile, suffix: String) -> String {
        let attributes = try? FileManager.default.attributesOfItem(atPath: source.path)
        let seconds = (attributes?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
        let mtime = seconds.isFinite && abs(seconds) < 1e12 ? Int((seconds * 1e6).rounded()) : 0
        let base = ((source.path as NSString).lastPathComponent as NSString).deletingPathExtension
        var pathHash: UInt64 = 0xCBF2_9CE4_8422_2325  // FNV-1a 64 offset basis
        for b in URL(fileURLWithPath: source.path).standardizedFileURL.path.utf8 {
            pathHash = (pathHash ^ UInt64(b)) &* 0x0000_0100_0000_01B3  // FNV-1a 64 prime
        }
        return (directory as NSString).appendingPathComponent("\(base)-\(String(pathHash, radix: 16))-\(source.count)-\(mtime).\(suffix)")
    }

    /// Writes the cache file `target` atomically: creates the directory, removes temporaries that
    /// writers no longer running left for `target`, streams `body`'s bytes to
    /// `<target>.partial-<pid>` and renames it to `target` when `body` returns. On any error (from
    /// `body` or the file system) the temporary is removed, `target` is untouched, and the error is
    /// rethrown (SystemIO failures as `DatasetError.cannotWrite` naming `target`).
    static func write(_ target: String, _ body: (AtomicFileWriter) throws -> Void) throws {
        try createDirectory()
        removeStaleTemporaries(of: target)
        try writingDatasetFile(target) {
            let out = try AtomicFileWriter.datasetFile(target)
            do {
                try body(out)
                try out.commit(sync: false)
            } catch {
                out.discard()
                throw error
            }
        }
    }

    /// Removes `<target>.partial-<pid>` files whose writer process no longer exists.
    static func removeStaleTemporaries(of target: String) {
        let dir = (target as NSString).deletingLastPathComponent
        let prefix = (target as NSString).lastPathComponent + ".partial-"
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return }
        for name in names where name.hasPrefix(prefix) {
            guard let pid = Int32(name.dropFirst(prefix.count)), pid > 0, pid != getpid() else { continue }
            if kill(pid, 0) != 0 && errno == ESRCH {
                try? FileManager.default.removeItem(atPath: (dir as NSString).appendingPathComponent(name))
            }
        }
    }

    /// Creates the cache directory if needed.
    /// - Throws: `DatasetError.cannotWrite` naming the directory.
    static func createDirectory() throws {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw DatasetError.cannotWrite(path: directory, reason: "\(error)")
        }
    }
}
