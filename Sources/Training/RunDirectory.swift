// RunDirectory.swift: the layout of a run directory (design.md §6) and the append-only metrics
// log. config.json, metrics.jsonl, checkpoints/{last,best}.safetensors (+ .state), eval/, report.md.

import Foundation
import SystemIO
import Tensors

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
    public func create() throws {
        for d in [url, checkpoints, eval] {
            try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        }
    }

    /// Writes `value` as pretty, key-sorted JSON, atomically.
    public func writeJSON<T: Encodable>(_ value: T, to file: URL) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.replace(Array(try enc.encode(value)) + [0x0A], at: file)
    }
}

/// Appends one JSON object per line to metrics.jsonl, flushing each line.
public final class MetricsLog {
    private let handle: FileHandle
    public let url: URL

    /// Opens `url` for appending. With `keepEpochsThrough`, existing lines of later epochs (from a
    /// run that crashed after its last checkpoint) are dropped first, so a resumed log has no
    /// duplicates.
    public init(url: URL, keepEpochsThrough: Int? = nil) throws {
        self.url = url
        if let keep = keepEpochsThrough, let text = try? String(contentsOf: url, encoding: .utf8) {
            let kept = text.split(separator: "\n").filter { line in
                guard let d = line.data(using: .utf8),
                      let obj = try? JSONSerialization.jsonObject(with: d) as? [String: Any],
                      let e = obj["epoch"] as? Int else { return true }
                return e <= keep
            }
            try AtomicFile.replace(Array((kept.joined(separator: "\n") + (kept.isEmpty ? "" : "\n")).utf8), at: url)
        }
        if !FileManager.default.fileExists(atPath: url.path) {
            FileManager.default.createFile(atPath: url.path, contents: nil)
        }
        handle = try FileHandle(forWritingTo: url)
        try handle.seekToEnd()
    }

    /// Appends one record (keys sorted).
    public func append(_ record: [String: Any]) {
        guard let data = try? JSONSerialization.data(withJSONObject: record, options: [.sortedKeys]) else { return }
        handle.write(data + Data([0x0A]))
    }

    deinit { try? handle.close() }

    /// Reads every record of a metrics file.
    public static func read(_ url: URL) -> [[String: Any]] {
        guard let text = try? String(contentsOf: url, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap {
            guard let d = $0.data(using: .utf8) else { return nil }
            return (try? JSONSerialization.jsonObject(with: d)) as? [String: Any]
        }
    }
}
