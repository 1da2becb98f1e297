// DropoutTests.swift: inverted dropout's mask values and keep rate, determinism from the RNG state,
// the p = 0 identity, agreement with the Reference twin, and the backward pass.

import XCTest
import Kernels
import Tensors
import _TestSupport

final class DropoutTests: XCTestCase {
    func test_forward_masksWithZeroOrInverseKeepProbability_andScalesTheInput() {
        for p: Float in [0.1, 0.5, 0.9] {
            let count = 1003
            let x = seededUniform(count, seed: 1)
            var y = [Float](repeating: .nan, count: count), mask = y
            var rng = SplitMix64(seed: 2)
            Dropout.forward(output: &y, mask: &mask, input: x, count: count, p: p, rng: &rng)
            let kept = 1 / (1 - p)
            XCTAssertTrue(mask.allSatisfy { $0 == 0 || $0 == kept }, "p \(p)")
            for i in 0..<count { XCTAssertEqual(y[i], x[i] * mask[i], "p \(p), element \(i)") }
        }
    }

    func test_forward_keepsAboutOneMinusPOfTheElements() {
        let count = 200_000
        let x = [Float](repeating: 1, count: count)
        for p: Float in [0.1, 0.5, 0.9] {
            var y = [Float](repeating: 0, count: count), mask = y
            var rng = SplitMix64(seed: 3)
            Dropout.forward(output: &y, mask: &mask, input: x, count: count, p: p, rng: &rng)
            let keptFraction = Double(mask.filter { $0 != 0 }.count) / Double(count)
            // Binomial standard deviation √(p(1−p)/n) ≤ 0.0012; allow 5σ.
            XCTAssertEqual(keptFraction, Double(1 - p), accuracy: 0.006, "p \(p)")
            // Inverted scaling keeps the mean: E[y] = x.
            XCTAssertEqual(Double(Elementwise.sum(y, count: count)) / Double(count), 1, accuracy: 0.03, "p \(p)")
        }
    }

    func test_forward_withTheSameSeed_drawsTheSameMask_andLeavesTheSameRNGState() {
        let count = 517
        let x = seededUniform(count, seed: 4)
        var first = [Float](repeating: 0, count: count), firstMask = first, second = first, secondMask = first
        var rngA = SplitMix64(seed: 5), rngB = SplitMix64(seed: 5)
        Dropout.forward(output: &first, mask: &firstMask, input: x, count: count, p: 0.3, rng: &rngA)
        Dropout.forward(output: &second, mask: &secondMask, input: x, count: count, p: 0.3, rng: &rngB)
        XCTAssertEqual(firstMask, secondMask)
        XCTAssertEqual(first, second)
        XCTAssertEqual(rngA, rngB)
        var other = [Float](repeating: 0, count: count), otherMask = other
        var rngC = SplitMix64(seed: 6)
        Dropout.forward(output: &other, mask: &otherMask, input: x, count: count, p: 0.3, rng: &rngC)
        XCTAssertNotEqual(otherMask, firstMask)
    }

    func test_forward_withPZero_isTheIdentity_andDrawsNothing() {
        let count = 37
        let x = seededUniform(count, seed: 7)
        var y = [Float](repeating: .nan, count: count), mask = y
        var rng = SplitMix64(seed: 8)
        Dropout.forward(output: &y, mask: &mask, input: x, count: count, p: 0, rng: &rng)
        XCTAssertEqual(y, x)
        XCTAssertEqual(mask, [Float](repeating: 1, count: count))
        XCTAssertEqual(rng, SplitMix64(seed: 8))
    }

    func test_forwardAndBackward_matchReference() {
        for (k, count) in [1, 9, 1003].enumerated() {
            let x = seededUniform(count, seed: UInt64(20 + k))
            var yFast = [Float](repeating: .nan, count: count), mFast = yFast, ySlow = yFast, mSlow = yFast
            var rngFast = SplitMix64(seed: 30), rngSlow = SplitMix64(seed: 30)
            Dropout.forward(output: &yFast, mask: &mFast, input: x, count: count, p: 0.4, rng: &rngFast)
            Reference.dropoutForward(output: &ySlow, mask: &mSlow, input: x, count: count, p: 0.4, rng: &rngSlow)
            XCTAssertEqual(mFast, mSlow, "count \(count)")
            XCTAssertEqual(yFast, ySlow, "count \(count)")
            XCTAssertEqual(rngFast, rngSlow, "count \(count)")
            let dy = seededUniform(count, seed: UInt64(40 + k))
            var dxFast = [Float](repeating: .nan, count: count), dxSlow = dxFast
            Dropout.backward(dInput: &dxFast, dOutput: dy, mask: mFast, count: count)
            Reference.dropoutBackward(dInput: &dxSlow, dOutput: dy, mask: mSlow, count: count)
            XCTAssertEqual(dxFast, dxSlow, "count \(count)")
        }
    }

    func test_backward_matchesFiniteDifferences_forAFixedMask() {
        let count = 29
        var x = seededUniform(count, seed: 50)
        let r = seededUniform(count, seed: 51)
        var y = [Float](repeating: 0, count: count), mask = y
        var rng = SplitMix64(seed: 52)
        Dropout.forward(output: &y, mask: &mask, input: x, count: count, p: 0.5, rng: &rng)
        var dx = [Float](repeating: .nan, count: count)
        Dropout.backward(dInput: &dx, dOutput: r, mask: mask, count: count)
        _ = checkGradient("dropout input", count: count, analytic: dx, read: { x[$0] }, write: { x[$0] = $1 },
                          loss: {
                              // Same generator state for every evaluation, hence the same mask.
                              var fresh = SplitMix64(seed: 52)
                              var out = [Float](repeating: 0, count: count), m = out
                              Dropout.forward(output: &out, mask: &m, input: x, count: count, p: 0.5, rng: &fresh)
                              var total = 0.0
                              for i in 0..<count { total += Double(out[i]) * Double(r[i]) }
                              return total
                          }, samples: count)
    }
}
