// ModelTests.swift: architecture facts (exact parameter counts, PyTorch state-dict names, MACs),
// finite-difference checks of whole residual blocks and of SmallCNN end to end, and mode contracts.

import Layers
import Models
import Tensors
import XCTest
import _TestSupport

final class ModelTests: XCTestCase {
    func test_parameterCounts_matchTheReferenceArchitectures() {
        XCTAssertEqual(SmallCNN(seed: 0).parameterCount, 312_202)
        XCTAssertEqual(ResNet18(seed: 0).parameterCount, 11_173_962)
        XCTAssertEqual(PreActResNet18(seed: 0).parameterCount, 11_172_170)
        XCTAssertEqual(ResNet18(classes: 100, seed: 0).parameterCount, 11_220_132)
    }

    func test_wideResNet34x10_hasTheReferenceParameterCount() {
        XCTAssertEqual(WideResNet(depth: 34, widen: 10, seed: 0).parameterCount, 46_160_474)
    }

    func test_forwardMACs_matchTheReferenceFigures() {
        XCTAssertEqual(SmallCNN(seed: 0).forwardMACs, 9_951_040 + 0, accuracy: 100_000)
        XCTAssertEqual(Double(ResNet18(seed: 0).forwardMACs) / 1e6, 555.4, accuracy: 0.5)
        XCTAssertEqual(Double(PreActResNet18(seed: 0).forwardMACs) / 1e9, 0.555, accuracy: 0.001)
    }

    func test_stateDictNames_followPyTorchConventions() {
        let r = ResNet18(seed: 0).stateEntries(prefix: "").map(\.name)
        XCTAssertEqual(Array(r.prefix(7)), ["conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean",
                                           "bn1.running_var", "bn1.num_batches_tracked", "layer1.0.conv1.weight"])
        XCTAssert(r.contains("layer2.0.shortcut.0.weight"))
        XCTAssert(r.contains("layer2.0.shortcut.1.running_var"))
        XCTAssertEqual(Array(r.suffix(2)), ["linear.weight", "linear.bias"])
        XCTAssertEqual(r.count, Set(r).count, "names must be unique")

        let p = PreActResNet18(seed: 0).stateEntries(prefix: "").map(\.name)
        XCTAssert(p.contains("layer1.0.bn1.weight") && p.contains("layer3.0.shortcut.0.weight"))
        XCTAssert(p.contains("bn.running_mean"))

        let s = SmallCNN(seed: 0).stateEntries(prefix: "").map(\.name)
        XCTAssertEqual(s, ["feature_extractor.conv1.weight", "feature_extractor.conv1.bias",
                           "feature_extractor.conv2.weight", "feature_extractor.conv2.bias",
                           "feature_extractor.conv3.weight", "feature_extractor.conv3.bias",
                           "feature_extractor.conv4.weight", "feature_extractor.conv4.bias",
                           "classifier.fc1.weight", "classifier.fc1.bias", "classifier.fc2.weight",
                           "classifier.fc2.bias", "classifier.fc3.weight", "classifier.fc3.bias"])

        let w = WideResNet(depth: 16, widen: 2, seed: 0).stateEntries(prefix: "").map(\.name)
        XCTAssert(w.contains("block1.layer.0.convShortcut.weight"))
        XCTAssert(w.contains("block3.layer.1.bn2.num_batches_tracked"))
        XCTAssert(w.contains("fc.weight") && w.contains("bn1.running_var"))
    }

    func test_smallCNN_lastLayer_isInitialisedToZero_soInitialLogitsAreZero() {
        let m = SmallCNN(seed: 3)
        var g = SplitMix64(seed: 4)
        let x = Tensor.randomUniform(shape: [2, 1, 28, 28], low: 0, high: 1, rng: &g)
        XCTAssertEqual(m.forward(x, mode: .inference).logits.scalars, [Float](repeating: 0, count: 20))
    }

    func test_narrowVariants_haveTheExpectedOutputShape() {
        var g = SplitMix64(seed: 5)
        let x = Tensor.randomUniform(shape: [2, 3, 32, 32], low: 0, high: 1, rng: &g)
        XCTAssertEqual(ResNet18(classes: 7, width: 0.125, seed: 1).logits(x, mode: .training).shape, [2, 7])
        XCTAssertEqual(PreActResNet18(width: 0.125, seed: 1).logits(x, mode: .inference).shape, [2, 10])
        XCTAssertEqual(WideResNet(depth: 10, widen: 1, classes: 4, seed: 1).logits(x, mode: .training).shape, [2, 4])
    }

    // MARK: - Finite-difference checks of whole blocks and models

    func test_basicBlock_withProjectionShortcut_gradientsMatchFiniteDifferences() {
        var rng = SplitMix64(seed: 30)
        let block = BasicBlock(3, 4, stride: 2, rng: &rng)
        var g = SplitMix64(seed: 31)
        let x = Tensor.randomUniform(shape: [3, 3, 6, 6], low: -1, high: 1, rng: &g)
        checkLayerGradients(block, input: x, mode: .training, label: "basic block", eps: 1e-2, atol: 5e-3, rtol: 3e-2)
    }

    func test_basicBlock_identityShortcut_inferenceMode_gradientsMatchFiniteDifferences() {
        var rng = SplitMix64(seed: 32)
        let block = BasicBlock(3, 3, stride: 1, rng: &rng)
        var g = SplitMix64(seed: 33)
        let x = Tensor.randomUniform(shape: [2, 3, 5, 5], low: -1, high: 1, rng: &g)
        checkLayerGradients(block, input: x, mode: .inference, label: "basic block id")
    }

    func test_preActivationBlock_gradientsMatchFiniteDifferences() {
        var rng = SplitMix64(seed: 34)
        let proj = PreActivationBlock(2, 4, stride: 2, naming: .preActResNet, convInit: .pytorchDefault, rng: &rng)
        let ident = PreActivationBlock(3, 3, stride: 1, naming: .wideResNet, convInit: .kaimingNormalFanOut, rng: &rng)
        var g = SplitMix64(seed: 35)
        checkLayerGradients(proj, input: Tensor.randomUniform(shape: [3, 2, 6, 6], low: -1, high: 1, rng: &g),
                            mode: .training, label: "preact proj", eps: 1e-2, atol: 5e-3, rtol: 3e-2)
        checkLayerGradients(ident, input: Tensor.randomUniform(shape: [3, 3, 4, 4], low: -1, high: 1, rng: &g),
                            mode: .training, label: "preact id", eps: 1e-2, atol: 5e-3, rtol: 3e-2)
    }

    func test_smallCNN_endToEnd_gradientsMatchFiniteDifferences_withDropoutActive() {
        let m = SmallCNN(width: 0.25, seed: 40)
        // The reference zero-initialises fc3; give it values so gradients reach the lower layers.
        var g = SplitMix64(seed: 41)
        m.fc3.weight.value = Tensor.randomUniform(shape: m.fc3.weight.value.shape, low: -0.5, high: 0.5, rng: &g)
        let x = Tensor.randomUniform(shape: [2, 1, 28, 28], low: 0, high: 1, rng: &g)
        let start = m.dropout.randomState
        checkClassifierGradients(m, input: x, mode: .training, label: "smallcnn", samples: 12,
                                 prepare: { m.dropout.randomState = start })
    }

    func test_resNet18Narrow_endToEnd_inputGradientMatchesFiniteDifferences() {
        // Input gradient only: the parameter gradients of the deep layers sit behind dozens of
        // ReLU kinks per perturbation, which makes central differences unreliable there; the
        // blocks' parameter gradients are checked above on single blocks.
        let m = ResNet18(width: 0.0625, seed: 42)
        var g = SplitMix64(seed: 43)
        var x = Tensor.randomUniform(shape: [2, 3, 32, 32], low: 0, high: 1, rng: &g)
        let r = Tensor.randomUniform(shape: [2, 10], low: -1, high: 1, rng: &g)
        let (_, cache) = m.forward(x, mode: .inference)
        let dx = m.backward(r, cache: cache, targets: .input)!
        _ = checkGradient("resnet18/16 input", count: x.count, analytic: dx.scalars,
                          read: { x[flat: $0] }, write: { x[flat: $0] = $1 },
                          loss: { projectedLoss(m.forward(x, mode: .inference).logits, r) },
                          samples: 16, eps: 1e-2, atol: 1e-3, rtol: 3e-2)
    }

    func test_inputOnlyBackward_producesTheSameInputGradient_andNoParameterGradients() {
        let m = ResNet18(width: 0.0625, seed: 44)
        var g = SplitMix64(seed: 45)
        let x = Tensor.randomUniform(shape: [2, 3, 32, 32], low: 0, high: 1, rng: &g)
        let dz = Tensor.randomUniform(shape: [2, 10], low: -1, high: 1, rng: &g)
        let (_, c1) = m.forward(x, mode: .inference)
        let dxInputOnly = m.backward(dz, cache: c1, targets: .input)!
        for p in m.parameters { XCTAssertEqual(p.gradient.scalars.allSatisfy { $0 == 0 }, true) }
        let (_, c2) = m.forward(x, mode: .inference)
        let dxAll = m.backward(dz, cache: c2, targets: .all)!
        XCTAssertEqual(dxInputOnly, dxAll)
        XCTAssert(m.parameters.contains { $0.gradient.scalars.contains { $0 != 0 } })
    }

    func test_modelSpec_parsesNames_andRejectsBadOnes() throws {
        XCTAssertEqual(try ModelSpec(parsing: "wrn-34-10").architecture, .wideResNet)
        XCTAssertEqual(try ModelSpec(parsing: "preact-resnet18").architecture, .preActResNet18)
        XCTAssertThrowsError(try ModelSpec(parsing: "wrn-33-10")) { e in
            XCTAssert("\(e)".contains("6n + 4"))
        }
        XCTAssertThrowsError(try ModelSpec(parsing: "vgg16")) { e in XCTAssert("\(e)".contains("memloss models")) }
    }
}
