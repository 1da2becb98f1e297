// SGD.swift: stochastic gradient descent with momentum, dampening, Nesterov and L2 weight decay,
// following torch.optim.SGD step for step, plus its checkpoint state (momentum buffers by name).
// It does not schedule the learning rate (LearningRateSchedule.swift) and does not zero gradients
// (the training loop calls `zeroGradients()` once per step, explicitly).

import Kernels
import Tensors

// MARK: - Config

/// SGD hyperparameters. The learning rate is the *base* rate a `LearningRateSchedule` scales.
///
/// Defaults: `momentum = 0.9`, `dampening = 0`, `nesterov = false` are what TRADES, MART and HAT
/// use (algorithms.md §2.3, §3, §4.3; HAT sets `nesterov = true`). `learningRate` and
/// `weightDecay` differ per recipe and have no default; see the presets.
public struct SGDConfig: Codable, Sendable, Hashable {
    /// Base learning rate (> 0).
    public var learningRate: Float
    /// Momentum factor μ in [0, 1). 0 disables the momentum buffer.
    public var momentum: Float
    /// Dampening τ in [0, 1]: the new gradient enters the buffer scaled by (1 − τ).
    public var dampening: Float
    /// L2 penalty λ ≥ 0 added to the gradient as λ·p (PyTorch's coupled weight decay), for
    /// parameters with `decays == true`.
    public var weightDecay: Float
    /// Nesterov momentum; needs μ > 0 and τ = 0 (as PyTorch requires).
    public var nesterov: Bool

    public init(learningRate: Float, momentum: Float = 0.9, dampening: Float = 0,
                weightDecay: Float, nesterov: Bool = false) {
        self.learningRate = learningRate
        self.momentum = momentum
        self.dampening = dampening
        self.weightDecay = weightDecay
        self.nesterov = nesterov
    }

    /// TRADES CIFAR-10 (`train_trades_cifar10.py`): lr 0.1, momentum 0.9, weight decay 2e-4.
    public static let tradesCIFAR10 = SGDConfig(learningRate: 0.1, weightDecay: 2e-4)
    /// TRADES MNIST (`train_trades_mnist.py`): lr 0.01, momentum 0.9, no weight decay.
    public static let tradesMNIST = SGDConfig(learningRate: 0.01, weightDecay: 0)
    /// MART WRN-34-10: lr 0.1, momentum 0.9, weight decay 7e-4 (algorithms.md §3).
    public static let martWRN = SGDConfig(learningRate: 0.1, weightDecay: 7e-4)
    /// HAT: Nesterov momentum 0.9, weight decay 5e-4; lr is the OneCycle peak 0.21 (algorithms.md §4.3).
    public static let hat = SGDConfig(learningRate: 0.21, weightDecay: 5e-4, nesterov: true)

    /// The first problem with these values, or nil when they are usable (PyTorch raises the same).
    public var problem: String? {
        if !(learningRate >= 0) { return "learning rate \(learningRate) must be ≥ 0" }
        if !(momentum >= 0) { return "momentum \(momentum) must be ≥ 0" }
        if !(weightDecay >= 0) { return "weight decay \(weightDecay) must be ≥ 0" }
        if !(dampening >= 0 && dampening <= 1) { return "dampening \(dampening) must be in [0, 1]" }
        if nesterov && (momentum <= 0 || dampening != 0) { return "Nesterov momentum needs momentum > 0 and dampening 0" }
        return nil
    }
}

// MARK: - Optimizer

/// Stochastic gradient descent with the update rule of `torch.optim.SGD` (maximize = false,
/// single-tensor path), operation for operation; results match PyTorch to rounding (both use fused
/// multiply-adds for `x + a·y`).
///
/// For each parameter p with gradient ∇, at learning rate η and momentum μ of this step:
/// ```
/// g = ∇ + λ·p                         if λ ≠ 0 and p.decays
/// if μ ≠ 0:
///     b = g                           on the first step with momentum
///     b = μ·b + (1 − τ)·g             afterwards
///     g = nesterov ? g + μ·b : b
/// p = p − η·g
/// ```
/// The gradient tensors are read, never modified. Buffers have the parameter's shape.
///
/// Not thread-safe: one optimizer per training loop.
public final class SGD {
    public let config: SGDConfig
    /// Parameters in update order, with their state-dict names (unique).
    public let parameters: [(name: String, parameter: Parameter)]
    /// Momentum buffer per parameter (same order); empty tensors until first used.
    private var momentumBuffers: [Tensor]
    /// Whether `momentumBuffers` hold state (false until the first step with momentum ≠ 0).
    public private(set) var momentumInitialized: Bool
    /// Number of `step` calls so far (including those restored from a checkpoint).
    public private(set) var stepCount: Int

    /// Tensor names in the training-state file.
    public static let stepCountName = "optimizer.step_count"
    public static func momentumBufferName(_ parameterName: String) -> String {
        "optimizer.\(parameterName).momentum_buffer"
    }

    /// - Precondition: `config.problem == nil` and parameter names are unique.
    public init(parameters: [(name: String, parameter: Parameter)], config: SGDConfig) {
        if let problem = config.problem { preconditionFailure("SGD: \(problem)") }
        precondition(Set(parameters.map(\.name)).count == parameters.count, "SGD: parameter names must be unique")
        self.config = config
        self.parameters = parameters
        self.momentumBuffers = parameters.map { _ in Tensor(zeros: [0]) }
        self.momentumInitialized = false
        self.stepCount = 0
    }

    /// One update of every parameter from its accumulated gradient.
    /// - Parameters:
    ///   - learningRate: η for this step (from the schedule), ≥ 0.
    ///   - momentum: μ for this step, overriding `config.momentum` (OneCycle momentum cycling);
    ///     nil keeps the configured value.
    public func step(learningRate: Float, momentum: Float? = nil) {
        let mu = momentum ?? config.momentum
        let useMomentum = mu != 0
        let first = useMomentum && !momentumInitialized
        for i in parameters.indices {
            let p = parameters[i].parameter
            precondition(p.gradient.shape == p.value.shape,
                         "SGD: gradient shape \(p.gradient.shape) ≠ parameter shape \(p.value.shape) for \(parameters[i].name)")
            let lambda: Float = p.decays ? config.weightDecay : 0
            SGD.update(value: &p.value, gradient: p.gradient, buffer: &momentumBuffers[i],
                       learningRate: learningRate, momentum: useMomentum ? mu : 0, firstMomentumStep: first,
                       dampening: config.dampening, weightDecay: lambda, nesterov: config.nesterov)
        }
        if useMomentum { momentumInitialized = true }
        stepCount += 1
    }

    /// The update for one parameter (see the type's formula), with the flat kernels of
    /// `Elementwise` (each `x += a·y` one fused multiply-add per element, as PyTorch's vectorised
    /// `add(…, alpha:)` is). `buffer` is untouched when `momentum == 0`; `gradient` is never written
    /// (copy-on-write gives `g` its own storage on the first modification).
    private static func update(value: inout Tensor, gradient: Tensor, buffer: inout Tensor,
                               learningRate lr: Float, momentum mu: Float, firstMomentumStep: Bool,
                               dampening: Float, weightDecay lambda: Float, nesterov: Bool) {
        var g = gradient
        if lambda != 0 { Elementwise.addScaled(&g, value, scale: lambda) }          // g = ∇ + λ·p
        if mu != 0 {
            if firstMomentumStep {
                buffer = g.copy()                                                    // b = g
            } else {
                buffer = Elementwise.scaled(buffer, by: mu)                          // b = μ·b + (1 − τ)·g
                Elementwise.addScaled(&buffer, g, scale: 1 - dampening)
            }
            if nesterov { Elementwise.addScaled(&g, buffer, scale: mu) } else { g = buffer }
        }
        Elementwise.addScaled(&value, g, scale: -lr)                                 // p = p − η·g
    }

    // MARK: - Checkpoint state

    /// The optimizer state as safetensors entries: `optimizer.step_count` (I64 scalar) and, once
    /// initialised, `optimizer.<parameter name>.momentum_buffer` (F32, the parameter's shape).
    public func stateEntries() -> [SafeTensorsEntry] {
        var out = [SafeTensorsEntry(name: SGD.stepCountName, int64Scalars: [Int64(stepCount)])]
        if momentumInitialized {
            for (i, (name, _)) in parameters.enumerated() {
                out.append(SafeTensorsEntry(name: SGD.momentumBufferName(name), tensor: momentumBuffers[i]))
            }
        }
        return out
    }

    /// Restores the state written by `stateEntries()` from `file`. Entries whose names do not start
    /// with `optimizer.` are ignored (they belong to someone else); among those that do, every name
    /// must be known, the step count must be present, and momentum buffers must be present for all
    /// parameters or for none, each with its parameter's shape and dtype F32. Nothing changes unless
    /// every check passes.
    public func loadState(from file: SafeTensorsFile, source: String = "<optimizer state>") throws(CheckpointError) {
        var byName: [String: SafeTensorsEntry] = [:]
        for e in file.entries where e.name.hasPrefix("optimizer.") { byName[e.name] = e }

        guard let stepEntry = byName.removeValue(forKey: SGD.stepCountName) else {
            throw .missingTensor(name: SGD.stepCountName, file: source)
        }
        guard stepEntry.dtype == .i64 else {
            throw .dtypeMismatch(name: SGD.stepCountName, expected: .i64, found: stepEntry.dtype, file: source)
        }
        guard stepEntry.shape == [] else {
            throw .shapeMismatch(name: SGD.stepCountName, expected: [], found: stepEntry.shape, file: source)
        }
        let steps: Int64
        do { steps = try stepEntry.int64Values()[0] } catch { throw .file(error) }
        guard steps >= 0 else {
            throw .invalidState(file: source, reason: "\(SGD.stepCountName) is \(steps), expected ≥ 0")
        }

        var buffers: [Tensor] = []
        var missing: String? = nil
        for (name, parameter) in parameters {
            let key = SGD.momentumBufferName(name)
            guard let e = byName.removeValue(forKey: key) else {
                if missing == nil { missing = key }
                continue
            }
            guard e.dtype == .f32 else { throw .dtypeMismatch(name: key, expected: .f32, found: e.dtype, file: source) }
            guard e.shape == parameter.value.shape else {
                throw .shapeMismatch(name: key, expected: parameter.value.shape, found: e.shape, file: source)
            }
            do { buffers.append(try e.tensor()) } catch { throw .file(error) }
        }
        if let unexpected = file.entries.first(where: { byName[$0.name] != nil }) {
            throw .unexpectedTensor(name: unexpected.name, file: source)
        }
        if let missing, !buffers.isEmpty { throw .missingTensor(name: missing, file: source) }

        // All checks passed: assign.
        stepCount = Int(steps)
        momentumInitialized = !buffers.isEmpty
        momentumBuffers = buffers.isEmpty ? parameters.map { _ in Tensor(zeros: [0]) } : buffers
    }
}
