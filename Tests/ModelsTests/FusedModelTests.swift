// FusedModelTests.swift: whole models with their fused and folded passes against the same models
// run as chains of separate layer passes (the internal `usesFusedPasses` switch): inference logits and
// input gradients within 1e-5 relative (batch norms folded into convs), and training-mode steps
// (logits, every parameter gradient, the running statistics) bit for bit.

import Kernels
@testable import Models
import Layers
import Tensors
import XCTest
import _TestSupport

final class FusedModelTests: XCTestCase {
    /// See LayersTests/FusedPassTests.swift: folding changes rounding, a few ulps per layer.
    static let foldedTolerance: Float = 1e-5

    func test_resNet18_inferenceLogitsAndInputGradients_foldedMatchTheSeparatePasses() {
        let m = ResNet18(width: 0.25, seed: 50)
        randomizeNormalization(m, seed: 51)
        var g = SplitMix64(seed: 52)
        let x = Tensor.randomUniform(shape: [3, 3, 32, 32], low: 0, high: 1, rng: &g)
        let dz = Tensor.randomUniform(shape: [3, 10], low: -1, high: 1, rng: &g)
        let (fused, unfused) = inferencePasses(m, x: x, dLogits: dz, toggle: { m.usesFusedPasses = $0 })
        XCTAssertLessThanOrEqual(relativeDifference(fused.logits, unfused.logits), Self.foldedTolerance)
        XCTAssertLessThanOrEqual(relativeDifference(fused.inputGradient, unfused.inputGradient), Self.foldedTolerance)
        XCTAssert(unfused.inputGradient.scalars.contains { $0 != 0 })
        // Folding rounds differently, so equal logits would mean the switch did not take the other path.
        XCTAssertNotEqual(fused.logits, unfused.logits)
    }

    func test_smallCNN_inferenceLogitsAndInputGradients_fusedMatchTheSeparatePasses() {
        let m = SmallCNN(width: 0.5, seed: 53)
        var g = SplitMix64(seed: 54)
        m.fc3.weight.value = Tensor.randomUniform(shape: m.fc3.weight.value.shape, low: -0.5, high: 0.5, rng: &g)
        for conv in [m.conv1, m.conv2, m.conv3, m.conv4] {
            conv.bias!.value = Tensor.randomUniform(shape: conv.bias!.value.shape, low: -0.1, high: 0.1, rng: &g)
        }
        let x = Tensor.randomUniform(shape: [3, 1, 28, 28], low: 0, high: 1, rng: &g)
        let dz = Tensor.randomUniform(shape: [3, 10], low: -1, high: 1, rng: &g)
        let (fused, unfused) = inferencePasses(m, x: x, dLogits: dz, toggle: { m.usesFusedPasses = $0 })
        XCTAssertLessThanOrEqual(relativeDifference(fused.logits, unfused.logits), Self.foldedTolerance)
        XCTAssertLessThanOrEqual(relativeDifference(fused.inputGradient, unfused.inputGradient), Self.foldedTolerance)
        XCTAssert(unfused.inputGradient.scalars.contains { $0 != 0 })
    }

    /// Issue 13's check against the path before it: the whole ResNet-18 ×0.25 pass on today's path
    /// (dispatched convs: direct kernel where the table says so, folded and fused layer passes) against
    /// the old one (every conv on im2col + sgemm, separate layer passes): inference logits and input
    /// gradients (an attack step's passes) and a training-mode forward + backward (logits, every
    /// parameter gradient) within 1e-5 relative.
    func test_resNet18_wholePass_matchesTheGemmUnfusedPath_within1e5() {
        let saved = Conv2D.forcedAlgorithm
        defer { Conv2D.forcedAlgorithm = saved }
        let new = ResNet18(width: 0.25, seed: 60), old = ResNet18(width: 0.25, seed: 60)
        randomizeNormalization(new, seed: 61)
        randomizeNormalization(old, seed: 61)
        old.usesFusedPasses = false
        var g = SplitMix64(seed: 62)
        let x = Tensor.randomUniform(shape: [3, 3, 32, 32], low: 0, high: 1, rng: &g)
        let dz = Tensor.randomUniform(shape: [3, 10], low: -1, high: 1, rng: &g)
        func passes(_ m: ResNet18, _ algorithm: ConvAlgorithm?) -> (Tensor, Tensor, Tensor, [Tensor]) {
            Conv2D.forcedAlgorithm = algorithm
            let (zi, ci) = m.forward(x, mode: .inference)
            let dx = m.backward(dz, cache: ci, targets: .input)!
            m.zeroGradients()
            let (zt, ct) = m.forward(x, mode: .training)
            _ = m.backward(dz, cache: ct, targets: .all)
            return (zi, dx, zt, m.parameters.map(\.gradient))
        }
        let a = passes(new, nil), b = passes(old, .gemm)
        XCTAssertLessThanOrEqual(relativeDifference(a.0, b.0), Self.foldedTolerance, "inference logits")
        XCTAssertLessThanOrEqual(relativeDifference(a.1, b.1), Self.foldedTolerance, "input gradient")
        XCTAssertLessThanOrEqual(relativeDifference(a.2, b.2), Self.foldedTolerance, "training logits")
        for (i, (ga, gb)) in zip(a.3, b.3).enumerated() {
            XCTAssertLessThanOrEqual(relativeDifference(ga, gb), Self.foldedTolerance, "gradient of parameter \(i)")
        }
        XCTAssertGreaterThan(relativeDifference(a.1, b.1), 0, "the two paths should not be the same code")
    }

    func test_resNet18_trainingStep_fusedIsBitwiseTheSeparatePasses() {
        let fused = ResNet18(width: 0.25, seed: 55), unfused = ResNet18(width: 0.25, seed: 55)
        randomizeNormalization(fused, seed: 56)
        randomizeNormalization(unfused, seed: 56)
        unfused.usesFusedPasses = false
        var g = SplitMix64(seed: 57)
        let x = Tensor.randomUniform(shape: [4, 3, 32, 32], low: 0, high: 1, rng: &g)
        let dz = Tensor.randomUniform(shape: [4, 10], low: -1, high: 1, rng: &g)
        assertTrainingStepsBitwiseEqual(fused, unfused, x: x, dLogits: dz)
    }

    func test_smallCNN_trainingStep_fusedIsBitwiseTheSeparatePasses() {
        let fused = SmallCNN(width: 0.5, seed: 58), unfused = SmallCNN(width: 0.5, seed: 58)
        unfused.usesFusedPasses = false
        var g = SplitMix64(seed: 59)
        let fc3 = Tensor.randomUniform(shape: fused.fc3.weight.value.shape, low: -0.5, high: 0.5, rng: &g)
        fused.fc3.weight.value = fc3
        unfused.fc3.weight.value = fc3.copy()
        let x = Tensor.randomUniform(shape: [4, 1, 28, 28], low: 0, high: 1, rng: &g)
        let dz = Tensor.randomUniform(shape: [4, 10], low: -1, high: 1, rng: &g)
        assertTrainingStepsBitwiseEqual(fused, unfused, x: x, dLogits: dz)
    }

    func test_preActResNet18_trainingStep_isBitwiseTheSeparatePasses_ofOneBlock() {
        // PreAct blocks have no unfused switch: compare one block with the chain built from its layers.
        var rng = SplitMix64(seed: 60)
        let block = PreActivationBlock(3, 4, stride: 2, naming: .preActResNet, convInit: .pytorchDefault, rng: &rng)
        var copyRNG = SplitMix64(seed: 60)
        let twin = PreActivationBlock(3, 4, stride: 2, naming: .preActResNet, convInit: .pytorchDefault, rng: &copyRNG)
        var g = SplitMix64(seed: 61)
        let x = Tensor.randomUniform(shape: [3, 3, 6, 6], low: -1, high: 1, rng: &g)
        for mode in [ForwardMode.training, .inference] {
            let (y, cache) = block.forward(x, mode: mode)
            // The separate passes: relu(bn1(x)) → conv1 → relu(bn2) → conv2, plus conv1×1(a).
            let (n1, b1) = twin.bn1.forward(x, mode: mode)
            let a = Activation.relu(n1)
            let (h1, c1) = twin.conv1.forward(a, mode: mode)
            let (n2, b2) = twin.bn2.forward(h1, mode: mode)
            let (h2, c2) = twin.conv2.forward(Activation.relu(n2), mode: mode)
            let (s, sc) = twin.shortcutConv!.forward(a, mode: mode)
            XCTAssertEqual(y, Elementwise.add(h2, s), "\(mode)")

            let dy = Tensor.randomUniform(shape: y.shape, low: -1, high: 1, rng: &g)
            block.zeroGradients(); twin.zeroGradients()
            let dx = block.backward(dy, cache: cache, targets: .all)
            var dA = twin.conv1.backward(twin.bn2.backward(Activation.reluBackward(
                twin.conv2.backward(dy, cache: c2, targets: .all)!, input: n2), cache: b2, targets: .all)!,
                cache: c1, targets: .all)!
            Elementwise.accumulate(&dA, twin.shortcutConv!.backward(dy, cache: sc, targets: .all)!)
            XCTAssertEqual(dx, twin.bn1.backward(Activation.reluBackward(dA, input: n1), cache: b1, targets: .all),
                           "\(mode)")
            for (p, q) in zip(block.namedParameters, twin.namedParameters) {
                XCTAssertEqual(p.parameter.gradient, q.parameter.gradient, "\(mode) \(p.name)")
            }
        }
    }

    // MARK: - Helpers

    struct InferencePass { var logits: Tensor; var inputGradient: Tensor }

    /// Inference logits and input gradients with the fused passes and with the separate ones.
    private func inferencePasses<M: Classifier>(_ m: M, x: Tensor, dLogits: Tensor, toggle: (Bool) -> Void)
        -> (fused: InferencePass, unfused: InferencePass) {
        func run() -> InferencePass {
            let (z, cache) = m.forward(x, mode: .inference)
            return InferencePass(logits: z, inputGradient: m.backward(dLogits, cache: cache, targets: .input)!)
        }
        toggle(true)
        let fused = run()
        toggle(false)
        let unfused = run()
        toggle(true)
        return (fused, unfused)
    }

    /// One training-mode forward and `.all` backward of each model: logits, input gradients, every
    /// parameter gradient and every buffer (running statistics) must agree bit for bit.
    private func assertTrainingStepsBitwiseEqual<M: Classifier>(_ a: M, _ b: M, x: Tensor, dLogits: Tensor,
                                                                file: StaticString = #filePath, line: UInt = #line) {
        a.zeroGradients(); b.zeroGradients()
        let (za, ca) = a.forward(x, mode: .training)
        let (zb, cb) = b.forward(x, mode: .training)
        XCTAssertEqual(za, zb, "logits", file: file, line: line)
        XCTAssertEqual(a.backward(dLogits, cache: ca, targets: .all), b.backward(dLogits, cache: cb, targets: .all),
                       "input gradient", file: file, line: line)
        var compared = 0
        for (ea, eb) in zip(a.stateEntries(prefix: ""), b.stateEntries(prefix: "")) {
            switch (ea.reference, eb.reference) {
            case (.parameter(let p), .parameter(let q)):
                XCTAssertEqual(p.gradient, q.gradient, "gradient of \(ea.name)", file: file, line: line)
                compared += 1
            case (.buffer(let p), .buffer(let q)):
                XCTAssertEqual(p.value, q.value, "\(ea.name)", file: file, line: line)
            case (.counter(let p), .counter(let q)):
                XCTAssertEqual(p.value, q.value, "\(ea.name)", file: file, line: line)
            default:
                XCTFail("state entries differ at \(ea.name)", file: file, line: line)
            }
        }
        XCTAssertEqual(compared, a.parameters.count, file: file, line: line)
    }
}

/// Random γ, β and running statistics for every batch norm of a model (fresh ones fold to nearly
/// the identity, which would hide a wrong fold). γ and β are the rank-1 `weight`/`bias` parameters.
private func randomizeNormalization(_ m: some StateProvider, seed: UInt64) {
    var g = SplitMix64(seed: seed)
    for e in m.stateEntries(prefix: "") {
        switch e.reference {
        case .buffer(let b) where e.name.hasSuffix("running_mean"):
            b.value = Tensor.randomUniform(shape: b.value.shape, low: -0.2, high: 0.2, rng: &g)
        case .buffer(let b) where e.name.hasSuffix("running_var"):
            b.value = Tensor.randomUniform(shape: b.value.shape, low: 0.5, high: 2, rng: &g)
        case .parameter(let p) where p.value.rank == 1 && e.name.hasSuffix(".weight"):
            p.value = Tensor.randomUniform(shape: p.value.shape, low: 0.5, high: 1.5, rng: &g)
        case .parameter(let p) where p.value.rank == 1 && e.name.hasSuffix(".bias"):
            p.value = Tensor.randomUniform(shape: p.value.shape, low: -0.2, high: 0.2, rng: &g)
        default:
            break
        }
    }
}
