// Layer.swift: the contracts every differentiable layer follows: explicit forward mode, explicit
// gradient targets, parameters with accumulating gradients, and named state for checkpoints.
// Concrete layers live in their own files; models compose them in Models/.

import Tensors

/// How BatchNorm and Dropout behave in a forward pass. Always an argument, never a stored flag:
/// attacks pass `.inference`, training losses pass `.training`.
public enum ForwardMode: Sendable, Hashable {
    /// Batch statistics (and running-statistic updates) in BatchNorm; Dropout active.
    case training
    /// Running statistics in BatchNorm; Dropout is the identity.
    case inference
}

/// Which gradients a backward pass computes.
///
/// Attacks need only `.input` (no weight gradients: about a third of the backward cost saved);
/// training needs `.parameters`; a layer inside a network needs `.input` too, to pass the
/// gradient on.
public struct GradientTargets: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let input = GradientTargets(rawValue: 1)
    public static let parameters = GradientTargets(rawValue: 2)
    public static let all: GradientTargets = [.input, .parameters]
}

/// A trainable tensor and its gradient. Gradients accumulate (`+=`) across backward passes until
/// `zeroGradient()` (called once per optimisation step), so several forward/backward passes of one
/// step (clean, adversarial, memory) add up, as in PyTorch.
public final class Parameter: @unchecked Sendable {
    public var value: Tensor
    public var gradient: Tensor
    /// Whether SGD weight decay applies (true for all parameters by default, matching PyTorch when
    /// the whole `model.parameters()` is passed to the optimizer).
    public var decays: Bool

    public init(_ value: Tensor, decays: Bool = true) {
        self.value = value
        self.gradient = Tensor(zeros: value.shape)
        self.decays = decays
    }

    public func zeroGradient() { gradient.fill(0) }
}

/// A non-trainable float tensor saved in checkpoints (BatchNorm running mean and variance).
public final class Buffer: @unchecked Sendable {
    public var value: Tensor
    public init(_ value: Tensor) { self.value = value }
}

/// A non-trainable integer counter saved in checkpoints as int64 (BatchNorm `num_batches_tracked`).
public final class Counter: @unchecked Sendable {
    public var value: Int64
    public init(_ value: Int64 = 0) { self.value = value }
}

/// One named entry of a model's state, in PyTorch `state_dict` order and naming
/// (`conv1.weight`, `bn1.running_mean`, `bn1.num_batches_tracked`, `layer1.0.conv1.weight`, …).
public struct StateEntry {
    public enum Reference {
        case parameter(Parameter)
        case buffer(Buffer)
        case counter(Counter)
    }
    public var name: String
    public var reference: Reference

    public init(_ name: String, _ reference: Reference) {
        self.name = name
        self.reference = reference
    }

    /// The entry's shape (`[]` for a counter).
    public var shape: [Int] {
        switch reference {
        case .parameter(let p): return p.value.shape
        case .buffer(let b): return b.value.shape
        case .counter: return []
        }
    }
}

/// Something with named checkpoint state (layers, blocks, models).
public protocol StateProvider: AnyObject {
    /// State entries with names prefixed by `prefix` (empty, or ending in ".").
    func stateEntries(prefix: String) -> [StateEntry]
}

extension StateProvider {
    /// Every trainable parameter, in state-dict order.
    public var parameters: [Parameter] {
        stateEntries(prefix: "").compactMap {
            if case .parameter(let p) = $0.reference { return p } else { return nil }
        }
    }

    /// Parameters with their state-dict names.
    public var namedParameters: [(name: String, parameter: Parameter)] {
        stateEntries(prefix: "").compactMap {
            if case .parameter(let p) = $0.reference { return ($0.name, p) } else { return nil }
        }
    }

    /// Total number of trainable scalars.
    public var parameterCount: Int { parameters.reduce(0) { $0 + $1.value.count } }

    /// Zeroes every parameter gradient (once per optimisation step).
    public func zeroGradients() { for p in parameters { p.zeroGradient() } }
}

/// A differentiable layer with an explicit cache.
///
/// `forward` returns the output and a `Cache` that holds exactly what `backward` needs. The caller
/// owns the cache, so several forward passes (clean, adversarial, memory) can be in flight at once
/// and each backpropagated separately.
///
/// `backward` accumulates parameter gradients (`+=`) when `targets` contains `.parameters` and
/// returns the input gradient when it contains `.input` (else nil).
public protocol Layer: StateProvider {
    associatedtype Cache
    func forward(_ input: Tensor, mode: ForwardMode) -> (output: Tensor, cache: Cache)
    func backward(_ dOutput: Tensor, cache: Cache, targets: GradientTargets) -> Tensor?
}
