// MemLossTests.swift: the MemLoss term with the in-RAM memory: an empty memory leaves a method step
// bitwise unchanged (epoch 1 is the base method), the term's gradients with respect to the clean
// logits and the parameters match finite differences for each weighting, and only samples with a
// memory example contribute.

import Attacks
import Layers
import Models
import Tensors
import Training
import XCTest
import _TestSupport

final class MemLossTests: XCTestCase {
    private func gradients(_ m: SmallCNN) -> [[Float]] { m.parameters.map { $0.gradient.scalars } }

    func test_emptyMemory_leavesTheTRADESStepBitwiseUnchanged() throws {
        let x = MethodFixtures.images(n: 6, shape: [1, 28, 28], seed: 1)
        let y = MethodFixtures.labels(n: 6, seed: 2)
        func run(withTerm: Bool) throws -> (Float, [[Float]]) {
            let m = MethodFixtures.smallCNN(seed: 5, dropout: 0)
            let method = try makeMethod(.trades(TRADESConfig(attack: MethodFixtures.attack(.tradesGaussian))), helper: nil)
            let any = AnyClassifier(m)
            let term = MemLossTerm(config: MemLossConfig(), memory: RAMMemory(imageShape: [1, 28, 28]))
            var rng = SplitMix64(seed: 9)
            let r = method.step(model: any, images: x, labels: y, ids: Array(0..<6),
                                auxiliary: withTerm ? [term] : [], rng: &rng)
            return (r.loss, gradients(m))
        }
        let (l0, g0) = try run(withTerm: false)
        let (l1, g1) = try run(withTerm: true)
        XCTAssertEqual(l0, l1)
        XCTAssertEqual(g0, g1)
    }

    private func checkTerm(_ weighting: MemoryWeighting, file: StaticString = #filePath, line: UInt = #line) {
        let m = MethodFixtures.smallCNN(seed: 7, dropout: 0)
        let any = AnyClassifier(m)
        let memory = RAMMemory(imageShape: [1, 28, 28])
        // Samples 0, 2 and 3 of a batch of 4 have memory examples.
        memory.store(ids: [10, 12, 13], adversarial: MethodFixtures.images(n: 3, shape: [1, 28, 28], seed: 3))
        memory.endEpoch()
        let ids = [10, 11, 12, 13], labels: [Int32] = [1, 4, 7, 2]
        var g = SplitMix64(seed: 4)
        var clean = Tensor.randomUniform(shape: [4, 10], low: -2, high: 2, rng: &g)
        let term = MemLossTerm(config: MemLossConfig(beta: 2, weighting: weighting), memory: memory)
        m.zeroGradients()
        let (terms, dClean) = term.apply(model: any, cleanLogits: clean, labels: labels, ids: ids)
        XCTAssertNotNil(terms["mem"], file: file, line: line)
        // Sample 1 has no memory: no gradient on its clean logits.
        for c in 0..<10 { XCTAssertEqual(dClean[flat: 10 + c], 0, file: file, line: line) }
        let analyticParams = m.parameters.map { $0.gradient.scalars }
        // A fresh term evaluation (value only) for finite differences; parameter gradients it
        // accumulates are irrelevant there.
        let value = { () -> Double in Double(term.apply(model: any, cleanLogits: clean, labels: labels, ids: ids).terms["mem"]!) }
        _ = checkGradient("mem/\(weighting) clean logits", count: clean.count, analytic: dClean.scalars,
                          read: { clean[flat: $0] }, write: { clean[flat: $0] = $1 }, loss: value,
                          samples: 40, eps: 1e-2, atol: 1e-4, rtol: 2e-2, file: file, line: line)
        // Linear layers only: conv weights sit behind many ReLU/max-pool kinks per perturbation (see
        // ModelTests for the conv path, checked on single blocks).
        for (k, p) in [m.fc3.weight, m.fc2.weight, m.fc1.weight].enumerated() {
            let idx = m.parameters.firstIndex { $0 === p }!
            _ = checkGradient("mem/\(weighting) param \(k)", count: p.value.count, analytic: analyticParams[idx],
                              read: { p.value[flat: $0] }, write: { p.value[flat: $0] = $1 }, loss: value,
                              samples: 12, eps: 1e-2, atol: 2e-4, rtol: 3e-2, file: file, line: line)
        }
    }

    func test_difficultyWeightedTerm_gradientsMatchFiniteDifferences() { checkTerm(.difficulty) }
    func test_detachedWeightTerm_gradientsMatchFiniteDifferences_ofTheWeightedKLWithConstantWeights() {
        // With a detached weight the analytic gradient is not the gradient of the value; check the
        // clean-logit gradient only, which is the same in both cases (w does not depend on z_clean).
        let m = MethodFixtures.smallCNN(seed: 8, dropout: 0)
        let memory = RAMMemory(imageShape: [1, 28, 28])
        memory.store(ids: [0, 1], adversarial: MethodFixtures.images(n: 2, shape: [1, 28, 28], seed: 6))
        memory.endEpoch()
        var g = SplitMix64(seed: 2)
        let clean = Tensor.randomUniform(shape: [2, 10], low: -2, high: 2, rng: &g)
        let a = MemLossTerm(config: MemLossConfig(weighting: .difficulty), memory: memory)
            .apply(model: AnyClassifier(m), cleanLogits: clean, labels: [3, 5], ids: [0, 1])
        let b = MemLossTerm(config: MemLossConfig(weighting: .difficultyDetached), memory: memory)
            .apply(model: AnyClassifier(m), cleanLogits: clean, labels: [3, 5], ids: [0, 1])
        XCTAssertEqual(a.terms["mem"], b.terms["mem"])
        XCTAssertEqual(a.dCleanLogits, b.dCleanLogits)
    }
    func test_uniformTerm_gradientsMatchFiniteDifferences() { checkTerm(.uniform) }

    func test_memory_rotatesByEpoch_andIsKeyedBySampleID() {
        let memory = RAMMemory(imageShape: [1, 2, 2])
        memory.store(ids: [5, 9], adversarial: Tensor(shape: [2, 1, 2, 2], values: [1, 1, 1, 1, 2, 2, 2, 2]))
        XCTAssertNil(memory.lookup(ids: [5, 9]), "this epoch's examples are not yet memory")
        memory.endEpoch()
        let hit = memory.lookup(ids: [9, 7, 5])!
        XCTAssertEqual(hit.positions, [0, 2])
        XCTAssertEqual(hit.images.scalars, [2, 2, 2, 2, 1, 1, 1, 1])
        memory.endEpoch()
        XCTAssertNil(memory.lookup(ids: [5, 9]), "K = 1: two epochs back is forgotten")
    }
}
