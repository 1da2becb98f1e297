// TrainerTests.swift: the trainer's contracts: exact resume (2 epochs = 1 epoch + resume for 1,
// bitwise with a fixed thread count), the run directory's files, and clear errors for bad
// configurations.

import Attacks
import Foundation
import Layers
import Tensors
import Training
import XCTest
import _TestSupport

final class TrainerTests: XCTestCase {
    /// A small but complete TRADES run on the embedded MNIST subset: narrow SmallCNN (with
    /// dropout active), 2 attack steps, 512 training samples.
    private func tinyConfig(epochs: Int) -> TrainConfig {
        var c = TrainConfig.demo
        c.width = 0.25
        c.epochs = epochs
        c.batchSize = 64
        c.trainSamples = 512
        c.validationSize = 200
        c.validationSamples = 64
        c.testSamples = 64
        c.evalEvery = 1
        c.logEvery = 2
        c.method.attack?.steps = 2
        c.validationAttack.steps = 2
        c.schedule = .piecewise(milestones: [1], factors: [0.5])
        return c
    }

    private func modelTensors(_ dir: URL) throws -> [String: [Float]] {
        let f = try SafeTensorsFile.read(from: dir.appendingPathComponent("checkpoints/last.safetensors"))
        var out: [String: [Float]] = [:]
        for e in f.entries where e.dtype == .f32 { out[e.name] = try e.tensor().scalars }
        return out
    }

    func test_resume_afterOneEpoch_equalsTrainingTwoEpochsStraight_bitForBit() throws {
        let tmp = TempDirectory("trainer-resume")
        let straight = tmp.path("straight"), resumed = tmp.path("resumed")
        try Trainer(config: tinyConfig(epochs: 2), runDirectory: straight).train()

        // Run 1 epoch of a 2-epoch config by stopping after the first epoch: train a 1-epoch run
        // of the same config, then rewrite its config to 2 epochs and resume.
        var first = tinyConfig(epochs: 2)
        first.epochs = 1
        try Trainer(config: first, runDirectory: resumed).train()
        let enc = JSONEncoder()
        try enc.encode(tinyConfig(epochs: 2)).write(to: resumed.appendingPathComponent("config.json"))
        try Trainer(config: .demo, runDirectory: resumed, resume: true).train()

        let a = try modelTensors(straight), b = try modelTensors(resumed)
        XCTAssertEqual(Set(a.keys), Set(b.keys))
        for (name, va) in a { XCTAssertEqual(va, b[name]!, "tensor \(name) differs after resume") }
        // Optimizer state too.
        let sa = try SafeTensorsFile.read(from: straight.appendingPathComponent("checkpoints/last.state.safetensors"))
        let sb = try SafeTensorsFile.read(from: resumed.appendingPathComponent("checkpoints/last.state.safetensors"))
        for e in sa.entries where e.dtype == .f32 {
            XCTAssertEqual(try e.tensor().scalars, try sb[e.name]!.tensor().scalars, "optimizer \(e.name)")
        }
    }

    func test_run_writesConfigMetricsCheckpointsEvalAndReport() throws {
        let tmp = TempDirectory("trainer-files")
        let dir = tmp.path("run")
        let summary = try Trainer(config: tinyConfig(epochs: 1), runDirectory: dir).train()
        for f in ["config.json", "metrics.jsonl", "report.md", "loss.svg", "accuracy.svg",
                  "checkpoints/last.safetensors", "checkpoints/last.state.safetensors",
                  "checkpoints/best.safetensors", "eval/test.json", "eval/summary.json"] {
            XCTAssert(FileManager.default.fileExists(atPath: dir.appendingPathComponent(f).path), "missing \(f)")
        }
        let records = MetricsLog.read(dir.appendingPathComponent("metrics.jsonl"))
        let epoch = try XCTUnwrap(records.first { $0["type"] as? String == "epoch" })
        for key in ["train_loss", "train_clean_accuracy", "val_clean_accuracy", "val_robust_accuracy", "lr",
                    "images_per_second", "data_wait_seconds", "wall_seconds", "peak_rss_bytes"] {
            XCTAssertNotNil(epoch[key], "epoch record lacks \(key)")
        }
        XCTAssert(records.contains { $0["type"] as? String == "step" })
        XCTAssertNotNil(summary.test)
        let svg = try String(contentsOf: dir.appendingPathComponent("accuracy.svg"), encoding: .utf8)
        XCTAssert(svg.hasPrefix("<svg") && svg.contains("polyline"))
    }

    func test_badConfigurations_giveClearErrors() throws {
        let tmp = TempDirectory("trainer-errors")
        var c = tinyConfig(epochs: 1)
        c.data = "cifar10:/nonexistent/dir"
        XCTAssertThrowsError(try Trainer(config: c, runDirectory: tmp.path("a"))) { e in
            XCTAssert("\(e)".contains("/nonexistent/dir"), "\(e)")
        }
        c = tinyConfig(epochs: 1)
        c.model = "resnet18"
        XCTAssertThrowsError(try Trainer(config: c, runDirectory: tmp.path("b"))) { e in
            XCTAssert("\(e)".contains("3×32×32"), "\(e)")
        }
        c = tinyConfig(epochs: 1)
        c.epochs = 0
        XCTAssertThrowsError(try Trainer(config: c, runDirectory: tmp.path("c"))) { e in
            XCTAssert("\(e)".contains("epochs"), "\(e)")
        }
        let bad = tmp.path("bad.json")
        try Data("{\"epochs\": 3, \"bogus\": 1}".utf8).write(to: bad)
        XCTAssertThrowsError(try TrainConfig.load(file: bad.path, over: .demo)) { e in
            XCTAssert("\(e)".contains("unknown key 'bogus'"), "\(e)")
        }
        try Data("{\"epochs\": \"three\"}".utf8).write(to: bad)
        XCTAssertThrowsError(try TrainConfig.load(file: bad.path, over: .demo)) { e in
            XCTAssert("\(e)".contains("epochs"), "\(e)")
        }
        try Data("not json".utf8).write(to: bad)
        XCTAssertThrowsError(try TrainConfig.load(file: bad.path, over: .demo)) { e in
            XCTAssert("\(e)".contains("not valid JSON"), "\(e)")
        }
        let good = tmp.path("good.json")
        try Data("{\"epochs\": 3, \"batchSize\": 32}".utf8).write(to: good)
        let loaded = try TrainConfig.load(file: good.path, over: .demo)
        XCTAssertEqual(loaded.epochs, 3)
        XCTAssertEqual(loaded.batchSize, 32)
        XCTAssertEqual(loaded.method, TrainConfig.demo.method)
    }

    func test_resume_ofADirectoryWithoutCheckpoint_isAClearError() {
        let tmp = TempDirectory("trainer-noresume")
        XCTAssertThrowsError(try Trainer(config: .demo, runDirectory: tmp.path("none"), resume: true)) { e in
            XCTAssert("\(e)".contains("config.json is missing"), "\(e)")
        }
    }
}
