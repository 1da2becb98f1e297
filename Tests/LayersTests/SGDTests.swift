// SGDTests.swift: SGD against hand-computed 3-step trajectories (plain, momentum, dampening,
// Nesterov, weight decay, decays = false), against a Double reference of torch.optim.SGD on random
// gradients, and exact resume through the saved optimizer state.

import Layers
import Tensors
import XCTest
import _TestSupport

final class SGDTests: XCTestCase {
    // MARK: - Helpers

    /// Runs `steps` steps on the loss ½‖p‖² (so ∇ = p), starting from p₀ = [1, −2], at lr 0.1, and
    /// returns p after each step (first element; the second is always −2× the first).
    private func trajectory(_ config: SGDConfig, decays: Bool = true, steps: Int = 3) -> [Float] {
        let p = Parameter(Tensor(shape: [2], values: [1, -2]), decays: decays)
        let sgd = SGD(parameters: [("w", p)], config: config)
        var out: [Float] = []
        for _ in 0..<steps {
            p.gradient = p.value.copy()
            sgd.step(learningRate: config.learningRate)
            out.append(p.value[flat: 0])
            XCTAssertEqual(p.value[flat: 1], -2 * p.value[flat: 0], accuracy: 1e-6)
        }
        return out
    }

    // MARK: - Hand-computed trajectories (lr η = 0.1, ∇ = p, p₀ = 1)

    func test_plainSGD_scalesByOneMinusLearningRate() {
        // p ← p − 0.1·p = 0.9·p: 0.9, 0.81, 0.729.
        assertClose(trajectory(SGDConfig(learningRate: 0.1, momentum: 0, weightDecay: 0)), [0.9, 0.81, 0.729])
    }

    func test_momentum_followsTheTorchRecurrence() {
        // μ = 0.9.  step 1: b = g = 1,                      p = 1 − 0.1·1 = 0.9
        //           step 2: g = 0.9, b = 0.9·1 + 0.9 = 1.8,  p = 0.9 − 0.18 = 0.72
        //           step 3: g = 0.72, b = 1.62 + 0.72 = 2.34, p = 0.72 − 0.234 = 0.486
        assertClose(trajectory(SGDConfig(learningRate: 0.1, weightDecay: 0)), [0.9, 0.72, 0.486])
    }

    func test_dampening_scalesNewGradients_butNotTheFirstBuffer() {
        // μ = 0.9, τ = 0.5.  step 1: b = g = 1 (no dampening on the first step), p = 0.9
        //   step 2: g = 0.9,   b = 0.9·1 + 0.5·0.9 = 1.35,          p = 0.9 − 0.135 = 0.765
        //   step 3: g = 0.765, b = 0.9·1.35 + 0.5·0.765 = 1.5975,   p = 0.765 − 0.15975 = 0.60525
        assertClose(trajectory(SGDConfig(learningRate: 0.1, dampening: 0.5, weightDecay: 0)), [0.9, 0.765, 0.60525])
    }

    func test_nesterov_addsTheMomentumLookahead() {
        // μ = 0.9.  step 1: b = 1,  g' = 1 + 0.9·1 = 1.9,                 p = 1 − 0.19 = 0.81
        //   step 2: g = 0.81,   b = 0.9 + 0.81 = 1.71,   g' = 0.81 + 1.539 = 2.349,  p = 0.5751
        //   step 3: g = 0.5751, b = 1.539 + 0.5751 = 2.1141, g' = 0.5751 + 1.90269 = 2.47779,
        //           p = 0.5751 − 0.247779 = 0.327321
        assertClose(trajectory(SGDConfig(learningRate: 0.1, weightDecay: 0, nesterov: true)), [0.81, 0.5751, 0.327321])
    }

    func test_weightDecay_addsLambdaTimesParameterToTheGradient() {
        // λ = 0.1, μ = 0: g = 1.1·p, p ← 0.89·p: 0.89, 0.7921, 0.704969.
        assertClose(trajectory(SGDConfig(learningRate: 0.1, momentum: 0, weightDecay: 0.1)), [0.89, 0.7921, 0.704969])
        // λ = 0.1, μ = 0.9.  step 1: g = 1.1, b = 1.1, p = 0.89
        //   step 2: g = 0.979,   b = 0.99 + 0.979 = 1.969,       p = 0.89 − 0.1969 = 0.6931
        //   step 3: g = 0.76241, b = 1.7721 + 0.76241 = 2.53451, p = 0.6931 − 0.253451 = 0.439649
        assertClose(trajectory(SGDConfig(learningRate: 0.1, weightDecay: 0.1)), [0.89, 0.6931, 0.439649])
    }

    func test_weightDecay_isSkippedForParametersThatDoNotDecay() {
        // Same as plain momentum (0.9, 0.72, 0.486) despite λ = 0.1.
        assertClose(trajectory(SGDConfig(learningRate: 0.1, weightDecay: 0.1), decays: false), [0.9, 0.72, 0.486])
    }

    func test_momentumOverride_replacesTheConfiguredMomentumForThatStep() {
        // Config μ = 0.9, but step 2 uses μ = 0.5:  step 1: b = 1, p = 0.9
        //   step 2: g = 0.9, b = 0.5·1 + 0.9 = 1.4, p = 0.9 − 0.14 = 0.76
        let p = Parameter(Tensor(shape: [1], values: [1]))
        let sgd = SGD(parameters: [("w", p)], config: SGDConfig(learningRate: 0.1, weightDecay: 0))
        p.gradient = p.value.copy(); sgd.step(learningRate: 0.1)
        p.gradient = p.value.copy(); sgd.step(learningRate: 0.1, momentum: 0.5)
        assertClose(p.value.scalars, [0.76])
    }

    func test_step_neverModifiesTheGradient() {
        let p = Parameter(Tensor(shape: [3], values: [1, 2, 3]))
        let sgd = SGD(parameters: [("w", p)], config: SGDConfig(learningRate: 0.1, weightDecay: 0.5, nesterov: true))
        p.gradient = Tensor(shape: [3], values: [0.5, -0.5, 1])
        sgd.step(learningRate: 0.1)
        sgd.step(learningRate: 0.1)
        XCTAssertEqual(p.gradient.scalars, [0.5, -0.5, 1])
    }

    // MARK: - Double reference of torch.optim.SGD

    /// torch.optim.SGD's single-tensor step, in Double.
    private struct ReferenceSGD {
        var config: SGDConfig
        var buffers: [[Double]?]
        mutating func step(params: inout [[Double]], grads: [[Double]], decays: [Bool], lr: Double) {
            let mu = Double(config.momentum), tau = Double(config.dampening), wd = Double(config.weightDecay)
            for k in params.indices {
                var g = grads[k]
                if wd != 0 && decays[k] { for i in g.indices { g[i] += wd * params[k][i] } }
                if mu != 0 {
                    var b = buffers[k] ?? g
                    if buffers[k] != nil { for i in b.indices { b[i] = mu * b[i] + (1 - tau) * g[i] } }
                    buffers[k] = b
                    if config.nesterov { for i in g.indices { g[i] += mu * b[i] } } else { g = b }
                }
                for i in g.indices { params[k][i] -= lr * g[i] }
            }
        }
    }

    func test_matchesADoubleReference_onRandomGradients_forEveryOptionCombination() {
        let configs = [
            SGDConfig(learningRate: 0.05, momentum: 0, weightDecay: 0),
            SGDConfig(learningRate: 0.05, weightDecay: 5e-4),
            SGDConfig(learningRate: 0.05, momentum: 0.8, dampening: 0.3, weightDecay: 1e-2),
            SGDConfig(learningRate: 0.05, weightDecay: 5e-4, nesterov: true),
        ]
        for (c, config) in configs.enumerated() {
            let shapes = [[3, 2, 3, 3], [17], [3]]
            let decays = [true, true, false]
            let params = shapes.enumerated().map { i, s in
                Parameter(Tensor(shape: s, values: seededUniform(Tensor.elementCount(s), seed: UInt64(10 * c + i))),
                          decays: decays[i])
            }
            let sgd = SGD(parameters: params.enumerated().map { ("p\($0)", $1) }, config: config)
            var reference = ReferenceSGD(config: config, buffers: [nil, nil, nil])
            var refParams = params.map { $0.value.scalars.map(Double.init) }
            for step in 0..<5 {
                let lr = 0.05 * Double(step + 1) / 5
                var grads: [[Double]] = []
                for (i, p) in params.enumerated() {
                    let g = seededUniform(p.value.count, seed: UInt64(1000 + 100 * c + 10 * step + i))
                    p.gradient = Tensor(shape: p.value.shape, values: g)
                    grads.append(g.map(Double.init))
                }
                sgd.step(learningRate: Float(lr))
                reference.step(params: &refParams, grads: grads, decays: decays, lr: lr)
                for (i, p) in params.enumerated() {
                    assertClose(p.value.scalars, refParams[i].map(Float.init), atol: 1e-6, rtol: 1e-5,
                                "config \(c), step \(step), parameter \(i)")
                }
            }
            XCTAssertEqual(sgd.stepCount, 5)
        }
    }

    // MARK: - State

    private func makeRun(_ values: [[Float]]) -> (SGD, [Parameter]) {
        let params = values.map { Parameter(Tensor(shape: [$0.count], values: $0)) }
        let sgd = SGD(parameters: [("layer.weight", params[0]), ("layer.bias", params[1])],
                      config: SGDConfig(learningRate: 0.1, weightDecay: 1e-3, nesterov: true))
        return (sgd, params)
    }

    private func setGradients(_ params: [Parameter], step: Int) {
        for (i, p) in params.enumerated() {
            p.gradient = Tensor(shape: p.value.shape, values: seededUniform(p.value.count, seed: UInt64(50 + 10 * step + i)))
        }
    }

    func test_savedState_resumesTheTrajectoryBitForBit() throws {
        let start: [[Float]] = [[0.5, -0.25, 1, 2], [0.1, -0.1]]
        let (a, pa) = makeRun(start)
        for s in 0..<2 { setGradients(pa, step: s); a.step(learningRate: 0.1) }

        // Round trip the state through the file format, into a fresh optimizer over copied values.
        let file = try SafeTensorsFile.decode(SafeTensorsFile(entries: a.stateEntries()).encoded(), source: "mem")
        XCTAssertEqual(file.entries.map(\.name), ["optimizer.step_count", "optimizer.layer.weight.momentum_buffer",
                                                  "optimizer.layer.bias.momentum_buffer"])
        let (b, pb) = makeRun(pa.map(\.value.scalars))
        try b.loadState(from: file)
        XCTAssertEqual(b.stepCount, 2)
        XCTAssertTrue(b.momentumInitialized)

        for s in 2..<4 {
            setGradients(pa, step: s); a.step(learningRate: 0.05)
            setGradients(pb, step: s); b.step(learningRate: 0.05)
        }
        for i in 0..<2 { XCTAssertEqual(pa[i].value, pb[i].value, "parameter \(i) after resume") }
    }

    func test_stateBeforeAnyStep_hasNoBuffers_andLoadsAsUninitialised() throws {
        let (a, _) = makeRun([[1, 2, 3, 4], [5, 6]])
        XCTAssertEqual(a.stateEntries().map(\.name), ["optimizer.step_count"])
        let (b, pb) = makeRun([[1, 2, 3, 4], [5, 6]])
        setGradients(pb, step: 0); b.step(learningRate: 0.1)
        try b.loadState(from: SafeTensorsFile(entries: a.stateEntries()))
        XCTAssertEqual(b.stepCount, 0)
        XCTAssertFalse(b.momentumInitialized)
    }

    func test_loadState_rejectsMismatches_andChangesNothing() {
        let (a, pa) = makeRun([[1, 2, 3, 4], [5, 6]])
        setGradients(pa, step: 0); a.step(learningRate: 0.1)
        let good = a.stateEntries()

        func expectFailure(_ entries: [SafeTensorsEntry], _ check: (CheckpointError) -> Bool, line: UInt = #line) {
            let (b, _) = makeRun([[1, 2, 3, 4], [5, 6]])
            do {
                try b.loadState(from: SafeTensorsFile(entries: entries))
                XCTFail("loadState succeeded", line: line)
            } catch {
                XCTAssertTrue(check(error), "unexpected error \(error)", line: line)
                XCTAssertTrue(error.description.contains("hint: "), line: line)
            }
            XCTAssertEqual(b.stepCount, 0, line: line)
            XCTAssertFalse(b.momentumInitialized, line: line)
        }
        expectFailure(Array(good.dropFirst())) { if case .missingTensor("optimizer.step_count", _) = $0 { true } else { false } }
        expectFailure(good.filter { !$0.name.contains("bias") }) {
            if case .missingTensor("optimizer.layer.bias.momentum_buffer", _) = $0 { true } else { false }
        }
        expectFailure(good + [SafeTensorsEntry(name: "optimizer.other.momentum_buffer", tensor: Tensor(scalar: 0))]) {
            if case .unexpectedTensor("optimizer.other.momentum_buffer", _) = $0 { true } else { false }
        }
        var wrongShape = good
        wrongShape[1] = SafeTensorsEntry(name: wrongShape[1].name, tensor: Tensor(zeros: [2, 2]))
        expectFailure(wrongShape) {
            if case .shapeMismatch("optimizer.layer.weight.momentum_buffer", [4], [2, 2], _) = $0 { true } else { false }
        }
        var wrongType = good
        wrongType[0] = SafeTensorsEntry(name: "optimizer.step_count", tensor: Tensor(scalar: 1))
        expectFailure(wrongType) { if case .dtypeMismatch("optimizer.step_count", .i64, .f32, _) = $0 { true } else { false } }
    }

    func test_config_isCodable_andPresetsMatchTheReferenceRecipes() throws {
        let data = try JSONEncoder().encode(SGDConfig.hat)
        XCTAssertEqual(try JSONDecoder().decode(SGDConfig.self, from: data), SGDConfig.hat)
        XCTAssertEqual(SGDConfig.tradesCIFAR10, SGDConfig(learningRate: 0.1, momentum: 0.9, weightDecay: 2e-4))
        XCTAssertTrue(SGDConfig.hat.nesterov)
        XCTAssertNil(SGDConfig.hat.problem)
        XCTAssertNotNil(SGDConfig(learningRate: 0.1, momentum: 0, weightDecay: 0, nesterov: true).problem)
        XCTAssertNotNil(SGDConfig(learningRate: 0.1, dampening: 0.1, weightDecay: 0, nesterov: true).problem)
    }
}
