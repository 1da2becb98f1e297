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
            for algorithm in ConvAlgorithm.allCases where Conv2D.supports(algorithm, .forward, g) {
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
                for algorithm in ConvAlgorithm.allCases where Conv2D.supports(algorithm, .forward, g) {
                    checkFused(g, seed: seed, algorithm: algorithm, scale: scale, shift: shift, residual: residual, relu: relu)
                }
            } } } }
        }
    }

    /// Backward-input of every sweep geometry on the direct kernel: stride 1 as a transposed forward,
    /// stride 2 and padding ≥ kernel (1×1 with padding 1) by output phase.
    func test_directBackwardInput_matchesReference_overSweep() {
        forEverySweepGeometry { g, seed in
            XCTAssertTrue(Conv2D.supports(.direct, .backwardInput, g), "direct backward-input should support \(g)")
            checkBackwardInput(g, seed: seed, algorithm: .direct)
        }
    }

    /// The phased backward-input (Conv2D+Strided.swift) on the geometries the sweep does not reach:
    /// stride 3, unequal strides, padding ≥ kernel, kernels wider than tall, inputs smaller than the
    /// stride, phases that no tap reaches (1×1 stride 2: three of four phases are zero), input rows
    /// past the last window (never read by the forward: their gradient is zero), channel tails past a
    /// vector, and a training-sized batch.
    func test_phasedBackwardInput_matchesReference_onOddGeometries() {
        let shapes = [
            ConvGeometry(n: 2, c: 5, h: 7, w: 7, k: 6, kernel: 3, stride: 3, padding: 1),
            ConvGeometry(n: 2, c: 17, h: 9, w: 8, k: 9, r: 3, s: 3, strideH: 2, strideW: 1, padH: 1, padW: 1),
            ConvGeometry(n: 2, c: 16, h: 8, w: 9, k: 5, r: 3, s: 3, strideH: 1, strideW: 2, padH: 0, padW: 1),
            ConvGeometry(n: 3, c: 4, h: 5, w: 5, k: 4, kernel: 1, stride: 1, padding: 1),
            ConvGeometry(n: 2, c: 3, h: 6, w: 6, k: 7, kernel: 2, stride: 1, padding: 2),
            ConvGeometry(n: 2, c: 9, h: 11, w: 10, k: 8, r: 3, s: 5, strideH: 2, strideW: 2, padH: 1, padW: 2),
            ConvGeometry(n: 1, c: 3, h: 1, w: 1, k: 3, kernel: 3, stride: 2, padding: 1),
            ConvGeometry(n: 2, c: 40, h: 2, w: 3, k: 2, kernel: 3, stride: 4, padding: 1),
            ConvGeometry(n: 3, c: 33, h: 8, w: 8, k: 12, kernel: 1, stride: 2, padding: 0),
            ConvGeometry(n: 2, c: 6, h: 8, w: 8, k: 5, kernel: 3, stride: 2, padding: 0),
            ConvGeometry(n: 2, c: 2, h: 9, w: 9, k: 3, kernel: 2, stride: 3, padding: 0),
            ConvGeometry(n: 128, c: 32, h: 16, w: 16, k: 64, kernel: 3, stride: 2, padding: 1),
            ConvGeometry(n: 128, c: 16, h: 32, w: 32, k: 32, kernel: 1, stride: 2, padding: 0),
        ]
        var seed: UInt64 = 8_300
        for g in shapes {
            seed += 10
            XCTAssertTrue(g.isValid, "\(g)")
            checkBackwardInput(g, seed: seed, algorithm: .direct)
        }
        // The rows of the 3×3 stride-2 unpadded 8×8 case that no window covers (row and column 7).
        let g = ConvGeometry(n: 1, c: 2, h: 8, w: 8, k: 3, kernel: 3, stride: 2, padding: 0)
        let dOutput = seededUniform(g.n * g.k * g.p * g.q, seed: 1), weight = seededUniform(g.k * g.c * g.r * g.s, seed: 2)
        var dx = [Float](repeating: .nan, count: g.n * g.c * g.h * g.w)
        dx.withUnsafeMutableBufferPointer { x in dOutput.withUnsafeBufferPointer { y in weight.withUnsafeBufferPointer { w in
            Conv2D.backwardInput(dInput: x.baseAddress!, dOutput: y.baseAddress!, weight: w.baseAddress!, geometry: g,
                                 algorithm: .direct)
        } } }
        for c in 0..<g.c { for i in 0..<g.h { XCTAssertEqual(dx[(c * g.h + i) * g.w + 7], 0); XCTAssertEqual(dx[(c * g.h + 7) * g.w + i], 0) } }
    }

    /// Image groups (`channelGroupPixels`) and tap chunks (`channelTapChunkBytes`) change only the
    /// order of the loops around the taps, never the order of a sum: forward (every epilogue part,
    /// residual included), backward-input (stride 1 and by phase) and the gate give the same bits for
    /// no grouping, whole-chunk grouping and 7-tap chunks, on small planes, bordered and unbordered
    /// inputs, and batches that leave a short last group.
    func test_channelKernel_groupsAndTapChunks_areBitwiseNeutral() {
        let shapes = [
            ConvGeometry(n: 7, c: 40, h: 4, w: 4, k: 24, kernel: 3, stride: 1, padding: 1),   // small plane, K tail
            ConvGeometry(n: 5, c: 33, h: 6, w: 3, k: 9, kernel: 1, stride: 1, padding: 0),    // unbordered, V = 1
            ConvGeometry(n: 9, c: 20, h: 8, w: 8, k: 40, kernel: 3, stride: 2, padding: 1),   // strided
            ConvGeometry(n: 3, c: 70, h: 9, w: 9, k: 30, kernel: 3, stride: 1, padding: 1),   // long reduction
        ]
        let savedGroup = Conv2D.channelGroupPixels, savedChunk = Conv2D.channelTapChunkBytes
        defer { Conv2D.channelGroupPixels = savedGroup; Conv2D.channelTapChunkBytes = savedChunk }
        let settings = [(savedGroup, savedChunk), (1, 1 << 30), (1 << 20, 1 << 30), (1 << 20, 7 * 4 * Conv2D.directChannelTile),
                        (1, 3 * 4 * WideVector.scalarCount)]
        var seed: UInt64 = 9_100
        for g in shapes {
            seed += 10
            XCTAssertFalse(Conv2D.rowKernelFits(g), "\(g) must take the channel kernel")
            if g.strideH == 1 { XCTAssertFalse(Conv2D.rowKernelFits(Conv2D.transposedGeometry(g)), "\(g) backward on channels") }
            let count = g.n * g.k * g.p * g.q, inCount = g.n * g.c * g.h * g.w
            let x = seededUniform(inCount, seed: seed), w = seededUniform(g.k * g.c * g.r * g.s, seed: seed + 1)
            let scale = seededUniform(g.k, low: 0.5, high: 2, seed: seed + 2), shift = seededUniform(g.k, seed: seed + 3)
            let residual = seededUniform(count, seed: seed + 4), dy = seededUniform(count, seed: seed + 5)
            let gate = seededUniform(inCount, seed: seed + 6)
            func run() -> (forward: [UInt32], backward: [UInt32]) {
                var y = [Float](repeating: .nan, count: count), dx = [Float](repeating: .nan, count: inCount)
                y.withUnsafeMutableBufferPointer { y in x.withUnsafeBufferPointer { x in w.withUnsafeBufferPointer { w in
                    scale.withUnsafeBufferPointer { sc in shift.withUnsafeBufferPointer { sh in residual.withUnsafeBufferPointer { r in
                        Conv2D.forward(output: y.baseAddress!, input: x.baseAddress!, weight: w.baseAddress!,
                                       epilogue: Conv2D.Epilogue(scale: sc.baseAddress!, shift: sh.baseAddress!,
                                                                 residual: r.baseAddress!, relu: true),
                                       geometry: g, algorithm: .direct)
                    } } } } } }
                dx.withUnsafeMutableBufferPointer { dx in dy.withUnsafeBufferPointer { dy in w.withUnsafeBufferPointer { w in
                    gate.withUnsafeBufferPointer { m in
                        Conv2D.backwardInput(dInput: dx.baseAddress!, dOutput: dy.baseAddress!, weight: w.baseAddress!,
                                             geometry: g, algorithm: .direct, gate: m.baseAddress!)
                    } } } }
                return (y.map(\.bitPattern), dx.map(\.bitPattern))
            }
            var runs: [(forward: [UInt32], backward: [UInt32])] = []
            for (group, chunk) in settings {
                Conv2D.channelGroupPixels = group; Conv2D.channelTapChunkBytes = chunk
                runs.append(run())
            }
            for (i, r) in runs.enumerated().dropFirst() {
                XCTAssertEqual(r.forward, runs[0].forward, "forward, setting \(settings[i]), \(g)")
                XCTAssertEqual(r.backward, runs[0].backward, "backward-input, setting \(settings[i]), \(g)")
            }
        }
    }

    /// The phases of a 3×3 stride-2 padding-1 axis: even rows get the middle tap (row i of dOutput),
    /// odd rows the outer two (rows i + 1 and i), and the border is one row.
    func test_axisPhases_ofA3x3Stride2Axis() {
        let (phases, border) = Conv2D.axisPhases(size: 8, outSize: 4, kernel: 3, stride: 2, pad: 1)
        XCTAssertEqual(phases.count, 2)
        XCTAssertEqual(phases[0].phase, 0); XCTAssertEqual(phases[0].count, 4)
        XCTAssertEqual(phases[0].taps.map(\.r), [1]); XCTAssertEqual(phases[0].taps.map(\.shift), [0])
        XCTAssertEqual(phases[1].phase, 1); XCTAssertEqual(phases[1].count, 4)
        XCTAssertEqual(phases[1].taps.map(\.r), [0, 2]); XCTAssertEqual(phases[1].taps.map(\.shift), [1, 0])
        XCTAssertEqual(border, 1)
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
    /// algorithms, and stride 2 (the phased direct kernel, and GEMM plus the gate pass). The gate holds negatives,
    /// zeros and a NaN, and about half of it masks.
    func test_backwardInput_gate_isBitwiseTheUngatedPassThenTheReLUMask() {
        let shapes = [
            ConvGeometry(n: 3, c: 16, h: 8, w: 8, k: 17, kernel: 3, stride: 1, padding: 1),   // channel tiles
            ConvGeometry(n: 3, c: 1, h: 28, w: 28, k: 32, kernel: 3, stride: 1, padding: 0),  // row kernel (C = 1)
            ConvGeometry(n: 2, c: 16, h: 32, w: 32, k: 16, kernel: 3, stride: 1, padding: 1), // row kernel, wide rows
            ConvGeometry(n: 3, c: 17, h: 9, w: 9, k: 5, kernel: 3, stride: 2, padding: 1),    // stride 2: by phase
            ConvGeometry(n: 3, c: 16, h: 8, w: 8, k: 40, kernel: 1, stride: 2, padding: 0),   // phases without taps
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
        for pass in ConvPass.allCases {
            XCTAssertTrue(Conv2D.supports(.direct, pass, s2))
            XCTAssertTrue(Conv2D.supports(.gemm, pass, s2))
        }
        XCTAssertTrue(Conv2D.supports(.direct, .backwardInput, ConvGeometry(n: 1, c: 4, h: 5, w: 5, k: 4, kernel: 1, padding: 1)))
        // The rule for an unlisted strided shape: few taps per input pixel stay on GEMM.
        let narrow = ConvGeometry(n: 1, c: 16, h: 9, w: 9, k: 8, kernel: 3, stride: 2, padding: 1)
        if Conv2D.forcedAlgorithm == nil { XCTAssertEqual(Conv2D.algorithm(for: .backwardInput, narrow), .gemm) }
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

    private func checkFused(_ g: ConvGeometry, seed: UInt64, algorithm: ConvAlgorithm,
                            scale: Bool, shift: Bool, residual: Bool, relu: Bool,
                            file: StaticString = #filePath, line: UInt = #line) {
        checkFusedForward(g, seed: seed, algorithm: algorithm, scale: scale, shift: shift, residual: residual, relu: relu,
                          atol: Self.atol, rtol: Self.rtol, file: file, line: line)
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
