// TrainingStepTests.swift: the one training step: without memory it is the plain method step and
// SGD update bit for bit; `update: false` computes the same loss and leaves the parameters alone; a
// RAM memory is fetched, selected once, used by the term and recorded into; a non-finite loss skips
// the update and says so.

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

final class TrainingStepTests: XCTestCase {
    static let demo: Dataset = try! DataSource(parsing: "demo").open(.train)
    static let tradesConfig = MethodConfig.trades(TRADESConfig(attack: MethodFixtures.attack(.tradesGaussian), beta: 6))

    private func batch(_ ids: [Int], epoch: Int = 0) -> Batch {
        BatchLoader(dataset: Self.demo, augmentation: .none, seed: 3).load(ids: ids, epoch: epoch)
    }

    private func values(_ m: AnyClassifier) -> [[Float]] { m.parameters.map { $0.value.scalars } }

    /// A fresh model, its method and optimizer (identical for equal seeds).
    private func parts(seed: UInt64 = 4) throws -> (AnyClassifier, any TrainingMethod, SGD) {
        let model = AnyClassifier(MethodFixtures.smallCNN(seed: seed, dropout: 0))
        let method = try makeMethod(Self.tradesConfig, helper: nil)
        let sgd = SGD(parameters: model.namedParameters, config: SGDConfig(learningRate: 0.05, momentum: 0.9, weightDecay: 0))
        return (model, method, sgd)
    }

    func test_withoutMemory_isThePlainMethodStepAndSGDUpdate_bitForBit() throws {
        let x = batch(Array(0..<8))
        let (a, methodA, sgdA) = try parts()
        let outcome = try TrainingStep(model: a, method: methodA, optimizer: sgdA, seed: 11)
            .run(x, globalStep: 5, learningRate: 0.05, momentum: 0.9)

        let (b, methodB, sgdB) = try parts()
        b.zeroGradients()
        var rng = SplitMix64.derived(seed: 11 ^ 0x5EED_A77A_C0DE, stream: 5)
        let r = methodB.step(model: b, images: x.images, labels: x.labels, auxiliary: [], rng: &rng)
        sgdB.step(learningRate: 0.05, momentum: 0.9)

        XCTAssertEqual(outcome.loss, r.loss)
        XCTAssertEqual(outcome.terms, r.terms)
        XCTAssertEqual(values(a), values(b))
        XCTAssertTrue(outcome.updated && outcome.isFinite)
        XCTAssertNil(outcome.memory)
        XCTAssertEqual(outcome.batchSize, 8)
        XCTAssertNotNil(outcome.adversarialCorrect)
        XCTAssert((0...8).contains(outcome.cleanCorrect))
    }

    /// With `startNoise` (what `--mem-codec q8rcn` turns on) the attack's start is a function of
    /// (seed, epoch, sample ID): the frozen step's adversarial examples do not change with the
    /// global step (the TRADES L∞ attack draws nothing else), and differ from the batch-drawn start's.
    func test_perSampleStartNoise_makesTheAttackIndependentOfTheGlobalStep() throws {
        let x = batch(Array(20..<26), epoch: 2)
        let (model, method, sgd) = try parts()
        var step = TrainingStep(model: model, method: method, optimizer: sgd, seed: 11)
        let drawn5 = try XCTUnwrap(step.run(x, globalStep: 5, learningRate: 0.05, update: false).adversarial).scalars
        let drawn6 = try XCTUnwrap(step.run(x, globalStep: 6, learningRate: 0.05, update: false).adversarial).scalars
        XCTAssertNotEqual(drawn5, drawn6, "the batch-drawn start follows the global step")
        step.startNoise = StartNoise(runSeed: 11)
        let a = try XCTUnwrap(step.run(x, globalStep: 5, learningRate: 0.05, update: false).adversarial).scalars
        let b = try XCTUnwrap(step.run(x, globalStep: 6, learningRate: 0.05, update: false).adversarial).scalars
        XCTAssertEqual(a, b)
        XCTAssertNotEqual(a, drawn5)
    }

    func test_updateFalse_leavesTheParameters_andGivesTheUpdatingStepsLoss() throws {
        let x = batch(Array(10..<18))
        let (frozen, m1, s1) = try parts()
        let before = values(frozen)
        let a = try TrainingStep(model: frozen, method: m1, optimizer: s1, seed: 2)
            .run(x, globalStep: 3, learningRate: 0.05, update: false)
        XCTAssertEqual(values(frozen), before, "update: false changed the parameters")
        XCTAssertFalse(a.updated)
        XCTAssertTrue(a.isFinite)
        XCTAssertEqual(a.seconds.optimizer, 0, accuracy: 1e-3)

        let (live, m2, s2) = try parts()
        let b = try TrainingStep(model: live, method: m2, optimizer: s2, seed: 2).run(x, globalStep: 3, learningRate: 0.05)
        XCTAssertTrue(b.updated)
        XCTAssertEqual(a.loss, b.loss)
        XCTAssertEqual(a.terms, b.terms)
        XCTAssertNotEqual(values(live), before, "update: true did not move the parameters")
        // A second frozen run repeats the first exactly (same stream, same model).
        let again = try TrainingStep(model: frozen, method: m1, optimizer: s1, seed: 2)
            .run(x, globalStep: 3, learningRate: 0.05, update: false)
        XCTAssertEqual(again.loss, a.loss)
    }

    func test_ramMemory_isFetchedSelectedUsedAndRecorded() throws {
        let ids = Array(0..<8)
        let (model, method, sgd) = try parts()
        let store = RAMMemoryStore(config: MemoryStoreConfig(window: 1, kind: .ram), sampleCount: Self.demo.count,
                                   shape: Self.demo.shape.dimensions)
        let term = MemLossTermConfig(beta: 2, select: .hardest(fraction: 0.5))
        let step = TrainingStep(model: model, method: method, optimizer: sgd, memory: store, term: term, seed: 1)
        let plan = EpochPlan(population: ids, seed: 1, epoch: 0, batchSize: 8)

        try store.beginEpoch(0, plan: plan)
        let first = try step.run(batch(ids), globalStep: 0, learningRate: 0.05)
        XCTAssertEqual(first.memory, .init(entriesUsed: 0, samplesWithMemory: 0, entriesPresent: 0, problems: []))
        XCTAssertNil(first.terms["mem"], "epoch 1 has no memory: no term")
        XCTAssertEqual(try store.endEpoch().entriesWritten, 8)

        try store.beginEpoch(1, plan: plan)
        let second = try step.run(batch(ids, epoch: 1), globalStep: 1, learningRate: 0.05)
        // hardest:0.5 of 8 present entries keeps 4, one per sample (K = 1).
        XCTAssertEqual(second.memory, .init(entriesUsed: 4, samplesWithMemory: 4, entriesPresent: 8, problems: []))
        let mem = try XCTUnwrap(second.terms["mem"])
        XCTAssert(mem.isFinite && mem > 0, "\(mem)")
        XCTAssertEqual(try store.endEpoch().entriesPresent, 8)
    }

    func test_nonFiniteLoss_skipsTheUpdate_andSaysSo() throws {
        // A NaN output bias makes every logit row, and so the loss, NaN.
        let cnn = MethodFixtures.smallCNN(seed: 4, dropout: 0)
        cnn.fc3.bias!.value[flat: 0] = .nan
        let model = AnyClassifier(cnn)
        let sgd = SGD(parameters: model.namedParameters, config: SGDConfig(learningRate: 0.05, momentum: 0.9, weightDecay: 0))
        func bits() -> [[UInt32]] { model.parameters.map { $0.value.scalars.map(\.bitPattern) } }
        let before = bits()
        let outcome = try TrainingStep(model: model, method: StandardMethod(), optimizer: sgd, seed: 1)
            .run(batch(Array(0..<4)), globalStep: 0, learningRate: 0.05)
        XCTAssertFalse(outcome.isFinite)
        XCTAssertFalse(outcome.updated)
        XCTAssertFalse(outcome.loss.isFinite)
        XCTAssertEqual(bits(), before, "a non-finite step must not touch the parameters")
        XCTAssertEqual(sgd.stepCount, 0)
    }
}
