// BatchNorm2DTests.swift: BatchNorm2D's SIMD kernels against the Double Reference twins over a shape
// sweep, PyTorch's running-statistic semantics on hand-computed cases, accumulation of dγ/dβ, and
// finite-difference checks of the training and inference backward passes (input, γ, β).

import XCTest
import Kernels
import Tensors
import _TestSupport

final class BatchNorm2DTests: XCTestCase {
    static let eps: Float = 1e-5
    static let momentum: Float = 0.1

    /// (N, C, H·W): batch 1 and 3, channels 1/3/16, planes that are odd, shorter than a vector or
    /// longer than a 4096 sum block; the first is the M = 1 edge case.
    static let shapes: [(n: Int, c: Int, hw: Int)] = [
        (1, 1, 1), (1, 3, 7), (3, 16, 5), (3, 1, 33), (2, 3, 64), (3, 16, 17), (1, 3, 4100), (4, 16, 1024),
    ]

    // MARK: - Against Reference

    func test_forwardTraining_matchesReference_overShapes() {
        for (k, s) in Self.shapes.enumerated() {
            let inputs = Inputs(n: s.n, c: s.c, hw: s.hw, seed: UInt64(100 + 10 * k))
            let fast = inputs.forwardTraining(reference: false)
            let slow = inputs.forwardTraining(reference: true)
            let label = "shape \(s)"
            assertClose(fast.output, slow.output, atol: 1e-5, rtol: 1e-5, label)
            assertClose(fast.mean, slow.mean, atol: 1e-6, rtol: 1e-6, label)
            assertClose(fast.inverseStd, slow.inverseStd, atol: 1e-6, rtol: 1e-6, label)
            assertClose(fast.runningMean, slow.runningMean, atol: 1e-6, rtol: 1e-6, label)
            assertClose(fast.runningVar, slow.runningVar, atol: 1e-6, rtol: 1e-6, label)
        }
    }

    func test_forwardTraining_staysAccurate_whenTheMeanDwarfsTheSpread() {
        // Values 1000 ± 0.01: a one-pass E[x²] − E[x]² in Float would lose every significant digit.
        var inputs = Inputs(n: 3, c: 3, hw: 50, seed: 7)
        inputs.x = inputs.x.map { 1000 + 0.01 * $0 }
        let fast = inputs.forwardTraining(reference: false)
        let slow = inputs.forwardTraining(reference: true)
        assertClose(fast.inverseStd, slow.inverseStd, atol: 0, rtol: 1e-4)
        // x − μ is only known to Float's ulp at 1000 (6e-5), i.e. 1% of the spread: compare loosely.
        assertClose(fast.output, slow.output, atol: 2e-2, rtol: 0)
    }

    func test_forwardInference_matchesReference_overShapes() {
        for (k, s) in Self.shapes.enumerated() {
            let inputs = Inputs(n: s.n, c: s.c, hw: s.hw, seed: UInt64(200 + 10 * k))
            var fast = [Float](repeating: .nan, count: inputs.x.count), slow = fast
            BatchNorm2D.forwardInference(output: &fast, input: inputs.x, gamma: inputs.gamma, beta: inputs.beta,
                                         runningMean: inputs.runningMean, runningVar: inputs.runningVar,
                                         eps: Self.eps, n: s.n, c: s.c, hw: s.hw)
            Reference.batchNorm2DForwardInference(output: &slow, input: inputs.x, gamma: inputs.gamma, beta: inputs.beta,
                                                  runningMean: inputs.runningMean, runningVar: inputs.runningVar,
                                                  eps: Self.eps, n: s.n, c: s.c, hw: s.hw)
            assertClose(fast, slow, atol: 1e-5, rtol: 1e-5, "shape \(s)")
        }
    }

    func test_backwardTraining_matchesReference_andAccumulates_overShapes() {
        for (k, s) in Self.shapes.enumerated() {
            let inputs = Inputs(n: s.n, c: s.c, hw: s.hw, seed: UInt64(300 + 10 * k))
            let saved = inputs.forwardTraining(reference: true)
            let dy = seededUniform(inputs.x.count, seed: UInt64(301 + 10 * k))
            let gammaStart = seededUniform(s.c, seed: UInt64(302 + 10 * k))
            let betaStart = seededUniform(s.c, seed: UInt64(303 + 10 * k))
            var dxFast = [Float](repeating: .nan, count: inputs.x.count), dxSlow = dxFast
            var dgFast = gammaStart, dgSlow = gammaStart, dbFast = betaStart, dbSlow = betaStart
            BatchNorm2D.backwardTraining(dInput: &dxFast, dGamma: &dgFast, dBeta: &dbFast, dOutput: dy, input: inputs.x,
                                         gamma: inputs.gamma, saveMean: saved.mean, saveInverseStd: saved.inverseStd,
                                         n: s.n, c: s.c, hw: s.hw)
            Reference.batchNorm2DBackwardTraining(dInput: &dxSlow, dGamma: &dgSlow, dBeta: &dbSlow, dOutput: dy,
                                                  input: inputs.x, gamma: inputs.gamma, saveMean: saved.mean,
                                                  saveInverseStd: saved.inverseStd, n: s.n, c: s.c, hw: s.hw)
            let label = "shape \(s)"
            // dx is a difference of O(1) terms that nearly cancel: compare relative to the scale of dy.
            assertClose(dxFast, dxSlow, atol: 2e-4, rtol: 1e-4, label)
            assertClose(dgFast, dgSlow, atol: 1e-4, rtol: 1e-5, label)
            assertClose(dbFast, dbSlow, atol: 1e-4, rtol: 1e-5, label)
        }
    }

    func test_backwardInference_matchesReference_andAccumulates_overShapes() {
        for (k, s) in Self.shapes.enumerated() {
            let inputs = Inputs(n: s.n, c: s.c, hw: s.hw, seed: UInt64(400 + 10 * k))
            let dy = seededUniform(inputs.x.count, seed: UInt64(401 + 10 * k))
            let start = seededUniform(s.c, seed: UInt64(402 + 10 * k))
            var dxFast = [Float](repeating: .nan, count: inputs.x.count), dxSlow = dxFast
            var dgFast = start, dgSlow = start, dbFast = start, dbSlow = start
            BatchNorm2D.backwardInference(dInput: &dxFast, dGamma: &dgFast, dBeta: &dbFast, dOutput: dy, input: inputs.x,
                                          gamma: inputs.gamma, runningMean: inputs.runningMean,
                                          runningVar: inputs.runningVar, eps: Self.eps, n: s.n, c: s.c, hw: s.hw)
            Reference.batchNorm2DBackwardInference(dInput: &dxSlow, dGamma: &dgSlow, dBeta: &dbSlow, dOutput: dy,
                                                   input: inputs.x, gamma: inputs.gamma,
                                                   runningMean: inputs.runningMean, runningVar: inputs.runningVar,
                                                   eps: Self.eps, n: s.n, c: s.c, hw: s.hw)
            let label = "shape \(s)"
            assertClose(dxFast, dxSlow, atol: 1e-6, rtol: 1e-5, label)
            assertClose(dgFast, dgSlow, atol: 1e-4, rtol: 1e-5, label)
            assertClose(dbFast, dbSlow, atol: 1e-4, rtol: 1e-5, label)
        }
    }

    // MARK: - PyTorch semantics

    func test_forwardTraining_updatesRunningStatistics_withUnbiasedVariance_likePyTorch() {
        // N = 2, C = 2, H·W = 2. Channel 0 holds 1, 2, 3, 4; channel 1 holds 10, 20, 30, 40.
        let x: [Float] = [1, 2, 10, 20, 3, 4, 30, 40]
        var y = [Float](repeating: 0, count: 8)
        var mean = [Float](repeating: 0, count: 2), inverseStd = mean
        var runningMean: [Float] = [0, 0], runningVar: [Float] = [1, 1]
        BatchNorm2D.forwardTraining(output: &y, input: x, gamma: [1, 1], beta: [0, 0], saveMean: &mean,
                                    saveInverseStd: &inverseStd, runningMean: &runningMean, runningVar: &runningVar,
                                    momentum: 0.1, eps: Self.eps, n: 2, c: 2, hw: 2)
        XCTAssertEqual(mean, [2.5, 25])
        // Biased variances 1.25 and 125 normalise; unbiased 5/3 and 500/3 enter the running variance.
        assertClose(inverseStd, [Float(1 / (1.25 + 1e-5).squareRoot()), Float(1 / (125 + 1e-5).squareRoot())],
                    atol: 0, rtol: 1e-6)
        assertClose(runningMean, [0.25, 2.5], atol: 0, rtol: 1e-6)
        assertClose(runningVar, [0.9 + 0.1 * 5 / 3, 0.9 + 0.1 * 500 / 3], atol: 0, rtol: 1e-6)
        let s0 = 1 / (1.25 + 1e-5).squareRoot(), s1 = 1 / (125 + 1e-5).squareRoot()
        let expected: [Double] = [-1.5 * s0, -0.5 * s0, -15 * s1, -5 * s1, 0.5 * s0, 1.5 * s0, 5 * s1, 15 * s1]
        assertClose(y, expected.map { Float($0) }, atol: 1e-6, rtol: 1e-6)
    }

    func test_forwardTraining_withOneValuePerChannel_usesTheBiasedVarianceForRunningStatistics() {
        var y: [Float] = [0], mean: [Float] = [0], inverseStd: [Float] = [0]
        var runningMean: [Float] = [0], runningVar: [Float] = [1]
        BatchNorm2D.forwardTraining(output: &y, input: [3], gamma: [2], beta: [0.5], saveMean: &mean,
                                    saveInverseStd: &inverseStd, runningMean: &runningMean, runningVar: &runningVar,
                                    momentum: 0.1, eps: Self.eps, n: 1, c: 1, hw: 1)
        XCTAssertEqual(y, [0.5])
        XCTAssertEqual(mean, [3])
        assertClose(runningMean, [0.3], atol: 0, rtol: 1e-6)
        assertClose(runningVar, [0.9], atol: 0, rtol: 1e-6)
    }

    func test_forwardTraining_withoutRunningBuffers_leavesNothingElseChanged() {
        let inputs = Inputs(n: 3, c: 3, hw: 7, seed: 11)
        let withBuffers = inputs.forwardTraining(reference: false)
        var y = [Float](repeating: 0, count: inputs.x.count), mean = [Float](repeating: 0, count: 3), inverseStd = mean
        BatchNorm2D.forwardTraining(output: &y, input: inputs.x, gamma: inputs.gamma, beta: inputs.beta, saveMean: &mean,
                                    saveInverseStd: &inverseStd, runningMean: nil, runningVar: nil,
                                    momentum: Self.momentum, eps: Self.eps, n: 3, c: 3, hw: 7)
        XCTAssertEqual(y, withBuffers.output)
        XCTAssertEqual(mean, withBuffers.mean)
        XCTAssertEqual(inverseStd, withBuffers.inverseStd)
    }

    func test_forwardInference_normalisesWithTheRunningStatistics() {
        let x: [Float] = [1, 2, 3, 4, -1, 0.5]
        var y = [Float](repeating: 0, count: 6)
        BatchNorm2D.forwardInference(output: &y, input: x, gamma: [2], beta: [1], runningMean: [0.5], runningVar: [4],
                                     eps: Self.eps, n: 2, c: 1, hw: 3)
        let s = 1 / (4 + 1e-5).squareRoot()
        assertClose(y, x.map { Float(2 * (Double($0) - 0.5) * s + 1) }, atol: 1e-6, rtol: 1e-6)
    }

    func test_backward_withNilOutputs_computesOnlyWhatIsAsked() {
        let inputs = Inputs(n: 2, c: 3, hw: 9, seed: 12)
        let saved = inputs.forwardTraining(reference: false)
        let dy = seededUniform(inputs.x.count, seed: 13)
        var dxAll = [Float](repeating: 0, count: inputs.x.count)
        var dgAll = [Float](repeating: 0, count: 3), dbAll = dgAll
        BatchNorm2D.backwardTraining(dInput: &dxAll, dGamma: &dgAll, dBeta: &dbAll, dOutput: dy, input: inputs.x,
                                     gamma: inputs.gamma, saveMean: saved.mean, saveInverseStd: saved.inverseStd,
                                     n: 2, c: 3, hw: 9)
        var dxOnly = [Float](repeating: .nan, count: inputs.x.count)
        BatchNorm2D.backwardTraining(dInput: &dxOnly, dGamma: nil, dBeta: nil, dOutput: dy, input: inputs.x,
                                     gamma: inputs.gamma, saveMean: saved.mean, saveInverseStd: saved.inverseStd,
                                     n: 2, c: 3, hw: 9)
        XCTAssertEqual(dxOnly, dxAll)
        var dgOnly = [Float](repeating: 0, count: 3)
        BatchNorm2D.backwardTraining(dInput: nil, dGamma: &dgOnly, dBeta: nil, dOutput: dy, input: inputs.x,
                                     gamma: inputs.gamma, saveMean: saved.mean, saveInverseStd: saved.inverseStd,
                                     n: 2, c: 3, hw: 9)
        XCTAssertEqual(dgOnly, dgAll)
        var dxInference = [Float](repeating: .nan, count: inputs.x.count)
        BatchNorm2D.backwardInference(dInput: &dxInference, dGamma: nil, dBeta: nil, dOutput: dy, input: inputs.x,
                                      gamma: inputs.gamma, runningMean: inputs.runningMean,
                                      runningVar: inputs.runningVar, eps: Self.eps, n: 2, c: 3, hw: 9)
        XCTAssertFalse(dxInference.contains { $0.isNaN })
    }

    // MARK: - Finite differences

    func test_backwardTraining_matchesFiniteDifferences_forInputGammaAndBeta() {
        for (n, c, hw) in [(2, 3, 5), (3, 1, 4), (1, 2, 9)] {
            var inputs = Inputs(n: n, c: c, hw: hw, seed: UInt64(500 + n * 10 + c))
            let r = seededUniform(inputs.x.count, seed: 501)
            let saved = inputs.forwardTraining(reference: false)
            var dx = [Float](repeating: 0, count: inputs.x.count)
            var dg = [Float](repeating: 0, count: c), db = dg
            BatchNorm2D.backwardTraining(dInput: &dx, dGamma: &dg, dBeta: &db, dOutput: r, input: inputs.x,
                                         gamma: inputs.gamma, saveMean: saved.mean, saveInverseStd: saved.inverseStd,
                                         n: n, c: c, hw: hw)
            let loss = { projection(inputs.forwardTraining(reference: false).output, r) }
            let label = "n \(n) c \(c) hw \(hw)"
            var reports = [GradCheckReport]()
            reports.append(checkGradient("BN training input \(label)", count: dx.count, analytic: dx,
                                         read: { inputs.x[$0] }, write: { inputs.x[$0] = $1 }, loss: loss,
                                         samples: dx.count))
            reports.append(checkGradient("BN training gamma \(label)", count: c, analytic: dg,
                                         read: { inputs.gamma[$0] }, write: { inputs.gamma[$0] = $1 }, loss: loss))
            reports.append(checkGradient("BN training beta \(label)", count: c, analytic: db,
                                         read: { inputs.beta[$0] }, write: { inputs.beta[$0] = $1 }, loss: loss))
            XCTAssertEqual(reports.map(\.skippedKinks), [0, 0, 0], label)
        }
    }

    func test_backwardInference_matchesFiniteDifferences_forInputGammaAndBeta() {
        let (n, c, hw) = (2, 3, 5)
        var inputs = Inputs(n: n, c: c, hw: hw, seed: 600)
        let r = seededUniform(inputs.x.count, seed: 601)
        var dx = [Float](repeating: 0, count: inputs.x.count)
        var dg = [Float](repeating: 0, count: c), db = dg
        BatchNorm2D.backwardInference(dInput: &dx, dGamma: &dg, dBeta: &db, dOutput: r, input: inputs.x,
                                      gamma: inputs.gamma, runningMean: inputs.runningMean,
                                      runningVar: inputs.runningVar, eps: Self.eps, n: n, c: c, hw: hw)
        let loss = {
            var y = [Float](repeating: 0, count: inputs.x.count)
            BatchNorm2D.forwardInference(output: &y, input: inputs.x, gamma: inputs.gamma, beta: inputs.beta,
                                         runningMean: inputs.runningMean, runningVar: inputs.runningVar,
                                         eps: Self.eps, n: n, c: c, hw: hw)
            return projection(y, r)
        }
        _ = checkGradient("BN inference input", count: dx.count, analytic: dx,
                          read: { inputs.x[$0] }, write: { inputs.x[$0] = $1 }, loss: loss, samples: dx.count)
        _ = checkGradient("BN inference gamma", count: c, analytic: dg,
                          read: { inputs.gamma[$0] }, write: { inputs.gamma[$0] = $1 }, loss: loss)
        _ = checkGradient("BN inference beta", count: c, analytic: db,
                          read: { inputs.beta[$0] }, write: { inputs.beta[$0] = $1 }, loss: loss)
    }
}

// MARK: - Helpers

/// One BatchNorm problem: input, parameters and running statistics drawn from fixed seeds.
private struct Inputs {
    let n: Int, c: Int, hw: Int
    var x: [Float], gamma: [Float], beta: [Float], runningMean: [Float], runningVar: [Float]

    init(n: Int, c: Int, hw: Int, seed: UInt64) {
        self.n = n
        self.c = c
        self.hw = hw
        x = seededUniform(n * c * hw, low: -1, high: 2, seed: seed)
        gamma = seededUniform(c, low: 0.5, high: 1.5, seed: seed + 1)
        beta = seededUniform(c, low: -0.5, high: 0.5, seed: seed + 2)
        runningMean = seededUniform(c, low: -0.2, high: 0.2, seed: seed + 3)
        runningVar = seededUniform(c, low: 0.5, high: 2, seed: seed + 4)
    }

    struct Result {
        var output: [Float], mean: [Float], inverseStd: [Float], runningMean: [Float], runningVar: [Float]
    }

    /// Training forward with the fast kernel or its Reference twin (momentum 0.1, eps 1e-5).
    func forwardTraining(reference: Bool) -> Result {
        var r = Result(output: [Float](repeating: .nan, count: x.count), mean: [Float](repeating: .nan, count: c),
                       inverseStd: [Float](repeating: .nan, count: c), runningMean: runningMean, runningVar: runningVar)
        let kernel = reference ? Reference.batchNorm2DForwardTraining : BatchNorm2D.forwardTraining
        kernel(&r.output, x, gamma, beta, &r.mean, &r.inverseStd, &r.runningMean, &r.runningVar,
               BatchNorm2DTests.momentum, BatchNorm2DTests.eps, n, c, hw)
        return r
    }
}

/// `Σ values ⊙ weights` in Double: a scalar whose gradient with respect to `values` is `weights`.
private func projection(_ values: [Float], _ weights: [Float]) -> Double {
    var total = 0.0
    for i in values.indices { total += Double(values[i]) * Double(weights[i]) }
    return total
}
