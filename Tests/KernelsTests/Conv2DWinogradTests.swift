// Conv2DWinogradTests.swift: Winograd F(2×2, 3×3) (Conv2D+Winograd.swift) against the naive Reference
// twins: forward with every epilogue, backward-input with and without a gate, over a sweep of the
// shapes it accepts (padding 0/1/2, odd and even output sizes, tile rows that fill 8-tile vectors and
// rows that do not, channel counts that fill the micro-tiles and counts that leave them partial, image
// groups and blocks of tile rows), the training batch, determinism, block-size independence and the
// dispatch rule. No performance checks here (see `memloss bench conv`).

import Foundation
import XCTest
@testable import Kernels
import Tensors
import _TestSupport

final class Conv2DWinogradTests: XCTestCase {
    // F(2×2, 3×3) rounds a few ulp more than the direct sum (the transforms add up to 9 terms before
    // the product), so the bound is that of the direct kernels' tests scaled by the sum's size.
    static let atol: Float = 2e-4
    static let rtol: Float = 1e-4

    /// padding {0, 1, 2} × (H, W) ∈ {(4, 4), (5, 7), (8, 8), (9, 6), (19, 12)} × C ∈ {16, 24, 64} ×
    /// K ∈ {16, 17, 24, 64} × N ∈ {1, 3}, where the output is at least 4×4.
    private func forEveryWinogradGeometry(_ body: (ConvGeometry, UInt64) -> Void) {
        var seed: UInt64 = 40_000
        for padding in [0, 1, 2] { for (h, w) in [(4, 4), (5, 7), (8, 8), (9, 6), (19, 12)] {
            for c in [16, 24, 64] { for k in [16, 17, 24, 64] { for n in [1, 3] {
                seed += 10
                let g = ConvGeometry(n: n, c: c, h: h, w: w, k: k, kernel: 3, stride: 1, padding: padding)
                if g.isValid && Conv2D.winogradFits(g) { body(g, seed) }
            } } }
        } }
    }

    func test_forward_matchesReference_overSweep_withEveryEpilogue() {
        var count = 0
        forEveryWinogradGeometry { g, seed in
            count += 1
            let combination = Int(seed / 10) % 16
            checkForward(g, seed: seed, scale: combination & 1 != 0, shift: combination & 2 != 0,
                         residual: combination & 4 != 0, relu: combination & 8 != 0)
            checkForward(g, seed: seed + 1, scale: false, shift: true, residual: false, relu: false)
        }
        XCTAssertGreaterThan(count, 150, "the sweep should reach most of its shapes")
    }

    func test_fusedEpilogue_everyCombination_matchesUnfusedComposition() {
        let g = ConvGeometry(n: 3, c: 16, h: 9, w: 11, k: 24, kernel: 3, stride: 1, padding: 1)
        var seed: UInt64 = 41_000
        for combination in 0..<16 {
            seed += 7
            checkForward(g, seed: seed, scale: combination & 1 != 0, shift: combination & 2 != 0,
                         residual: combination & 4 != 0, relu: combination & 8 != 0)
        }
    }

    func test_backwardInput_matchesReference_overSweep() {
        var count = 0
        // A stride-1 3×3 conv's backward-input runs on Winograd when its transposed conv fits: K a
        // multiple of 8, C ≥ 16 and an input of at least 4×4.
        var seed: UInt64 = 42_000
        for padding in [0, 1, 2] { for (h, w) in [(4, 4), (5, 7), (8, 8), (9, 6), (19, 12)] {
            for c in [16, 17, 40] { for k in [16, 24, 64] { for n in [1, 3] {
                seed += 10
                let g = ConvGeometry(n: n, c: c, h: h, w: w, k: k, kernel: 3, stride: 1, padding: padding)
                guard g.isValid && Conv2D.winogradFitsBackwardInput(g) else { continue }
                count += 1
                checkBackwardInput(g, seed: seed)
            } } }
        } }
        XCTAssertGreaterThan(count, 100)
    }

    /// The gate fused into the Winograd backward-input is bitwise the ungated pass followed by the
    /// reference ReLU mask (negatives, zeros and a NaN in the gate).
    func test_backwardInput_gate_isBitwiseTheUngatedPassThenTheMask() {
        for g in [ConvGeometry(n: 3, c: 16, h: 9, w: 9, k: 32, kernel: 3, stride: 1, padding: 1),
                  ConvGeometry(n: 5, c: 32, h: 26, w: 26, k: 32, kernel: 3, stride: 1, padding: 0)] {
            let dOutput = seededUniform(g.n * g.k * g.p * g.q, seed: 43_001)
            let weight = seededUniform(g.k * g.c * 9, seed: 43_002)
            var gate = seededUniform(g.n * g.c * g.h * g.w, seed: 43_003).map { ($0 * 2).rounded() }
            gate[gate.count / 3] = .nan
            var plain = [Float](repeating: 7, count: gate.count), gated = plain, expected = plain
            run(backwardInput: &plain, dOutput, weight, g, gate: nil)
            run(backwardInput: &gated, dOutput, weight, g, gate: gate)
            Reference.reluBackward(dInput: &expected, dOutput: plain, input: gate, count: gate.count)
            XCTAssertEqual(gated.map(\.bitPattern), expected.map(\.bitPattern), "gated winograd backwardInput, \(g)")
        }
    }

    /// SmallCNN's conv2 and ResNet-18 ×0.25's layer1 at the training batch, and the shapes of
    /// ResNet-18's layer3 and layer4 (where the table picks Winograd; blocks of many images) at a
    /// smaller one.
    func test_matchesReference_atBatch128_andWideLayers() {
        let shapes = [ConvGeometry(n: 128, c: 32, h: 26, w: 26, k: 32, kernel: 3, stride: 1, padding: 0),
                      ConvGeometry(n: 128, c: 16, h: 32, w: 32, k: 16, kernel: 3, stride: 1, padding: 1),
                      ConvGeometry(n: 4, c: 256, h: 8, w: 8, k: 256, kernel: 3, stride: 1, padding: 1),
                      ConvGeometry(n: 8, c: 512, h: 4, w: 4, k: 512, kernel: 3, stride: 1, padding: 1)]
        for (i, g) in shapes.enumerated() {
            checkForward(g, seed: 44_000 + UInt64(i), scale: true, shift: true, residual: false, relu: true)
            checkBackwardInput(g, seed: 44_100 + UInt64(i))
        }
    }

    /// The result is the same bits for every block size, image group and worker split (the order of
    /// every sum is fixed), and the same when the kernel runs inside a parallel chunk.
    func test_bitwiseDeterministic_acrossBlockSizesAndNesting() {
        let g = ConvGeometry(n: 7, c: 16, h: 13, w: 10, k: 20, kernel: 3, stride: 1, padding: 1)
        let input = seededUniform(g.n * g.c * g.h * g.w, seed: 45_001)
        let weight = seededUniform(g.k * g.c * 9, seed: 45_002)
        func forward() -> [Float] {
            var out = [Float](repeating: .nan, count: g.n * g.k * g.p * g.q)
            out.withUnsafeMutableBufferPointer { o in input.withUnsafeBufferPointer { x in weight.withUnsafeBufferPointer { w in
                Conv2D.forward(output: o.baseAddress!, input: x.baseAddress!, weight: w.baseAddress!, bias: nil,
                               geometry: g, algorithm: .winograd)
            } } }
            return out
        }
        let saved = (Conv2D.winogradBlockBytes, Conv2D.winogradMinMicroTiles)
        defer { (Conv2D.winogradBlockBytes, Conv2D.winogradMinMicroTiles) = saved }
        let first = forward()
        XCTAssertFalse(first.contains { $0.isNaN })
        for minimum in [0, 1, 4] {
            for bytes in [1, 16 * 64 * 7, 16 * 64 * 40, 1 << 24] {
                (Conv2D.winogradBlockBytes, Conv2D.winogradMinMicroTiles) = (bytes, minimum)
                XCTAssertEqual(forward().map(\.bitPattern), first.map(\.bitPattern),
                               "block bytes \(bytes), at least \(minimum) micro-tiles")
            }
        }
        (Conv2D.winogradBlockBytes, Conv2D.winogradMinMicroTiles) = saved
        var nested: [Float] = []
        Parallel.forEachChunk(count: 2) { _, worker in if worker == 0 { nested = forward() } }
        if Parallel.workerCount == 1 { nested = forward() }
        XCTAssertEqual(nested.map(\.bitPattern), first.map(\.bitPattern))
    }

    /// The filter transform of a single tap reproduces G·g·Gᵀ entry by entry.
    func test_filterTransform_isGgGt() {
        let g: [[Float]] = [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]]
        let f: [[Float]] = [[0.3, -1.2, 2.0], [0.7, 0.1, -0.4], [1.5, -0.9, 0.25]]
        let u = Conv2D.winogradFilter { r, s in f[r][s] }
        for i in 0..<4 { for j in 0..<4 {
            var expected: Double = 0
            for r in 0..<3 { for s in 0..<3 { expected += Double(g[i][r]) * Double(f[r][s]) * Double(g[j][s]) } }
            XCTAssertEqual(Double(u[4 * i + j]), expected, accuracy: 1e-6, "U[\(i), \(j)]")
        } }
    }

    func test_dispatch_choosesWinogradOnlyWhereTheTableSays_andNotWhenDisabled() {
        let fits = ConvGeometry(n: 1, c: 32, h: 26, w: 26, k: 32, kernel: 3, stride: 1, padding: 0)
        let strided = ConvGeometry(n: 1, c: 32, h: 16, w: 16, k: 32, kernel: 3, stride: 2, padding: 1)
        let oddChannels = ConvGeometry(n: 1, c: 17, h: 8, w: 8, k: 32, kernel: 3, stride: 1, padding: 1)
        let pointwise = ConvGeometry(n: 1, c: 32, h: 8, w: 8, k: 32, kernel: 1, stride: 1, padding: 0)
        XCTAssertTrue(Conv2D.supports(.winograd, .forward, fits))
        XCTAssertTrue(Conv2D.supports(.winograd, .backwardInput, fits))
        XCTAssertFalse(Conv2D.supports(.winograd, .backwardWeight, fits))
        XCTAssertFalse(Conv2D.supports(.winograd, .forward, strided))
        XCTAssertFalse(Conv2D.supports(.winograd, .backwardInput, strided))
        XCTAssertFalse(Conv2D.supports(.winograd, .forward, oddChannels))
        XCTAssertTrue(Conv2D.supports(.winograd, .backwardInput, oddChannels))   // transposed: C' = K = 32
        XCTAssertFalse(Conv2D.supports(.winograd, .forward, pointwise))
        guard Conv2D.forcedAlgorithm == nil else { return }
        let saved = Conv2D.winogradEnabled
        defer { Conv2D.winogradEnabled = saved }
        // Winograd runs only where the measured table says so; the rule never picks it.
        Conv2D.winogradEnabled = true
        XCTAssertEqual(Conv2D.ruleChoice(.forward, fits), .direct)
        let unlisted = ConvGeometry(n: 1, c: 48, h: 20, w: 20, k: 48, kernel: 3, stride: 1, padding: 1)
        XCTAssertNil(Conv2D.ShapeKey(unlisted).flatMap { Conv2D.measuredChoices[$0] })
        XCTAssertNotEqual(Conv2D.algorithm(for: .forward, unlisted), .winograd)
        XCTAssertNotEqual(Conv2D.algorithm(for: .backwardInput, unlisted), .winograd)
        var listed = 0
        for (key, choices) in Conv2D.measuredChoices {
            let g = ConvGeometry(n: 1, c: key.c, h: key.h, w: key.w, k: key.k, kernel: key.kernel, stride: key.stride,
                                 padding: key.padding)
            for pass in ConvPass.allCases {
                Conv2D.winogradEnabled = true
                XCTAssertEqual(Conv2D.algorithm(for: pass, g), choices[pass], "\(key) \(pass)")
                guard choices[pass] == .winograd else { continue }
                listed += 1
                XCTAssertTrue(Conv2D.supports(.winograd, pass, g), "\(key) \(pass): table entry it cannot run")
                Conv2D.winogradEnabled = false
                XCTAssertEqual(Conv2D.algorithm(for: pass, g), Conv2D.ruleChoice(pass, g), "\(key) \(pass), disabled")
            }
        }
        // AVX-512 table: ResNet-18's layer1–3 3×3, forward and backward-input; AVX2 table: layer1 and
        // layer2 both passes, layer3 backward-input.
        XCTAssertEqual(listed, WideVector.scalarCount == 16 ? 6 : 5)
        Conv2D.winogradEnabled = true
        XCTAssertEqual(Conv2D.algorithm(for: .forward, fits), Conv2D.measuredChoices[Conv2D.ShapeKey(fits)!]?[.forward])
    }

    // MARK: - Checks

    private func checkForward(_ g: ConvGeometry, seed: UInt64, scale: Bool, shift: Bool, residual: Bool, relu: Bool,
                              file: StaticString = #filePath, line: UInt = #line) {
        checkFusedForward(g, seed: seed, algorithm: .winograd, scale: scale, shift: shift, residual: residual, relu: relu,
                          atol: Self.atol, rtol: Self.rtol, file: file, line: line)
    }

    private func run(backwardInput dInput: inout [Float], _ dOutput: [Float], _ weight: [Float], _ g: ConvGeometry,
                     gate: [Float]?) {
        dInput.withUnsafeMutableBufferPointer { dx in dOutput.withUnsafeBufferPointer { dy in weight.withUnsafeBufferPointer { w in
            if let gate {
                gate.withUnsafeBufferPointer { m in
                    Conv2D.backwardInput(dInput: dx.baseAddress!, dOutput: dy.baseAddress!, weight: w.baseAddress!,
                                         geometry: g, algorithm: .winograd, gate: m.baseAddress!)
                }
            } else {
                Conv2D.backwardInput(dInput: dx.baseAddress!, dOutput: dy.baseAddress!, weight: w.baseAddress!,
                                     geometry: g, algorithm: .winograd)
            }
        } } }
    }

    private func checkBackwardInput(_ g: ConvGeometry, seed: UInt64, file: StaticString = #filePath, line: UInt = #line) {
        let dOutput = seededUniform(g.n * g.k * g.p * g.q, seed: seed + 3)
        let weight = seededUniform(g.k * g.c * 9, seed: seed + 1)
        // Non-zero garbage in dInput: the kernel must overwrite, not accumulate.
        var fast = seededUniform(g.n * g.c * g.h * g.w, low: 50, high: 60, seed: seed + 4)
        var expected = fast
        run(backwardInput: &fast, dOutput, weight, g, gate: nil)
        expected.withUnsafeMutableBufferPointer { dx in dOutput.withUnsafeBufferPointer { dy in weight.withUnsafeBufferPointer { w in
            Reference.conv2DBackwardInput(dInput: dx.baseAddress!, dOutput: dy.baseAddress!, weight: w.baseAddress!, geometry: g)
        } } }
        assertClose(fast, expected, atol: Self.atol, rtol: Self.rtol, "winograd backwardInput, \(g)", file: file, line: line)
    }
}
