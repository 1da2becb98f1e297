// WarmStartTests.swift: `--attack-init memory` in the training step (WarmStart.swift,
// docs/warm-start.md): with no entry the step equals the random-start step bit for bit (and rows
// without an entry keep their random-start attack); with an entry the start is the stored δ mapped
// into the batch's view, within the codec's bound (disk, q8) or to rounding (RAM), 0 where the views
// do not overlap, and the projected start lies in the ε-ball and the box; a record-only bank read
// for the warm start counts warm starts but adds no MemLoss term.

import Attacks
import Datasets
import Foundation
import Kernels
import Layers
import MemoryBank
import Models
import Tensors
import Training
import XCTest
import _TestSupport

final class WarmStartTests: XCTestCase {
    static let demo = MemoryStoreTests.demo
    static let method = MethodConfig.trades(TRADESConfig(attack: MethodFixtures.attack(.tradesGaussian), beta: 6))

    private func parts() throws -> (AnyClassifier, any TrainingMethod, SGD) {
        let model = AnyClassifier(MethodFixtures.smallCNN(seed: 4, dropout: 0))
        let sgd = SGD(parameters: model.namedParameters, config: SGDConfig(learningRate: 0.05, momentum: 0.9, weightDecay: 0))
        return (model, try makeMethod(Self.method, helper: nil), sgd)
    }

    private func values(_ m: AnyClassifier) -> [[Float]] { m.parameters.map { $0.value.scalars } }

    func test_noEntry_theMemoryStartStepEqualsTheRandomStartStep_bitForBit() throws {
        let ids = Array(0..<8)
        let batch = BatchLoader(dataset: Self.demo, augmentation: .cifar, seed: 3).load(ids: ids, epoch: 0)
        let plan = EpochPlan(population: ids, seed: 1, epoch: 0, batchSize: 8)
        var outcomes: [StepOutcome] = [], params: [[[Float]]] = []
        for attackInit in [AttackInit.random, .memory] {
            let (model, method, sgd) = try parts()
            let store = RAMMemoryStore(config: MemoryStoreConfig(window: 1, kind: .ram), sampleCount: Self.demo.count,
                                       shape: Self.demo.shape.dimensions)
            try store.beginEpoch(0, plan: plan)
            let step = TrainingStep(model: model, method: method, optimizer: sgd, memory: store, seed: 9, attackInit: attackInit)
            outcomes.append(try step.run(batch, globalStep: 0, learningRate: 0.05))
            params.append(values(model))
        }
        XCTAssertEqual(outcomes[0].adversarial?.scalars, outcomes[1].adversarial?.scalars)
        XCTAssertEqual(outcomes[0].loss, outcomes[1].loss)
        XCTAssertEqual(params[0], params[1])
        XCTAssertNil(outcomes[0].warmStarts)
        XCTAssertEqual(outcomes[1].warmStarts, 0)
    }

    func test_rowsWithoutAnEntry_keepTheirRandomStartAttack_bitForBit() throws {
        let (model, method, _) = try parts()
        let x = BatchLoader(dataset: Self.demo, augmentation: .none, seed: 3).load(ids: Array(0..<6), epoch: 0)
        var r1 = SplitMix64(seed: 5), r2 = SplitMix64(seed: 5)
        let random = method.step(model: model, images: x.images, labels: x.labels, auxiliary: [], rng: &r1)
        model.zeroGradients()
        let start = AttackStart(rows: [1, 3], images: Tensor(shape: [2, 1, 28, 28], repeating: 0.5))
        let warm = method.step(model: model, images: x.images, labels: x.labels, auxiliary: [], attackStart: start, rng: &r2)
        let n = 28 * 28, a = try XCTUnwrap(random.adversarial).scalars, b = try XCTUnwrap(warm.adversarial).scalars
        for i in [0, 2, 4, 5] { XCTAssertEqual(Array(a[(i * n)..<((i + 1) * n)]), Array(b[(i * n)..<((i + 1) * n)]), "row \(i)") }
        for i in [1, 3] { XCTAssertNotEqual(Array(a[(i * n)..<((i + 1) * n)]), Array(b[(i * n)..<((i + 1) * n)]), "row \(i)") }
    }

    /// Records epoch 0's made examples (views of epoch 0) into `store`, then reads epoch 1 and checks
    /// the warm start against δ mapped from epoch 0's view into epoch 1's, within `bound`.
    private func checkMappedStart(_ store: any MemoryStore, bound: Float, name: String) throws {
        let population = Array(0..<16), epsilon: Float = 0.3
        let plan1 = EpochPlan(population: population, seed: 1, epoch: 1, batchSize: 16)
        // Epoch 0 records in epoch 1's batch order (the order of a record does not matter; the read does).
        let ids = Array(plan1.batchIDs(0))
        try store.beginEpoch(0, plan: EpochPlan(population: population, seed: 1, epoch: 0, batchSize: 16))
        _ = try store.next(ids: ids)
        let made = MemoryStoreTests.make(ids: ids, epoch: 0, epsilon: epsilon, augmentation: .cifar)
        try store.record(ids: ids, views: made.views, clean: made.clean, adversarial: made.adversarial, metadata: made.metadata)
        _ = try store.endEpoch()
        try store.beginEpoch(1, plan: plan1)
        let examples = try store.next(ids: ids)
        let batch = BatchLoader(dataset: Self.demo, augmentation: .cifar, seed: 5).load(ids: ids, epoch: 1)
        XCTAssertNotEqual(batch.views, made.views, "the check needs views that differ between the epochs")
        let start = WarmStart.start(examples: examples, clean: batch.images, views: batch.views)
        XCTAssertEqual(start.rows, Array(0..<16), "\(name): every sample has an entry")

        var stored = made.adversarial.copy()
        Elementwise.addScaled(&stored, made.clean, scale: -1)   // δ in epoch 0's views
        let startDelta = Elementwise.add(start.images, Elementwise.scaled(batch.images, by: -1))
        var worst: Float = 0, overlapping = 0, elsewhere = 0
        for i in 0..<16 {
            var expected = Tensor(zeros: [1, 1, 28, 28]), mask = Tensor(zeros: [1, 1, 28, 28])
            ViewMapping.transfer(stored, row: i, from: made.views[i], into: &expected, row: 0, to: batch.views[i])
            ViewMapping.transfer(Tensor(shape: [16, 1, 28, 28], repeating: 1), row: i, from: made.views[i], into: &mask, row: 0,
                                 to: batch.views[i])
            for j in 0..<784 {
                let got = startDelta[flat: i * 784 + j]
                if mask[flat: j] == 1 {
                    worst = max(worst, abs(got - expected[flat: j])); overlapping += 1
                } else {
                    XCTAssertEqual(got, 0, "\(name) sample \(i) pixel \(j): δ must be 0 where the views do not overlap")
                    elsewhere += 1
                }
            }
        }
        XCTAssertLessThanOrEqual(worst, bound, "\(name): max |start − x − mapped δ| = \(worst)")
        XCTAssertGreaterThan(overlapping, 0)
        XCTAssertGreaterThan(elsewhere, 0, "the views chosen never leave a pixel uncovered: the 0 fill is untested")

        // The attack's projection puts the start in the ε-ball and the box (0 steps return it).
        let config = PGDConfig(epsilon: epsilon, stepSize: 0.05, steps: 0, norm: .linf, randomStart: .tradesGaussian)
        var rng = SplitMix64(seed: 3)
        let x0 = PGD.attack(MethodFixtures.smallCNN(seed: 4, dropout: 0), images: batch.images, labels: batch.labels,
                            config: config, objective: .crossEntropy, start: start, rng: &rng)
        let a = x0.scalars, c = batch.images.scalars
        for j in a.indices {
            XCTAssert(a[j] >= 0 && a[j] <= 1 && abs(a[j] - c[j]) <= epsilon + 1e-6, "\(name) element \(j): \(a[j]) vs \(c[j])")
        }
    }

    func test_withAnEntry_theStartIsTheStoredDeltaMappedIntoTheBatchView() throws {
        let ram = RAMMemoryStore(config: MemoryStoreConfig(window: 1, kind: .ram), sampleCount: Self.demo.count,
                                 shape: Self.demo.shape.dimensions)
        try checkMappedStart(ram, bound: 2e-7, name: "ram")
        let tmp = TempDirectory("warm-start")
        let disk = try DiskMemoryStore(config: MemoryStoreConfig(window: 1, codec: .q8), directory: tmp.path("bank"),
                                       dataset: Self.demo, epsilon: 0.3, norm: .linf, createdBy: "{}", keepThrough: nil,
                                       options: Bank.Options(sync: false))
        defer { disk.close() }
        // x′ = clamp(v(x) + δ̂): |x′ − x̃| ≤ |δ̂ − δ| ≤ the q8 bound, plus two float32 roundings.
        try checkMappedStart(disk, bound: BankCodec.q8.errorBound(epsilon: 0.3) + 2e-7, name: "disk q8")
    }

    /// TrainerTests' tiny run, smaller, with MemLoss off and `--attack-init memory`.
    private func warmConfig(epochs: Int) -> TrainConfig {
        var c = TrainerTests.tinyConfig(epochs: epochs)
        c.trainSamples = 128
        c.memLoss = nil
        c.attackInit = .memory
        return c
    }

    private func modelTensors(_ dir: URL) throws -> [[Float]] {
        let f = try SafeTensorsFile.read(from: dir.appendingPathComponent("checkpoints/last.safetensors"))
        return try f.entries.filter { $0.dtype == .f32 }.sorted { $0.name < $1.name }.map { try $0.tensor().scalars }
    }

    func test_trainer_epoch1EqualsTheRandomStart_andResumeEqualsAStraightRun_bitForBit() throws {
        let tmp = TempDirectory("warm-trainer")
        var random = warmConfig(epochs: 1)
        random.attackInit = .random
        try Trainer(config: random, runDirectory: tmp.path("random")).train()
        try Trainer(config: warmConfig(epochs: 1), runDirectory: tmp.path("warm1")).train()
        XCTAssertEqual(try modelTensors(tmp.path("random")), try modelTensors(tmp.path("warm1")),
                       "epoch 1 has no entry: the warm run is the random-start run")

        try Trainer(config: warmConfig(epochs: 2), runDirectory: tmp.path("straight")).train()
        try JSONEncoder().encode(warmConfig(epochs: 2)).write(to: tmp.path("warm1").appendingPathComponent("config.json"))
        try Trainer(config: .demo, runDirectory: tmp.path("warm1"), resume: true).train()
        XCTAssertEqual(try modelTensors(tmp.path("straight")), try modelTensors(tmp.path("warm1")), "resume = straight run")
        let epochs = try MetricsLog.read(tmp.path("straight").appendingPathComponent("metrics.jsonl")).epochs
        XCTAssertEqual(epochs.map(\.warmStarts), [0, 128])
        XCTAssertEqual(epochs.map(\.memEntriesUsed), [0, 0], "MemLoss off: the bank serves the warm start only")
        var random2 = warmConfig(epochs: 2)
        random2.attackInit = .random
        try Trainer(config: random2, runDirectory: tmp.path("random2")).train()
        XCTAssertNotEqual(try modelTensors(tmp.path("straight")), try modelTensors(tmp.path("random2")),
                          "epoch 2's warm starts must change the training")
    }

    func test_recordOnlyBank_isReadForTheWarmStart_withoutATerm() throws {
        let ids = Array(0..<8)
        let (model, method, sgd) = try parts()
        let tmp = TempDirectory("warm-record-only")
        let disk = try DiskMemoryStore(config: MemoryStoreConfig(window: 1, recordOnly: true), directory: tmp.path("bank"),
                                       dataset: Self.demo, epsilon: 0.1, norm: .linf, createdBy: "{}", keepThrough: nil,
                                       options: Bank.Options(sync: false), readsWindow: true)
        defer { disk.close() }
        XCTAssert(disk.readsWindow)
        let step = TrainingStep(model: model, method: method, optimizer: sgd, memory: disk, seed: 2, attackInit: .memory)
        let loader = BatchLoader(dataset: Self.demo, augmentation: .none, seed: 3)
        for epoch in 0..<2 {
            let plan = EpochPlan(population: ids, seed: 1, epoch: epoch, batchSize: 8)
            try disk.beginEpoch(epoch, plan: plan)
            let o = try step.run(loader.load(ids: Array(plan.batchIDs(0)), epoch: epoch), globalStep: epoch, learningRate: 0.05)
            XCTAssertEqual(o.warmStarts, epoch == 0 ? 0 : 8, "epoch \(epoch)")
            XCTAssertEqual(o.memory?.entriesUsed, 0, "record-only: the term uses nothing")
            XCTAssertEqual(o.memory?.entriesPresent, epoch == 0 ? 0 : 8)
            XCTAssertNil(o.terms["mem"])
            XCTAssertEqual(try disk.endEpoch().entriesWritten, 8)
        }
    }

    /// A record-only disk store opened without `readsWindow` cannot serve the warm start: the step
    /// says so instead of silently training with no memory; so does a step without a store.
    func test_memoryStart_overAStoreThatDoesNotRead_throwsANamedError() throws {
        let ids = Array(0..<8)
        let (model, method, sgd) = try parts()
        let tmp = TempDirectory("warm-record-only-unread")
        let disk = try DiskMemoryStore(config: MemoryStoreConfig(window: 1, recordOnly: true), directory: tmp.path("bank"),
                                       dataset: Self.demo, epsilon: 0.1, norm: .linf, createdBy: "{}", keepThrough: nil,
                                       options: Bank.Options(sync: false))
        defer { disk.close() }
        XCTAssertFalse(disk.readsWindow)
        let loader = BatchLoader(dataset: Self.demo, augmentation: .none, seed: 3)
        let plan = EpochPlan(population: ids, seed: 1, epoch: 0, batchSize: 8)
        try disk.beginEpoch(0, plan: plan)
        let batch = loader.load(ids: Array(plan.batchIDs(0)), epoch: 0)
        for store in [disk, nil] as [(any MemoryStore)?] {
            let step = TrainingStep(model: model, method: method, optimizer: sgd, memory: store, seed: 2, attackInit: .memory)
            XCTAssertThrowsError(try step.run(batch, globalStep: 0, learningRate: 0.05)) { error in
                let text = "\(error)"
                XCTAssert(error is TrainingError && text.contains("attackInit") && text.contains("hint:"), text)
            }
        }
        // The random start over the same store still runs (it records, never reads).
        let random = TrainingStep(model: model, method: method, optimizer: sgd, memory: disk, seed: 2, attackInit: .random)
        XCTAssertNoThrow(try random.run(batch, globalStep: 0, learningRate: 0.05))
    }

    /// The warm start reads the newest window slot; with a stride s > 1 that is generation e − s, not
    /// the sample's last stored δ, so the combination is refused, naming both flags.
    func test_memoryStart_withAMemStrideAboveOne_isRefused() throws {
        var c = TrainConfig.demo
        c.attackInit = .memory
        c.memLoss?.store.stride = 2
        XCTAssertThrowsError(try c.validate()) { error in
            let text = "\(error)"
            for part in ["--attack-init", "--mem-stride", "attackInit", "memLoss.stride", "hint:"] {
                XCTAssert(text.contains(part), "missing \(part): \(text)")
            }
        }
        c.attackInit = .random
        XCTAssertNoThrow(try c.validate(), "a strided window with the random start is fine")
        c.attackInit = .memory
        c.memLoss?.store.stride = 1
        XCTAssertNoThrow(try c.validate())
    }

    /// `.random` has one spelling: a config built in code with it encodes like one without the option,
    /// a file's `"random"` (as an older build wrote it) decodes as `.random`, and a resume asking for
    /// `--attack-init random` is no change, whichever way config.json spelled it.
    func test_randomStart_hasOneSpelling_andResumeWithAttackInitRandomIsNoChange() throws {
        var explicit = TrainConfig.demo
        explicit.attackInit = .random
        let encoded = try JSONSerialization.jsonObject(with: JSONEncoder().encode(explicit)) as? [String: Any]
        XCTAssertNil(encoded?["attackInit"], "the default is not written")
        var object = try XCTUnwrap(encoded)
        object["attackInit"] = "random"
        let old = try JSONDecoder().decode(TrainConfig.self, from: JSONSerialization.data(withJSONObject: object))
        XCTAssertEqual(old, explicit)
        object["attackInit"] = nil
        XCTAssertEqual(try JSONDecoder().decode(TrainConfig.self, from: JSONSerialization.data(withJSONObject: object)), explicit)

        let tmp = TempDirectory("warm-resume-random")
        for (name, text) in [("written", try JSONEncoder().encode(explicit)),
                             ("old", try JSONSerialization.data(withJSONObject: object.merging(["attackInit": "random"]) { $1 }))] {
            let dir = tmp.path(name)
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            try text.write(to: dir.appendingPathComponent("config.json"))
            let stored = try TrainConfig.stored(inRun: dir)
            var requested = stored
            requested.attackInit = .random  // what `--resume DIR --attack-init random` lays over it
            switch TrainConfig.resumeChanges(stored: stored, requested: requested, explicit: ["--attack-init": ["attackInit"]]) {
            case .success(let o): XCTAssertEqual(o, .none, name)
            case .failure(let conflicts): XCTFail("\(name): \(conflicts)")
            }
            requested.attackInit = .memory
            if case .success = TrainConfig.resumeChanges(stored: stored, requested: requested, explicit: ["--attack-init": ["attackInit"]]) {
                XCTFail("\(name): a change to memory must be refused")
            }
        }
    }
}
