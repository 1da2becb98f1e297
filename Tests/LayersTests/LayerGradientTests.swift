// LayerGradientTests.swift: finite-difference checks of every layer's input and parameter
// gradients, in both forward modes where they differ, plus the mode and gradient-target contracts.

import Layers
import Tensors
import XCTest
import _TestSupport

final class LayerGradientTests: XCTestCase {
    private func input(_ shape: [Int], seed: UInt64, low: Float = -1, high: Float = 1) -> Tensor {
        var g = SplitMix64(seed: seed)
        return Tensor.randomUniform(shape: shape, low: low, high: high, rng: &g)
    }

    func test_conv2d_gradients_matchFiniteDifferences_stride1_padding1() {
        var rng = SplitMix64(seed: 1)
        let conv = Conv2DLayer(3, 4, kernel: 3, stride: 1, padding: 1, bias: true, rng: &rng)
        checkLayerGradients(conv, input: input([2, 3, 5, 5], seed: 2), mode: .training, label: "conv s1 p1")
    }

    func test_conv2d_gradients_matchFiniteDifferences_stride2_noBias() {
        var rng = SplitMix64(seed: 3)
        let conv = Conv2DLayer(2, 3, kernel: 3, stride: 2, padding: 1, bias: false, rng: &rng)
        checkLayerGradients(conv, input: input([3, 2, 6, 6], seed: 4), mode: .inference, label: "conv s2")
    }

    func test_conv2d_1x1Stride2_gradients_matchFiniteDifferences() {
        var rng = SplitMix64(seed: 5)
        let conv = Conv2DLayer(4, 2, kernel: 1, stride: 2, padding: 0, bias: false, rng: &rng)
        checkLayerGradients(conv, input: input([2, 4, 5, 5], seed: 6), mode: .training, label: "conv 1x1 s2")
    }

    func test_batchNorm_trainingMode_gradients_matchFiniteDifferences() {
        let bn = BatchNorm2DLayer(3)
        var g = SplitMix64(seed: 8)
        bn.weight.value = Tensor.randomUniform(shape: [3], low: 0.5, high: 1.5, rng: &g)
        bn.bias.value = Tensor.randomUniform(shape: [3], low: -0.5, high: 0.5, rng: &g)
        checkLayerGradients(bn, input: input([4, 3, 3, 3], seed: 9), mode: .training, label: "bn train",
                            eps: 1e-2, atol: 3e-3)
    }

    func test_batchNorm_inferenceMode_gradients_matchFiniteDifferences() {
        let bn = BatchNorm2DLayer(3)
        var g = SplitMix64(seed: 10)
        bn.weight.value = Tensor.randomUniform(shape: [3], low: 0.5, high: 1.5, rng: &g)
        bn.runningMean.value = Tensor.randomUniform(shape: [3], low: -0.3, high: 0.3, rng: &g)
        bn.runningVar.value = Tensor.randomUniform(shape: [3], low: 0.5, high: 2, rng: &g)
        checkLayerGradients(bn, input: input([2, 3, 4, 4], seed: 11), mode: .inference, label: "bn eval")
    }

    func test_linear_gradients_matchFiniteDifferences() {
        var rng = SplitMix64(seed: 12)
        let fc = LinearLayer(7, 5, rng: &rng)
        checkLayerGradients(fc, input: input([3, 7], seed: 13), mode: .training, label: "linear")
    }

    func test_relu_maxPool_avgPool_gradients_matchFiniteDifferences() {
        checkLayerGradients(ReLU(), input: input([2, 3, 4, 4], seed: 14), mode: .training, label: "relu")
        checkLayerGradients(MaxPool2D(kernel: 2), input: input([2, 3, 5, 6], seed: 15), mode: .training,
                            label: "maxpool")
        checkLayerGradients(AvgPool2D(kernel: 4), input: input([2, 3, 8, 8], seed: 16), mode: .training,
                            label: "avgpool")
    }

    func test_dropout_gradient_matchesFiniteDifferences_withFixedMask() {
        let d = DropoutLayer(probability: 0.5, seed: 17)
        let start = d.randomState
        checkLayerGradients(d, input: input([4, 10], seed: 18), mode: .training, label: "dropout",
                            prepare: { d.randomState = start })
    }

    func test_dropout_isIdentity_inInferenceMode() {
        let d = DropoutLayer(probability: 0.5, seed: 19)
        let x = input([3, 8], seed: 20)
        XCTAssertEqual(d.forward(x, mode: .inference).output, x)
    }

    func test_batchNorm_runningStatistics_updateOnlyInTrainingMode() {
        let bn = BatchNorm2DLayer(2)
        let x = input([4, 2, 3, 3], seed: 21, low: 1, high: 3)
        _ = bn.forward(x, mode: .inference)
        XCTAssertEqual(bn.runningMean.value.scalars, [0, 0])
        XCTAssertEqual(bn.batchesTracked.value, 0)
        _ = bn.forward(x, mode: .training)
        XCTAssertEqual(bn.batchesTracked.value, 1)
        // running_mean = 0.9·0 + 0.1·batch mean, which is in (0.1, 0.3) for inputs in (1, 3).
        for m in bn.runningMean.value.scalars { XCTAssert(m > 0.1 && m < 0.3, "running mean \(m)") }
    }

    func test_backward_withInputTargetOnly_leavesParameterGradientsUntouched() {
        var rng = SplitMix64(seed: 22)
        let conv = Conv2DLayer(2, 3, kernel: 3, padding: 1, rng: &rng)
        let (_, cache) = conv.forward(input([1, 2, 4, 4], seed: 23), mode: .training)
        let dx = conv.backward(Tensor(shape: [1, 3, 4, 4], repeating: 1), cache: cache, targets: .input)
        XCTAssertNotNil(dx)
        XCTAssertEqual(conv.weight.gradient.scalars.max(), 0)
        XCTAssertEqual(conv.weight.gradient.scalars.min(), 0)
        let none = conv.backward(Tensor(shape: [1, 3, 4, 4], repeating: 1), cache: cache, targets: .parameters)
        XCTAssertNil(none)
        XCTAssertNotEqual(conv.weight.gradient.scalars.max(), 0)
    }

    func test_parameterGradients_accumulateAcrossBackwardPasses() {
        var rng = SplitMix64(seed: 24)
        let fc = LinearLayer(4, 3, rng: &rng)
        let x = input([2, 4], seed: 25)
        let (_, cache) = fc.forward(x, mode: .training)
        let dy = Tensor(shape: [2, 3], repeating: 1)
        _ = fc.backward(dy, cache: cache, targets: .parameters)
        let once = fc.weight.gradient.scalars
        _ = fc.backward(dy, cache: cache, targets: .parameters)
        assertClose(fc.weight.gradient.scalars, once.map { 2 * $0 }, atol: 1e-6)
    }
}
