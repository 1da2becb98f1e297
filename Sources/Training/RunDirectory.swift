// RunDirectory.swift: the layout of a run directory (design.md §6): config.json, metrics.jsonl
// (written by MetricsLog.swift), checkpoints/{last,best}.safetensors (+ .state), eval/, report.md.

import Foundation
import SystemIO

public struct RunDirectory: Sendable {
    public let url: URL
    public init(_ url: URL) { self.url = url }

    public var config: URL { url.appendingPathComponent("config.json") }
    public var metrics: URL { url.appendingPathComponent("metrics.jsonl") }
    public var checkpoints: URL { url.appendingPathComponent("checkpoints") }
    public var lastCheckpoint: URL { checkpoints.appendingPathComponent("last.safetensors") }
    public var bestCheckpoint: URL { checkpoints.appendingPathComponent("best.safetensors") }
    public var eval: URL { url.appendingPathComponent("eval") }
    public var report: URL { url.appendingPathComponent("report.md") }

    /// Creates the directory tree (idempotent).
    /// - Throws: `SystemIOError` naming the directory and the cause (below a regular file, permission
    ///   denied, read-only file system, …) with a hint; never Foundation's raw error.
    public func create() throws(SystemIOError) {
        for d in [url, checkpoints, eval] {
            do { try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true) } catch {
                throw SystemIOError.from(error, operation: "create directory", path: d.path)
            }
        }
    }

    /// Writes `value` as pretty, key-sorted JSON, atomically.
    public func writeJSON<T: Encodable>(_ value: T, to file: URL) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        let bytes: Data
        do { bytes = try enc.encode(value) } catch {
            throw SystemIOError(operation: "encode JSON", path: file.path, reason: "\(error)")
        }
        try AtomicFile.replace(Array(bytes) + [0x0A], at: file)
    }
}
