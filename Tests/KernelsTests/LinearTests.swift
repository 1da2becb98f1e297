// LinearTests.swift: the BLAS-backed Linear kernels against the naive Reference twins over a shape
// sweep (with and without bias), accumulation of dWeight/dBias, and finite-difference checks.

import XCTest
import Kernels
import Tensors
import _TestSupport

final class LinearTests: XCTestCase {
    /// (N, in, out): batch 1 and 3, a single unit, odd sizes, and a WRN-like 640 → 10 head.
    static let shapes: [(n: Int, inFeatures: Int, outFeatures: Int)] = [
        (1, 1, 1), (3, 7, 5), (3, 17, 10), (16, 33, 9), (1, 640, 10), (5, 3, 100),
    ]

    func test_forward_matchesReference_withAndWithoutBias() {
        for (k, s) in Self.shapes.enumerated() {
            let x = seededUniform(s.n * s.inFeatures, seed: UInt64(10 + k))
            let weight = seededUniform(s.outFeatures * s.inFeatures, seed: UInt64(30 + k))
            let bias = seededUniform(s.outFeatures, seed: UInt64(50 + k))
            for useBias in [true, false] {
                var fast = [Float](repeating: .nan, count: s.n * s.outFeatures), slow = fast
                Linear.forward(output: &fast, input: x, weight: weight, bias: useBias ? bias : nil,
                               n: s.n, inFeatures: s.inFeatures, outFeatures: s.outFeatures)
                Reference.linearForward(output: &slow, input: x, weight: weight, bias: useBias ? bias : nil,
                                        n: s.n, inFeatures: s.inFeatures, outFeatures: s.outFeatures)
                assertClose(fast, slow, atol: 1e-5, rtol: 1e-5, "shape \(s), bias \(useBias)")
            }
        }
    }

    func test_backwardInput_matchesReference_andOverwrites() {
        for (k, s) in Self.shapes.enumerated() {
            let dy = seededUniform(s.n * s.outFeatures, seed: UInt64(70 + k))
            let weight = seededUniform(s.outFeatures * s.inFeatures, seed: UInt64(90 + k))
            var fast = [Float](repeating: .nan, count: s.n * s.inFeatures), slow = fast
            Linear.backwardInput(dInput: &fast, dOutput: dy, weight: weight,
                                 n: s.n, inFeatures: s.inFeatures, outFeatures: s.outFeatures)
            Reference.linearBackwardInput(dInput: &slow, dOutput: dy, weight: weight,
                                          n: s.n, inFeatures: s.inFeatures, outFeatures: s.outFeatures)
            assertClose(fast, slow, atol: 1e-5, rtol: 1e-5, "shape \(s)")
        }
    }

    func test_backwardWeight_accumulatesIntoWeightAndBiasGradients() {
        for (k, s) in Self.shapes.enumerated() {
            let dy = seededUniform(s.n * s.outFeatures, seed: UInt64(110 + k))
            let x = seededUniform(s.n * s.inFeatures, seed: UInt64(130 + k))
            let weightStart = seededUniform(s.outFeatures * s.inFeatures, seed: UInt64(150 + k))
            let biasStart = seededUniform(s.outFeatures, seed: UInt64(170 + k))
            var dwFast = weightStart, dwSlow = weightStart, dbFast = biasStart, dbSlow = biasStart
            Linear.backwardWeight(dWeight: &dwFast, dBias: &dbFast, dOutput: dy, input: x,
                                  n: s.n, inFeatures: s.inFeatures, outFeatures: s.outFeatures)
            Reference.linearBackwardWeight(dWeight: &dwSlow, dBias: &dbSlow, dOutput: dy, input: x,
                                           n: s.n, inFeatures: s.inFeatures, outFeatures: s.outFeatures)
            assertClose(dwFast, dwSlow, atol: 1e-5, rtol: 1e-5, "shape \(s)")
            assertClose(dbFast, dbSlow, atol: 1e-5, rtol: 1e-5, "shape \(s)")
            // Without a bias gradient the weight gradient is unchanged.
            var dwNoBias = weightStart
            Linear.backwardWeight(dWeight: &dwNoBias, dBias: nil, dOutput: dy, input: x,
                                  n: s.n, inFeatures: s.inFeatures, outFeatures: s.outFeatures)
            XCTAssertEqual(dwNoBias, dwFast, "shape \(s)")
        }
    }

    func test_backward_matchesFiniteDifferences_forInputWeightAndBias() {
        let (n, inF, outF) = (3, 5, 4)
        var x = seededUniform(n * inF, seed: 200)
        var weight = seededUniform(outF * inF, seed: 201)
        var bias = seededUniform(outF, seed: 202)
        let r = seededUniform(n * outF, seed: 203)
        var dx = [Float](repeating: 0, count: x.count)
        var dw = [Float](repeating: 0, count: weight.count), db = [Float](repeating: 0, count: outF)
        Linear.backwardInput(dInput: &dx, dOutput: r, weight: weight, n: n, inFeatures: inF, outFeatures: outF)
        Linear.backwardWeight(dWeight: &dw, dBias: &db, dOutput: r, input: x, n: n, inFeatures: inF, outFeatures: outF)
        let loss = {
            var y = [Float](repeating: 0, count: n * outF)
            Linear.forward(output: &y, input: x, weight: weight, bias: bias, n: n, inFeatures: inF, outFeatures: outF)
            return projection(y, r)
        }
        _ = checkGradient("linear input", count: x.count, analytic: dx, read: { x[$0] }, write: { x[$0] = $1 },
                          loss: loss, samples: x.count)
        _ = checkGradient("linear weight", count: weight.count, analytic: dw,
                          read: { weight[$0] }, write: { weight[$0] = $1 }, loss: loss, samples: weight.count)
        _ = checkGradient("linear bias", count: bias.count, analytic: db,
                          read: { bias[$0] }, write: { bias[$0] = $1 }, loss: loss, samples: bias.count)
    }
}

/// `Σ values ⊙ weights` in Double: a scalar whose gradient with respect to `values` is `weights`.
private func projection(_ values: [Float], _ weights: [Float]) -> Double {
    var total = 0.0
    for i in values.indices { total += Double(values[i]) * Double(weights[i]) }
    return total
}
