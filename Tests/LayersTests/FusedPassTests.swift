// FusedPassTests.swift: the fused and folded layer passes against the chains of separate layer
// passes they replace: inference-mode conv → BN → (+ residual) → (ReLU) folded into one conv call
// (within 1e-5 relative, over a geometry sweep, forward, input gradient and parameter gradients),
// and the batch-norm and conv-bias passes with a fused residual add and ReLU (bit for bit).

import Kernels
import Layers
import Tensors
import XCTest
import _TestSupport

final class FusedPassTests: XCTestCase {
    /// The folded pass rounds `scale·acc + shift` with the scale inside the filters; the separate
    /// passes round `acc`, then `(acc − μ)·scale + β`: a few float ulps apart, relative to the output.
    static let foldedTolerance: Float = 1e-5

    // MARK: - Inference: conv → BN (→ + residual) (→ ReLU) folded into one conv call

    func test_foldedConvBatchNorm_inference_matchesTheSeparatePasses_overGeometrySweep() {
        var g = SplitMix64(seed: 1)
        var cases = 0
        for stride in [1, 2] {
            for padding in [0, 1] {
                for c in [1, 3, 16, 17] {
                    for k in [1, 3, 16, 17] {
                        for n in [1, 3] {
                            // Odd and even spatial sizes, with and without a conv bias, across the sweep.
                            let size = (c + k + n) % 2 == 0 ? 6 : 7
                            let conv = Conv2DLayer(c, k, kernel: 3, stride: stride, padding: padding,
                                                   bias: (c * k + n) % 2 == 1, rng: &g)
                            let bn = randomBatchNorm(k, rng: &g)
                            let x = Tensor.randomUniform(shape: [n, c, size, size], low: -1, high: 1, rng: &g)
                            for variant in Variant.allCases {
                                let label = "stride \(stride) pad \(padding) C \(c) K \(k) N \(n) \(variant)"
                                checkFoldedUnit(conv: conv, bn: bn, x: x, variant: variant, rng: &g, label: label)
                                cases += 1
                            }
                        }
                    }
                }
            }
        }
        XCTAssertEqual(cases, 2 * 2 * 4 * 4 * 2 * 3)
    }

    func test_foldedConvBatchNorm_inferenceParameterGradients_matchTheSeparatePasses() {
        var g = SplitMix64(seed: 2)
        for (c, k, stride, padding, bias) in [(3, 16, 1, 1, false), (17, 3, 2, 0, true), (16, 17, 2, 1, false)] {
            let conv = Conv2DLayer(c, k, kernel: 3, stride: stride, padding: padding, bias: bias, rng: &g)
            let bn = randomBatchNorm(k, rng: &g)
            let x = Tensor.randomUniform(shape: [3, c, 7, 7], low: -1, high: 1, rng: &g)
            let shape = conv.forward(x, mode: .inference).output.shape
            let residual = Tensor.randomUniform(shape: shape, low: -1, high: 1, rng: &g)
            let dy = Tensor.randomUniform(shape: shape, low: -1, high: 1, rng: &g)
            let params = conv.parameters + bn.parameters

            for p in params { p.zeroGradient() }
            let (h, cc) = conv.forward(x, mode: .inference)
            let (nb, bc) = bn.forward(h, mode: .inference)
            let s = Elementwise.add(nb, residual)
            _ = Activation.relu(s)
            let dh = bn.backward(Activation.reluBackward(dy, input: s), cache: bc, targets: .all)!
            let dx = conv.backward(dh, cache: cc, targets: .all)!
            let expected = params.map(\.gradient)

            for p in params { p.zeroGradient() }
            let (_, fc) = conv.forwardFused(x, foldingInference: bn, residual: residual, relu: true)
            let (dxFused, _) = conv.backwardFused(dy, cache: fc, targets: .all)
            let label = "C \(c) K \(k) stride \(stride) pad \(padding) bias \(bias)"
            XCTAssertLessThanOrEqual(relativeDifference(dxFused!, dx), Self.foldedTolerance, label)
            for (p, e) in zip(params, expected) {
                XCTAssertLessThanOrEqual(relativeDifference(p.gradient, e), Self.foldedTolerance, "\(label) \(p.value.shape)")
                XCTAssert(e.scalars.contains { $0 != 0 }, "\(label): a parameter gradient is all zero, nothing was compared")
            }

            // The input gradient does not depend on whether parameter gradients were asked for.
            let (_, fc2) = conv.forwardFused(x, foldingInference: bn, residual: residual, relu: true)
            XCTAssertEqual(conv.backwardFused(dy, cache: fc2, targets: .input).dInput, dxFused, label)
        }
    }

    func test_foldedConvBatchNorm_followsTheCurrentRunningStatistics() {
        // The fold is computed per call, so a training step's running-statistic update is seen by
        // the next inference pass (nothing is cached across calls).
        var g = SplitMix64(seed: 3)
        let conv = Conv2DLayer(3, 4, kernel: 3, padding: 1, bias: false, rng: &g)
        let bn = randomBatchNorm(4, rng: &g)
        let x = Tensor.randomUniform(shape: [2, 3, 5, 5], low: -1, high: 1, rng: &g)
        let before = conv.forwardFused(x, foldingInference: bn, residual: nil, relu: false).output
        _ = bn.forward(conv.forward(x, mode: .training).output, mode: .training)
        let after = conv.forwardFused(x, foldingInference: bn, residual: nil, relu: false).output
        let unfused = bn.forward(conv.forward(x, mode: .inference).output, mode: .inference).output
        XCTAssertNotEqual(before, after)
        XCTAssertLessThanOrEqual(relativeDifference(after, unfused), Self.foldedTolerance)
    }

    // MARK: - Bitwise fusions: BN + residual + ReLU, conv + bias + ReLU

    func test_batchNormWithResidualAndReLU_isBitwiseTheSeparatePasses_inBothModes() {
        var g = SplitMix64(seed: 4)
        for mode in [ForwardMode.training, .inference] {
            for (n, c, hw) in [(1, 3, 5), (3, 16, 17), (4, 17, 64)] {
                for withResidual in [false, true] {
                    let label = "\(mode) N \(n) C \(c) hw \(hw) residual \(withResidual)"
                    let fused = randomBatchNorm(c, rng: &g), separate = copyOf(fused)
                    let x = Tensor.randomUniform(shape: [n, c, hw, 1], low: -2, high: 2, rng: &g)
                    let residual = withResidual ? Tensor.randomUniform(shape: x.shape, low: -1, high: 1, rng: &g) : nil
                    let dy = Tensor.randomUniform(shape: x.shape, low: -1, high: 1, rng: &g)

                    let (y, fc) = fused.forward(x, mode: mode, residual: residual, relu: true)
                    let (nb, sc) = separate.forward(x, mode: mode)
                    let s = residual.map { Elementwise.add(nb, $0) } ?? nb
                    XCTAssertEqual(y, Activation.relu(s), label)
                    XCTAssertEqual(fused.runningMean.value, separate.runningMean.value, label)
                    XCTAssertEqual(fused.runningVar.value, separate.runningVar.value, label)

                    for p in fused.parameters + separate.parameters { p.zeroGradient() }
                    let (dx, dz) = fused.backward(dy, cache: fc, targets: .all, wantPreActivation: withResidual)
                    let ds = Activation.reluBackward(dy, input: s)
                    XCTAssertEqual(dx, separate.backward(ds, cache: sc, targets: .all), label)
                    if withResidual { XCTAssertEqual(dz, ds, label) } else { XCTAssertNil(dz, label) }
                    XCTAssertEqual(fused.weight.gradient, separate.weight.gradient, label)
                    XCTAssertEqual(fused.bias.gradient, separate.bias.gradient, label)

                    // Parameters only: the masked gradient still drives dγ and dβ.
                    for p in fused.parameters { p.zeroGradient() }
                    let (noInput, _) = fused.backward(dy, cache: fc, targets: .parameters, wantPreActivation: false)
                    XCTAssertNil(noInput, label)
                    XCTAssertEqual(fused.weight.gradient, separate.weight.gradient, label)
                }
            }
        }
    }

    func test_convBiasReLU_fused_isBitwiseTheSeparatePasses() {
        var g = SplitMix64(seed: 5)
        for (c, k, stride, padding) in [(1, 3, 1, 0), (3, 16, 2, 1), (17, 17, 1, 1)] {
            let fused = Conv2DLayer(c, k, kernel: 3, stride: stride, padding: padding, rng: &g)
            let separate = Conv2DLayer(c, k, kernel: 3, stride: stride, padding: padding, rng: &g)
            separate.weight.value = fused.weight.value
            separate.bias!.value = Tensor.randomUniform(shape: [k], low: -0.5, high: 0.5, rng: &g)
            fused.bias!.value = separate.bias!.value
            let x = Tensor.randomUniform(shape: [3, c, 8, 8], low: -1, high: 1, rng: &g)
            let label = "C \(c) K \(k) stride \(stride) pad \(padding)"

            let (y, fc) = fused.forwardFused(x, foldingInference: nil, residual: nil, relu: true)
            let (h, sc) = separate.forward(x, mode: .training)
            XCTAssertEqual(y, Activation.relu(h), label)

            let dy = Tensor.randomUniform(shape: y.shape, low: -1, high: 1, rng: &g)
            for p in fused.parameters + separate.parameters { p.zeroGradient() }
            let dx = fused.backwardFused(dy, cache: fc, targets: .all).dInput
            XCTAssertEqual(dx, separate.backward(Activation.reluBackward(dy, input: h), cache: sc, targets: .all), label)
            XCTAssertEqual(fused.weight.gradient, separate.weight.gradient, label)
            XCTAssertEqual(fused.bias!.gradient, separate.bias!.gradient, label)
        }
    }

    // MARK: - Helpers

    /// Which chain follows the conv: the shortcut (BN only), conv1 (BN → ReLU), conv2 (BN → add → ReLU).
    enum Variant: CaseIterable { case batchNormOnly, withReLU, withResidualAndReLU }

    private func checkFoldedUnit(conv: Conv2DLayer, bn: BatchNorm2DLayer, x: Tensor, variant: Variant,
                                 rng g: inout SplitMix64, label: String) {
        let relu = variant != .batchNormOnly
        let (h, cc) = conv.forward(x, mode: .inference)
        let residual = variant == .withResidualAndReLU
            ? Tensor.randomUniform(shape: h.shape, low: -1, high: 1, rng: &g) : nil
        let (nb, bc) = bn.forward(h, mode: .inference)
        let s = residual.map { Elementwise.add(nb, $0) } ?? nb
        let y = relu ? Activation.relu(s) : s

        let (yFused, fc) = conv.forwardFused(x, foldingInference: bn, residual: residual, relu: relu)
        XCTAssertEqual(yFused.shape, y.shape, label)
        XCTAssertLessThanOrEqual(relativeDifference(yFused, y), Self.foldedTolerance, "forward, \(label)")

        let dy = Tensor.randomUniform(shape: y.shape, low: -1, high: 1, rng: &g)
        let ds = relu ? Activation.reluBackward(dy, input: s) : dy
        let dx = conv.backward(bn.backward(ds, cache: bc, targets: .input)!, cache: cc, targets: .input)!
        let (dxFused, dz) = conv.backwardFused(dy, cache: fc, targets: .input)
        XCTAssertLessThanOrEqual(relativeDifference(dxFused!, dx), Self.foldedTolerance, "input gradient, \(label)")
        XCTAssertLessThanOrEqual(relativeDifference(dz, ds), Self.foldedTolerance, "residual gradient, \(label)")
    }
}

/// A batch norm with random γ, β and running statistics (a fresh one folds to nearly the identity).
func randomBatchNorm(_ channels: Int, rng g: inout SplitMix64) -> BatchNorm2DLayer {
    let bn = BatchNorm2DLayer(channels)
    bn.weight.value = Tensor.randomUniform(shape: [channels], low: 0.5, high: 1.5, rng: &g)
    bn.bias.value = Tensor.randomUniform(shape: [channels], low: -0.3, high: 0.3, rng: &g)
    bn.runningMean.value = Tensor.randomUniform(shape: [channels], low: -0.5, high: 0.5, rng: &g)
    bn.runningVar.value = Tensor.randomUniform(shape: [channels], low: 0.5, high: 2, rng: &g)
    return bn
}

/// An independent batch norm with the same parameters and buffers.
func copyOf(_ bn: BatchNorm2DLayer) -> BatchNorm2DLayer {
    let other = BatchNorm2DLayer(bn.channels, momentum: bn.momentum, eps: bn.eps)
    other.weight.value = bn.weight.value.copy()
    other.bias.value = bn.bias.value.copy()
    other.runningMean.value = bn.runningMean.value.copy()
    other.runningVar.value = bn.runningVar.value.copy()
    return other
}
