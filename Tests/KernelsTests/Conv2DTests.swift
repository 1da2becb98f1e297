// Conv2DTests.swift: Conv2D's fast kernels (im2col + BLAS, grouped GEMMs, batch chunks) against the
// naive Reference twins over a geometry sweep, plus finite-difference checks that prove the Reference
// backward passes themselves. No performance checks here (see `memloss bench conv`).

import Foundation
import XCTest
@testable import Kernels
import Tensors
import _TestSupport

final class Conv2DTests: XCTestCase {
    /// Float32 sums of up to ~1000 products of values in [−1, 1]: errors stay near 1e-5.
    static let atol: Float = 1e-4
    static let rtol: Float = 1e-4

    // MARK: - Geometry

    func test_geometry_computesOutputSizeAndMACs() {
        let g = ConvGeometry(n: 2, c: 3, h: 32, w: 30, k: 8, kernel: 3, stride: 2, padding: 1)
        XCTAssertEqual(g.p, 16)
        XCTAssertEqual(g.q, 15)
        XCTAssertEqual(g.forwardMACs, 2 * 8 * 16 * 15 * 3 * 3 * 3)
        XCTAssertTrue(g.isValid)
        let rect = ConvGeometry(n: 1, c: 1, h: 5, w: 7, k: 1, r: 2, s: 3, strideH: 1, strideW: 2, padH: 0, padW: 1)
        XCTAssertEqual(rect.p, 4)
        XCTAssertEqual(rect.q, 4)
        XCTAssertEqual(ConvGeometry(n: 1, c: 1, h: 2, w: 2, k: 1, kernel: 3).p, 0)
        XCTAssertFalse(ConvGeometry(n: 1, c: 1, h: 2, w: 2, k: 1, kernel: 3).isValid)
    }

    // MARK: - Fast kernels against Reference

    func test_forward_matchesReference_overGeometrySweep() {
        forEverySweepGeometry { g, seed in
            checkForward(g, seed: seed, withBias: true)
            checkForward(g, seed: seed, withBias: false)
        }
    }

    func test_backwardInput_matchesReference_overGeometrySweep() {
        forEverySweepGeometry { g, seed in checkBackwardInput(g, seed: seed) }
    }

    func test_backwardWeight_accumulatesAndMatchesReference_overGeometrySweep() {
        forEverySweepGeometry { g, seed in
            checkBackwardWeight(g, seed: seed, withBias: true)
            checkBackwardWeight(g, seed: seed, withBias: false)
        }
    }

    func test_allKernels_matchReference_forPointwiseConvolutions() {
        var seed: UInt64 = 500
        for (hw, stride) in [(4, 1), (5, 2), (8, 2), (16, 1), (17, 1), (17, 2)] {
            for (c, k) in [(1, 1), (3, 16), (16, 3)] {
                for n in [1, 3] {
                    seed += 1
                    checkAllKernels(ConvGeometry(n: n, c: c, h: hw, w: hw, k: k, kernel: 1, stride: stride), seed: seed)
                }
            }
        }
        // 16×16 stride 1: P·Q = 256 fills a GEMM alone, so the image is used as the column matrix.
        let pointwise = ConvGeometry(n: 3, c: 16, h: 16, w: 16, k: 3, kernel: 1)
        XCTAssertEqual(Conv2D.imagesPerGroup(pointwise, chunkLength: 3), 1)
        XCTAssertTrue(Conv2D.isPointwise(pointwise))
    }

    func test_allKernels_matchReference_forRectangularInputsAndKernels() {
        checkAllKernels(ConvGeometry(n: 3, c: 3, h: 7, w: 10, k: 5, kernel: 3, stride: 1, padding: 1), seed: 600)
        checkAllKernels(ConvGeometry(n: 3, c: 3, h: 10, w: 7, k: 5, kernel: 3, stride: 2, padding: 1), seed: 601)
        checkAllKernels(ConvGeometry(n: 2, c: 4, h: 9, w: 6, k: 3, r: 2, s: 3,
                                     strideH: 1, strideW: 2, padH: 0, padW: 1), seed: 602)
        checkAllKernels(ConvGeometry(n: 2, c: 2, h: 6, w: 11, k: 3, r: 3, s: 1,
                                     strideH: 2, strideW: 1, padH: 1, padW: 0), seed: 603)
        // Padding wider than the kernel reach: whole rows and columns of the column matrix are padding.
        checkAllKernels(ConvGeometry(n: 2, c: 2, h: 3, w: 4, k: 2, kernel: 3, stride: 1, padding: 3), seed: 604)
    }

    func test_allKernels_matchReference_forLargeSpatialOutputs_oneImagePerGemm() {
        let geometries = [
            ConvGeometry(n: 3, c: 3, h: 18, w: 18, k: 4, kernel: 3, stride: 1, padding: 1),   // P·Q = 324
            ConvGeometry(n: 3, c: 2, h: 33, w: 33, k: 5, kernel: 3, stride: 2, padding: 1),   // P·Q = 289
            ConvGeometry(n: 2, c: 1, h: 28, w: 28, k: 4, kernel: 3, stride: 1, padding: 0),   // SmallCNN stem
        ]
        for (i, g) in geometries.enumerated() {
            XCTAssertEqual(Conv2D.imagesPerGroup(g, chunkLength: g.n), 1, "\(g)")
            checkAllKernels(g, seed: 700 + UInt64(i))
        }
    }

    func test_allKernels_matchReference_forStride2RowsWideEnoughForVectors() {
        // Q ≥ 8 takes the vector every-other-element path; odd W without padding makes the last row's
        // vector read run past the image, which must fall back to scalar code.
        checkAllKernels(ConvGeometry(n: 2, c: 2, h: 19, w: 19, k: 3, kernel: 3, stride: 2, padding: 0), seed: 750)
        checkAllKernels(ConvGeometry(n: 2, c: 2, h: 20, w: 20, k: 3, kernel: 3, stride: 2, padding: 0), seed: 751)
        checkAllKernels(ConvGeometry(n: 3, c: 3, h: 19, w: 19, k: 2, kernel: 1, stride: 2, padding: 0), seed: 752)
        checkAllKernels(ConvGeometry(n: 2, c: 2, h: 40, w: 37, k: 3, kernel: 3, stride: 2, padding: 1), seed: 753)
    }

    func test_allKernels_matchReference_atResNetLayer4Shape_withGroupedGemm() {
        let g = ConvGeometry(n: 5, c: 16, h: 4, w: 4, k: 8, kernel: 3, stride: 1, padding: 1)
        let chunk = Parallel.chunkRange(0, of: Parallel.chunkCount(count: g.n), count: g.n)
        XCTAssertGreaterThan(Conv2D.imagesPerGroup(g, chunkLength: chunk.count), 1,
                             "P·Q = 16 must gather several images per GEMM")
        checkAllKernels(g, seed: 800)
        // Stride-2 entry into layer4 (8×8 → 4×4) and its 1×1 shortcut.
        checkAllKernels(ConvGeometry(n: 5, c: 16, h: 8, w: 8, k: 8, kernel: 3, stride: 2, padding: 1), seed: 801)
        checkAllKernels(ConvGeometry(n: 5, c: 16, h: 8, w: 8, k: 8, kernel: 1, stride: 2, padding: 0), seed: 802)
    }

    func test_allKernels_matchReference_whenBatchExceedsWorkerCount() {
        // P·Q = 100 → 3 images per GEMM, so most chunks end with a partial group.
        let n = 3 * Parallel.workerCount + 1
        checkAllKernels(ConvGeometry(n: n, c: 4, h: 10, w: 10, k: 5, kernel: 3, stride: 1, padding: 1), seed: 900)
        checkAllKernels(ConvGeometry(n: n + 6, c: 3, h: 5, w: 5, k: 3, kernel: 3, stride: 2, padding: 1), seed: 901)
    }

    func test_forward_matchesReference_whenCalledFromInsideParallelChunks() {
        // Nested calls run serially on each worker thread and share the scratch cache concurrently.
        let geometries = [
            ConvGeometry(n: 3, c: 8, h: 6, w: 6, k: 5, kernel: 3, stride: 1, padding: 1),
            ConvGeometry(n: 2, c: 4, h: 18, w: 18, k: 6, kernel: 3, stride: 2, padding: 1),
            ConvGeometry(n: 4, c: 16, h: 4, w: 4, k: 8, kernel: 3, stride: 1, padding: 1),
            ConvGeometry(n: 3, c: 3, h: 17, w: 17, k: 4, kernel: 1, stride: 1, padding: 0),
        ]
        let lock = NSLock()
        Parallel.forEachChunk(count: geometries.count) { range, _ in
            for i in range {
                // XCTest assertions are not thread-safe: serialise the checks, not the kernels' scratch use.
                let g = geometries[i]
                let input = seededUniform(g.n * g.c * g.h * g.w, seed: 1050 + UInt64(i))
                let weight = seededUniform(g.k * g.c * g.r * g.s, seed: 1060 + UInt64(i))
                var fast = [Float](repeating: .nan, count: g.n * g.k * g.p * g.q)
                var expected = fast
                for _ in 0..<3 {
                    forwardPointers(&fast, input, weight, nil) {
                        Conv2D.forward(output: $0, input: $1, weight: $2, bias: $3, geometry: g)
                    }
                }
                forwardPointers(&expected, input, weight, nil) {
                    Reference.conv2DForward(output: $0, input: $1, weight: $2, bias: $3, geometry: g)
                }
                lock.lock()
                assertClose(fast, expected, atol: Self.atol, rtol: Self.rtol, "nested forward, \(g)")
                lock.unlock()
            }
        }
    }

    func test_backwardWeight_isBitwiseDeterministic_forAFixedWorkerCount() {
        let g = ConvGeometry(n: 7, c: 8, h: 6, w: 6, k: 8, kernel: 3, stride: 1, padding: 1)
        let dOutput = seededUniform(g.n * g.k * g.p * g.q, seed: 1000)
        let input = seededUniform(g.n * g.c * g.h * g.w, seed: 1001)
        func run() -> ([Float], [Float]) {
            var dWeight = [Float](repeating: 0, count: g.k * g.c * g.r * g.s)
            var dBias: [Float]? = [Float](repeating: 0, count: g.k)
            fastBackwardWeight(&dWeight, &dBias, dOutput, input, g)
            return (dWeight, dBias!)
        }
        let first = run(), second = run()
        XCTAssertEqual(first.0, second.0)
        XCTAssertEqual(first.1, second.1)
    }

    func test_backwardWeight_leavesGradientsUntouched_forAnEmptyBatch() {
        let g = ConvGeometry(n: 0, c: 2, h: 4, w: 4, k: 2, kernel: 3, stride: 1, padding: 1)
        let weight = seededUniform(g.k * g.c * g.r * g.s, seed: 1100)
        var dWeight = weight
        var dBias: [Float]? = [1, 2]
        fastBackwardWeight(&dWeight, &dBias, [], [], g)
        XCTAssertEqual(dWeight, weight)
        XCTAssertEqual(dBias, [1, 2])
    }

    // MARK: - Reference against finite differences

    /// Geometries small enough to perturb every input and weight element.
    static let finiteDifferenceGeometries = [
        ConvGeometry(n: 2, c: 2, h: 5, w: 5, k: 3, kernel: 3, stride: 1, padding: 1),
        ConvGeometry(n: 1, c: 3, h: 6, w: 7, k: 2, kernel: 3, stride: 2, padding: 1),
        ConvGeometry(n: 2, c: 2, h: 5, w: 6, k: 2, r: 2, s: 3, strideH: 1, strideW: 2, padH: 0, padW: 1),
    ]

    func test_referenceBackwardInput_matchesFiniteDifferences() {
        for (i, g) in Self.finiteDifferenceGeometries.enumerated() {
            let seed = 1200 + UInt64(10 * i)
            let input = seededUniform(g.n * g.c * g.h * g.w, seed: seed)
            let weight = seededUniform(g.k * g.c * g.r * g.s, seed: seed + 1)
            let bias = seededUniform(g.k, seed: seed + 2)
            let probe = seededUniform(g.n * g.k * g.p * g.q, seed: seed + 3)  // R in L = Σ out·R

            var analytic = [Float](repeating: .nan, count: input.count)
            analytic.withUnsafeMutableBufferPointer { dx in
                probe.withUnsafeBufferPointer { r in
                    weight.withUnsafeBufferPointer { w in
                        Reference.conv2DBackwardInput(dInput: dx.baseAddress!, dOutput: r.baseAddress!,
                                                      weight: w.baseAddress!, geometry: g)
                    }
                }
            }
            let numeric = finiteDifferences(of: input) { x in
                probedLoss(input: x, weight: weight, bias: bias, probe: probe, g)
            }
            assertClose(analytic, numeric, atol: 1e-3, rtol: 1e-3, "dInput, \(g)")
        }
    }

    func test_referenceBackwardWeightAndBias_matchFiniteDifferences() {
        for (i, g) in Self.finiteDifferenceGeometries.enumerated() {
            let seed = 1300 + UInt64(10 * i)
            let input = seededUniform(g.n * g.c * g.h * g.w, seed: seed)
            let weight = seededUniform(g.k * g.c * g.r * g.s, seed: seed + 1)
            let bias = seededUniform(g.k, seed: seed + 2)
            let probe = seededUniform(g.n * g.k * g.p * g.q, seed: seed + 3)

            var dWeight = [Float](repeating: 0, count: weight.count)
            var dBias = [Float](repeating: 0, count: g.k)
            dWeight.withUnsafeMutableBufferPointer { dw in
                dBias.withUnsafeMutableBufferPointer { db in
                    probe.withUnsafeBufferPointer { r in
                        input.withUnsafeBufferPointer { x in
                            Reference.conv2DBackwardWeight(dWeight: dw.baseAddress!, dBias: db.baseAddress!,
                                                           dOutput: r.baseAddress!, input: x.baseAddress!, geometry: g)
                        }
                    }
                }
            }
            let numericWeight = finiteDifferences(of: weight) { w in
                probedLoss(input: input, weight: w, bias: bias, probe: probe, g)
            }
            let numericBias = finiteDifferences(of: bias) { b in
                probedLoss(input: input, weight: weight, bias: b, probe: probe, g)
            }
            assertClose(dWeight, numericWeight, atol: 1e-3, rtol: 1e-3, "dWeight, \(g)")
            assertClose(dBias, numericBias, atol: 1e-3, rtol: 1e-3, "dBias, \(g)")
        }
    }

    // MARK: - Sweep and checks

    /// stride {1, 2} × padding {0, 1} × H = W ∈ {5, 8} × C, K ∈ {1, 3, 16} × N ∈ {1, 3}, 3×3 kernel.
    private func forEverySweepGeometry(_ body: (ConvGeometry, UInt64) -> Void) {
        var seed: UInt64 = 1
        for stride in [1, 2] {
            for padding in [0, 1] {
                for hw in [5, 8] {
                    for c in [1, 3, 16] {
                        for k in [1, 3, 16] {
                            for n in [1, 3] {
                                seed += 10
                                body(ConvGeometry(n: n, c: c, h: hw, w: hw, k: k,
                                                  kernel: 3, stride: stride, padding: padding), seed)
                            }
                        }
                    }
                }
            }
        }
    }

    private func checkAllKernels(_ g: ConvGeometry, seed: UInt64, file: StaticString = #filePath, line: UInt = #line) {
        checkForward(g, seed: seed, withBias: true, file: file, line: line)
        checkForward(g, seed: seed, withBias: false, file: file, line: line)
        checkBackwardInput(g, seed: seed, file: file, line: line)
        checkBackwardWeight(g, seed: seed, withBias: true, file: file, line: line)
        checkBackwardWeight(g, seed: seed, withBias: false, file: file, line: line)
    }

    private func checkForward(_ g: ConvGeometry, seed: UInt64, withBias: Bool,
                              file: StaticString = #filePath, line: UInt = #line) {
        let input = seededUniform(g.n * g.c * g.h * g.w, seed: seed)
        let weight = seededUniform(g.k * g.c * g.r * g.s, seed: seed + 1)
        let bias = withBias ? seededUniform(g.k, seed: seed + 2) : nil
        // NaN-filled outputs prove that every element is written.
        var fast = [Float](repeating: .nan, count: g.n * g.k * g.p * g.q)
        var expected = fast
        forwardPointers(&fast, input, weight, bias) { Conv2D.forward(output: $0, input: $1, weight: $2, bias: $3, geometry: g) }
        forwardPointers(&expected, input, weight, bias) {
            Reference.conv2DForward(output: $0, input: $1, weight: $2, bias: $3, geometry: g)
        }
        assertClose(fast, expected, atol: Self.atol, rtol: Self.rtol, "forward (bias: \(withBias)), \(g)",
                    file: file, line: line)
    }

    private func checkBackwardInput(_ g: ConvGeometry, seed: UInt64, file: StaticString = #filePath, line: UInt = #line) {
        let dOutput = seededUniform(g.n * g.k * g.p * g.q, seed: seed + 3)
        let weight = seededUniform(g.k * g.c * g.r * g.s, seed: seed + 1)
        // Non-zero garbage in dInput: the kernel must overwrite, not accumulate.
        var fast = seededUniform(g.n * g.c * g.h * g.w, low: 50, high: 60, seed: seed + 4)
        var expected = fast
        fast.withUnsafeMutableBufferPointer { dx in
            dOutput.withUnsafeBufferPointer { dy in
                weight.withUnsafeBufferPointer { w in
                    Conv2D.backwardInput(dInput: dx.baseAddress!, dOutput: dy.baseAddress!, weight: w.baseAddress!, geometry: g)
                }
            }
        }
        expected.withUnsafeMutableBufferPointer { dx in
            dOutput.withUnsafeBufferPointer { dy in
                weight.withUnsafeBufferPointer { w in
                    Reference.conv2DBackwardInput(dInput: dx.baseAddress!, dOutput: dy.baseAddress!,
                                                  weight: w.baseAddress!, geometry: g)
                }
            }
        }
        assertClose(fast, expected, atol: Self.atol, rtol: Self.rtol, "backwardInput, \(g)", file: file, line: line)
    }

    private func checkBackwardWeight(_ g: ConvGeometry, seed: UInt64, withBias: Bool,
                                     file: StaticString = #filePath, line: UInt = #line) {
        let dOutput = seededUniform(g.n * g.k * g.p * g.q, seed: seed + 3)
        let input = seededUniform(g.n * g.c * g.h * g.w, seed: seed)
        // Non-zero starting gradients: both kernels must add into them.
        let startWeight = seededUniform(g.k * g.c * g.r * g.s, seed: seed + 5)
        let startBias = withBias ? seededUniform(g.k, seed: seed + 6) : nil
        var fastWeight = startWeight, fastBias = startBias
        var expectedWeight = startWeight, expectedBias = startBias
        var zeroWeight = [Float](repeating: 0, count: startWeight.count)
        var zeroBias: [Float]? = withBias ? [Float](repeating: 0, count: g.k) : nil
        fastBackwardWeight(&fastWeight, &fastBias, dOutput, input, g)
        referenceBackwardWeight(&expectedWeight, &expectedBias, dOutput, input, g)
        referenceBackwardWeight(&zeroWeight, &zeroBias, dOutput, input, g)
        assertClose(fastWeight, expectedWeight, atol: Self.atol, rtol: Self.rtol,
                    "backwardWeight dWeight (bias: \(withBias)), \(g)", file: file, line: line)
        // Accumulation: result − start equals the gradient computed from zero.
        let increment = zip(fastWeight, startWeight).map { $0 - $1 }
        assertClose(increment, zeroWeight, atol: Self.atol, rtol: Self.rtol,
                    "backwardWeight must accumulate, \(g)", file: file, line: line)
        if let fastBias, let expectedBias {
            assertClose(fastBias, expectedBias, atol: Self.atol, rtol: Self.rtol, "backwardWeight dBias, \(g)",
                        file: file, line: line)
        }
    }

    // MARK: - Pointer plumbing

    private func forwardPointers(
        _ output: inout [Float], _ input: [Float], _ weight: [Float], _ bias: [Float]?,
        _ kernel: (UnsafeMutablePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>?) -> Void
    ) {
        output.withUnsafeMutableBufferPointer { out in
            input.withUnsafeBufferPointer { x in
                weight.withUnsafeBufferPointer { w in
                    if let bias {
                        bias.withUnsafeBufferPointer { b in kernel(out.baseAddress!, x.baseAddress!, w.baseAddress!, b.baseAddress!) }
                    } else {
                        kernel(out.baseAddress!, x.baseAddress!, w.baseAddress!, nil)
                    }
                }
            }
        }
    }

    private typealias WeightKernel = (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>?,
                                      UnsafePointer<Float>, UnsafePointer<Float>) -> Void

    /// Opens the pointers of a backward-weight call; `dBias == nil` passes a nil bias gradient.
    private func backwardWeightPointers(_ dWeight: inout [Float], _ dBias: inout [Float]?,
                                        _ dOutput: [Float], _ input: [Float], _ kernel: WeightKernel) {
        // Empty arrays may have no base address; a dummy keeps the pointers non-nil for N = 0.
        let dy = dOutput.isEmpty ? [0] : dOutput
        let x = input.isEmpty ? [0] : input
        dWeight.withUnsafeMutableBufferPointer { dw in
            dy.withUnsafeBufferPointer { dyp in
                x.withUnsafeBufferPointer { xp in
                    if dBias != nil {
                        dBias!.withUnsafeMutableBufferPointer { db in
                            kernel(dw.baseAddress!, db.baseAddress!, dyp.baseAddress!, xp.baseAddress!)
                        }
                    } else {
                        kernel(dw.baseAddress!, nil, dyp.baseAddress!, xp.baseAddress!)
                    }
                }
            }
        }
    }

    private func fastBackwardWeight(_ dWeight: inout [Float], _ dBias: inout [Float]?,
                                    _ dOutput: [Float], _ input: [Float], _ g: ConvGeometry) {
        backwardWeightPointers(&dWeight, &dBias, dOutput, input) {
            Conv2D.backwardWeight(dWeight: $0, dBias: $1, dOutput: $2, input: $3, geometry: g)
        }
    }

    private func referenceBackwardWeight(_ dWeight: inout [Float], _ dBias: inout [Float]?,
                                         _ dOutput: [Float], _ input: [Float], _ g: ConvGeometry) {
        backwardWeightPointers(&dWeight, &dBias, dOutput, input) {
            Reference.conv2DBackwardWeight(dWeight: $0, dBias: $1, dOutput: $2, input: $3, geometry: g)
        }
    }

    // MARK: - Finite differences

    /// `L = Σ output·probe` with the Reference forward, summed in Double.
    private func probedLoss(input: [Float], weight: [Float], bias: [Float], probe: [Float], _ g: ConvGeometry) -> Double {
        var output = [Float](repeating: 0, count: probe.count)
        forwardPointers(&output, input, weight, bias) {
            Reference.conv2DForward(output: $0, input: $1, weight: $2, bias: $3, geometry: g)
        }
        var loss = 0.0
        for i in 0..<output.count { loss += Double(output[i]) * Double(probe[i]) }
        return loss
    }

    /// Central differences `(L(x + ε·eᵢ) − L(x − ε·eᵢ)) / 2ε` in Double for every element of `values`.
    /// The loss is linear in each argument, so there is no truncation error; ε = 2⁻⁶ keeps `x ± ε`
    /// exact in Float for the test values (multiples of 2⁻²³ in [−1, 1]), leaving only forward rounding.
    private func finiteDifferences(of values: [Float], _ loss: ([Float]) -> Double) -> [Float] {
        let epsilon: Float = 1.0 / 64
        var perturbed = values
        var gradient = [Float](repeating: 0, count: values.count)
        for i in 0..<values.count {
            perturbed[i] = values[i] + epsilon
            let plus = loss(perturbed)
            perturbed[i] = values[i] - epsilon
            let minus = loss(perturbed)
            perturbed[i] = values[i]
            gradient[i] = Float((plus - minus) / (2 * Double(epsilon)))
        }
        return gradient
    }
}
