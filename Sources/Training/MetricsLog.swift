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

    /// Appends one line.
    public func append(_ line: MetricsLine) throws {
        handle.write(try MetricsLog.encode(line))
    }

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

    public var description: String {
        switch self {
        case .line(let p, let n, let r):
            return "\(p) line \(n) is not a metrics line: \(r)\nhint: the schema is in docs/metrics.md"
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
