// Dataset+CIFAR.swift: readers for the official CIFAR binary versions. CIFAR-10 (`cifar-10-batches-bin`):
// records of 1 label byte + 3072 pixel bytes (1024 red, 1024 green, 1024 blue, each 32×32 row-major);
// train = data_batch_1..5.bin concatenated in that order, test = test_batch.bin. CIFAR-100
// (`cifar-100-binary`): records of coarse byte, fine byte, 3072 pixels; train.bin and test.bin.
// No magic numbers exist in these files, so sizes and label ranges are what is checked.

import Foundation
import SystemIO

/// Which CIFAR-100 label a dataset exposes.
public enum CIFAR100Labels: String, Codable, Sendable, CaseIterable {
    /// 100 fine classes (the usual benchmark).
    case fine
    /// 20 superclasses.
    case coarse
}

extension Dataset {
    static let cifarShape = ImageShape(channels: 3, height: 32, width: 32)

    /// Opens CIFAR-10 from `directory` (the `cifar-10-batches-bin` folder or its parent).
    public static func openCIFAR10(directory: String, partition: DatasetPartition) throws -> Dataset {
        let dir = try resolveSubdirectory(directory, official: "cifar-10-batches-bin", marker: "test_batch.bin",
                                          expected: "a cifar-10-batches-bin directory (data_batch_1..5.bin, test_batch.bin)")
        let names = partition == .train ? (1...5).map { "data_batch_\($0).bin" } : ["test_batch.bin"]
        let paths = names.map { (dir as NSString).appendingPathComponent($0) }
        return try openCIFARFiles(paths, format: .cifar10, labelBytes: 1, labelIndex: 0, classCount: 10,
                                  officialRecords: 10_000, name: "cifar10 \(partition.rawValue) (\(dir))")
    }

    /// Opens CIFAR-100 from `directory` (the `cifar-100-binary` folder or its parent).
    public static func openCIFAR100(directory: String, partition: DatasetPartition,
                                    labels: CIFAR100Labels = .fine) throws -> Dataset {
        let dir = try resolveSubdirectory(directory, official: "cifar-100-binary", marker: "test.bin",
                                          expected: "a cifar-100-binary directory (train.bin, test.bin)")
        let path = (dir as NSString).appendingPathComponent(partition == .train ? "train.bin" : "test.bin")
        return try openCIFARFiles([path], format: .cifar100, labelBytes: 2, labelIndex: labels == .coarse ? 0 : 1,
                                  classCount: labels == .coarse ? 20 : 100,
                                  officialRecords: partition == .train ? 50_000 : 10_000,
                                  name: "cifar100-\(labels.rawValue) \(partition.rawValue) (\(dir))")
    }

    /// Opens CIFAR-style record files (label bytes, then 3×32×32 CHW pixels) as one dataset, IDs
    /// running through the files in order.
    /// - Parameter officialRecords: records per file in the official release (for the error message;
    ///   files with fewer whole records are accepted, e.g. subsets).
    static func openCIFARFiles(_ paths: [String], format: DatasetFormat, labelBytes: Int, labelIndex: Int,
                               classCount: Int, officialRecords: Int, name: String) throws -> Dataset {
        let pixels = cifarShape.pixelCount
        let record = labelBytes + pixels
        let what = format == .cifar10 ? "CIFAR-10 record (1 label byte + 3072 pixel bytes)"
                                      : "CIFAR-100 record (coarse byte, fine byte, 3072 pixel bytes)"
        var files: [MappedFile] = []
        var segments: [PixelLayout.Segment] = []
        var labels: [Int32] = []
        for path in paths {
            let f = try MappedFile.openUncompressed(path, expected: "a \(format == .cifar10 ? "CIFAR-10" : "CIFAR-100") binary batch of \(record)-byte records")
            let n = f.count / record
            if f.count % record != 0 || f.count == 0 {
                // No header to compare with: a partial last record means the file was cut short.
                throw DatasetError.truncated(
                    path: path, what: "record \(n) (\(what); the official file has \(officialRecords) records)",
                    expectedBytes: (n + 1) * record, actualBytes: f.count)
            }
            labels.reserveCapacity(labels.count + n)
            for i in 0..<n {
                let value = Int(f.byte(at: i * record + labelIndex))
                guard value < classCount else {
                    throw DatasetError.labelOutOfRange(path: path, index: labels.count, found: "\(value)",
                                                       expected: "0...\(classCount - 1)")
                }
                labels.append(Int32(value))
            }
            segments.append(.init(file: f, firstID: labels.count - n, count: n, offset: labelBytes, sampleStride: record))
            files.append(f)
        }
        let layout = PixelLayout(segments: segments, strideC: 1024, strideH: 32, strideW: 1)
        return Dataset(format: format, name: name, shape: cifarShape, classCount: classCount, labels: labels,
                       layout: layout, mappedFiles: files)
    }

    /// `directory/official` if it exists and `directory` lacks `marker`; else `directory`.
    static func resolveSubdirectory(_ directory: String, official: String, marker: String, expected: String) throws -> String {
        try checkDirectory(directory, expected: expected)
        let fm = FileManager.default
        let nested = (directory as NSString).appendingPathComponent(official)
        if !fm.fileExists(atPath: (directory as NSString).appendingPathComponent(marker)),
           fm.fileExists(atPath: (nested as NSString).appendingPathComponent(marker)) {
            return nested
        }
        return directory
    }
}
