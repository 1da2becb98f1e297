// PerturbationTests.swift: the Perturbation kernels (sign step, L∞ / L2 projections, per-row norms,
// per-row scaled add) against their Reference twins, for row lengths around the SIMD width, and the
// guarantees the attacks rely on: results inside the ball and the box, ε = 0 gives the centre.

import XCTest
import Kernels
import Tensors
import _TestSupport

final class PerturbationTests: XCTestCase {
    /// Row lengths around the 8-lane vector and the 32-lane unrolled norm loop, plus an MNIST image.
    static let rowLengths = [1, 7, 8, 9, 31, 32, 33, 100, 784]
    static let rowCounts = [1, 3]

    /// Values in [−0.5, 1.5] with exact zeros, so clamps, zero gradients and ties are all exercised.
    private func values(_ count: Int, seed: UInt64) -> [Float] {
        var v = seededUniform(count, low: -0.5, high: 1.5, seed: seed)
        for i in stride(from: 0, to: count, by: 5) { v[i] = 0 }
        return v
    }

    private func forEveryGeometry(_ body: (_ rows: Int, _ rowLength: Int, _ seed: UInt64) -> Void) {
        var seed: UInt64 = 1
        for rows in Self.rowCounts {
            for rowLength in Self.rowLengths {
                body(rows, rowLength, seed)
                seed += 1
            }
        }
    }

    func test_signStep_matchesReference_andLeavesZeroGradientPixelsAlone() {
        forEveryGeometry { rows, rowLength, seed in
            let n = rows * rowLength
            let g = values(n, seed: seed &* 31)
            var fast = values(n, seed: seed), slow = fast
            let before = fast
            Perturbation.signStep(values: &fast, gradient: g, stepSize: 0.25, count: n)
            Reference.perturbationSignStep(values: &slow, gradient: g, stepSize: 0.25, count: n)
            XCTAssertEqual(fast, slow, "n \(n)")
            for i in 0..<n where g[i] == 0 { XCTAssertEqual(fast[i], before[i]) }
        }
    }

    func test_projectLinf_matchesReference_andLandsInTheBallAndTheBox() {
        forEveryGeometry { rows, rowLength, seed in
            let n = rows * rowLength
            let center = seededUniform(n, low: 0, high: 1, seed: seed &* 7)
            var fast = values(n, seed: seed), slow = fast
            Perturbation.projectLinf(values: &fast, center: center, epsilon: 0.1, count: n)
            Reference.perturbationProjectLinf(values: &slow, center: center, epsilon: 0.1, count: n)
            XCTAssertEqual(fast, slow, "n \(n)")
            for i in 0..<n {
                XCTAssert(fast[i] >= 0 && fast[i] <= 1)
                XCTAssertLessThanOrEqual(abs(fast[i] - center[i]), 0.1 + 1e-7)
            }
        }
    }

    func test_projectL2_matchesReference_andLandsInTheBallAndTheBox() {
        forEveryGeometry { rows, rowLength, seed in
            let n = rows * rowLength
            let center = seededUniform(n, low: 0, high: 1, seed: seed &* 7)
            let epsilon: Float = 0.3
            var fast = values(n, seed: seed), slow = fast
            Perturbation.projectL2(values: &fast, center: center, epsilon: epsilon, rows: rows, rowLength: rowLength)
            Reference.perturbationProjectL2(values: &slow, center: center, epsilon: epsilon, rows: rows, rowLength: rowLength)
            assertClose(fast, slow, atol: 2e-7, rtol: 1e-6, "rows \(rows) × \(rowLength)")
            for r in 0..<rows {
                var s = 0.0
                for i in 0..<rowLength {
                    let k = r * rowLength + i
                    XCTAssert(fast[k] >= 0 && fast[k] <= 1)
                    s += Double(fast[k] - center[k]) * Double(fast[k] - center[k])
                }
                XCTAssertLessThanOrEqual(s.squareRoot(), Double(epsilon) * (1 + 1e-5), "row \(r) of \(rows) × \(rowLength)")
            }
        }
    }

    func test_projections_withZeroEpsilon_returnTheCenterExactly() {
        let rows = 3, rowLength = 33, n = rows * rowLength
        let center = seededUniform(n, low: 0, high: 1, seed: 5)
        var a = values(n, seed: 6), b = a
        Perturbation.projectLinf(values: &a, center: center, epsilon: 0, count: n)
        Perturbation.projectL2(values: &b, center: center, epsilon: 0, rows: rows, rowLength: rowLength)
        XCTAssertEqual(a, center)
        XCTAssertEqual(b, center)
    }

    func test_rowL2Norms_andAddScaledRows_matchReference() {
        forEveryGeometry { rows, rowLength, seed in
            let n = rows * rowLength
            let x = values(n, seed: seed)
            var fast = [Float](repeating: .nan, count: rows), slow = fast
            Perturbation.rowL2Norms(norms: &fast, input: x, rows: rows, rowLength: rowLength)
            Reference.perturbationRowL2Norms(norms: &slow, input: x, rows: rows, rowLength: rowLength)
            assertClose(fast, slow, atol: 0, rtol: 1e-6, "norms \(rows) × \(rowLength)")

            let factors = (0..<rows).map { Float($0) * 0.7 - 0.4 }
            var t1 = values(n, seed: seed &* 3), t2 = t1
            Perturbation.addScaledRows(target: &t1, source: x, factors: factors, rows: rows, rowLength: rowLength)
            Reference.perturbationAddScaledRows(target: &t2, source: x, factors: factors, rows: rows, rowLength: rowLength)
            assertClose(t1, t2, atol: 1e-7, rtol: 1e-7, "addScaledRows \(rows) × \(rowLength)")
        }
    }

    func test_tensorEntryPoints_agreeWithThePointerKernels() {
        var g = SplitMix64(seed: 9)
        let center = Tensor.randomUniform(shape: [2, 1, 3, 5], low: 0, high: 1, rng: &g)
        let start = Tensor.randomUniform(shape: [2, 1, 3, 5], low: -0.5, high: 1.5, rng: &g)
        var t = start
        Perturbation.projectL2(&t, center: center, epsilon: 0.2)
        var raw = start.scalars
        Perturbation.projectL2(values: &raw, center: center.scalars, epsilon: 0.2, rows: 2, rowLength: 15)
        XCTAssertEqual(t.scalars, raw)
        let norms = Perturbation.rowL2Norms(start)
        XCTAssertEqual(norms.count, 2)
        var c = start
        Perturbation.clampToUnitInterval(&c)
        XCTAssert(c.scalars.allSatisfy { $0 >= 0 && $0 <= 1 })
    }
}
