// ActivationTests.swift: ReLU forward/backward against the Reference twins, PyTorch's conventions at
// the kink and for NaN, and a finite-difference check away from the kink.

import XCTest
import Kernels
import Tensors
import _TestSupport

final class ActivationTests: XCTestCase {
    static let counts = [1, 7, 8, 9, 33, 1003, 300_001]

    func test_reluForwardAndBackward_matchReference_forCountsAroundTheVectorWidth() {
        for (k, count) in Self.counts.enumerated() {
            var x = seededUniform(count, seed: UInt64(20 + k))
            if count > 4 { x[3] = 0 }   // the kink itself
            let dy = seededUniform(count, seed: UInt64(40 + k))
            var fast = [Float](repeating: .nan, count: count), slow = [Float](repeating: .nan, count: count)
            Activation.reluForward(output: &fast, input: x, count: count)
            Reference.reluForward(output: &slow, input: x, count: count)
            XCTAssertEqual(fast, slow, "forward, count \(count)")
            var dxFast = [Float](repeating: .nan, count: count), dxSlow = [Float](repeating: .nan, count: count)
            Activation.reluBackward(dInput: &dxFast, dOutput: dy, input: x, count: count)
            Reference.reluBackward(dInput: &dxSlow, dOutput: dy, input: x, count: count)
            XCTAssertEqual(dxFast, dxSlow, "backward, count \(count)")
        }
    }

    func test_reluBackward_isZeroAtTheKink_andPassesGradientForPositiveInputs() {
        let x: [Float] = [-2, -0.0, 0, 1e-30, 3, -1e-30, 5, 0, 7]
        let dy: [Float] = [1, 2, 3, 4, 5, 6, 7, 8, 9]
        var dx = [Float](repeating: .nan, count: x.count)
        Activation.reluBackward(dInput: &dx, dOutput: dy, input: x, count: x.count)
        XCTAssertEqual(dx, [0, 0, 0, 4, 5, 0, 7, 0, 9])
        var y = [Float](repeating: .nan, count: x.count)
        Activation.reluForward(output: &y, input: x, count: x.count)
        XCTAssertEqual(y.map { $0 == 0 ? 0 : $0 }, [0, 0, 0, 1e-30, 3, 0, 5, 0, 7])
    }

    func test_reluForward_propagatesNaN_likePyTorch() {
        var x = [Float](repeating: -1, count: 17)
        x[2] = .nan
        x[12] = .nan
        var y = [Float](repeating: 0, count: 17)
        Activation.reluForward(output: &y, input: x, count: 17)
        XCTAssertTrue(y[2].isNaN)
        XCTAssertTrue(y[12].isNaN)
        XCTAssertEqual(y.filter { !$0.isNaN }, [Float](repeating: 0, count: 15))
    }

    func test_reluForward_inPlace_matchesOutOfPlace() {
        var x = seededUniform(1003, seed: 5)
        var expected = [Float](repeating: 0, count: x.count)
        Activation.reluForward(output: &expected, input: x, count: x.count)
        x.withUnsafeMutableBufferPointer { p in
            Activation.reluForward(output: p.baseAddress!, input: p.baseAddress!, count: p.count)
        }
        XCTAssertEqual(x, expected)
    }

    func test_reluBackward_matchesFiniteDifferences_awayFromTheKink() {
        let count = 37
        // Keep every input at least 0.1 away from 0, so that ±eps never crosses the kink.
        var x = seededUniform(count, seed: 9).map { $0 < 0 ? $0 - 0.1 : $0 + 0.1 }
        let r = seededUniform(count, seed: 10)
        var dx = [Float](repeating: 0, count: count)
        Activation.reluBackward(dInput: &dx, dOutput: r, input: x, count: count)
        let report = checkGradient("relu input", count: count, analytic: dx,
                                   read: { x[$0] }, write: { x[$0] = $1 },
                                   loss: {
                                       var y = [Float](repeating: 0, count: count)
                                       Activation.reluForward(output: &y, input: x, count: count)
                                       return projection(y, r)
                                   }, samples: count)
        XCTAssertEqual(report.skippedKinks, 0)
    }
}

/// `Σ values ⊙ weights` in Double: a scalar whose gradient with respect to `values` is `weights`.
private func projection(_ values: [Float], _ weights: [Float]) -> Double {
    var total = 0.0
    for i in values.indices { total += Double(values[i]) * Double(weights[i]) }
    return total
}
