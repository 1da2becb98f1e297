// Dataset+IDX.swift: the MNIST IDX reader (LeCun's format: big-endian header, magic 0x00000803 for
// uint8 images N×H×W, 0x00000801 for uint8 labels N, then raw bytes). Uncompressed only: `.gz` files
// get a clear error. Also the directory layout of MNIST (train-* and t10k-* files). The header is checked
// in one place (`idxHeader`): magic, rank, dimensions (overflow, zero-sized images) against the file size.

import Foundation
import SystemIO

extension Dataset {
    /// Opens an IDX images file (ubyte, 3 dimensions N×H×W) with its IDX labels file (ubyte, N).
    /// - Parameters:
    ///   - classCount: labels must lie in `0..<classCount`; nil infers `max + 1`.
    public static func openIDX(images: String, labels: String, classCount: Int? = nil,
                               name: String? = nil) throws -> Dataset {
        let imageFile = try MappedFile.openUncompressed(images, expected: "an IDX images file (idx3-ubyte)")
        let dims = try idxHeader(imageFile, rank: 3, role: "images (idx3-ubyte, N×H×W)")
        let n = dims[0], h = dims[1], w = dims[2]
        let headerBytes = 4 + 4 * 3

        let labelFile = try MappedFile.openUncompressed(labels, expected: "an IDX labels file (idx1-ubyte)")
        let labelDims = try idxHeader(labelFile, rank: 1, role: "labels (idx1-ubyte, N)")
        guard labelDims[0] == n else {
            throw DatasetError.inconsistentSize(path: labels, field: "sample count", found: "\(labelDims[0])",
                                                expected: "\(n) (the count in \(images))")
        }
        let raw = labelFile.numbers(at: 8, count: n, type: .uint8)
        let classes = try classCount ?? inferredClassCount(raw, path: labels)
        let values = try checkedLabels(raw, path: labels, classCount: classes, expected: "0...\(classes - 1)")
        let layout = PixelLayout(
            segments: [.init(file: imageFile, firstID: 0, count: n, offset: headerBytes, sampleStride: h * w)],
            strideC: h * w, strideH: w, strideW: 1)
        return Dataset(format: .idx, name: name ?? "idx \(images)", shape: ImageShape(channels: 1, height: h, width: w),
                       classCount: classes, labels: values, layout: layout, mappedFiles: [imageFile, labelFile])
    }

    /// The MNIST file names inside a directory, for the train or test part.
    static func mnistFiles(directory: String, partition: DatasetPartition) throws -> (images: String, labels: String) {
        let prefix = partition == .train ? "train" : "t10k"
        // Official names use '-'; some mirrors use '.' before idx.
        for sep in ["-", "."] {
            let images = (directory as NSString).appendingPathComponent("\(prefix)-images\(sep)idx3-ubyte")
            let labels = (directory as NSString).appendingPathComponent("\(prefix)-labels\(sep)idx1-ubyte")
            if FileManager.default.fileExists(atPath: images) || FileManager.default.fileExists(atPath: images + ".gz") {
                return (images, labels)
            }
        }
        return ((directory as NSString).appendingPathComponent("\(prefix)-images-idx3-ubyte"),
                (directory as NSString).appendingPathComponent("\(prefix)-labels-idx1-ubyte"))
    }

    /// Opens MNIST (or an MNIST-layout subset such as mnist-5k) from a directory: 10 classes.
    public static func openMNIST(directory: String, partition: DatasetPartition) throws -> Dataset {
        try checkDirectory(directory, expected: "a directory with train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-*")
        let (images, labels) = try mnistFiles(directory: directory, partition: partition)
        return try openIDX(images: images, labels: labels, classCount: 10,
                           name: "mnist \(partition.rawValue) (\(directory))")
    }

    /// Validates an IDX header of the given rank (ubyte data) and the file size; returns the dims.
    private static func idxHeader(_ f: MappedFile, rank: Int, role: String) throws -> [Int] {
        guard f.count >= 4 else {
            throw DatasetError.truncated(path: f.path, what: "the IDX magic number", expectedBytes: 4, actualBytes: f.count)
        }
        let expectedMagic = "00 00 08 0\(rank) (IDX \(role))"
        let magic = f.bytes(at: 0, upTo: 4)
        guard magic[0] == 0, magic[1] == 0, magic[2] == 0x08 else {
            throw DatasetError.badMagic(path: f.path, found: magic, expected: expectedMagic)
        }
        guard Int(magic[3]) == rank else {
            throw DatasetError.wrongFormat(path: f.path, expected: "IDX \(role)",
                                           found: "an IDX file with \(magic[3]) dimension(s)")
        }
        let headerBytes = 4 + 4 * rank
        guard f.count >= headerBytes else {
            throw DatasetError.truncated(path: f.path, what: "the IDX header", expectedBytes: headerBytes, actualBytes: f.count)
        }
        let dims = (0..<rank).map { Int(f.uint32BE(at: 4 + 4 * $0)) }
        var payload = 1, overflow = false
        for d in dims {
            let (p, o) = payload.multipliedReportingOverflow(by: d)
            payload = p
            overflow = overflow || o
        }
        let expectedSize = overflow || payload > Int.max - headerBytes ? Int.max : headerBytes + payload
        if rank == 3 && (dims[1] == 0 || dims[2] == 0) {
            throw DatasetError.inconsistentSize(path: f.path, field: "image size", found: "\(dims[1])×\(dims[2])",
                                                expected: "at least 1 row and 1 column")
        }
        if f.count < expectedSize {
            throw DatasetError.truncated(path: f.path, what: "the data of dimensions \(dims.map(String.init).joined(separator: "×"))",
                                         expectedBytes: expectedSize, actualBytes: f.count)
        }
        if f.count > expectedSize {
            throw DatasetError.inconsistentSize(path: f.path, field: "file size", found: "\(f.count) bytes",
                                                expected: "\(expectedSize) bytes (header + dimensions \(dims.map(String.init).joined(separator: "×")))")
        }
        return dims
    }

    /// Throws `.fileNotFound` / `.wrongFormat` unless `path` is an existing directory.
    static func checkDirectory(_ path: String, expected: String) throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw DatasetError.fileNotFound(path: path, expected: expected)
        }
        guard isDir.boolValue else {
            throw DatasetError.wrongFormat(path: path, expected: expected, found: "a regular file")
        }
    }
}

/// Which part of a dataset with an official train/test division to open.
public enum DatasetPartition: String, Codable, Sendable, CaseIterable {
    case train
    case test
}
