// RestoredModelTests.swift: rebuilding a model from a checkpoint (Training/RestoredModel.swift): the
// metadata round trip gives back the same spec and weights, overrides beat the metadata and the
// metadata beats the dataset's class count, and a checkpoint without metadata is a clear error naming
// the missing key (never a silent default).

import Foundation
import Layers
import Models
import Tensors
import Training
import XCTest
import _TestSupport

final class RestoredModelTests: XCTestCase {
    /// SmallCNN ×0.25 with `classes` outputs, saved with `metadata`; returns the model and its file.
    private func save(classes: Int, metadata: [String: String], dir: TempDirectory) throws -> (AnyClassifier, URL) {
        let net = try ModelSpec(parsing: "smallcnn", classes: classes, width: 0.25).build(seed: 42)
        let url = dir.path("model.safetensors")
        try Checkpoint.save(model: net.stateEntries(prefix: ""), to: url, metadata: metadata)
        return (net, url)
    }

    private func values(_ net: AnyClassifier) -> [String: [Float]] {
        var out: [String: [Float]] = [:]
        for e in net.stateEntries(prefix: "") {
            switch e.reference {
            case .parameter(let p): out[e.name] = p.value.scalars
            case .buffer(let b): out[e.name] = b.value.scalars
            case .counter(let c): out[e.name] = [Float(c.value)]
            }
        }
        return out
    }

    private let full = [CheckpointMetadataKey.model: "smallcnn", CheckpointMetadataKey.width: "0.25",
                        CheckpointMetadataKey.classes: "7", CheckpointMetadataKey.data: "demo"]

    func test_metadataRoundTrip_givesTheSameSpecAndWeights() throws {
        let dir = TempDirectory("restored-roundtrip")
        let (net, url) = try save(classes: 7, metadata: full, dir: dir)
        let r = try RestoredModel.load(checkpoint: url)
        XCTAssertEqual(r.spec, try ModelSpec(parsing: "smallcnn", classes: 7, width: 0.25))
        XCTAssertEqual(r.modelName, "smallcnn")
        XCTAssertEqual(r.metadata[CheckpointMetadataKey.data], "demo")
        XCTAssertEqual(values(r.model), values(net), "the weights loaded are the weights saved")
        XCTAssertEqual(try RestoredModel.metadata(of: url)[CheckpointMetadataKey.classes], "7")
    }

    func test_overrides_beatTheMetadata_whichBeatsTheDatasetClassCount() throws {
        let path = "x.safetensors"
        let fromMeta = try RestoredModel.spec(metadata: full, datasetClassCount: 10, path: path)
        XCTAssertEqual(fromMeta.classes, 7, "metadata before the dataset's count")
        let overridden = try RestoredModel.spec(metadata: full, overrides: ModelOverrides(model: "resnet18", width: 0.5, classes: 3),
                                                datasetClassCount: 10, path: path)
        XCTAssertEqual(overridden, try ModelSpec(parsing: "resnet18", classes: 3, width: 0.5))
        var noClasses = full
        noClasses[CheckpointMetadataKey.classes] = nil
        XCTAssertEqual(try RestoredModel.spec(metadata: noClasses, datasetClassCount: 10, path: path).classes, 10,
                       "the dataset's count when the metadata has none")
        XCTAssertThrowsError(try RestoredModel.spec(metadata: noClasses, path: path)) { e in
            XCTAssertEqual(e as? RestoredModelError, .missingMetadata(path: path, key: CheckpointMetadataKey.classes, override: "--classes"))
            XCTAssert("\(e)".contains("memloss.classes"), "\(e)")
        }
        var bad = full
        bad[CheckpointMetadataKey.width] = "wide"
        XCTAssertThrowsError(try RestoredModel.spec(metadata: bad, path: path)) { e in
            XCTAssert("\(e)".contains("memloss.width") && "\(e)".contains("wide"), "\(e)")
        }
    }

    func test_checkpointWithoutMetadata_isAClearErrorNamingTheKey() throws {
        let dir = TempDirectory("restored-nometa")
        let (_, url) = try save(classes: 10, metadata: [:], dir: dir)
        XCTAssertThrowsError(try RestoredModel.load(checkpoint: url)) { e in
            XCTAssertEqual(e as? RestoredModelError, .missingMetadata(path: url.path, key: CheckpointMetadataKey.model, override: "--model"))
            XCTAssert("\(e)".contains("memloss.model") && "\(e)".contains("--model"), "\(e)")
        }
        // With the model given, the next missing key is named; with everything given, it loads.
        XCTAssertThrowsError(try RestoredModel.load(checkpoint: url, overrides: ModelOverrides(model: "smallcnn"))) { e in
            XCTAssert("\(e)".contains("memloss.width"), "\(e)")
        }
        XCTAssertThrowsError(try RestoredModel.load(checkpoint: url, overrides: ModelOverrides(model: "smallcnn", width: 0.25))) { e in
            XCTAssert("\(e)".contains("memloss.classes"), "no silent 10 classes: \(e)")
        }
        let r = try RestoredModel.load(checkpoint: url, overrides: ModelOverrides(model: "smallcnn", width: 0.25, classes: 10))
        XCTAssertEqual(r.spec.classes, 10)
        // A wrong width is the checked load's error, naming the spec.
        XCTAssertThrowsError(try RestoredModel.load(checkpoint: url, overrides: ModelOverrides(model: "smallcnn", width: 0.5, classes: 10))) { e in
            guard case .weights = e as? RestoredModelError else { return XCTFail("expected .weights, got \(e)") }
        }
    }
}
