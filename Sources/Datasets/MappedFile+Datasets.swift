// MappedFile+Datasets.swift: what Datasets adds to SystemIO's MappedFile: opening with DatasetError
// messages that say what file was expected, numeric arrays of the storage types dataset files use
// (`StoredNumber`: label arrays), and the dataset writers' error translation. No raw pointers here.

import Foundation
import SystemIO

extension MappedFile {
    /// Maps `path` read-only (`MAP_PRIVATE`) for a dataset reader.
    /// - Throws: `DatasetError.fileNotFound` / `.cannotOpen` / `.wrongFormat` (a directory) naming the
    ///   file; `expected` says what the caller was looking for.
    convenience init(path: String, expected: String) throws {
        do {
            try self.init(path: path, sharing: .private)
        } catch {
            switch error {
            case .notFound: throw DatasetError.fileNotFound(path: path, expected: expected)
            case .isDirectory: throw DatasetError.wrongFormat(path: path, expected: expected, found: "a directory")
            case .failed(let e):
                throw DatasetError.cannotOpen(path: path, reason: e.operation == "open for reading" ? e.reason : "\(e.operation) failed: \(e.reason)")
            }
        }
    }

    /// Reads `count` elements of a numeric type stored from `offset`, converted to Double. Used for
    /// label arrays, whose storage type varies by format (SVHN stores labels as doubles or smaller
    /// integer types; `.npy` labels may be int8…uint64).
    func numbers(at offset: Int, count n: Int, type: StoredNumber, bigEndian: Bool = false) -> [Double] {
        precondition(contains(offset: offset, length: n * type.byteWidth), "MappedFile \(path): read past end")
        var out = [Double](repeating: 0, count: n)
        let w = type.byteWidth
        for i in 0..<n {
            let raw = unsigned(at: offset + i * w, width: w, bigEndian: bigEndian)
            out[i] = type.decode(raw)
        }
        return out
    }

}

/// A numeric storage type found in dataset files (label arrays).
enum StoredNumber: Sendable, Equatable {
    case int8, uint8, int16, uint16, int32, uint32, int64, uint64, float32, float64

    var byteWidth: Int {
        switch self {
        case .int8, .uint8: return 1
        case .int16, .uint16: return 2
        case .int32, .uint32, .float32: return 4
        case .int64, .uint64, .float64: return 8
        }
    }

    var isInteger: Bool { self != .float32 && self != .float64 }

    /// Interprets `raw` (the low `byteWidth` bytes, already in native order) as this type.
    func decode(_ raw: UInt64) -> Double {
        switch self {
        case .int8: return Double(Int8(truncatingIfNeeded: raw))
        case .uint8: return Double(UInt8(truncatingIfNeeded: raw))
        case .int16: return Double(Int16(truncatingIfNeeded: raw))
        case .uint16: return Double(UInt16(truncatingIfNeeded: raw))
        case .int32: return Double(Int32(truncatingIfNeeded: raw))
        case .uint32: return Double(UInt32(truncatingIfNeeded: raw))
        case .int64: return Double(Int64(bitPattern: raw))
        case .uint64: return Double(raw)
        case .float32: return Double(Float(bitPattern: UInt32(truncatingIfNeeded: raw)))
        case .float64: return Double(bitPattern: raw)
        }
    }
}

/// Runs `body`, which writes the dataset file `path` through SystemIO's `AtomicFileWriter`, and reports
/// a write failure as `DatasetError.cannotWrite` naming the file and the step.
func writingDatasetFile<R>(_ path: String, _ body: () throws -> R) throws -> R {
    do {
        return try body()
    } catch let e as SystemIOError {
        throw DatasetError.cannotWrite(path: path, reason: "\(e.operation): \(e.reason)")
    }
}

extension AtomicFileWriter {
    /// A streaming writer for the dataset file `path`: bytes go to `<path>.partial-<pid>` (removed if
    /// the writer is dropped unfinished) until `commit` renames it.
    static func datasetFile(_ path: String) throws(SystemIOError) -> AtomicFileWriter {
        try AtomicFileWriter(path: path, temporaryPath: path + ".partial-\(getpid())", removesTemporaryOnDeinit: true)
    }
}
