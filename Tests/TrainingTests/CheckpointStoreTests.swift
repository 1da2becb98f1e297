// CheckpointStoreTests.swift: the atomic checkpoint commit (docs/checkpoints.md): a commit recovers as
// written; the pointer is the commit point (an interrupted commit's generation is dropped); damage to
// the pointer or to a committed file falls back to the newest intact generation and keeps the damaged
// one aside; temporaries are removed; best is carried by hard links; metrics.jsonl is cut to the
// committed length; --checkpoint-every's syntax.

import Foundation
import Layers
import Models
import Tensors
import Training
import XCTest
import _TestSupport

final class CheckpointStoreTests: XCTestCase {
    private struct Fixture {
        let dir: TempDirectory
        let store: CheckpointStore
        let model: AnyClassifier
        let optimizer: SGD
    }

    private func fixture() throws -> Fixture {
        let dir = TempDirectory("ckpt-store")
        let spec = try ModelSpec(parsing: "smallcnn", classes: 10, width: 0.25)
        let model = spec.build(seed: 1)
        let optimizer = SGD(parameters: model.namedParameters, config: TrainConfig.demo.optimizer)
        return Fixture(dir: dir, store: CheckpointStore(directory: dir.url.appendingPathComponent("checkpoints")),
                       model: model, optimizer: optimizer)
    }

    @discardableResult
    private func commit(_ f: Fixture, step: Int, epoch: Int, isBest: Bool, metricsBytes: Int = 0) throws -> CommitRecord {
        // Make the weights differ per commit so files differ.
        if let p = f.model.namedParameters.first?.1 {
            var v = p.value.scalars
            v[0] = Float(step)
            p.value = Tensor(shape: p.value.shape, values: v)
        }
        let state = TrainingState(epoch: epoch, step: step, checkpointID: Checkpoint.newCheckpointID())
        let record = CommitRecord(epoch: epoch, epochStep: 0, globalStep: step, metricsBytes: metricsBytes, bestEpoch: epoch,
                                  bestValidationRobust: 0.5, hasBest: false)
        return try f.store.commit(model: f.model.stateEntries(prefix: ""), optimizer: f.optimizer, state: state,
                                  metadata: ["memloss.epoch": "\(epoch)"], bestMetadata: ["memloss.epoch": "\(epoch)"],
                                  isBest: isBest, record: record)
    }

    /// The first element of the model's first parameter (set to the commit's step by `commit`).
    private func firstWeight(_ url: URL) throws -> Float {
        let f = try SafeTensorsFile.read(from: url)
        let name = try ModelSpec(parsing: "smallcnn", classes: 10, width: 0.25).build(seed: 1).namedParameters[0].0
        return try XCTUnwrap(f[name]).tensor().scalars[0]
    }

    private func flipByte(_ url: URL, at offsetFromEnd: Int) throws {
        var b = [UInt8](try Data(contentsOf: url))
        b[b.count - offsetFromEnd] ^= 0x40
        try Data(b).write(to: url)
    }

    func test_commit_recovers_withLinksAndBestCarriedForward() throws {
        let f = try fixture()
        try commit(f, step: 8, epoch: 1, isBest: true)
        let second = try commit(f, step: 16, epoch: 2, isBest: false)
        XCTAssertTrue(second.hasBest)
        let store = CheckpointStore(directory: f.store.directory)
        let recovered = try XCTUnwrap(try store.recover())
        XCTAssertEqual(recovered, second)
        XCTAssertTrue(store.notes.isEmpty, "\(store.notes)")
        let dir = f.store.directory
        XCTAssertEqual(try firstWeight(dir.appendingPathComponent("last.safetensors")), 16)
        XCTAssertEqual(try firstWeight(dir.appendingPathComponent("best.safetensors")), 8, "best stays the step-8 model")
        XCTAssertEqual(try firstWeight(store.bestURL(recovered)), 8)
        // Both commits are kept (the previous one is the fallback); a third prunes the first.
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix("step-") }),
                       ["step-000000008", "step-000000016"])
        try commit(f, step: 24, epoch: 3, isBest: false)
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix("step-") }),
                       ["step-000000016", "step-000000024"])
        XCTAssertEqual(try firstWeight(dir.appendingPathComponent("best.safetensors")), 8, "the link survives its directory")
    }

    func test_aGenerationWrittenButNotPointedTo_isDropped() throws {
        let f = try fixture()
        let first = try commit(f, step: 8, epoch: 1, isBest: false)
        let pointer = try Data(contentsOf: f.store.pointerURL)
        try commit(f, step: 16, epoch: 2, isBest: false)
        try pointer.write(to: f.store.pointerURL)  // as if the process died before the flip
        let store = CheckpointStore(directory: f.store.directory)
        XCTAssertEqual(try store.recover(), first)
        XCTAssertFalse(FileManager.default.fileExists(atPath: store.generationURL("step-000000016").path))
        XCTAssertEqual(try firstWeight(f.store.directory.appendingPathComponent("last.safetensors")), 8,
                       "the derived names follow the pointer")
    }

    func test_damagedPointer_fallsBackToTheNewestIntactGeneration() throws {
        let f = try fixture()
        try commit(f, step: 8, epoch: 1, isBest: false)
        let second = try commit(f, step: 16, epoch: 2, isBest: false)
        try Data("{\"format\": garbage".utf8).write(to: f.store.pointerURL)
        let store = CheckpointStore(directory: f.store.directory)
        XCTAssertEqual(try store.recover(), second)
        XCTAssertTrue(store.notes.contains { $0.contains("CURRENT") && $0.contains("damaged") }, "\(store.notes)")
        XCTAssertTrue(store.notes.contains { $0.contains("step-000000016") })
        // The pointer is rewritten: a second recovery is clean.
        let again = CheckpointStore(directory: f.store.directory)
        XCTAssertEqual(try again.recover(), second)
        XCTAssertTrue(again.notes.isEmpty, "\(again.notes)")
    }

    func test_aFlippedTensorByteInTheCommittedModel_fallsBackToThePreviousCommit_andKeepsTheDamagedOneAside() throws {
        let f = try fixture()
        let first = try commit(f, step: 8, epoch: 1, isBest: false)
        let second = try commit(f, step: 16, epoch: 2, isBest: false)
        try flipByte(f.store.modelURL(second), at: 3)
        let store = CheckpointStore(directory: f.store.directory)
        XCTAssertEqual(try store.recover(), first)
        XCTAssertTrue(store.notes.contains { $0.contains("step-000000016") && $0.contains("damaged") }, "\(store.notes)")
        XCTAssertTrue(FileManager.default.fileExists(atPath: f.store.directory.appendingPathComponent("step-000000016.damaged").path))
        XCTAssertEqual(try firstWeight(f.store.directory.appendingPathComponent("last.safetensors")), 8)
    }

    func test_aFirstCommitInterruptedBeforeItsPointer_isNotACommit() throws {
        let f = try fixture()
        try commit(f, step: 3, epoch: 0, isBest: false)
        try FileManager.default.removeItem(at: f.store.pointerURL)  // died before the first flip
        let store = CheckpointStore(directory: f.store.directory)
        XCTAssertNil(try store.recover())
        XCTAssertFalse(FileManager.default.fileExists(atPath: store.generationURL("step-000000003").path))
    }

    func test_aPointerRemovedBesideTwoGenerations_fallsBackToTheNewest() throws {
        let f = try fixture()
        try commit(f, step: 3, epoch: 0, isBest: false)
        let second = try commit(f, step: 6, epoch: 0, isBest: false)
        try FileManager.default.removeItem(at: f.store.pointerURL)
        let store = CheckpointStore(directory: f.store.directory)
        XCTAssertEqual(try store.recover(), second)
        XCTAssertTrue(store.notes.contains { $0.contains("missing") }, "\(store.notes)")
        XCTAssertTrue(FileManager.default.fileExists(atPath: store.pointerURL.path), "the pointer is rewritten")
    }

    func test_strayTemporaries_areRemovedOnRecovery() throws {
        let f = try fixture()
        let first = try commit(f, step: 8, epoch: 1, isBest: true)
        for path in ["best.safetensors.tmp", "CURRENT.tmp", "step-000000008/model.safetensors.tmp"] {
            try Data([1, 2, 3]).write(to: f.store.directory.appendingPathComponent(path))
        }
        let store = CheckpointStore(directory: f.store.directory)
        XCTAssertEqual(try store.recover(), first)
        for path in ["best.safetensors.tmp", "CURRENT.tmp", "step-000000008/model.safetensors.tmp"] {
            XCTAssertFalse(FileManager.default.fileExists(atPath: f.store.directory.appendingPathComponent(path).path), path)
        }
    }

    func test_noCommit_recoversNil() throws {
        let f = try fixture()
        XCTAssertNil(try f.store.recover())
        try FileManager.default.createDirectory(at: f.store.generationURL("step-000000004"), withIntermediateDirectories: true)
        XCTAssertNil(try f.store.recover())
        XCTAssertFalse(FileManager.default.fileExists(atPath: f.store.generationURL("step-000000004").path),
                       "an incomplete generation without a commit record is removed")
    }

    func test_checkpointFiles_carryATensorChecksum_verifiedOnLoad() throws {
        let f = try fixture()
        let r = try commit(f, step: 8, epoch: 1, isBest: false)
        let url = f.store.modelURL(r)
        let file = try SafeTensorsFile.read(from: url)
        XCTAssertEqual(file.metadata[Checkpoint.tensorChecksumKey], Checkpoint.tensorChecksum(file.entries))
        let stateFile = try SafeTensorsFile.read(from: Checkpoint.stateURL(forModel: url))
        XCTAssertNotNil(stateFile.metadata[Checkpoint.tensorChecksumKey])
        // A standalone copy with one tensor byte flipped: the load names the file and the mismatch.
        let copy = f.dir.url.appendingPathComponent("copy.safetensors")
        try FileManager.default.copyItem(at: url, to: copy)
        try flipByte(copy, at: 5)
        let model = try ModelSpec(parsing: "smallcnn", classes: 10, width: 0.25).build(seed: 2)
        XCTAssertThrowsError(try Checkpoint.load(into: model.stateEntries(prefix: ""), from: copy)) { e in
            guard case CheckpointError.checksumMismatch(let file, _, _) = e else { return XCTFail("\(e)") }
            XCTAssertEqual(file, copy.path)
            XCTAssertTrue("\(e)".contains("hint:"))
        }
    }

    func test_metricsLog_isCutToTheCommittedLength_andAShorterFileIsAnError() throws {
        let dir = TempDirectory("metrics-cut")
        let url = dir.url.appendingPathComponent("metrics.jsonl")
        try Data("line one\nline two\nline three\n".utf8).write(to: url)
        let log = try MetricsLog(url: url, truncatingTo: 18)
        XCTAssertEqual(try log.byteCount(), 18)
        XCTAssertEqual(try String(contentsOf: url, encoding: .utf8), "line one\nline two\n")
        XCTAssertThrowsError(try MetricsLog(url: url, truncatingTo: 100)) { e in
            XCTAssertTrue("\(e)".contains("100"), "\(e)")
            XCTAssertTrue("\(e)".contains("hint:"), "\(e)")
        }
    }

    func test_checkpointInterval_parsing() {
        XCTAssertEqual(CheckpointInterval(parsing: "500"), .steps(500))
        XCTAssertEqual(CheckpointInterval(parsing: "30s"), .seconds(30))
        XCTAssertEqual(CheckpointInterval(parsing: "10m"), .seconds(600))
        XCTAssertEqual(CheckpointInterval(parsing: "2h"), .seconds(7200))
        XCTAssertEqual(CheckpointInterval(parsing: "off"), .off)
        for bad in ["", "-3", "1.5", "10x", "infm", "nanm", "-1m", "m"] {
            XCTAssertNil(CheckpointInterval(parsing: bad), bad)
        }
        XCTAssertTrue(CheckpointInterval.steps(3).isDue(steps: 3, seconds: 0))
        XCTAssertFalse(CheckpointInterval.steps(3).isDue(steps: 2, seconds: 1e9))
        XCTAssertTrue(CheckpointInterval.seconds(60).isDue(steps: 0, seconds: 60))
        XCTAssertFalse(CheckpointInterval.off.isDue(steps: .max, seconds: .infinity))
    }
}
