// CheckpointTests.swift: model checkpoints under state_dict names (F32 tensors, I64 0-dim counters),
// every load rejection named (missing, unexpected, shape, dtype, truncated, foreign file), loads that
// fail leaving the model untouched, and the resumable model + training-state pair.

import Foundation
import Layers
import Tensors
import XCTest
import _TestSupport

final class CheckpointTests: XCTestCase {
    // MARK: - A tiny model's state

    /// State in PyTorch state_dict order: conv1.weight, bn1.{weight,bias,running_mean,running_var,
    /// num_batches_tracked}, fc.weight [classes, 2]. Values are drawn from `seed`.
    private struct TinyState {
        var entries: [StateEntry]
        var parameters: [(name: String, parameter: Parameter)] {
            entries.compactMap { if case .parameter(let p) = $0.reference { return ($0.name, p) } else { return nil } }
        }

        init(seed: UInt64, classes: Int = 3, counterAsBuffer: Bool = false, extra: [StateEntry] = [],
             dropping: Set<String> = []) {
            func t(_ shape: [Int], _ s: UInt64) -> Tensor {
                Tensor(shape: shape, values: seededUniform(Tensor.elementCount(shape), seed: seed &+ s))
            }
            var e: [StateEntry] = [
                StateEntry("conv1.weight", .parameter(Parameter(t([2, 1, 3, 3], 1)))),
                StateEntry("bn1.weight", .parameter(Parameter(t([2], 2), decays: false))),
                StateEntry("bn1.bias", .parameter(Parameter(t([2], 3), decays: false))),
                StateEntry("bn1.running_mean", .buffer(Buffer(t([2], 4)))),
                StateEntry("bn1.running_var", .buffer(Buffer(t([2], 5)))),
                counterAsBuffer ? StateEntry("bn1.num_batches_tracked", .buffer(Buffer(Tensor(scalar: 9))))
                    : StateEntry("bn1.num_batches_tracked", .counter(Counter(Int64(seed % 1000)))),
                StateEntry("fc.weight", .parameter(Parameter(t([classes, 2], 6)))),
            ]
            e.removeAll { dropping.contains($0.name) }
            entries = e + extra
        }

        /// Every value as a comparable snapshot (tensors and counters).
        var snapshot: [String: [Float]] {
            var out: [String: [Float]] = [:]
            for entry in entries {
                switch entry.reference {
                case .parameter(let p): out[entry.name] = p.value.scalars
                case .buffer(let b): out[entry.name] = b.value.scalars
                case .counter(let c): out[entry.name] = [Float(c.value)]
                }
            }
            return out
        }
    }

    private func loadError(_ entries: [StateEntry], _ url: URL, line: UInt = #line) -> CheckpointError? {
        do {
            try Checkpoint.load(into: entries, from: url)
            XCTFail("load succeeded; expected an error", line: line)
            return nil
        } catch {
            XCTAssertTrue(error.description.contains(url.path), "description does not name the file: \(error)", line: line)
            XCTAssertTrue(error.description.split(separator: "\n").last?.hasPrefix("hint: ") ?? false,
                          "no hint line: \(error)", line: line)
            return error
        }
    }

    // MARK: - Model round trip and format

    func test_roundTrip_intoAFreshModel_restoresEveryValue() throws {
        let dir = TempDirectory()
        let url = dir.path("last.safetensors")
        let saved = TinyState(seed: 1)
        try Checkpoint.save(model: saved.entries, to: url, metadata: ["config": "{}"])
        let fresh = TinyState(seed: 2)
        XCTAssertNotEqual(fresh.snapshot, saved.snapshot)
        let metadata = try Checkpoint.load(into: fresh.entries, from: url)
        XCTAssertEqual(fresh.snapshot, saved.snapshot)
        XCTAssertEqual(metadata["config"], "{}")
        XCTAssertEqual(metadata["format"], "pt")
    }

    func test_file_usesStateDictNames_F32Tensors_andI64ScalarCounters() throws {
        let dir = TempDirectory()
        let url = dir.path("m.safetensors")
        try Checkpoint.save(model: TinyState(seed: 1).entries, to: url, metadata: [:])
        let file = try SafeTensorsFile.read(from: url)
        XCTAssertEqual(file.entries.map(\.name), ["conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean",
                                                  "bn1.running_var", "bn1.num_batches_tracked", "fc.weight"])
        let counter = try XCTUnwrap(file["bn1.num_batches_tracked"])
        XCTAssertEqual(counter.dtype, .i64)
        XCTAssertEqual(counter.shape, [])
        XCTAssertEqual(try counter.int64Values(), [1])
        XCTAssertTrue(file.entries.filter { $0.name != "bn1.num_batches_tracked" }.allSatisfy { $0.dtype == .f32 })
        XCTAssertEqual(file["conv1.weight"]?.shape, [2, 1, 3, 3])
    }

    // MARK: - Rejections, each named

    func test_missingTensor_isNamed() throws {
        let dir = TempDirectory()
        let url = dir.path("m.safetensors")
        try Checkpoint.save(model: TinyState(seed: 1).entries, to: url, metadata: [:])
        let wider = TinyState(seed: 2, extra: [StateEntry("fc.bias", .parameter(Parameter(Tensor(zeros: [3]))))])
        XCTAssertEqual(loadError(wider.entries, url), .missingTensor(name: "fc.bias", file: url.path))
    }

    func test_unexpectedTensor_isNamed() throws {
        let dir = TempDirectory()
        let url = dir.path("m.safetensors")
        try Checkpoint.save(model: TinyState(seed: 1).entries, to: url, metadata: [:])
        let smaller = TinyState(seed: 2, dropping: ["bn1.running_var"])
        XCTAssertEqual(loadError(smaller.entries, url), .unexpectedTensor(name: "bn1.running_var", file: url.path))
    }

    func test_shapeMismatch_namesTheTensorAndBothShapes() throws {
        let dir = TempDirectory()
        let url = dir.path("m.safetensors")
        try Checkpoint.save(model: TinyState(seed: 1, classes: 3).entries, to: url, metadata: [:])
        let error = loadError(TinyState(seed: 2, classes: 10).entries, url)
        XCTAssertEqual(error, .shapeMismatch(name: "fc.weight", expected: [10, 2], found: [3, 2], file: url.path))
        XCTAssertTrue(error?.description.contains("expected shape [10, 2], found [3, 2]") ?? false)
    }

    func test_dtypeMismatch_namesTheTensor() throws {
        let dir = TempDirectory()
        let url = dir.path("m.safetensors")
        // num_batches_tracked saved as an F32 tensor; the model expects an I64 counter.
        try Checkpoint.save(model: TinyState(seed: 1, counterAsBuffer: true).entries, to: url, metadata: [:])
        XCTAssertEqual(loadError(TinyState(seed: 2).entries, url),
                       .dtypeMismatch(name: "bn1.num_batches_tracked", expected: .i64, found: .f32, file: url.path))
    }

    func test_severalProblems_reportTheFirstInStateDictOrder() throws {
        let dir = TempDirectory()
        let url = dir.path("m.safetensors")
        try Checkpoint.save(model: TinyState(seed: 1, counterAsBuffer: true).entries, to: url, metadata: [:])
        // dtype problem at entry 5 and shape problem at entry 6: entry 5 is reported.
        guard case .dtypeMismatch(let name, _, _, _)? = loadError(TinyState(seed: 2, classes: 7).entries, url) else {
            return XCTFail("expected dtypeMismatch first")
        }
        XCTAssertEqual(name, "bn1.num_batches_tracked")
    }

    func test_failedLoad_modifiesNothing() throws {
        let dir = TempDirectory()
        let url = dir.path("m.safetensors")
        try Checkpoint.save(model: TinyState(seed: 1).entries, to: url, metadata: [:])
        // Only the last entry mismatches, so a load that assigned as it went would change the rest.
        let target = TinyState(seed: 2, classes: 5)
        let before = target.snapshot
        XCTAssertNotNil(loadError(target.entries, url))
        XCTAssertEqual(target.snapshot, before)
    }

    func test_truncatedAndForeignFiles_giveClearFileErrors() throws {
        let dir = TempDirectory()
        let url = dir.path("m.safetensors")
        try Checkpoint.save(model: TinyState(seed: 1).entries, to: url, metadata: [:])
        let full = try Data(contentsOf: url)
        let target = TinyState(seed: 2)
        let before = target.snapshot

        try full.prefix(full.count - 5).write(to: url)
        guard case .file(.offsetsOutsideData(_, "fc.weight", _, _, _))? = loadError(target.entries, url) else {
            return XCTFail("truncated file: expected offsetsOutsideData for the last tensor")
        }
        try full.prefix(20).write(to: url)
        guard case .file(.headerLengthExceedsFile)? = loadError(target.entries, url) else {
            return XCTFail("file cut inside the header")
        }
        let png = Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + [UInt8](repeating: 0, count: 56))
        try png.write(to: url)
        guard case .file(.headerTooLarge)? = loadError(target.entries, url) else { return XCTFail("PNG") }
        XCTAssertTrue(loadError(target.entries, url)?.description.contains("89 50 4E 47") ?? false)
        var rng = SplitMix64(seed: 5)
        try Data((0..<300).map { _ in UInt8(truncatingIfNeeded: rng.next()) }).write(to: url)
        guard case .file? = loadError(target.entries, url) else { return XCTFail("random bytes") }
        try Data().write(to: url)
        guard case .file(.fileTooShort)? = loadError(target.entries, url) else { return XCTFail("empty file") }
        XCTAssertEqual(loadError(target.entries, dir.path("absent.safetensors")),
                       .file(.missingFile(file: dir.path("absent.safetensors").path)))
        XCTAssertEqual(target.snapshot, before)
    }

    // MARK: - Training state and the resumable pair

    private func makeOptimizer(_ state: TinyState) -> SGD {
        SGD(parameters: state.parameters, config: SGDConfig(learningRate: 0.1, weightDecay: 5e-4, nesterov: true))
    }

    private func train(_ state: TinyState, _ sgd: SGD, steps: Range<Int>) {
        for s in steps {
            for (i, (_, p)) in state.parameters.enumerated() {
                p.gradient = Tensor(shape: p.value.shape, values: seededUniform(p.value.count, seed: UInt64(100 * s + i)))
            }
            sgd.step(learningRate: 0.1)
        }
    }

    func test_resumablePair_roundTrips_andResumesIdentically() throws {
        let dir = TempDirectory()
        let url = dir.path("last.safetensors")
        let a = TinyState(seed: 1)
        let sgdA = makeOptimizer(a)
        train(a, sgdA, steps: 0..<3)
        let state = TrainingState(epoch: 2, step: 3, rngStates: ["data": 0xDEAD_BEEF_0123_4567, "dropout": UInt64.max],
                                  checkpointID: Checkpoint.newCheckpointID(), extra: ["best": "0.51"])
        try Checkpoint.saveResumable(model: a.entries, optimizer: sgdA, state: state, metadata: ["run": "t"], to: url)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.path("last.state.safetensors").path))

        let b = TinyState(seed: 9)
        let sgdB = makeOptimizer(b)
        let restored = try Checkpoint.loadResumable(into: b.entries, optimizer: sgdB, from: url)
        XCTAssertEqual(restored, state)
        XCTAssertEqual(b.snapshot, a.snapshot)
        XCTAssertEqual(sgdB.stepCount, 3)

        train(a, sgdA, steps: 3..<5)
        train(b, sgdB, steps: 3..<5)
        XCTAssertEqual(b.snapshot, a.snapshot, "continuing after resume must match the uninterrupted run")
    }

    func test_mismatchedPair_failsClearly_andModifiesNothing() throws {
        let dir = TempDirectory()
        let url = dir.path("last.safetensors")
        let a = TinyState(seed: 1)
        let sgdA = makeOptimizer(a)
        train(a, sgdA, steps: 0..<1)
        try Checkpoint.saveResumable(model: a.entries, optimizer: sgdA,
                                     state: TrainingState(epoch: 1, step: 1, checkpointID: "first"), to: url)
        // A later save of the model alone (as if the state write had been lost).
        try Checkpoint.save(model: a.entries, to: url, metadata: [Checkpoint.checkpointIDKey: "second"])

        let b = TinyState(seed: 9)
        let sgdB = makeOptimizer(b)
        let before = b.snapshot
        XCTAssertThrowsError(try Checkpoint.loadResumable(into: b.entries, optimizer: sgdB, from: url)) { error in
            let stateURL = Checkpoint.stateURL(forModel: url)
            XCTAssertEqual(error as? CheckpointError,
                           .pairMismatch(modelFile: url.path, modelID: "second", stateFile: stateURL.path, stateID: "first"))
            XCTAssertTrue("\(error)".contains("hint: "))
        }
        XCTAssertEqual(b.snapshot, before)
        XCTAssertEqual(sgdB.stepCount, 0)

        XCTAssertThrowsError(try Checkpoint.loadTrainingState(into: sgdB, from: Checkpoint.stateURL(forModel: url),
                                                              expectedCheckpointID: "second")) { error in
            guard case .pairMismatch(_, "second", _, "first")? = error as? CheckpointError else { return XCTFail("\(error)") }
        }
        XCTAssertEqual(sgdB.stepCount, 0)
    }

    func test_resumeWithAMismatchedModel_changesNeitherModelNorOptimizer() throws {
        let dir = TempDirectory()
        let url = dir.path("last.safetensors")
        let a = TinyState(seed: 1)
        let sgdA = makeOptimizer(a)
        train(a, sgdA, steps: 0..<2)
        try Checkpoint.saveResumable(model: a.entries, optimizer: sgdA,
                                     state: TrainingState(epoch: 1, step: 2, checkpointID: "x"), to: url)
        let b = TinyState(seed: 9, classes: 4)
        let sgdB = makeOptimizer(b)
        let before = b.snapshot
        XCTAssertThrowsError(try Checkpoint.loadResumable(into: b.entries, optimizer: sgdB, from: url))
        XCTAssertEqual(b.snapshot, before)
        XCTAssertEqual(sgdB.stepCount, 0)
        XCTAssertFalse(sgdB.momentumInitialized)
    }

    func test_trainingStateFile_withoutStateMetadata_isRejected() throws {
        let dir = TempDirectory()
        let url = dir.path("m.safetensors")
        let a = TinyState(seed: 1)
        try Checkpoint.save(model: a.entries, to: url, metadata: [:])
        XCTAssertThrowsError(try Checkpoint.loadTrainingState(into: makeOptimizer(a), from: url, expectedCheckpointID: nil)) { error in
            XCTAssertEqual(error as? CheckpointError, .missingMetadata(key: Checkpoint.trainingStateKey, file: url.path))
        }
        let bad = SafeTensorsFile(metadata: [Checkpoint.trainingStateKey: "{not json"], entries: [])
        try bad.write(to: url)
        XCTAssertThrowsError(try Checkpoint.loadTrainingState(into: makeOptimizer(a), from: url, expectedCheckpointID: nil)) { error in
            guard case .invalidState? = error as? CheckpointError else { return XCTFail("\(error)") }
        }
    }

    func test_stateURL_sitsBesideTheModelFile() {
        XCTAssertEqual(Checkpoint.stateURL(forModel: URL(fileURLWithPath: "/runs/a/last.safetensors")).path,
                       "/runs/a/last.state.safetensors")
        XCTAssertEqual(Checkpoint.stateURL(forModel: URL(fileURLWithPath: "/runs/a/best")).path,
                       "/runs/a/best.state.safetensors")
    }
}
