// DatasetCache.swift: where derived copies of dataset files live (uint8 copies of float `.npy`
// images; the same directory and key as MATInflate's inflated MAT-files): `$MEMLOSS_CACHE_DIR`, else
// `<tmp>/memloss-cache`, one file per source keyed by its absolute path, size and modification time.
// It does not write the copies; each reader streams its own through SystemIO's `AtomicFileWriter`.

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
    /// path, size and modification time (whole seconds).
    static func path(for source: MappedFile, suffix: String) -> String {
        let attributes = try? FileManager.default.attributesOfItem(atPath: source.path)
        let mtime = Int((attributes?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0)
        let base = ((source.path as NSString).lastPathComponent as NSString).deletingPathExtension
        var pathHash: UInt64 = 0xCBF2_9CE4_8422_2325  // FNV-1a 64 offset basis
        for b in URL(fileURLWithPath: source.path).standardizedFileURL.path.utf8 {
            pathHash = (pathHash ^ UInt64(b)) &* 0x0000_0100_0000_01B3  // FNV-1a 64 prime
        }
        return (directory as NSString).appendingPathComponent("\(base)-\(String(pathHash, radix: 16))-\(source.count)-\(mtime).\(suffix)")
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
