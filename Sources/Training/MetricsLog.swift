// MetricsLog.swift: the append-only metrics log of a run (metrics.jsonl): one `MetricsLine` per line,
// flushed line by line; a typed reader; and the resume truncation (lines of epochs after the checkpoint
// and a torn last line are dropped). The schema is MetricsLine.swift and docs/metrics.md.

import Foundation
import SystemIO

/// Appends one `MetricsLine` per line to metrics.jsonl (key-sorted JSON), flushing each line.
public final class MetricsLog {
    private let handle: FileHandle
    public let url: URL

    /// Opens `url` for appending. With `keepEpochsThrough`, existing lines of later epochs (from a
    /// run that crashed after its last checkpoint) are dropped first, so a resumed log has no
    /// duplicates; a torn last line (a crash mid-write) is dropped too. `keepEpochsThrough: 0` (a
    /// fresh run) empties the file without reading it.
    /// - Throws: `MetricsLogError.line` when an earlier line does not match the schema.
    public init(url: URL, keepEpochsThrough: Int? = nil) throws {
        self.url = url
        if let keep = keepEpochsThrough, FileManager.default.fileExists(atPath: url.path) {
            let kept = keep <= 0 ? [] : try MetricsLog.read(url).filter { $0.epoch <= keep }
            let bytes = try kept.flatMap { Array(try MetricsLog.encode($0)) }
            try AtomicFile.replace(bytes, at: url)
        }
        if !FileManager.default.fileExists(atPath: url.path) {
            _ = FileManager.default.createFile(atPath: url.path, contents: nil)
        }
        handle = try FileHandle(forWritingTo: url)
        try handle.seekToEnd()
    }

    /// Opens `url` for appending after cutting it to its first `bytes` bytes: the length a
    /// checkpoint commit recorded, so a resumed log holds exactly the lines of the committed steps.
    /// A file shorter than `bytes` (lines lost after the commit said they were durable) is an error.
    public convenience init(url: URL, truncatingTo bytes: Int) throws {
        let fm = FileManager.default
        let size = ((try? fm.attributesOfItem(atPath: url.path))?[.size] as? NSNumber)?.intValue ?? 0
        guard size >= bytes else {
            throw MetricsLogError.truncated(path: url.path, expected: bytes, found: size)
        }
        if size > bytes {
            let h = try FileHandle(forWritingTo: url)
            try h.truncate(atOffset: UInt64(bytes))
            try h.synchronize()
            try h.close()
        }
        try self.init(url: url)
    }

    /// Appends one line.
    public func append(_ line: MetricsLine) throws {
        try handle.write(contentsOf: try MetricsLog.encode(line))
    }

    /// Makes every appended line durable (fsync), as a checkpoint commit needs before it records
    /// the log's length.
    public func sync() throws { try handle.synchronize() }

    /// The log's length in bytes (its append position).
    public func byteCount() throws -> Int { Int(try handle.offset()) }

    deinit { try? handle.close() }

    /// A line as key-sorted JSON and a newline.
    static func encode(_ line: MetricsLine) throws -> Data {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        return try enc.encode(line) + Data([0x0A])
    }

    /// Every line of a metrics file, decoded with the schema (a missing file has none). A last line
    /// without its newline that does not decode is a torn write and is left out.
    public static func read(_ url: URL) throws -> [MetricsLine] {
        guard let data = FileManager.default.contents(atPath: url.path) else { return [] }
        let complete = data.last == 0x0A
        let lines = data.split(separator: 0x0A, omittingEmptySubsequences: true)
        var out: [MetricsLine] = []
        let dec = JSONDecoder()
        for (i, line) in lines.enumerated() {
            do { out.append(try dec.decode(MetricsLine.self, from: Data(line))) } catch {
                if i == lines.count - 1 && !complete { break }
                throw MetricsLogError.line(path: url.path, number: i + 1, reason: MetricsLogError.describe(error))
            }
        }
        return out
    }
}

public enum MetricsLogError: Error, CustomStringConvertible {
    case line(path: String, number: Int, reason: String)
    case truncated(path: String, expected: Int, found: Int)

    public var description: String {
        switch self {
        case .line(let p, let n, let r):
            return "\(p) line \(n) is not a metrics line: \(r)\nhint: the schema is in docs/metrics.md"
        case .truncated(let p, let e, let f):
            return "\(p) holds \(f) bytes but the checkpoint committed \(e): lines the checkpoint counted are missing\n"
                + "hint: the file was cut or replaced after the run stopped; restore it, or start the run again"
        }
    }

    /// A decoding error as "field 'a.b': what".
    static func describe(_ error: Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, let ctx):
            return "field '\((ctx.codingPath.map(\.stringValue) + [key.stringValue]).joined(separator: "."))' is missing"
        case DecodingError.typeMismatch(_, let ctx), DecodingError.valueNotFound(_, let ctx), DecodingError.dataCorrupted(let ctx):
            let field = ctx.codingPath.map(\.stringValue).joined(separator: ".")
            return (field.isEmpty ? "" : "field '\(field)': ") + ctx.debugDescription
        default:
            return "\(error)"
        }
    }
}
