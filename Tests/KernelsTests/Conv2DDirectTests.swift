// Conv2DDirectTests.swift: the direct SIMD convolution (Conv2D+Direct.swift) and the fused epilogue
// (Conv2D+Epilogue.swift) against the naive Reference twins over the issue-13 sweep — stride 1/2,
// padding 0/1, odd and even sizes, C and K in {1, 3, 16, 17, 64}, 1×1 and 3×3, batch 1/3 (and 128) —
// for both algorithms, plus the dispatch rules. No performance checks here (see `memloss bench conv`).

import Foundation
import XCTest
@testable import Kernels
import Tensors
import _TestSupport

final class Conv2DDirectTests: XCTestCase {
    static let atol: Float = 2e-4
    static let rtol: Float = 1e-4

    /// Every forward (bias and no bias) of the sweep, on both algorithms.
    func test_forward_bothAlgorithms_matchReference_overSweep() {
        forEverySweepGeometry { g, seed in
            for algorithm in ConvAlgorithm.allCases {
                checkFused(g, seed: seed, algorithm: algorithm, scale: false, shift: true, residual: false, relu: false)
                checkFused(g, seed: seed, algorithm: algorithm, scale: false, shift: false, residual: false, relu: false)
            }
        }
    }

    /// Every epilogue combination against the unfused composition (reference conv, then affine, add, ReLU).
    func test_fusedEpilogue_matchesUnfusedComposition_forEveryCombination() {
        let shapes = [
            ConvGeometry(n: 3, c: 16, h: 8, w: 8, k: 17, kernel: 3, stride: 1, padding: 1),
            ConvGeometry(n: 1, c: 3, h: 7, w: 5, k: 64, kernel: 3, stride: 2, padding: 1),
            ConvGeometry(n: 3, c: 17, h: 5, w: 5, k: 3, kernel: 1, stride: 2, padding: 0),
        ]
        var seed: UInt64 = 900
        for g in shapes {
            for scale in [false, true] { for shift in [false, true] { for residual in [false, true] { for relu in [false, true] {
                seed += 7
                for algorithm in ConvAlgorithm.allCases {
                    checkFused(g, seed: seed, algorithm: algorithm, scale: scale, shift: shift, residual: residual, relu: relu)
                }
            } } } }
        }
    }

    /// Backward-input of every stride-1 sweep geometry on the direct kernel (stride 2 is GEMM-only).
    func test_directBackwardInput_matchesReference_forStride1Sweep() {
        forEverySweepGeometry { g, seed in
            guard Conv2D.supports(.direct, .backwardInput, g) else {
                XCTAssertTrue(g.strideH > 1 || g.padH >= g.r, "direct backward-input should support \(g)")
                return
            }
            checkBackwardInput(g, seed: seed, algorithm: .direct)
        }
    }

    /// Backward-weight (accumulating, with and without bias) of every sweep geometry on the direct kernel.
    func test_directBackwardWeight_accumulatesAndMatchesReference_overSweep() {
        forEverySweepGeometry { g, seed in
            checkBackwardWeight(g, seed: seed, withBias: seed % 20 == 1)
        }
    }

    /// A training-sized batch (more images than workers, several tiles per image, a K tail).
    func test_direct_matchesReference_atBatch128() {
        let g = ConvGeometry(n: 128, c: 17, h: 6, w: 7, k: 20, kernel: 3, stride: 1, padding: 1)
        checkFused(g, seed: 77, algorithm: .direct, scale: true, shift: true, residual: true, relu: true)
        checkBackwardInput(g, seed: 78, algorithm: .direct)
        checkBackwardWeight(g, seed: 79, withBias: true)
        let s2 = ConvGeometry(n: 128, c: 5, h: 9, w: 8, k: 18, kernel: 3, stride: 2, padding: 1)
        checkBackwardWeight(s2, seed: 80, withBias: true)
    }

    /// The row-vectorised kernel (Conv2D+Rows.swift): first layers (C·R·S ≤ 32) and few output
    /// channels, over row widths with full, partial and several vectors per row (Q = 8, 9, 17, 26,
    /// 33, 40) and every tile shape of both register files (K = 1, 2, 3, 4, 5, 6, 8, 17), forward with
    /// every epilogue part and backward-input (whose transposed conv has C output channels). Each
    /// geometry is checked to be one the row kernel takes, so the test cannot pass on the other kernel.
    func test_rowKernel_matchesReference_onFirstLayerShapes() {
        var seed: UInt64 = 5_000
        for (c, hw, padding) in [(1, 28, 0), (3, 32, 1), (1, 10, 0), (3, 9, 1), (1, 19, 1), (3, 26, 0), (1, 35, 0), (2, 40, 1)] {
            for k in [1, 2, 3, 4, 5, 6, 8, 17] {
                for n in [1, 3] {
                    seed += 10
                    let g = ConvGeometry(n: n, c: c, h: hw, w: hw, k: k, kernel: 3, stride: 1, padding: padding)
                    XCTAssertTrue(Conv2D.rowKernelFits(g), "\(g) should take the row kernel forward")
                    checkFused(g, seed: seed, algorithm: .direct, scale: n == 3, shift: true, residual: n == 3, relu: k % 2 == 1)
                    let t = Conv2D.transposedGeometry(g)
                    if Conv2D.rowKernelFits(t) { checkBackwardInput(g, seed: seed + 5, algorithm: .direct) }
                }
            }
        }
        // Backward-input of a first layer: the transposed conv has C = 1 or 3 output channels, so it
        // takes the row kernel whatever K is.
        for (c, k) in [(1, 32), (3, 16), (3, 64)] {
            seed += 10
            let g = ConvGeometry(n: 3, c: c, h: 28, w: 28, k: k, kernel: 3, stride: 1, padding: c == 1 ? 0 : 1)
            XCTAssertTrue(Conv2D.rowKernelFits(Conv2D.transposedGeometry(g)))
            checkBackwardInput(g, seed: seed, algorithm: .direct)
        }
        // Wide layers whose rows fill the vectors (ResNet-18 ×0.25 layer1 and layer2 shapes, small batch).
        for (c, hw, k) in [(16, 32, 16), (32, 16, 32), (17, 16, 16)] {
            seed += 10
            let g = ConvGeometry(n: 2, c: c, h: hw, w: hw, k: k, kernel: 3, stride: 1, padding: 1)
            XCTAssertTrue(Conv2D.rowKernelFits(g), "\(g) should take the row kernel forward")
            checkFused(g, seed: seed, algorithm: .direct, scale: true, shift: true, residual: true, relu: true)
            checkBackwardInput(g, seed: seed + 5, algorithm: .direct)
        }
        // Stride 2 in the rows (strideW 1 is what the kernel needs): a 2×1-strided conv.
        let strided = ConvGeometry(n: 2, c: 3, h: 20, w: 20, k: 8, r: 3, s: 3, strideH: 2, strideW: 1, padH: 1, padW: 1)
        XCTAssertTrue(Conv2D.rowKernelFits(strided))
        checkFused(strided, seed: seed + 1, algorithm: .direct, scale: true, shift: true, residual: true, relu: true)
        // A batch larger than the worker count, many images per chunk.
        let batch = ConvGeometry(n: 37, c: 1, h: 28, w: 28, k: 32, kernel: 3, stride: 1, padding: 0)
        checkFused(batch, seed: seed + 2, algorithm: .direct, scale: false, shift: true, residual: false, relu: true)
        checkBackwardInput(batch, seed: seed + 3, algorithm: .direct)
    }

    /// The gated backward-input (the previous layer's ReLU mask fused into the store) is bitwise the
    /// ungated pass followed by the reference ReLU mask, on the channel kernel, the row kernel, both
    /// algorithms where supported, and stride 2 (GEMM plus the gate pass). The gate holds negatives,
    /// zeros and a NaN, and about half of it masks.
    func test_backwardInput_gate_isBitwiseTheUngatedPassThenTheReLUMask() {
        let shapes = [
            ConvGeometry(n: 3, c: 16, h: 8, w: 8, k: 17, kernel: 3, stride: 1, padding: 1),   // channel tiles
            ConvGeometry(n: 3, c: 1, h: 28, w: 28, k: 32, kernel: 3, stride: 1, padding: 0),  // row kernel (C = 1)
            ConvGeometry(n: 2, c: 16, h: 32, w: 32, k: 16, kernel: 3, stride: 1, padding: 1), // row kernel, wide rows
            ConvGeometry(n: 3, c: 17, h: 9, w: 9, k: 5, kernel: 3, stride: 2, padding: 1),    // stride 2: GEMM only
            ConvGeometry(n: 129, c: 3, h: 5, w: 5, k: 16, kernel: 1, stride: 1, padding: 0),  // many images
        ]
        var seed: UInt64 = 7_100
        for g in shapes {
            seed += 10
            let dOutput = seededUniform(g.n * g.k * g.p * g.q, seed: seed)
            let weight = seededUniform(g.k * g.c * g.r * g.s, seed: seed + 1)
            var gate = seededUniform(g.n * g.c * g.h * g.w, seed: seed + 2).map { ($0 * 2).rounded() }
            gate[gate.count / 3] = .nan
            for algorithm in ConvAlgorithm.allCases where Conv2D.supports(algorithm, .backwardInput, g) {
                var plain = [Float](repeating: 7, count: gate.count), gated = plain, expected = plain
                plain.withUnsafeMutableBufferPointer { dx in dOutput.withUnsafeBufferPointer { dy in
                    weight.withUnsafeBufferPointer { w in
                        Conv2D.backwardInput(dInput: dx.baseAddress!, dOutput: dy.baseAddress!, weight: w.baseAddress!,
                                             geometry: g, algorithm: algorithm)
                    } } }
                gated.withUnsafeMutableBufferPointer { dx in dOutput.withUnsafeBufferPointer { dy in
                    weight.withUnsafeBufferPointer { w in gate.withUnsafeBufferPointer { m in
                        Conv2D.backwardInput(dInput: dx.baseAddress!, dOutput: dy.baseAddress!, weight: w.baseAddress!,
                                             geometry: g, algorithm: algorithm, gate: m.baseAddress!)
                    } } } }
                Reference.reluBackward(dInput: &expected, dOutput: plain, input: gate, count: gate.count)
                XCTAssertEqual(gated.map(\.bitPattern), expected.map(\.bitPattern), "\(algorithm) gated backwardInput, \(g)")
                XCTAssertTrue(expected.contains { $0 != 0 } && expected.contains { $0 == 0 }, "\(g): gate must mask some")
            }
        }
    }

    /// The direct kernel called from inside a parallel chunk runs serially and gives the same bits.
    func test_direct_isBitwiseDeterministic_andSameInsideParallelChunks() {
        let g = ConvGeometry(n: 5, c: 16, h: 9, w: 9, k: 33, kernel: 3, stride: 1, padding: 1)
        let input = seededUniform(g.n * g.c * g.h * g.w, seed: 5)
        let weight = seededUniform(g.k * g.c * g.r * g.s, seed: 6)
        func run() -> [Float] {
            var out = [Float](repeating: .nan, count: g.n * g.k * g.p * g.q)
            out.withUnsafeMutableBufferPointer { o in input.withUnsafeBufferPointer { x in weight.withUnsafeBufferPointer { w in
                Conv2D.forward(output: o.baseAddress!, input: x.baseAddress!, weight: w.baseAddress!, bias: nil,
                               geometry: g, algorithm: .direct)
            } } }
            return out
        }
        let first = run(), second = run()
        XCTAssertEqual(first, second)
        var nested: [Float] = []
        Parallel.forEachChunk(count: 2) { _, worker in if worker == 0 { nested = run() } }
        if Parallel.workerCount == 1 { nested = run() }
        XCTAssertEqual(nested, first)
    }

    func test_dispatch_supportsAndFallsBackToGemm() {
        let s2 = ConvGeometry(n: 1, c: 16, h: 8, w: 8, k: 16, kernel: 3, stride: 2, padding: 1)
        XCTAssertTrue(Conv2D.supports(.direct, .forward, s2))
        XCTAssertFalse(Conv2D.supports(.direct, .backwardInput, s2))
        XCTAssertTrue(Conv2D.supports(.direct, .backwardWeight, s2))
        XCTAssertFalse(Conv2D.supports(.direct, .backwardInput, ConvGeometry(n: 1, c: 4, h: 5, w: 5, k: 4, kernel: 1, padding: 1)))
        XCTAssertEqual(Conv2D.algorithm(for: .backwardInput, s2), .gemm)
        for pass in ConvPass.allCases {
            XCTAssertTrue(Conv2D.supports(.gemm, pass, s2))
        }
        let wide = ConvGeometry(n: 1, c: 64, h: 8, w: 8, k: 64, kernel: 3, stride: 1, padding: 1)
        if Conv2D.forcedAlgorithm == nil, Conv2D.measuredChoices[Conv2D.ShapeKey(wide)!] == nil {
            XCTAssertEqual(Conv2D.algorithm(for: .forward, wide), .direct)
        }
    }

    // MARK: - Sweep and checks

    /// stride {1, 2} × padding {0, 1} × H = W ∈ {5, 8} × C, K ∈ {1, 3, 16, 17, 64} × kernel {1, 3} × N ∈ {1, 3}.
    private func forEverySweepGeometry(_ body: (ConvGeometry, UInt64) -> Void) {
        var seed: UInt64 = 1
        for stride in [1, 2] { for padding in [0, 1] { for hw in [5, 8] { for kernel in [1, 3] {
            for c in [1, 3, 16, 17, 64] { for k in [1, 3, 16, 17, 64] { for n in [1, 3] {
                seed += 10
                let g = ConvGeometry(n: n, c: c, h: hw, w: hw, k: k, kernel: kernel, stride: stride, padding: padding)
                if g.isValid { body(g, seed) }
            } } }
        } } } }
    }

    /// The fused forward on `algorithm` against Reference forward followed by the epilogue in Double.
    private func checkFused(_ g: ConvGeometry, seed: UInt64, algorithm: ConvAlgorithm,
                            scale: Bool, shift: Bool, residual: Bool, relu: Bool,
                            file: StaticString = #filePath, line: UInt = #line) {
        let count = g.n * g.k * g.p * g.q, pq = g.p * g.q
        let input = seededUniform(g.n * g.c * g.h * g.w, seed: seed)
        let weight = seededUniform(g.k * g.c * g.r * g.s, seed: seed + 1)
        let scales = seededUniform(g.k, low: 0.5, high: 2, seed: seed + 2)
        let shifts = seededUniform(g.k, seed: seed + 3)
        let residuals = seededUniform(count, seed: seed + 4)
        var plain = [Float](repeating: 0, count: count)
        plain.withUnsafeMutableBufferPointer { o in input.withUnsafeBufferPointer { x in weight.withUnsafeBufferPointer { w in
            Reference.conv2DForward(output: o.baseAddress!, input: x.baseAddress!, weight: w.baseAddress!, bias: nil, geometry: g)
        } } }
        var expected = plain
        for i in 0..<count {
            let k = (i / pq) % g.k
            var v = Double(plain[i]) * Double(scale ? scales[k] : 1) + Double(shift ? shifts[k] : 0)
            if residual { v += Double(residuals[i]) }
            if relu { v = max(0, v) }
            expected[i] = Float(v)
        }
        // NaN-filled output proves every element is written.
        var fast = [Float](repeating: .nan, count: count)
        fast.withUnsafeMutableBufferPointer { o in input.withUnsafeBufferPointer { x in weight.withUnsafeBufferPointer { w in
            scales.withUnsafeBufferPointer { a in shifts.withUnsafeBufferPointer { b in residuals.withUnsafeBufferPointer { res in
                let epilogue = Conv2D.Epilogue(scale: scale ? a.baseAddress! : nil, shift: shift ? b.baseAddress! : nil,
                                               residual: residual ? res.baseAddress! : nil, relu: relu)
                Conv2D.forward(output: o.baseAddress!, input: x.baseAddress!, weight: w.baseAddress!, epilogue: epilogue,
                               geometry: g, algorithm: algorithm)
            } } }
        } } }
        assertClose(fast, expected, atol: Self.atol, rtol: Self.rtol,
                    "\(algorithm) forward (scale \(scale), shift \(shift), residual \(residual), relu \(relu)), \(g)",
                    file: file, line: line)
    }

    private func checkBackwardWeight(_ g: ConvGeometry, seed: UInt64, withBias: Bool,
                                     file: StaticString = #filePath, line: UInt = #line) {
        let dOutput = seededUniform(g.n * g.k * g.p * g.q, seed: seed + 3)
        let input = seededUniform(g.n * g.c * g.h * g.w, seed: seed)
        // Non-zero starting gradients: the kernel must add into them.
        let startWeight = seededUniform(g.k * g.c * g.r * g.s, seed: seed + 5)
        let startBias = seededUniform(g.k, seed: seed + 6)
        var fastWeight = startWeight, fastBias = startBias
        var expectedWeight = startWeight, expectedBias = startBias
        fastWeight.withUnsafeMutableBufferPointer { dw in fastBias.withUnsafeMutableBufferPointer { db in
            dOutput.withUnsafeBufferPointer { dy in input.withUnsafeBufferPointer { x in
                Conv2D.backwardWeight(dWeight: dw.baseAddress!, dBias: withBias ? db.baseAddress! : nil, dOutput: dy.baseAddress!,
                                      input: x.baseAddress!, geometry: g, algorithm: .direct)
            } }
        } }
        expectedWeight.withUnsafeMutableBufferPointer { dw in expectedBias.withUnsafeMutableBufferPointer { db in
            dOutput.withUnsafeBufferPointer { dy in input.withUnsafeBufferPointer { x in
                Reference.conv2DBackwardWeight(dWeight: dw.baseAddress!, dBias: withBias ? db.baseAddress! : nil,
                                               dOutput: dy.baseAddress!, input: x.baseAddress!, geometry: g)
            } }
        } }
        assertClose(fastWeight, expectedWeight, atol: Self.atol, rtol: Self.rtol, "direct backwardWeight, \(g)", file: file, line: line)
        assertClose(fastBias, expectedBias, atol: Self.atol, rtol: Self.rtol, "direct backwardWeight bias (\(withBias)), \(g)",
                    file: file, line: line)
    }

    private func checkBackwardInput(_ g: ConvGeometry, seed: UInt64, algorithm: ConvAlgorithm,
                                    file: StaticString = #filePath, line: UInt = #line) {
        let dOutput = seededUniform(g.n * g.k * g.p * g.q, seed: seed + 3)
        let weight = seededUniform(g.k * g.c * g.r * g.s, seed: seed + 1)
        // Non-zero garbage in dInput: the kernel must overwrite, not accumulate.
        var fast = seededUniform(g.n * g.c * g.h * g.w, low: 50, high: 60, seed: seed + 4)
        var expected = fast
        fast.withUnsafeMutableBufferPointer { dx in dOutput.withUnsafeBufferPointer { dy in weight.withUnsafeBufferPointer { w in
            Conv2D.backwardInput(dInput: dx.baseAddress!, dOutput: dy.baseAddress!, weight: w.baseAddress!,
                                 geometry: g, algorithm: algorithm)
        } } }
        expected.withUnsafeMutableBufferPointer { dx in dOutput.withUnsafeBufferPointer { dy in weight.withUnsafeBufferPointer { w in
            Reference.conv2DBackwardInput(dInput: dx.baseAddress!, dOutput: dy.baseAddress!, weight: w.baseAddress!, geometry: g)
        } } }
        assertClose(fast, expected, atol: Self.atol, rtol: Self.rtol, "\(algorithm) backwardInput, \(g)", file: file, line: line)
    }
}
