// PoolingTests.swift: max, average and global average pooling against the Reference twins over a
// geometry sweep, hand-computed max-pool cases (argmax, ties), and finite-difference checks of every
// backward pass (max pool on inputs without near-ties, so no window's winner changes under ±eps).

import XCTest
import Kernels
import Tensors
import _TestSupport

final class PoolingTests: XCTestCase {
    /// (N, C, H, W, kernel, stride): odd and even sizes, non-square inputs, overlapping windows
    /// (kernel > stride), leftover rows/columns, kernel 1, 2×2 rows long enough for the 8-wide max-pool
    /// path with and without a scalar tail, and one large enough to run on two workers.
    static let geometries: [(n: Int, c: Int, h: Int, w: Int, kernel: Int, stride: Int)] = [
        (1, 1, 4, 4, 2, 2), (3, 3, 7, 5, 2, 2), (1, 16, 9, 9, 3, 2), (3, 3, 8, 8, 3, 1),
        (3, 1, 5, 7, 3, 3), (1, 3, 6, 6, 1, 1), (3, 16, 4, 4, 4, 1), (3, 3, 20, 19, 2, 2),
        (1, 1, 17, 33, 2, 2), (2, 3, 24, 24, 2, 2), (4, 16, 32, 32, 2, 2),
    ]

    func test_outputSize_floorsLikePyTorch() {
        XCTAssertEqual(Pooling.outputSize(32, kernel: 2, stride: 2), 16)
        XCTAssertEqual(Pooling.outputSize(7, kernel: 2, stride: 2), 3)
        XCTAssertEqual(Pooling.outputSize(9, kernel: 3, stride: 2), 4)
        XCTAssertEqual(Pooling.outputSize(8, kernel: 8, stride: 1), 1)
        XCTAssertEqual(Pooling.outputSize(2, kernel: 3, stride: 1), 0)
    }

    // MARK: - Max pooling

    func test_maxPoolForward_picksEachWindowsMaximum_andRecordsItsFlatIndex() {
        let x: [Float] = [
            1, 5, 2, 0,
            3, 4, 8, 1,
            0, 0, -1, -2,
            9, 0, -3, -4,
        ]
        var y = [Float](repeating: 0, count: 4)
        var argmax = [Int32](repeating: -1, count: 4)
        Pooling.maxPoolForward(output: &y, argmax: &argmax, input: x, n: 1, c: 1, h: 4, w: 4, kernel: 2, stride: 2)
        XCTAssertEqual(y, [5, 8, 9, -1])
        XCTAssertEqual(argmax, [1, 6, 12, 10])
    }

    func test_maxPoolForward_letsTheFirstMaximumWinTies() {
        let x: [Float] = [
            2, 7, 7,
            7, 7, 1,
            0, 7, 7,
        ]
        var y = [Float](repeating: 0, count: 4)
        var argmax = [Int32](repeating: -1, count: 4)
        Pooling.maxPoolForward(output: &y, argmax: &argmax, input: x, n: 1, c: 1, h: 3, w: 3, kernel: 2, stride: 1)
        XCTAssertEqual(y, [7, 7, 7, 7])
        XCTAssertEqual(argmax, [1, 1, 3, 4])
        var dx = [Float](repeating: .nan, count: 9)
        Pooling.maxPoolBackward(dInput: &dx, dOutput: [1, 2, 3, 4], argmax: argmax,
                                n: 1, c: 1, h: 3, w: 3, kernel: 2, stride: 1)
        XCTAssertEqual(dx, [0, 3, 0, 3, 4, 0, 0, 0, 0])
    }

    func test_maxPool_forwardAndBackward_matchReference_overGeometries() {
        for (k, g) in Self.geometries.enumerated() {
            let p = Pooling.outputSize(g.h, kernel: g.kernel, stride: g.stride)
            let q = Pooling.outputSize(g.w, kernel: g.kernel, stride: g.stride)
            // Values on a coarse grid so that ties actually occur.
            let x = seededUniform(g.n * g.c * g.h * g.w, seed: UInt64(10 + k)).map { ($0 * 4).rounded() }
            let outCount = g.n * g.c * p * q
            var yFast = [Float](repeating: .nan, count: outCount), ySlow = yFast
            var aFast = [Int32](repeating: -1, count: outCount), aSlow = aFast
            Pooling.maxPoolForward(output: &yFast, argmax: &aFast, input: x, n: g.n, c: g.c, h: g.h, w: g.w,
                                   kernel: g.kernel, stride: g.stride)
            Reference.maxPoolForward(output: &ySlow, argmax: &aSlow, input: x, n: g.n, c: g.c, h: g.h, w: g.w,
                                     kernel: g.kernel, stride: g.stride)
            XCTAssertEqual(yFast, ySlow, "geometry \(g)")
            XCTAssertEqual(aFast, aSlow, "geometry \(g)")
            let dy = seededUniform(outCount, seed: UInt64(50 + k))
            var dxFast = [Float](repeating: .nan, count: x.count), dxSlow = dxFast
            Pooling.maxPoolBackward(dInput: &dxFast, dOutput: dy, argmax: aFast, n: g.n, c: g.c, h: g.h, w: g.w,
                                    kernel: g.kernel, stride: g.stride)
            Reference.maxPoolBackward(dInput: &dxSlow, dOutput: dy, argmax: aSlow, n: g.n, c: g.c, h: g.h, w: g.w,
                                      kernel: g.kernel, stride: g.stride)
            assertClose(dxFast, dxSlow, atol: 1e-6, rtol: 1e-6, "geometry \(g)")
        }
    }

    /// The fused pool + ReLU-mask backward equals the reference scatter followed by the reference
    /// ReLU mask, bit for bit (compared as bit patterns, so −0 against +0 would fail), over every
    /// geometry: inputs with negative values and ties (masked windows), a NaN, and −0 gradients.
    func test_maxPoolReLUBackward_equalsScatterThenReLUMask_bitForBit() {
        for (k, g) in Self.geometries.enumerated() {
            let p = Pooling.outputSize(g.h, kernel: g.kernel, stride: g.stride)
            let q = Pooling.outputSize(g.w, kernel: g.kernel, stride: g.stride)
            var x = seededUniform(g.n * g.c * g.h * g.w, seed: UInt64(200 + k)).map { ($0 * 3).rounded() }
            x[x.count / 2] = .nan
            let outCount = g.n * g.c * p * q
            var y = [Float](repeating: 0, count: outCount)
            var argmax = [Int32](repeating: -1, count: outCount)
            Pooling.maxPoolForward(output: &y, argmax: &argmax, input: x, n: g.n, c: g.c, h: g.h, w: g.w,
                                   kernel: g.kernel, stride: g.stride)
            var dy = seededUniform(outCount, seed: UInt64(300 + k))
            for i in stride(from: 0, to: outCount, by: 5) { dy[i] = -0.0 }
            var scattered = [Float](repeating: .nan, count: x.count), expected = scattered
            Reference.maxPoolBackward(dInput: &scattered, dOutput: dy, argmax: argmax, n: g.n, c: g.c, h: g.h,
                                      w: g.w, kernel: g.kernel, stride: g.stride)
            Reference.reluBackward(dInput: &expected, dOutput: scattered, input: x, count: x.count)
            var fused = [Float](repeating: .nan, count: x.count)
            Pooling.maxPoolReLUBackward(dInput: &fused, dOutput: dy, argmax: argmax, pooled: y, n: g.n, c: g.c,
                                        h: g.h, w: g.w, kernel: g.kernel, stride: g.stride)
            XCTAssertEqual(fused.map(\.bitPattern), expected.map(\.bitPattern), "geometry \(g)")
            XCTAssertTrue(expected.contains { $0 != 0 }, "geometry \(g): the test needs unmasked gradients")
        }
    }

    func test_maxPoolForward_propagatesNaN_inTheScalarAndVectorPaths() {
        for (h, w) in [(4, 8), (4, 20)] {     // 4 outputs per row (scalar) and 10 (8-wide path + tail)
            var x = [Float](repeating: 1, count: h * w)
            x[w + 1] = .nan                   // window (0, 0), bottom-right
            x[2 * w + 4] = .nan               // window (1, 2), top-left
            x[3 * w + 5] = 2                  // later in window (1, 2): must not replace the NaN
            var y = [Float](repeating: 0, count: h * w / 4)
            var argmax = [Int32](repeating: -1, count: h * w / 4)
            Pooling.maxPoolForward(output: &y, argmax: &argmax, input: x, n: 1, c: 1, h: h, w: w, kernel: 2, stride: 2)
            var yRef = [Float](repeating: 0, count: y.count), aRef = [Int32](repeating: -1, count: y.count)
            Reference.maxPoolForward(output: &yRef, argmax: &aRef, input: x, n: 1, c: 1, h: h, w: w, kernel: 2, stride: 2)
            let q = w / 2
            XCTAssertTrue(y[0].isNaN && y[q + 2].isNaN, "\(h)×\(w)")
            XCTAssertEqual(argmax[0], Int32(w + 1))
            XCTAssertEqual(argmax[q + 2], Int32(2 * w + 4))
            XCTAssertEqual(argmax, aRef)
            XCTAssertTrue(zip(y, yRef).allSatisfy { $0 == $1 || ($0.isNaN && $1.isNaN) })
            XCTAssertEqual(y.filter { !$0.isNaN }, [Float](repeating: 1, count: y.count - 2))
        }
    }

    func test_maxPoolBackward_matchesFiniteDifferences() {
        for g in [(n: 2, c: 3, h: 5, w: 6, kernel: 2, stride: 2), (n: 1, c: 2, h: 5, w: 5, kernel: 3, stride: 1)] {
            let count = g.n * g.c * g.h * g.w
            // A shuffled grid with spacing 0.05 ≫ eps: no window's winner changes under ±eps.
            var rng = SplitMix64(seed: 77)
            var x = (0..<count).map { Float($0) * 0.05 }
            x.shuffle(using: &rng)
            let p = Pooling.outputSize(g.h, kernel: g.kernel, stride: g.stride)
            let q = Pooling.outputSize(g.w, kernel: g.kernel, stride: g.stride)
            let r = seededUniform(g.n * g.c * p * q, seed: 78)
            func forward(_ x: [Float]) -> ([Float], [Int32]) {
                var y = [Float](repeating: 0, count: r.count), a = [Int32](repeating: 0, count: r.count)
                Pooling.maxPoolForward(output: &y, argmax: &a, input: x, n: g.n, c: g.c, h: g.h, w: g.w,
                                       kernel: g.kernel, stride: g.stride)
                return (y, a)
            }
            var dx = [Float](repeating: .nan, count: count)
            Pooling.maxPoolBackward(dInput: &dx, dOutput: r, argmax: forward(x).1, n: g.n, c: g.c, h: g.h, w: g.w,
                                    kernel: g.kernel, stride: g.stride)
            let report = checkGradient("max pool input \(g)", count: count, analytic: dx,
                                       read: { x[$0] }, write: { x[$0] = $1 },
                                       loss: { projection(forward(x).0, r) }, samples: count)
            XCTAssertEqual(report.skippedKinks, 0)
        }
    }

    // MARK: - Average pooling

    func test_avgPool_forwardAndBackward_matchReference_overGeometries() {
        for (k, g) in Self.geometries.enumerated() {
            let p = Pooling.outputSize(g.h, kernel: g.kernel, stride: g.stride)
            let q = Pooling.outputSize(g.w, kernel: g.kernel, stride: g.stride)
            let x = seededUniform(g.n * g.c * g.h * g.w, seed: UInt64(110 + k))
            let outCount = g.n * g.c * p * q
            var yFast = [Float](repeating: .nan, count: outCount), ySlow = yFast
            Pooling.avgPoolForward(output: &yFast, input: x, n: g.n, c: g.c, h: g.h, w: g.w,
                                   kernel: g.kernel, stride: g.stride)
            Reference.avgPoolForward(output: &ySlow, input: x, n: g.n, c: g.c, h: g.h, w: g.w,
                                     kernel: g.kernel, stride: g.stride)
            assertClose(yFast, ySlow, atol: 1e-6, rtol: 1e-5, "geometry \(g)")
            let dy = seededUniform(outCount, seed: UInt64(150 + k))
            var dxFast = [Float](repeating: .nan, count: x.count), dxSlow = dxFast
            Pooling.avgPoolBackward(dInput: &dxFast, dOutput: dy, n: g.n, c: g.c, h: g.h, w: g.w,
                                    kernel: g.kernel, stride: g.stride)
            Reference.avgPoolBackward(dInput: &dxSlow, dOutput: dy, n: g.n, c: g.c, h: g.h, w: g.w,
                                      kernel: g.kernel, stride: g.stride)
            assertClose(dxFast, dxSlow, atol: 1e-6, rtol: 1e-5, "geometry \(g)")
        }
    }

    func test_avgPoolBackward_matchesFiniteDifferences() {
        for g in [(n: 2, c: 3, h: 5, w: 6, kernel: 2, stride: 2), (n: 1, c: 2, h: 5, w: 5, kernel: 3, stride: 1)] {
            let count = g.n * g.c * g.h * g.w
            var x = seededUniform(count, seed: 90)
            let p = Pooling.outputSize(g.h, kernel: g.kernel, stride: g.stride)
            let q = Pooling.outputSize(g.w, kernel: g.kernel, stride: g.stride)
            let r = seededUniform(g.n * g.c * p * q, seed: 91)
            var dx = [Float](repeating: .nan, count: count)
            Pooling.avgPoolBackward(dInput: &dx, dOutput: r, n: g.n, c: g.c, h: g.h, w: g.w,
                                    kernel: g.kernel, stride: g.stride)
            _ = checkGradient("avg pool input \(g)", count: count, analytic: dx,
                              read: { x[$0] }, write: { x[$0] = $1 },
                              loss: {
                                  var y = [Float](repeating: 0, count: r.count)
                                  Pooling.avgPoolForward(output: &y, input: x, n: g.n, c: g.c, h: g.h, w: g.w,
                                                         kernel: g.kernel, stride: g.stride)
                                  return projection(y, r)
                              }, samples: count)
        }
    }

    // MARK: - Global average pooling

    func test_globalAvgPool_forwardAndBackward_matchReference() {
        for (k, s) in [(n: 1, c: 1, hw: 1), (n: 3, c: 3, hw: 7), (n: 3, c: 16, hw: 64), (n: 1, c: 3, hw: 65),
                       (n: 4, c: 16, hw: 1024), (n: 2, c: 1, hw: 5000)].enumerated() {
            let x = seededUniform(s.n * s.c * s.hw, seed: UInt64(210 + k))
            var yFast = [Float](repeating: .nan, count: s.n * s.c), ySlow = yFast
            Pooling.globalAvgPoolForward(output: &yFast, input: x, n: s.n, c: s.c, hw: s.hw)
            Reference.globalAvgPoolForward(output: &ySlow, input: x, n: s.n, c: s.c, hw: s.hw)
            assertClose(yFast, ySlow, atol: 1e-6, rtol: 1e-5, "shape \(s)")
            let dy = seededUniform(s.n * s.c, seed: UInt64(250 + k))
            var dxFast = [Float](repeating: .nan, count: x.count), dxSlow = dxFast
            Pooling.globalAvgPoolBackward(dInput: &dxFast, dOutput: dy, n: s.n, c: s.c, hw: s.hw)
            Reference.globalAvgPoolBackward(dInput: &dxSlow, dOutput: dy, n: s.n, c: s.c, hw: s.hw)
            assertClose(dxFast, dxSlow, atol: 1e-7, rtol: 1e-6, "shape \(s)")
        }
    }

    func test_globalAvgPoolBackward_matchesFiniteDifferences() {
        let (n, c, hw) = (3, 2, 7)
        var x = seededUniform(n * c * hw, seed: 300)
        let r = seededUniform(n * c, seed: 301)
        var dx = [Float](repeating: .nan, count: x.count)
        Pooling.globalAvgPoolBackward(dInput: &dx, dOutput: r, n: n, c: c, hw: hw)
        _ = checkGradient("global avg pool input", count: x.count, analytic: dx,
                          read: { x[$0] }, write: { x[$0] = $1 },
                          loss: {
                              var y = [Float](repeating: 0, count: n * c)
                              Pooling.globalAvgPoolForward(output: &y, input: x, n: n, c: c, hw: hw)
                              return projection(y, r)
                          }, samples: x.count)
    }
}

/// `Σ values ⊙ weights` in Double: a scalar whose gradient with respect to `values` is `weights`.
private func projection(_ values: [Float], _ weights: [Float]) -> Double {
    var total = 0.0
    for i in values.indices { total += Double(values[i]) * Double(weights[i]) }
    return total
}
