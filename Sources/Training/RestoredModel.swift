// RestoredModel.swift: rebuilding a model from a memloss checkpoint: the metadata keys a checkpoint
// carries, the one fallback order for the architecture, width and class count (explicit override, then
// the checkpoint's metadata, then the dataset's class count when known, else an error naming the missing
// key), and the load through the checked path (names, dtypes, shapes). Used by `memloss eval` and
// `memloss export`.

import Foundation
import Layers
import Models
import Tensors

/// The metadata keys of a memloss checkpoint (written by the trainer, read here and by reports).
public enum CheckpointMetadataKey {
    /// `ModelSpec` name (`smallcnn`, `resnet18`, `wrn-34-10`, …).
    public static let model = "memloss.model"
    /// Width multiplier, a decimal (e.g. "0.5").
    public static let width = "memloss.width"
    /// Number of classes K of the final layer, an integer ≥ 2.
    public static let classes = "memloss.classes"
    /// The data source the run trained on (`Datasets.DataSource` syntax).
    public static let data = "memloss.data"
    /// ε as the user wrote it (e.g. "8/255").
    public static let epsilon = "memloss.epsilon"
    /// Training method name and the epoch the checkpoint was written after.
    public static let method = "memloss.method"
    public static let epoch = "memloss.epoch"
}

/// Values that replace the checkpoint's metadata when rebuilding its model (nil = use the checkpoint's).
public struct ModelOverrides: Sendable, Equatable {
    public var model: String?
    public var width: Double?
    public var classes: Int?

    public init(model: String? = nil, width: Double? = nil, classes: Int? = nil) {
        self.model = model; self.width = width; self.classes = classes
    }
}

/// A model rebuilt from a checkpoint, its weights loaded, with the checkpoint's metadata.
public struct RestoredModel {
    public let spec: ModelSpec
    /// The model name as parsed (the override or the metadata's, e.g. `wrn-34-10`; `spec.name` adds the width).
    public let modelName: String
    public let model: AnyClassifier
    public let metadata: [String: String]

    /// The checkpoint's metadata alone (e.g. to find its data source before opening it).
    public static func metadata(of url: URL) throws(RestoredModelError) -> [String: String] {
        do { return try SafeTensorsFile.read(from: url).metadata } catch {
            throw .unreadable(path: url.path, problem: "\(error)")
        }
    }

    /// The model a checkpoint describes. Each field takes, in order: the override, the checkpoint's
    /// metadata (`CheckpointMetadataKey`), and, for the class count only, `datasetClassCount` when known.
    /// A field found nowhere is an error naming its metadata key; there is no silent default.
    public static func spec(metadata: [String: String], overrides: ModelOverrides = ModelOverrides(),
                            datasetClassCount: Int? = nil, path: String) throws(RestoredModelError) -> ModelSpec {
        guard let name = overrides.model ?? metadata[CheckpointMetadataKey.model] else {
            throw .missingMetadata(path: path, key: CheckpointMetadataKey.model, override: "--model")
        }
        let width: Double
        if let w = overrides.width { width = w } else {
            guard let text = metadata[CheckpointMetadataKey.width] else {
                throw .missingMetadata(path: path, key: CheckpointMetadataKey.width, override: "--width")
            }
            guard let w = Double(text), w > 0, w.isFinite else {
                throw .badMetadata(path: path, key: CheckpointMetadataKey.width, value: text, expected: "a number > 0")
            }
            width = w
        }
        let classes: Int
        if let k = overrides.classes { classes = k } else if let text = metadata[CheckpointMetadataKey.classes] {
            guard let k = Int(text), k >= 2 else {
                throw .badMetadata(path: path, key: CheckpointMetadataKey.classes, value: text, expected: "an integer ≥ 2")
            }
            classes = k
        } else if let k = datasetClassCount {
            classes = k
        } else {
            throw .missingMetadata(path: path, key: CheckpointMetadataKey.classes, override: "--classes")
        }
        guard classes >= 2 else {
            throw .badMetadata(path: path, key: CheckpointMetadataKey.classes, value: "\(classes)", expected: "an integer ≥ 2")
        }
        do { return try ModelSpec(parsing: name, classes: classes, width: width) } catch {
            throw .model(path: path, problem: "\(error)")
        }
    }

    /// Rebuilds the checkpoint's model (`spec(metadata:overrides:datasetClassCount:path:)`) and loads its
    /// weights through `Checkpoint.load` (every tensor present with the architecture's name, dtype and
    /// shape). `metadata` may be passed when already read.
    public static func load(checkpoint url: URL, metadata: [String: String]? = nil, overrides: ModelOverrides = ModelOverrides(),
                            datasetClassCount: Int? = nil) throws(RestoredModelError) -> RestoredModel {
        let meta: [String: String]
        if let metadata { meta = metadata } else { meta = try RestoredModel.metadata(of: url) }
        let spec = try spec(metadata: meta, overrides: overrides, datasetClassCount: datasetClassCount, path: url.path)
        let net = spec.build(seed: 0)
        do { try Checkpoint.load(into: net.stateEntries(prefix: ""), from: url) } catch {
            throw .weights(path: url.path, spec: spec.name, problem: "\(error)")
        }
        return RestoredModel(spec: spec, modelName: overrides.model ?? meta[CheckpointMetadataKey.model] ?? spec.name,
                             model: net, metadata: meta)
    }
}

public enum RestoredModelError: Error, CustomStringConvertible, Equatable {
    case unreadable(path: String, problem: String)
    case missingMetadata(path: String, key: String, override: String)
    case badMetadata(path: String, key: String, value: String, expected: String)
    case model(path: String, problem: String)
    case weights(path: String, spec: String, problem: String)

    public var description: String {
        switch self {
        case .unreadable(let p, let problem): return "checkpoint \(p): \(problem)"
        case .missingMetadata(let p, let key, let flag):
            return "checkpoint \(p) has no '\(key)' metadata (not written by memloss train?)\nhint: pass \(flag)"
        case .badMetadata(let p, let key, let value, let expected):
            return "checkpoint \(p): metadata '\(key)' = '\(value)', expected \(expected)"
        case .model(let p, let problem): return "checkpoint \(p): \(problem)"
        case .weights(let p, let spec, let problem):
            return "checkpoint \(p) does not fit \(spec): \(problem)\nhint: check --model, --width and --classes"
        }
    }
}
