// RunDirectory+Existing.swift: whether `--out` names an existing run (issue 14 item 5: `train --out`
// on a finished run overwrote its checkpoints), and `--overwrite`'s removal of the old run's files
// before a new run starts, so the two runs' files never mix; and, for the executables (which do not
// import SystemIO), the atomic result write and the Foundation-error wording. Layout: RunDirectory.swift.

import Foundation
import SystemIO

extension RunDirectory {
    /// The entries the trainer writes in a run directory (design.md §6, Report.swift's charts, the
    /// default bank); `--overwrite` removes exactly these and leaves anything else alone.
    public static let runEntries = ["config.json", "metrics.jsonl", "checkpoints", "eval", "report.md",
                                    "loss.svg", "accuracy.svg", "bank", "distributed.json"]
    /// The entries that make a directory an existing run.
    public static let runMarkers = ["config.json", "checkpoints", "metrics.jsonl"]

    /// The run markers present in this directory (empty for a new or empty directory).
    public var existingRunMarkers: [String] {
        RunDirectory.runMarkers.filter { FileManager.default.fileExists(atPath: url.appendingPathComponent($0).path) }
    }

    /// Makes the directory ready for a new run: refuses an existing run unless `overwrite`, in which
    /// case the old run's entries (`runEntries`) are removed first.
    /// - Throws: `RunDirectoryError.existingRun`, or `.io` naming the entry that could not be removed.
    public func prepareNewRun(overwrite: Bool) throws(RunDirectoryError) {
        let markers = existingRunMarkers
        if markers.isEmpty { return }
        guard overwrite else { throw .existingRun(path: url.path, markers: markers) }
        for name in RunDirectory.runEntries {
            let entry = url.appendingPathComponent(name)
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: entry.path, isDirectory: &isDirectory) else { continue }
            do { try FileManager.default.removeItem(at: entry) } catch {
                throw .io(SystemIOError.from(error, operation: "remove the old run's \(name)", path: entry.path))
            }
        }
    }
}

// MARK: - File errors for the executables

public enum ResultFile {
    /// Writes `data` to `path` atomically (temporary file, fsync, rename).
    /// - Throws: `SystemIOError`: one line naming the path and the cause, then a hint.
    public static func write(_ data: Data, toPath path: String) throws {
        try AtomicFile.replace(Array(data), atPath: path)
    }

    /// A Foundation file error that reached the top unconverted, as path + cause + hint
    /// (`SystemIOError.fromFoundation`); nil for any other error.
    public static func describeFoundationError(_ error: any Error) -> String? {
        SystemIOError.fromFoundation(error, operation: "file operation").map(\.description)
    }
}

/// Why a run directory cannot be used for a new run.
public enum RunDirectoryError: Error, CustomStringConvertible, Equatable {
    /// The directory already holds a run (its `config.json`, `checkpoints/` or `metrics.jsonl`).
    case existingRun(path: String, markers: [String])
    case io(SystemIOError)

    public var description: String {
        switch self {
        case let .existingRun(path, markers):
            return "--out \(path) already holds a run (\(markers.joined(separator: ", "))); refusing to overwrite it\n"
                + "hint: pass --resume \(path) to continue it, --overwrite to replace it, or another --out"
        case let .io(e): return e.description
        }
    }
}
