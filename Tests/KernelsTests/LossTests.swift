// LossTests.swift: softmax, log-softmax, cross-entropy and batchmean KL against the Double Reference
// twins, finite-difference checks of the logit gradients (KL with respect to both arguments), and the
// properties training relies on: KL(p‖p) = 0, KL ≥ 0, finiteness at extreme logits.

import XCTest
import Kernels
import Tensors
import _TestSupport

final class LossTests: XCTestCase {
    /// (B, classes): batch 1 and 3, binary, CIFAR-10/100-sized rows, a single class.
    static let shapes: [(batch: Int, classes: Int)] = [(1, 10), (3, 10), (3, 2), (4, 100), (2, 1), (128, 10)]

    // MARK: - Softmax

    func test_softmaxAndLogSoftmax_matchReference_andRowsSumToOne() {
        for (k, s) in Self.shapes.enumerated() {
            let z = seededUniform(s.batch * s.classes, low: -6, high: 6, seed: UInt64(10 + k))
            var fast = [Float](repeating: .nan, count: z.count), slow = fast
            Loss.softmax(output: &fast, logits: z, batch: s.batch, classes: s.classes)
            Reference.softmax(output: &slow, logits: z, batch: s.batch, classes: s.classes)
            assertClose(fast, slow, atol: 1e-7, rtol: 1e-5, "softmax \(s)")
            for b in 0..<s.batch {
                let row = fast[(b * s.classes)..<((b + 1) * s.classes)]
                XCTAssertEqual(row.reduce(0, +), 1, accuracy: 1e-5, "row \(b) of \(s)")
            }
            var logFast = [Float](repeating: .nan, count: z.count), logSlow = logFast
            Loss.logSoftmax(output: &logFast, logits: z, batch: s.batch, classes: s.classes)
            Reference.logSoftmax(output: &logSlow, logits: z, batch: s.batch, classes: s.classes)
            assertClose(logFast, logSlow, atol: 1e-5, rtol: 1e-5, "logSoftmax \(s)")
        }
    }

    func test_softmax_staysFinite_forExtremeLogits() {
        let z: [Float] = [80, -80, 0, 1e4, -1e4, 1e4]
        var p = [Float](repeating: .nan, count: 6), logP = p
        Loss.softmax(output: &p, logits: z, batch: 2, classes: 3)
        Loss.logSoftmax(output: &logP, logits: z, batch: 2, classes: 3)
        XCTAssertTrue(p.allSatisfy(\.isFinite) && logP.allSatisfy(\.isFinite))
        assertClose(p, [1, 0, 0, 0.5, 0, 0.5], atol: 1e-7, rtol: 0)
        assertClose(logP, [0, -160, -80, -Float(log(2.0)), -2e4 - Float(log(2.0)), -Float(log(2.0))],
                    atol: 1e-5, rtol: 1e-6)
    }

    // MARK: - Cross-entropy

    func test_softmaxCrossEntropy_matchesReference_forValueGradientAndPerSampleLosses() {
        for (k, s) in Self.shapes.enumerated() {
            let z = seededUniform(s.batch * s.classes, low: -5, high: 5, seed: UInt64(30 + k))
            let labels = Self.labels(batch: s.batch, classes: s.classes, seed: UInt64(31 + k))
            var dFast = [Float](repeating: .nan, count: z.count), dSlow = dFast
            var perFast = [Float](repeating: .nan, count: s.batch), perSlow = perFast
            let fast = Loss.softmaxCrossEntropy(logits: z, labels: labels, batch: s.batch, classes: s.classes,
                                                dLogits: &dFast, perSample: &perFast, scale: 0.7)
            let slow = Reference.softmaxCrossEntropy(logits: z, labels: labels, batch: s.batch, classes: s.classes,
                                                     dLogits: &dSlow, perSample: &perSlow, scale: 0.7)
            XCTAssertEqual(fast, slow, accuracy: 1e-5 * max(1, abs(slow)), "\(s)")
            assertClose(perFast, perSlow, atol: 1e-5, rtol: 1e-5, "\(s)")
            assertClose(dFast, dSlow, atol: 1e-7, rtol: 1e-5, "\(s)")
            // Returned value is unscaled and is the mean of the per-sample losses; the value is the same
            // without the optional outputs.
            let mean = perSlow.map(Double.init).reduce(0, +) / Double(s.batch)
            XCTAssertEqual(Double(fast), mean, accuracy: 1e-5 * max(1, mean))
            let bare = Loss.softmaxCrossEntropy(logits: z, labels: labels, batch: s.batch, classes: s.classes,
                                                dLogits: nil, perSample: nil)
            XCTAssertEqual(bare, fast)
        }
    }

    func test_softmaxCrossEntropy_gradientRowsSumToZero_andEqualSoftmaxMinusOneHotOverB() {
        let (batch, classes) = (3, 4)
        let z: [Float] = [0, 0, 0, 0, 1, 2, 3, 4, -1, 5, 0, 2]
        let labels: [Int32] = [2, 0, 1]
        var d = [Float](repeating: .nan, count: z.count)
        let loss = Loss.softmaxCrossEntropy(logits: z, labels: labels, batch: batch, classes: classes,
                                            dLogits: &d, perSample: nil)
        var p = [Float](repeating: 0, count: z.count)
        Loss.softmax(output: &p, logits: z, batch: batch, classes: classes)
        let expectedLoss = -(log(Double(p[2])) + log(Double(p[4])) + log(Double(p[9]))) / 3
        XCTAssertEqual(Double(loss), expectedLoss, accuracy: 1e-5)
        XCTAssertEqual(Double(loss) * 3, -log(0.25) - log(Double(p[4])) - log(Double(p[9])), accuracy: 1e-5)
        for b in 0..<batch {
            XCTAssertEqual(d[(b * classes)..<((b + 1) * classes)].reduce(0, +), 0, accuracy: 1e-6)
            for c in 0..<classes {
                let target: Float = c == Int(labels[b]) ? 1 : 0
                XCTAssertEqual(d[b * classes + c], (p[b * classes + c] - target) / 3, accuracy: 1e-6)
            }
        }
    }

    func test_softmaxCrossEntropy_gradient_matchesFiniteDifferences() {
        let (batch, classes) = (3, 5)
        var z = seededUniform(batch * classes, low: -3, high: 3, seed: 50)
        let labels: [Int32] = [4, 0, 2]
        var d = [Float](repeating: 0, count: z.count)
        _ = Loss.softmaxCrossEntropy(logits: z, labels: labels, batch: batch, classes: classes,
                                     dLogits: &d, perSample: nil, scale: 2)
        _ = checkGradient("cross-entropy logits", count: z.count, analytic: d, read: { z[$0] }, write: { z[$0] = $1 },
                          loss: {
                              2 * Double(Loss.softmaxCrossEntropy(logits: z, labels: labels, batch: batch,
                                                                  classes: classes, dLogits: nil, perSample: nil))
                          }, samples: z.count, eps: 1e-2, atol: 2e-4, rtol: 1e-2)
    }

    func test_softmaxCrossEntropy_staysFinite_forExtremeLogits() {
        let z: [Float] = [80, -80, 0, -80, 80, 0]
        var d = [Float](repeating: .nan, count: 6), per = [Float](repeating: .nan, count: 2)
        let loss = Loss.softmaxCrossEntropy(logits: z, labels: [1, 1], batch: 2, classes: 3, dLogits: &d, perSample: &per)
        XCTAssertEqual(per[0], 160, accuracy: 1e-3)
        XCTAssertEqual(per[1], 0, accuracy: 1e-6)
        XCTAssertEqual(loss, 80, accuracy: 1e-3)
        XCTAssertTrue(d.allSatisfy(\.isFinite))
    }

    // MARK: - KL divergence

    func test_klDivergence_matchesReference_withAndWithoutSampleWeights() {
        for (k, s) in Self.shapes.enumerated() {
            let zp = seededUniform(s.batch * s.classes, low: -4, high: 4, seed: UInt64(60 + k))
            let zq = seededUniform(s.batch * s.classes, low: -4, high: 4, seed: UInt64(61 + k))
            let weights = seededUniform(s.batch, low: 0, high: 2, seed: UInt64(62 + k))
            for weighted in [false, true] {
                var dpFast = [Float](repeating: .nan, count: zp.count), dpSlow = dpFast, dqFast = dpFast, dqSlow = dpFast
                var perFast = [Float](repeating: .nan, count: s.batch), perSlow = perFast
                let fast = Loss.klDivergence(logitsP: zp, logitsQ: zq, batch: s.batch, classes: s.classes,
                                             dLogitsP: &dpFast, dLogitsQ: &dqFast, perSample: &perFast,
                                             sampleWeights: weighted ? weights : nil, scale: 1.5)
                let slow = Reference.klDivergence(logitsP: zp, logitsQ: zq, batch: s.batch, classes: s.classes,
                                                  dLogitsP: &dpSlow, dLogitsQ: &dqSlow, perSample: &perSlow,
                                                  sampleWeights: weighted ? weights : nil, scale: 1.5)
                let label = "\(s), weighted \(weighted)"
                XCTAssertEqual(fast, slow, accuracy: 1e-5 * max(1, abs(slow)), label)
                assertClose(perFast, perSlow, atol: 1e-5, rtol: 1e-5, label)
                assertClose(dpFast, dpSlow, atol: 1e-6, rtol: 1e-4, label)
                assertClose(dqFast, dqSlow, atol: 1e-6, rtol: 1e-4, label)
            }
        }
    }

    func test_klDivergence_isBatchMean_notDividedByClasses() {
        // Two samples, two classes: p = (1/2, 1/2), q = softmax(0, log 3) = (1/4, 3/4).
        let zp: [Float] = [0, 0, 0, 0]
        let zq: [Float] = [0, Float(log(3.0)), 0, Float(log(3.0))]
        let perSampleKL = 0.5 * log(0.5 / 0.25) + 0.5 * log(0.5 / 0.75)
        var per = [Float](repeating: 0, count: 2)
        let kl = Loss.klDivergence(logitsP: zp, logitsQ: zq, batch: 2, classes: 2, perSample: &per)
        XCTAssertEqual(Double(kl), perSampleKL, accuracy: 1e-6)
        assertClose(per, [Float(perSampleKL), Float(perSampleKL)], atol: 1e-6, rtol: 0)
        let weighted = Loss.klDivergence(logitsP: zp, logitsQ: zq, batch: 2, classes: 2, sampleWeights: [2, 0])
        XCTAssertEqual(Double(weighted), perSampleKL, accuracy: 1e-6)   // (2·KL + 0·KL)/2
    }

    func test_klDivergence_gradientWithRespectToBothArguments_matchesFiniteDifferences() {
        let (batch, classes) = (3, 6)
        var zp = seededUniform(batch * classes, low: -3, high: 3, seed: 70)
        var zq = seededUniform(batch * classes, low: -3, high: 3, seed: 71)
        let weights: [Float] = [1, 0.25, 1.75]
        var dp = [Float](repeating: 0, count: zp.count), dq = dp
        _ = Loss.klDivergence(logitsP: zp, logitsQ: zq, batch: batch, classes: classes, dLogitsP: &dp, dLogitsQ: &dq,
                              perSample: nil, sampleWeights: weights, scale: 3)
        let loss = {
            3 * Double(Loss.klDivergence(logitsP: zp, logitsQ: zq, batch: batch, classes: classes,
                                         sampleWeights: weights))
        }
        _ = checkGradient("KL logitsP", count: zp.count, analytic: dp, read: { zp[$0] }, write: { zp[$0] = $1 },
                          loss: loss, samples: zp.count, eps: 1e-2, atol: 2e-4, rtol: 1e-2)
        _ = checkGradient("KL logitsQ", count: zq.count, analytic: dq, read: { zq[$0] }, write: { zq[$0] = $1 },
                          loss: loss, samples: zq.count, eps: 1e-2, atol: 2e-4, rtol: 1e-2)
    }

    func test_klDivergence_ofADistributionWithItself_isZero_withZeroGradients() {
        let z = seededUniform(5 * 10, low: -8, high: 8, seed: 80)
        var dp = [Float](repeating: .nan, count: z.count), dq = dp
        var per = [Float](repeating: .nan, count: 5)
        let kl = Loss.klDivergence(logitsP: z, logitsQ: z, batch: 5, classes: 10, dLogitsP: &dp, dLogitsQ: &dq,
                                   perSample: &per)
        XCTAssertEqual(kl, 0)
        XCTAssertEqual(per, [Float](repeating: 0, count: 5))
        XCTAssertEqual(dp, [Float](repeating: 0, count: z.count))
        XCTAssertEqual(dq, [Float](repeating: 0, count: z.count))
    }

    func test_klDivergence_isNonNegative_forRandomAndNearlyEqualDistributions() {
        var rng = SplitMix64(seed: 90)
        for trial in 0..<50 {
            let zp = (0..<(4 * 10)).map { _ in 6 * rng.nextFloat() - 3 }
            // Half the trials compare nearly equal distributions, where rounding matters most.
            let spread: Float = trial.isMultiple(of: 2) ? 3 : 1e-3
            let zq = zp.map { $0 + spread * (2 * rng.nextFloat() - 1) }
            var per = [Float](repeating: .nan, count: 4)
            let kl = Loss.klDivergence(logitsP: zp, logitsQ: zq, batch: 4, classes: 10, perSample: &per)
            // Float rounding may leave a few ulps below zero for nearly equal rows; never more.
            XCTAssertGreaterThanOrEqual(kl, -1e-7, "trial \(trial)")
            XCTAssertTrue(per.allSatisfy { $0 >= -1e-7 }, "trial \(trial): \(per)")
        }
    }

    func test_klDivergence_staysFinite_forExtremeLogits() {
        let zp: [Float] = [80, -80, 0, -80, 80, -80, 0, 0, 0]
        let zq: [Float] = [-80, 80, 0, -80, 80, -80, 80, -80, 80]
        var dp = [Float](repeating: .nan, count: 9), dq = dp
        var per = [Float](repeating: .nan, count: 3)
        let kl = Loss.klDivergence(logitsP: zp, logitsQ: zq, batch: 3, classes: 3, dLogitsP: &dp, dLogitsQ: &dq,
                                   perSample: &per)
        var perSlow = [Float](repeating: .nan, count: 3)
        let slow = Reference.klDivergence(logitsP: zp, logitsQ: zq, batch: 3, classes: 3, perSample: &perSlow)
        XCTAssertTrue(kl.isFinite && per.allSatisfy(\.isFinite) && dp.allSatisfy(\.isFinite) && dq.allSatisfy(\.isFinite))
        XCTAssertEqual(per[0], 160, accuracy: 1e-3)    // p puts all mass on class 0, q gives it e^−160
        XCTAssertEqual(per[1], 0, accuracy: 1e-6)
        assertClose(per, perSlow, atol: 1e-4, rtol: 1e-5)
        XCTAssertEqual(kl, slow, accuracy: 1e-3)
    }

    // MARK: - Helpers

    static func labels(batch: Int, classes: Int, seed: UInt64) -> [Int32] {
        var rng = SplitMix64(seed: seed)
        return (0..<batch).map { _ in Int32(rng.nextInt(below: classes)) }
    }
}
