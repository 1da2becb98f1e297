// DataSource.swift: the data spec users write (`--data cifar10:DIR`, `demo`, …): parsing into a typed
// enum, a canonical string form, and opening the train or test part. The default `demo` is the real
// MNIST subset embedded in this module as a resource (Resources/mnist-5k, see its ATTRIBUTION.md).
// No reading logic here beyond dispatching to the Dataset readers.

import Foundation
import SystemIO

/// Where a run's data comes from.
///
/// Spec strings (`DataSource(parsing:)`):
/// ```
/// demo                                   embedded mnist-5k (train 4,000 / test 1,000)
/// mnist:DIR                              train-images-idx3-ubyte, …, t10k-labels-idx1-ubyte
/// cifar10:DIR                            cifar-10-batches-bin (or its parent)
/// cifar100:DIR[:fine|:coarse]            cifar-100-binary (or its parent); fine by default
/// svhn:DIR                               train_32x32.mat, test_32x32.mat
/// npy:IMAGES,LABELS[,TEST_IMAGES,TEST_LABELS][:nhwc|:nchw]
/// synthetic:FILE[,TEST_FILE]             .mlds files (memloss data synth)
/// PATH                                   a directory of one of the layouts above, or a .mlds file
/// ```
public enum DataSource: Hashable, Sendable, CustomStringConvertible {
    case demo
    case mnist(directory: String)
    case cifar10(directory: String)
    case cifar100(directory: String, labels: CIFAR100Labels)
    case svhn(directory: String)
    case npy(train: NPYFiles, test: NPYFiles?, layout: NPYLayout)
    case synthetic(train: String, test: String?)

    /// An images `.npy` and its labels `.npy`.
    public struct NPYFiles: Hashable, Sendable {
        public var images: String
        public var labels: String
        public init(images: String, labels: String) {
            self.images = images
            self.labels = labels
        }
    }

    /// Parses a spec string (see the type's documentation).
    /// - Throws: `DatasetError.badSpec` naming the spec and what is wrong.
    public init(parsing raw: String) throws {
        let spec = raw.trimmingCharacters(in: .whitespaces)
        if spec.isEmpty { throw DatasetError.badSpec(spec: raw, reason: "empty spec") }
        if spec == "demo" {
            self = .demo
            return
        }
        guard let colon = spec.firstIndex(of: ":") else {
            self = try DataSource.detect(path: spec, spec: raw)
            return
        }
        let kind = spec[..<colon].lowercased()
        let rest = String(spec[spec.index(after: colon)...])
        func nonEmpty(_ s: String, _ what: String) throws -> String {
            if s.isEmpty { throw DatasetError.badSpec(spec: raw, reason: "missing \(what) after '\(kind):'") }
            return s
        }
        switch kind {
        case "mnist": self = .mnist(directory: try nonEmpty(rest, "directory"))
        case "cifar10": self = .cifar10(directory: try nonEmpty(rest, "directory"))
        case "cifar100":
            var dir = rest, labels = CIFAR100Labels.fine
            if let last = rest.lastIndex(of: ":") {
                let suffix = rest[rest.index(after: last)...].lowercased()
                guard let l = CIFAR100Labels(rawValue: suffix) else {
                    throw DatasetError.badSpec(spec: raw, reason: "unknown CIFAR-100 label set '\(suffix)' (fine or coarse)")
                }
                labels = l
                dir = String(rest[..<last])
            }
            self = .cifar100(directory: try nonEmpty(dir, "directory"), labels: labels)
        case "svhn": self = .svhn(directory: try nonEmpty(rest, "directory"))
        case "npy":
            var files = rest, layout = NPYLayout.auto
            if let last = rest.lastIndex(of: ":") {
                let suffix = rest[rest.index(after: last)...].lowercased()
                guard let l = NPYLayout(rawValue: suffix) else {
                    throw DatasetError.badSpec(spec: raw, reason: "unknown .npy layout '\(suffix)' (nhwc, nchw or auto)")
                }
                layout = l
                files = String(rest[..<last])
            }
            let parts = files.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            guard parts.count == 2 || parts.count == 4, !parts.contains(where: \.isEmpty) else {
                throw DatasetError.badSpec(spec: raw, reason: "npy needs IMAGES.npy,LABELS.npy (and optionally TEST_IMAGES.npy,TEST_LABELS.npy), got \(parts.count) path(s)")
            }
            let test = parts.count == 4 ? NPYFiles(images: parts[2], labels: parts[3]) : nil
            self = .npy(train: NPYFiles(images: parts[0], labels: parts[1]), test: test, layout: layout)
        case "synthetic", "mlds":
            let parts = rest.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            guard (1...2).contains(parts.count), !parts.contains(where: \.isEmpty) else {
                throw DatasetError.badSpec(spec: raw, reason: "synthetic needs FILE or FILE,TEST_FILE")
            }
            self = .synthetic(train: parts[0], test: parts.count == 2 ? parts[1] : nil)
        default:
            // Not a known prefix: maybe a path containing ':'.
            if FileManager.default.fileExists(atPath: spec) {
                self = try DataSource.detect(path: spec, spec: raw)
                return
            }
            throw DatasetError.badSpec(spec: raw, reason: "unknown data kind '\(kind)'")
        }
    }

    /// Recognises a bare path: a directory in one of the official layouts, or a `.mlds` file.
    static func detect(path: String, spec: String) throws -> DataSource {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: path, isDirectory: &isDir) else {
            throw DatasetError.badSpec(spec: spec, reason: "no such file or directory, and not a known spec form")
        }
        func has(_ name: String) -> Bool { fm.fileExists(atPath: (path as NSString).appendingPathComponent(name)) }
        if isDir.boolValue {
            if has("data_batch_1.bin") || has("cifar-10-batches-bin") { return .cifar10(directory: path) }
            if has("cifar-100-binary") || (has("train.bin") && has("test.bin")) { return .cifar100(directory: path, labels: .fine) }
            if has("train_32x32.mat") || has("test_32x32.mat") { return .svhn(directory: path) }
            if ["train-images-idx3-ubyte", "t10k-images-idx3-ubyte", "train-images.idx3-ubyte",
                "train-images-idx3-ubyte.gz"].contains(where: has) {
                return .mnist(directory: path)
            }
            throw DatasetError.badSpec(spec: spec, reason: "directory matches no known layout (MNIST IDX, CIFAR-10/100 binary, SVHN .mat)")
        }
        if path.hasSuffix(".mlds") { return .synthetic(train: path, test: nil) }
        if let f = try? MappedFile(path: path, expected: "a dataset file"), f.bytes(at: 0, upTo: 8) == MLDSHeader.magic {
            return .synthetic(train: path, test: nil)
        }
        throw DatasetError.badSpec(spec: spec, reason: "a bare file path must be a .mlds file; use a prefix such as npy: or svhn: for other files")
    }

    /// The canonical spec string (parses back to the same value).
    public var description: String {
        switch self {
        case .demo: return "demo"
        case let .mnist(d): return "mnist:\(d)"
        case let .cifar10(d): return "cifar10:\(d)"
        case let .cifar100(d, l): return "cifar100:\(d):\(l.rawValue)"
        case let .svhn(d): return "svhn:\(d)"
        case let .npy(train, test, layout):
            var s = "npy:\(train.images),\(train.labels)"
            if let test { s += ",\(test.images),\(test.labels)" }
            return layout == .auto ? s : s + ":\(layout.rawValue)"
        case let .synthetic(train, test): return "synthetic:\(train)" + (test.map { ",\($0)" } ?? "")
        }
    }

    /// Opens the train or test part.
    /// - Throws: `DatasetError` from the reader, or `.noTestSet` when the spec has no test files.
    public func open(_ partition: DatasetPartition = .train) throws -> Dataset {
        switch self {
        case .demo:
            return try Dataset.openMNIST(directory: DataSource.demoDirectory, partition: partition)
                .renamed("demo (embedded mnist-5k) \(partition.rawValue)")
        case let .mnist(d): return try Dataset.openMNIST(directory: d, partition: partition)
        case let .cifar10(d): return try Dataset.openCIFAR10(directory: d, partition: partition)
        case let .cifar100(d, l): return try Dataset.openCIFAR100(directory: d, partition: partition, labels: l)
        case let .svhn(d): return try Dataset.openSVHN(directory: d, partition: partition)
        case let .npy(train, test, layout):
            guard let files = partition == .train ? train : test else { throw DatasetError.noTestSet(spec: description) }
            return try Dataset.openNPY(images: files.images, labels: files.labels, layout: layout,
                                       name: "npy \(partition.rawValue) (\(files.images))")
        case let .synthetic(train, test):
            guard let file = partition == .train ? train : test else { throw DatasetError.noTestSet(spec: description) }
            return try Dataset.openMLDS(file: file, name: "synthetic \(partition.rawValue) (\(file))")
        }
    }

    /// True if `open(.test)` can succeed without a separate file.
    public var hasTestSet: Bool {
        switch self {
        case let .npy(_, test, _): return test != nil
        case let .synthetic(_, test): return test != nil
        default: return true
        }
    }

    /// The augmentation a run uses by default for this source (CIFAR: crop + flip; others: none).
    public var standardAugmentation: AugmentationConfig {
        switch self {
        case .cifar10, .cifar100: return .cifar
        default: return .none
        }
    }

    /// Directory of the embedded mnist-5k resource.
    public static var demoDirectory: String {
        Bundle.module.url(forResource: "mnist-5k", withExtension: nil)?.path
            ?? Bundle.module.bundleURL.appendingPathComponent("mnist-5k").path
    }
}

extension Dataset {
    /// The same dataset with another display name (shares the mappings).
    func renamed(_ newName: String) -> Dataset {
        Dataset(format: format, name: newName, shape: shape, classCount: classCount, labels: labels,
                layout: layout, mappedFiles: mappedFiles)
    }

    /// A summary for `memloss data info` (Codable for `--json`).
    public var summary: DatasetSummary {
        DatasetSummary(name: name, format: format.rawValue, formatName: format.displayName, files: files,
                       count: count, channels: shape.channels, height: shape.height, width: shape.width,
                       classCount: classCount, classCounts: classCounts, bytesOnDisk: byteCount)
    }
}

/// What `memloss data info` prints.
public struct DatasetSummary: Codable, Sendable, Equatable {
    public var name: String
    public var format: String
    public var formatName: String
    public var files: [String]
    public var count: Int
    public var channels: Int
    public var height: Int
    public var width: Int
    public var classCount: Int
    public var classCounts: [Int]
    public var bytesOnDisk: Int
}
