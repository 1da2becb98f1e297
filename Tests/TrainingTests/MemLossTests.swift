// MemLossTests.swift: the MemLoss term: an empty memory leaves a method step bitwise unchanged
// (epoch 1 is the base method), the term's gradients with respect to the clean logits and the
// parameters match finite differences for each weighting (K = 1 and K = 2), only samples with a
// memory example contribute, the K > 1 value equals an independent Double computation of
// β′/B Σ_i c_i Σ_k w_ik KL_ik, the selection and reduction rules, and that two half batches (two
// data-parallel ranks) averaged give the whole batch's term even when their memory counts differ.

import Attacks
import Foundation
import Kernels
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
            let term = Self.term(MemLossTermConfig(), .empty(count: 6, window: 1))
            var rng = SplitMix64(seed: 9)
            let r = method.step(model: any, images: x, labels: y,
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
        // Samples 0, 2 and 3 of a batch of 4 have memory examples.
        let examples = Self.examples(batch: 4, window: 1, present: [0, 2, 3], seed: 3)
        let labels: [Int32] = [1, 4, 7, 2]
        var g = SplitMix64(seed: 4)
        var clean = Tensor.randomUniform(shape: [4, 10], low: -2, high: 2, rng: &g)
        let term = Self.term(MemLossTermConfig(beta: 2, weighting: weighting), examples)
        m.zeroGradients()
        let (terms, dClean) = term.apply(model: any, cleanLogits: clean, labels: labels)
        XCTAssertNotNil(terms["mem"], file: file, line: line)
        // Sample 1 has no memory: no gradient on its clean logits.
        for c in 0..<10 { XCTAssertEqual(dClean[flat: 10 + c], 0, file: file, line: line) }
        let analyticParams = m.parameters.map { $0.gradient.scalars }
        // A fresh term evaluation (value only) for finite differences; parameter gradients it
        // accumulates are irrelevant there.
        let value = { () -> Double in Double(term.apply(model: any, cleanLogits: clean, labels: labels).terms["mem"]!) }
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
        let examples = Self.examples(batch: 2, window: 1, present: [0, 1], seed: 6)
        var g = SplitMix64(seed: 2)
        let clean = Tensor.randomUniform(shape: [2, 10], low: -2, high: 2, rng: &g)
        let a = Self.term(MemLossTermConfig(weighting: .difficulty), examples)
            .apply(model: AnyClassifier(m), cleanLogits: clean, labels: [3, 5])
        let b = Self.term(MemLossTermConfig(weighting: .difficultyDetached), examples)
            .apply(model: AnyClassifier(m), cleanLogits: clean, labels: [3, 5])
        XCTAssertEqual(a.terms["mem"], b.terms["mem"])
        XCTAssertEqual(a.dCleanLogits, b.dCleanLogits)
    }
    func test_uniformTerm_gradientsMatchFiniteDifferences() { checkTerm(.uniform) }

    /// The term over the entries its options select (what TrainingStep builds).
    static func term(_ config: MemLossTermConfig, _ examples: MemoryExamples) -> MemLossTerm {
        MemLossTerm(config: config, examples: examples, selected: config.selectEntries(examples))
    }

    /// Examples for a batch of `batch` samples and `window` slots with random 1×28×28 images in
    /// the rows `present` (row = i·K + k), stored p_y = row/100 and margin = (row odd ? −1 : 1).
    static func examples(batch: Int, window: Int, present rows: [Int], seed: UInt64) -> MemoryExamples {
        let n = batch * window
        let images = MethodFixtures.images(n: n, shape: [1, 28, 28], seed: seed)
        var present = [Bool](repeating: false, count: n)
        for r in rows { present[r] = true }
        return MemoryExamples(count: batch, window: window, images: images, present: present,
                              storedPY: (0..<n).map { Float($0) / 100 }, storedMargin: (0..<n).map { $0 % 2 == 1 ? -1 : 1 })
    }

    /// Data parallelism averages the ranks' gradients (× 1/R). The term divides by the rank's batch
    /// B/R, not by its count of samples with memory, so the average of two half batches' terms is
    /// the whole batch's: value, parameter gradient and (× 1/2) clean-logit gradient, here with
    /// 4 of 4 samples remembered in one half and 1 of 4 in the other. A count-normalised term
    /// (÷ remembered samples per rank) would weigh the lone remembered sample 4× too much. No batch
    /// norm (SmallCNN), so the memory pass does not depend on which rows share it.
    func test_twoHalfBatchesAveraged_equalTheWholeBatch_whenTheirMemoryCountsDiffer() {
        let m = MethodFixtures.smallCNN(seed: 21, dropout: 0)
        let any = AnyClassifier(m)
        let full = Self.examples(batch: 8, window: 1, present: [0, 1, 2, 3, 5], seed: 22)
        var g = SplitMix64(seed: 23)
        let clean = Tensor.randomUniform(shape: [8, 10], low: -2, high: 2, rng: &g)
        let labels: [Int32] = [1, 4, 7, 2, 9, 0, 3, 5]
        for weighting in MemoryWeighting.allCases {
            let config = MemLossTermConfig(beta: 2, weighting: weighting)
            m.zeroGradients()
            let whole = Self.term(config, full).apply(model: any, cleanLogits: clean, labels: labels)
            let wholeGradient = gradients(m)
            var valueSum: Float = 0
            var gradientSum = wholeGradient.map { [Float](repeating: 0, count: $0.count) }
            for half in 0..<2 {
                let rows = Array((half * 4)..<(half * 4 + 4))
                let part = MemoryExamples(count: 4, window: 1, images: full.images.gatherRows(rows),
                                          present: rows.map { full.present[$0] }, storedPY: rows.map { full.storedPY[$0] },
                                          storedMargin: rows.map { full.storedMargin[$0] })
                m.zeroGradients()
                let r = Self.term(config, part).apply(model: any, cleanLogits: clean.gatherRows(rows), labels: rows.map { labels[$0] })
                valueSum += r.terms["mem"] ?? 0
                for (k, p) in gradients(m).enumerated() { for j in p.indices { gradientSum[k][j] += p[j] } }
                for (i, row) in rows.enumerated() {
                    for c in 0..<10 {
                        XCTAssertEqual(r.dCleanLogits[flat: i * 10 + c] / 2, whole.dCleanLogits[flat: row * 10 + c], accuracy: 1e-6,
                                       "\(weighting): clean-logit gradient, sample \(row)")
                    }
                }
            }
            XCTAssertEqual(valueSum / 2, whole.terms["mem"]!, accuracy: 1e-6 * max(1, abs(whole.terms["mem"]!)), "\(weighting)")
            var worst: Float = 0, largest: Float = 0
            for (a, b) in zip(gradientSum, wholeGradient) {
                for (x, y) in zip(a, b) { worst = max(worst, abs(x / 2 - y)); largest = max(largest, abs(y)) }
            }
            XCTAssertGreaterThan(largest, 0, "\(weighting): the term should reach the parameters")
            XCTAssertLessThanOrEqual(worst, 1e-5 * max(1, largest), "\(weighting): averaged half-batch parameter gradients")
        }
    }

    func test_windowTwo_meanAndSum_equalAnIndependentDoubleComputation() {
        let m = MethodFixtures.smallCNN(seed: 11, dropout: 0)
        let any = AnyClassifier(m)
        // B = 3, K = 2: sample 0 has both slots, sample 1 none, sample 2 only slot 1.
        let ex = Self.examples(batch: 3, window: 2, present: [0, 1, 5], seed: 12)
        var g = SplitMix64(seed: 13)
        let clean = Tensor.randomUniform(shape: [3, 10], low: -2, high: 2, rng: &g)
        let labels: [Int32] = [3, 8, 1]
        // Independent value: train-mode logits of the present rows (one BN batch, as the term does).
        let (zm, _) = any.forward(ex.images.gatherRows([0, 1, 5]), mode: .training)
        func softmax(_ z: [Float]) -> [Double] {
            let mx = z.map(Double.init).max()!
            let e = z.map { exp(Double($0) - mx) }
            let s = e.reduce(0, +)
            return e.map { $0 / s }
        }
        let zc = clean.scalars, zq = zm.scalars
        for reduce in MemoryReduction.allCases {
            let term = Self.term(MemLossTermConfig(beta: 2, weighting: .difficulty, reduce: reduce), ex)
            let got = term.apply(model: any, cleanLogits: clean, labels: labels).terms["mem"]!
            var total = 0.0
            for (r, (i, c)) in [(0, reduce == .mean ? 0.5 : 1), (0, reduce == .mean ? 0.5 : 1), (2, 1.0)].enumerated() {
                let p = softmax(Array(zc[(i * 10)..<(i * 10 + 10)])), q = softmax(Array(zq[(r * 10)..<(r * 10 + 10)]))
                var kl = 0.0
                for j in 0..<10 { kl += p[j] * (log(p[j]) - log(q[j])) }
                let w = Double(MemLossTermConfig.weightOffset) - q[Int(labels[i])]
                total += c * w * kl
            }
            let expected = 2.0 * total / 3
            XCTAssertEqual(Double(got), expected, accuracy: 1e-5 * max(1, abs(expected)), "\(reduce)")
        }
    }

    func test_windowTwo_cleanLogitGradient_matchesFiniteDifferences() {
        let m = MethodFixtures.smallCNN(seed: 14, dropout: 0)
        let any = AnyClassifier(m)
        let ex = Self.examples(batch: 3, window: 2, present: [0, 1, 3, 4], seed: 15)
        var g = SplitMix64(seed: 16)
        var clean = Tensor.randomUniform(shape: [3, 10], low: -2, high: 2, rng: &g)
        let term = Self.term(MemLossTermConfig(beta: 1.5, weighting: .difficulty, reduce: .mean), ex)
        let labels: [Int32] = [0, 5, 9]
        let analytic = term.apply(model: any, cleanLogits: clean, labels: labels).dCleanLogits
        let value = { () -> Double in Double(term.apply(model: any, cleanLogits: clean, labels: labels).terms["mem"]!) }
        _ = checkGradient("mem K=2 clean logits", count: clean.count, analytic: analytic.scalars,
                          read: { clean[flat: $0] }, write: { clean[flat: $0] = $1 }, loss: value,
                          samples: 30, eps: 1e-2, atol: 1e-4, rtol: 2e-2)
    }

    func test_selection_andReduction_rules() {
        // B = 4, K = 2; present rows 0, 1, 2, 5, 6, 7 with p_y = row/100, margin < 0 on odd rows.
        let ex = Self.examples(batch: 4, window: 2, present: [0, 1, 2, 5, 6, 7], seed: 1)
        func pick(_ select: MemorySelection, _ reduce: MemoryReduction = .mean) -> [MemLossTermConfig.SelectedEntry] {
            MemLossTermConfig(reduce: reduce, select: select).selectEntries(ex)
        }
        XCTAssertEqual(pick(.all).map(\.row), [0, 1, 2, 5, 6, 7])
        XCTAssertEqual(pick(.all).map(\.position), [0, 0, 1, 2, 3, 3])
        XCTAssertEqual(pick(.all).map(\.coefficient), [0.5, 0.5, 1, 1, 0.5, 0.5])
        XCTAssertEqual(pick(.all, .sum).map(\.coefficient), [1, 1, 1, 1, 1, 1])
        XCTAssertEqual(pick(.misclassified).map(\.row), [1, 5, 7])
        XCTAssertEqual(pick(.misclassified).map(\.coefficient), [1, 1, 1])
        // Hardest half: the 3 lowest stored p_y (rows 0, 1, 2); ⌈0.1·6⌉ = 1 keeps row 0.
        XCTAssertEqual(pick(.hardest(fraction: 0.5)).map(\.row), [0, 1, 2])
        XCTAssertEqual(pick(.hardest(fraction: 0.1)).map(\.row), [0])
        XCTAssertEqual(pick(.hardest(fraction: 1)).map(\.row), [0, 1, 2, 5, 6, 7])
        XCTAssertEqual(MemorySelection(parsing: "hardest:0.25"), .hardest(fraction: 0.25))
        XCTAssertNil(MemorySelection(parsing: "hardest:0"))
        XCTAssertNil(MemorySelection(parsing: "hardest:1.5"))
        XCTAssertNil(MemorySelection(parsing: "easiest"))
    }

    func test_configDecoding_fillsAbsentKeysWithDefaults_andRoundTrips() throws {
        let partial = try JSONDecoder().decode(MemLossConfig.self, from: Data(#"{"beta": 4, "select": "hardest:0.5"}"#.utf8))
        XCTAssertEqual(partial, MemLossConfig(beta: 4, select: .hardest(fraction: 0.5)))
        let full = MemLossConfig(beta: 1, weighting: .uniform, window: 3, stride: 2, reduce: .sum, select: .misclassified,
                                 codec: .q4, store: .ram, directory: "/tmp/x")
        XCTAssertEqual(try JSONDecoder().decode(MemLossConfig.self, from: JSONEncoder().encode(full)), full)
        XCTAssertThrowsError(try JSONDecoder().decode(MemLossConfig.self, from: Data(#"{"select": "some"}"#.utf8)))
        XCTAssertEqual(full.term, MemLossTermConfig(beta: 1, weighting: .uniform, reduce: .sum, select: .misclassified))
        XCTAssertEqual(full.store, MemoryStoreConfig(window: 3, stride: 2, codec: .q4, kind: .ram, directory: "/tmp/x"))
        // The JSON stays flat, with the keys it always had.
        let flat = try XCTUnwrap(JSONSerialization.jsonObject(with: JSONEncoder().encode(full)) as? [String: Any])
        XCTAssertEqual(Set(flat.keys), ["beta", "weighting", "window", "stride", "reduce", "select", "codec", "store", "directory"])
        XCTAssertEqual(flat["store"] as? String, "ram")
        let old = try JSONDecoder().decode(MemLossConfig.self, from: Data(#"{"beta": 3, "window": 2, "codec": "f32"}"#.utf8))
        XCTAssertEqual(old, MemLossConfig(beta: 3, window: 2, codec: .f32))
        XCTAssertEqual(MemoryStoreConfig(window: 3, stride: 2).generationsRead(atEpoch: 7), [5, 3, 1])
    }
}
