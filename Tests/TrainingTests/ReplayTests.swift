// ReplayTests.swift: replay of a memory bank (Training/Replay.swift, docs/membank.md "Replay") and the
// two training options it needs: on a bank trained with `--mem-keep all`, replay equals a direct
// evaluation of x′ rebuilt by hand from the bank reader and the dataset (accuracy, per-sample
// correctness, forgetting events), every generation is kept, `--record-memory` writes a bank while its
// weights equal the plain run's bit for bit, a dataset that does not match is a clear error, and a
// damaged record is skipped and counted.

import Attacks
import Datasets
import Foundation
import Layers
import MemoryBank
import Models
import Tensors
import Training
import XCTest
import _TestSupport

final class ReplayTests: XCTestCase {
    /// A 3-epoch tiny TRADES + MemLoss run keeping every generation, trained once for the class.
    private static let trained: (tmp: TempDirectory, run: URL) = {
        let tmp = TempDirectory("replay-trained")
        var c = TrainerTests.tinyConfig(epochs: 3)
        c.memLoss = MemLossConfig(store: MemoryStoreConfig(keep: .all))
        let run = tmp.path("run")
        do { try Trainer(config: c, runDirectory: run).train() } catch { XCTFail("training failed: \(error)") }
        return (tmp, run)
    }()

    private func modelTensors(_ dir: URL) throws -> [String: [Float]] {
        let f = try SafeTensorsFile.read(from: dir.appendingPathComponent("checkpoints/last.safetensors"))
        var out: [String: [Float]] = [:]
        for e in f.entries where e.dtype == .f32 { out[e.name] = try e.tensor().scalars }
        return out
    }

    private func argmax(_ logits: Tensor) -> [Int] {
        let k = logits.shape[1], z = logits.scalars
        return (0..<logits.shape[0]).map { i in (0..<k).reduce(0) { z[i * k + $1] > z[i * k + $0] ? $1 : $0 } }
    }

    // MARK: - Retention in training

    func test_memKeepAll_keepsEveryGeneration_ofATrainingRun() throws {
        let reader = try BankReader.open(at: Self.trained.run.appendingPathComponent("bank"))
        // With K = 1 the window would keep [1, 2] after epoch 3 (TrainerTests checks that it deletes).
        XCTAssertEqual(reader.generations, [0, 1, 2])
        for g in 0..<3 { XCTAssertEqual(reader.segment(g)?.recordCount, 512, "generation \(g)") }
    }

    // MARK: - Replay equals a direct evaluation

    func test_replay_ofATrainedBank_equalsADirectEvaluationOfTheRebuiltExamples() throws {
        let bankURL = Self.trained.run.appendingPathComponent("bank")
        let reader = try BankReader.open(at: bankURL)
        XCTAssertEqual(Replay.dataSource(ofBank: reader), "demo")
        let dataset = try Replay.openData("demo")
        let checkpoint = Self.trained.run.appendingPathComponent("checkpoints/last.safetensors")
        let model = try RestoredModel.load(checkpoint: checkpoint).model
        let report = try Replay.run(model: model, bank: reader, dataset: dataset, dataSpec: "demo", batchSize: 1000)
        XCTAssertEqual(report.generations.map(\.generation), [0, 1, 2])
        var forgottenSamples = Set<Int>()
        for row in report.generations {
            let g = row.generation
            // Direct: every entry of g, x′ = min(max(x + δ, 0), 1) by hand, one inference batch.
            var ids: [Int] = [], values: [Float] = [], margins: [Float] = [], labels: [Int] = []
            for id in 0..<reader.config.sampleCount {
                guard let e = try reader.entry(id: id, generation: g) else { continue }
                let x = dataset.renderView(id: id, view: e.info.view).scalars
                values += zip(x, e.delta).map { min(max($0 + $1, 0), 1) }
                ids.append(id)
                margins.append(e.info.metadata.margin)
                labels.append(dataset.label(at: id))
                XCTAssertEqual(Int(e.info.metadata.label), dataset.label(at: id))
            }
            let images = Tensor(shape: [ids.count] + reader.config.shape, values: values)
            let correct = zip(argmax(model.logits(images, mode: .inference)), labels).map { $0 == $1 }
            XCTAssertEqual(row.ids, ids, "generation \(g)")
            XCTAssertEqual(row.correctNow, correct, "generation \(g): per-sample correctness")
            XCTAssertEqual(row.entries, 512)
            XCTAssertEqual(row.damaged, 0)
            XCTAssertEqual(row.correct, correct.filter { $0 }.count)
            XCTAssertEqual(row.accuracy, Double(row.correct) / 512, accuracy: 1e-12)
            let resisted = margins.map { $0 > 0 }
            XCTAssertEqual(row.resistedThen, resisted.filter { $0 }.count)
            let forgotten = ids.indices.filter { resisted[$0] && !correct[$0] }.map { ids[$0] }
            XCTAssertEqual(row.forgottenIDs, forgotten)
            XCTAssertEqual(row.forgettingEvents, forgotten.count)
            XCTAssertEqual(row.learnedEvents, ids.indices.filter { !resisted[$0] && correct[$0] }.count)
            forgottenSamples.formUnion(forgotten)
        }
        XCTAssertEqual(report.samplesForgotten, forgottenSamples.count)
        XCTAssertEqual(report.totalEntries, 3 * 512)
        // Not a degenerate fixture: the trained model gets some but not all of them right.
        XCTAssert(report.totalCorrect > 0 && report.totalCorrect < report.totalEntries, "\(report.totalCorrect)")
        // The default batch size gives the same counts.
        let batched = try Replay.run(model: model, bank: reader, dataset: dataset, dataSpec: "demo")
        XCTAssertEqual(batched.generations.map(\.correct), report.generations.map(\.correct))
    }

    func test_evalReplayCLI_printsTheLibrarysReport_asJSON_andATable() throws {
        let bank = Self.trained.run.appendingPathComponent("bank").path
        let checkpoint = Self.trained.run.appendingPathComponent("checkpoints/last.safetensors").path
        let out = Self.trained.tmp.path("replay.json")
        let r = try BuiltExecutable.run("memloss", ["eval", "--checkpoint", checkpoint, "--replay", bank, "--json",
                                                    "--output", out.path])
        XCTAssertEqual(r.status, 0, r.err)
        let decoded = try JSONDecoder().decode(ReplayReport.self, from: try Data(contentsOf: out))
        let direct = try Replay.run(model: try RestoredModel.load(checkpoint: URL(fileURLWithPath: checkpoint)).model,
                                    bank: try BankReader.open(at: URL(fileURLWithPath: bank)),
                                    dataset: try Replay.openData("demo"), dataSpec: "demo")
        XCTAssertEqual(decoded.generations.map(\.correct), direct.generations.map(\.correct))
        XCTAssertEqual(decoded.generations.map(\.forgottenIDs), direct.generations.map(\.forgottenIDs))
        XCTAssertEqual(decoded.totalForgettingEvents, direct.totalForgettingEvents)
        XCTAssertEqual(try JSONDecoder().decode(ReplayReport.self, from: Data(r.out.utf8)).totalCorrect, direct.totalCorrect)
        let table = try BuiltExecutable.run("memloss", ["eval", "--checkpoint", checkpoint, "--replay", bank])
        XCTAssertEqual(table.status, 0, table.err)
        XCTAssert(table.out.contains("forgotten") && table.out.contains("resisted then"), table.out)
        let both = try BuiltExecutable.run("memloss", ["eval", "--checkpoint", checkpoint, "--replay", bank, "--attack", "pgd20"])
        XCTAssertNotEqual(both.status, 0)
        XCTAssert(both.err.contains("drop --attack"), both.err)
    }

    // MARK: - Recording without the term

    func test_recordMemory_writesABank_andItsWeightsEqualThePlainRun_bitForBit() throws {
        let tmp = TempDirectory("replay-record")
        var plain = TrainerTests.tinyConfig(epochs: 2)
        plain.memLoss = nil
        var recorded = plain
        recorded.memLoss = MemLossConfig(store: MemoryStoreConfig(keep: .all, recordOnly: true))
        var memloss = plain
        memloss.memLoss = MemLossConfig()
        try Trainer(config: plain, runDirectory: tmp.path("plain")).train()
        try Trainer(config: recorded, runDirectory: tmp.path("recorded")).train()
        try Trainer(config: memloss, runDirectory: tmp.path("memloss")).train()
        let a = try modelTensors(tmp.path("plain")), b = try modelTensors(tmp.path("recorded"))
        XCTAssertEqual(Set(a.keys), Set(b.keys))
        for (name, va) in a { XCTAssert(va == b[name]!, "tensor \(name) differs: --record-memory must not change training") }
        // The comparison can fail: with the term, epoch 2 changes the weights.
        let c = try modelTensors(tmp.path("memloss"))
        XCTAssert(a.contains { c[$0.key] != $0.value }, "the MemLoss run should differ from the plain one")

        let reader = try BankReader.open(at: tmp.path("recorded").appendingPathComponent("bank"))
        XCTAssertEqual(reader.generations, [0, 1])
        for g in 0..<2 { XCTAssertEqual(reader.segment(g)?.recordCount, 512) }
        let epochs = try MetricsLog.read(tmp.path("recorded").appendingPathComponent("metrics.jsonl")).epochs
        XCTAssertEqual(epochs.count, 2)
        for e in epochs {
            XCTAssertNil(e.trainTerms["mem"], "no MemLoss term")
            XCTAssertEqual(e.memory?.entriesWritten, 512)
            XCTAssertEqual(e.memory?.entriesPresent, 0, "nothing read")
            XCTAssertEqual(e.memory?.entriesAbsent, 0, "nothing looked up")
        }
    }

    func test_recordMemoryFlags_resolveToARecordOnlyBank_andConflictsAreRefused() throws {
        let ok = try BuiltExecutable.run("memloss", ["train", "--record-memory", "--no-memloss", "--mem-keep", "all", "--print-config"])
        XCTAssertEqual(ok.status, 0, ok.err)
        let cfg = try JSONDecoder().decode(TrainConfig.self, from: Data(ok.out.utf8))
        XCTAssertEqual(cfg.memLoss?.store.recordOnly, true)
        XCTAssertEqual(cfg.memLoss?.store.keep, .all)
        let mart = try BuiltExecutable.run("memloss", ["train", "--method", "mart", "--record-memory", "--print-config"])
        XCTAssertEqual(try JSONDecoder().decode(TrainConfig.self, from: Data(mart.out.utf8)).memLoss?.store.recordOnly, true)
        for (args, message) in [(["--record-memory", "--mem-beta", "1"], "--mem-beta"),
                                (["--record-memory", "--memloss"], "drop --memloss"),
                                (["--no-memloss", "--mem-keep", "all"], "--record-memory"),
                                (["--mem-keep", "some"], "expected window or all"),
                                (["--record-memory", "--method", "standard"], "memLoss.recordOnly")] {
            let r = try BuiltExecutable.run("memloss", ["train"] + args + ["--print-config"])
            XCTAssertNotEqual(r.status, 0, "\(args)")
            XCTAssert(r.err.contains(message), "\(args): \(r.err)")
        }
    }

    func test_keepAndRecordOnly_roundTripInJSON_andDefaultsLeaveTheOldKeys() throws {
        let set = MemLossConfig(store: MemoryStoreConfig(keep: .all, recordOnly: true))
        let data = try JSONEncoder().encode(set)
        XCTAssertEqual(try JSONDecoder().decode(MemLossConfig.self, from: data), set)
        let flat = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        XCTAssertEqual(flat["keep"] as? String, "all")
        XCTAssertEqual(flat["recordOnly"] as? Bool, true)
        let plain = try XCTUnwrap(JSONSerialization.jsonObject(with: JSONEncoder().encode(MemLossConfig())) as? [String: Any])
        XCTAssertNil(plain["keep"])
        XCTAssertNil(plain["recordOnly"])
        var ram = TrainerTests.tinyConfig(epochs: 1)
        ram.memLoss = MemLossConfig(store: MemoryStoreConfig(kind: .ram, recordOnly: true))
        XCTAssertThrowsError(try ram.validate()) { XCTAssert("\($0)".contains("memLoss.store"), "\($0)") }
    }

    // MARK: - Errors and damage

    /// A bank shaped like the demo's training split holding `ids` in generation 0 (δ = 0, true labels).
    private func demoBank(at dir: URL, sampleCount: Int? = nil, shape: [Int] = [1, 28, 28], ids: [Int],
                          wrongLabel: Int? = nil) throws -> BankReader {
        let data = try Replay.openData("demo")
        let config = BankConfig(sampleCount: sampleCount ?? data.count, shape: shape, epsilon: 0.3, createdBy: "{\"data\":\"demo\"}")
        let bank = try Bank.create(at: dir, config: config, options: Bank.Options(sync: false))
        try bank.beginGeneration(0)
        for id in ids {
            let label = data.label(at: id) + (id == wrongLabel ? 1 : 0)
            try bank.append(id: id, delta: [Float](repeating: 0, count: config.elementCount), view: .identity,
                            metadata: EntryMetadata(label: Int32(label % 10), pY: 0.9, margin: 1))
        }
        try bank.sealGeneration()
        bank.close()
        return try BankReader.open(at: dir)
    }

    /// An untrained narrow SmallCNN (replay needs a model; these tests do not look at its answers).
    private let smallModel = try! ModelSpec(parsing: "smallcnn", classes: 10, width: 0.25).build(seed: 0)

    func test_replay_withADatasetOfAnotherCountShapeOrLabels_isAClearError() throws {
        let tmp = TempDirectory("replay-mismatch")
        let data = try Replay.openData("demo")
        let cases: [(BankReader, String)] = [
            (try demoBank(at: tmp.path("count"), sampleCount: 10, ids: [1]), "sample count is 10 in the bank, \(data.count) in the data"),
            (try demoBank(at: tmp.path("shape"), shape: [3, 32, 32], ids: [1]), "image shape is [3, 32, 32] in the bank, [1, 28, 28]"),
            (try demoBank(at: tmp.path("label"), ids: [1, 2], wrongLabel: 2), "the label of sample 2 (generation 0)"),
        ]
        for (reader, message) in cases {
            XCTAssertThrowsError(try Replay.run(model: smallModel, bank: reader, dataset: data, dataSpec: "demo")) { error in
                let text = "\(error)"
                XCTAssert(text.contains(message) && text.contains("data 'demo'") && text.contains("\nhint: "), text)
            }
        }
        XCTAssertThrowsError(try Replay.checkModel(name: "resnet18", inputShape: [3, 32, 32], bank: cases[0].0)) {
            XCTAssert("\($0)".contains("3×32×32") && "\($0)".contains("hint:"), "\($0)")
        }
    }

    func test_replay_skipsAndCountsADamagedRecord_andEvaluatesTheRest() throws {
        let tmp = TempDirectory("replay-damaged")
        let reader0 = try demoBank(at: tmp.path("bank"), ids: [0, 1, 2])
        let segment = try XCTUnwrap(reader0.segment(0))
        let offset = try XCTUnwrap(segment.recordOffset(of: 1))
        var bytes = try Data(contentsOf: URL(fileURLWithPath: segment.path))
        bytes[offset + 48] ^= 0xFF  // the payload's first byte, under the record checksum
        try bytes.write(to: URL(fileURLWithPath: segment.path))
        let reader = try BankReader.open(at: tmp.path("bank"))
        let report = try Replay.run(model: smallModel, bank: reader, dataset: try Replay.openData("demo"), dataSpec: "demo")
        let row = try XCTUnwrap(report.generations.first)
        XCTAssertEqual(row.ids, [0, 2])
        XCTAssertEqual(row.entries, 2)
        XCTAssertEqual(row.damaged, 1)
        XCTAssertEqual(report.totalDamaged, 1)
        XCTAssertEqual(report.problems.count, 1)
        XCTAssert(report.problems[0].contains("sample 1"), report.problems[0])
        XCTAssertEqual(row.resistedThen, 2, "margin 1 > 0 for both")
    }
}
