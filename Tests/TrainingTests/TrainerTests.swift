// TrainerTests.swift: the trainer's contracts: exact resume with the memory bank (2 epochs = 1 epoch +
// a simulated crash + resume for 1, bitwise with a fixed thread count), epoch 1 with MemLoss is the
// base method bit for bit, a damaged bank entry is skipped and logged, the run directory's files,
// and clear errors for bad configurations.

import Attacks
import Foundation
import Layers
import MemoryBank
import Tensors
import Training
import XCTest
import _TestSupport

extension Array where Element == MetricsLine {
    /// The epoch lines, in file order.
    var epochs: [EpochRecord] { compactMap { if case .epoch(let r) = $0 { return r } else { return nil } } }
    /// The step lines, in file order.
    var steps: [StepRecord] { compactMap { if case .step(let r) = $0 { return r } else { return nil } } }
}

final class TrainerTests: XCTestCase {
    /// A small but complete TRADES run on the embedded MNIST subset: narrow SmallCNN (with
    /// dropout active), 2 attack steps, 512 training samples.
    static func tinyConfig(epochs: Int) -> TrainConfig {
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
        c.schedule = .piecewise(milestones: [2], factors: [0.5])   // the second epoch runs at ×0.5
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
        try Trainer(config: Self.tinyConfig(epochs: 2), runDirectory: straight).train()

        // Run 1 epoch of a 2-epoch config by stopping after the first epoch: train a 1-epoch run
        // of the same config, then rewrite its config to 2 epochs and resume.
        var first = Self.tinyConfig(epochs: 2)
        first.epochs = 1
        try Trainer(config: first, runDirectory: resumed).train()
        // Simulate a crash after the checkpoint of epoch 1: epoch 2's generation was sealed (but its
        // checkpoint never written), and epoch 3's was left half-written.
        let bankDir = resumed.appendingPathComponent("bank")
        do {
            let bank = try Bank.open(at: bankDir)
            try bank.beginGeneration(1)
            try bank.append(id: 3, delta: [Float](repeating: 0.1, count: 784), view: .identity, metadata: .zero)
            try bank.sealGeneration()
            bank.close()
            XCTAssertEqual(try BankReader.open(at: bankDir).generations, [0, 1], "K = 1 keeps what epoch 2 read")
            try Data(repeating: 0xAB, count: 100).write(to: bankDir.appendingPathComponent("gen-0000000002.mbs.tmp"))
        }
        let enc = JSONEncoder()
        try enc.encode(Self.tinyConfig(epochs: 2)).write(to: resumed.appendingPathComponent("config.json"))
        try Trainer(config: .demo, runDirectory: resumed, resume: true).train()

        XCTAssertEqual(try BankReader.open(at: bankDir).generations, [0, 1], "resume rewrote generation 1")
        XCTAssertFalse(FileManager.default.fileExists(atPath: bankDir.appendingPathComponent("gen-0000000002.mbs.tmp").path))
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

    func test_firstEpochWithMemLoss_isTheBaseMethod_bitForBit() throws {
        let tmp = TempDirectory("trainer-epoch1")
        var with = Self.tinyConfig(epochs: 1)
        with.memLoss = MemLossConfig()
        var without = with
        without.memLoss = nil
        try Trainer(config: with, runDirectory: tmp.path("with")).train()
        try Trainer(config: without, runDirectory: tmp.path("without")).train()
        let a = try modelTensors(tmp.path("with")), b = try modelTensors(tmp.path("without"))
        for (name, va) in a { XCTAssertEqual(va, b[name]!, "tensor \(name) differs: epoch 1 must be the base method") }
        let epoch = try XCTUnwrap(try MetricsLog.read(tmp.path("with").appendingPathComponent("metrics.jsonl")).epochs.first)
        XCTAssertEqual(epoch.memEntriesUsed, 0)
        XCTAssertEqual(epoch.memory?.entriesWritten, 512)
    }

    func test_damagedBankEntry_isSkippedCountedAndLogged_andTheRunContinues() throws {
        let tmp = TempDirectory("trainer-corrupt")
        let dir = tmp.path("run")
        var first = Self.tinyConfig(epochs: 2)
        first.epochs = 1
        try Trainer(config: first, runDirectory: dir).train()
        let bankDir = dir.appendingPathComponent("bank")
        let segment = try XCTUnwrap(try BankReader.open(at: bankDir).segment(0))
        let victim = try XCTUnwrap((0..<first.trainSamples + 1000).first { segment.contains(id: $0) })
        let offset = try XCTUnwrap(segment.recordOffset(of: victim))
        var bytes = try Data(contentsOf: URL(fileURLWithPath: segment.path))
        bytes[offset + 56] ^= 0xFF
        try bytes.write(to: URL(fileURLWithPath: segment.path))
        try JSONEncoder().encode(Self.tinyConfig(epochs: 2)).write(to: dir.appendingPathComponent("config.json"))
        try Trainer(config: .demo, runDirectory: dir, resume: true).train()
        let lines = try MetricsLog.read(dir.appendingPathComponent("metrics.jsonl"))
        let epoch2 = try XCTUnwrap(lines.epochs.first { $0.epoch == 2 })
        XCTAssertEqual(epoch2.memory?.entriesCorrupt, 1)
        XCTAssertEqual(epoch2.memEntriesUsed, 511)
        let problem = try XCTUnwrap(lines.compactMap { if case .bankProblem(let r) = $0 { return r.problem } else { return nil } }.first)
        XCTAssert(problem.contains("gen-0000000000.mbs") && problem.contains("\(victim)"), problem)
    }

    func test_damagedSegmentHeaderOfAPastGeneration_isQuarantinedNamedAndCounted_andTheRunContinues() throws {
        let tmp = TempDirectory("trainer-quarantine")
        let dir = tmp.path("run")
        var first = Self.tinyConfig(epochs: 2)
        first.epochs = 1
        try Trainer(config: first, runDirectory: dir).train()
        let segment = dir.appendingPathComponent("bank/gen-0000000000.mbs")
        var bytes = try Data(contentsOf: segment)
        bytes[20] ^= 0xFF  // inside the segment header, under its checksum
        try bytes.write(to: segment)
        try JSONEncoder().encode(Self.tinyConfig(epochs: 2)).write(to: dir.appendingPathComponent("config.json"))
        let trainer = try Trainer(config: .demo, runDirectory: dir, resume: true)
        XCTAssertTrue(trainer.notes.contains { $0.contains("generation 0") && $0.contains("quarantined") }, "\(trainer.notes)")
        try trainer.train()
        let lines = try MetricsLog.read(dir.appendingPathComponent("metrics.jsonl"))
        let epoch2 = try XCTUnwrap(lines.epochs.first { $0.epoch == 2 })
        XCTAssertEqual(epoch2.memory?.entriesCorrupt, 512, "every sample's generation-0 entry is skipped and counted")
        XCTAssertEqual(epoch2.memEntriesUsed, 0)
        let problems = lines.compactMap { if case .bankProblem(let r) = $0 { return r.problem } else { return nil } }
        XCTAssertTrue(problems.contains { $0.contains("quarantined") && $0.contains("gen-0000000000.mbs") }, "\(problems)")
    }

    func test_resumedRun_wallTime_continuesFromTheCommit() throws {
        let tmp = TempDirectory("trainer-wall")
        let dir = tmp.path("run")
        try Trainer(config: Self.tinyConfig(epochs: 1), runDirectory: dir).train()
        let store = CheckpointStore(directory: dir.appendingPathComponent("checkpoints"))
        let committed = try XCTUnwrap(try XCTUnwrap(try store.recover()).wallSeconds)
        XCTAssertGreaterThan(committed, 0)
        try JSONEncoder().encode(Self.tinyConfig(epochs: 2)).write(to: dir.appendingPathComponent("config.json"))
        let summary = try Trainer(config: .demo, runDirectory: dir, resume: true).train()
        XCTAssertGreaterThan(summary.wallSeconds, committed, "the summary counts the first session too")
        let epoch2 = try XCTUnwrap(try MetricsLog.read(dir.appendingPathComponent("metrics.jsonl")).epochs.last)
        XCTAssertGreaterThan(epoch2.wallSeconds, committed)
    }

    func test_cappedValidationSettings_areSaidInTheNotes_notSilent() throws {
        let tmp = TempDirectory("trainer-caps")
        XCTAssertEqual(try Trainer(config: Self.tinyConfig(epochs: 1), runDirectory: tmp.path("a")).notes, [])
        var c = Self.tinyConfig(epochs: 1)
        c.validationSamples = 5000
        let notes = try Trainer(config: c, runDirectory: tmp.path("b")).notes
        XCTAssertTrue(notes.contains { $0.contains("validationSamples 5000") && $0.contains("200") }, "\(notes)")
        c = Self.tinyConfig(epochs: 1)
        c.validationSize = 3000
        let notes2 = try Trainer(config: c, runDirectory: tmp.path("c")).notes
        XCTAssertTrue(notes2.contains { $0.contains("validationSize 3000") }, "\(notes2)")
    }

    func test_run_writesConfigMetricsCheckpointsEvalAndReport() throws {
        let tmp = TempDirectory("trainer-files")
        let dir = tmp.path("run")
        let summary = try Trainer(config: Self.tinyConfig(epochs: 1), runDirectory: dir).train()
        for f in ["config.json", "metrics.jsonl", "report.md", "loss.svg", "accuracy.svg",
                  "checkpoints/last.safetensors", "checkpoints/last.state.safetensors",
                  "checkpoints/best.safetensors", "eval/test.json", "eval/summary.json"] {
            XCTAssert(FileManager.default.fileExists(atPath: dir.appendingPathComponent(f).path), "missing \(f)")
        }
        let lines = try MetricsLog.read(dir.appendingPathComponent("metrics.jsonl"))
        let epoch = try XCTUnwrap(lines.epochs.first)
        XCTAssertNotNil(epoch.valCleanAccuracy)
        XCTAssertNotNil(epoch.valRobustAccuracy)
        let memory = try XCTUnwrap(epoch.memory)
        XCTAssertGreaterThan(memory.generationBytes, 0)
        XCTAssertGreaterThan(memory.bytesPerEntry, 0)
        XCTAssert(lines.contains { $0.kind == .step })
        XCTAssertNotNil(summary.test)
        let svg = try String(contentsOf: dir.appendingPathComponent("accuracy.svg"), encoding: .utf8)
        XCTAssert(svg.hasPrefix("<svg") && svg.contains("polyline"))
        let report = try String(contentsOf: dir.appendingPathComponent("report.md"), encoding: .utf8)
        XCTAssertFalse(report.contains("attack init"), "the random start (the default) adds no row: \(report)")
    }

    func test_badConfigurations_giveClearErrors() throws {
        let tmp = TempDirectory("trainer-errors")
        var c = Self.tinyConfig(epochs: 1)
        c.data = "cifar10:/nonexistent/dir"
        XCTAssertThrowsError(try Trainer(config: c, runDirectory: tmp.path("a"))) { e in
            XCTAssert("\(e)".contains("/nonexistent/dir"), "\(e)")
        }
        c = Self.tinyConfig(epochs: 1)
        c.model = "resnet18"
        XCTAssertThrowsError(try Trainer(config: c, runDirectory: tmp.path("b"))) { e in
            XCTAssert("\(e)".contains("3×32×32"), "\(e)")
        }
        c = Self.tinyConfig(epochs: 1)
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
