// Elementwise.swift: parameter-free layers: ReLU, max pool, average pool, flatten, dropout.
// Each keeps in its cache only what its backward needs. Arithmetic: Kernels/Activation, Pooling, Dropout.

import Kernels
import Tensors

/// `max(x, 0)`; gradient `dy · [x > 0]` (zero at the kink, as PyTorch).
public final class ReLU: Layer {
    public struct Cache { public let input: Tensor }
    public init() {}
    public func forward(_ input: Tensor, mode: ForwardMode) -> (output: Tensor, cache: Cache) {
        (Activation.relu(input), Cache(input: input))
    }
    public func backward(_ dOutput: Tensor, cache: Cache, targets: GradientTargets) -> Tensor? {
        targets.contains(.input) ? Activation.reluBackward(dOutput, input: cache.input) : nil
    }
    public func stateEntries(prefix: String) -> [StateEntry] { [] }
}

/// Max pooling with a square window, no padding (PyTorch `nn.MaxPool2d(k, s)`).
/// Shapes: `[N, C, H, W]` → `[N, C, ⌊(H−k)/s⌋+1, ⌊(W−k)/s⌋+1]`.
public final class MaxPool2d: Layer {
    public let kernel: Int, stride: Int
    public struct Cache { public let inputShape: [Int]; public let argmax: [Int32] }
    public init(kernel: Int = 2, stride: Int? = nil) { self.kernel = kernel; self.stride = stride ?? kernel }
    public func forward(_ input: Tensor, mode: ForwardMode) -> (output: Tensor, cache: Cache) {
        let (y, argmax) = Pooling.maxPool(input, kernel: kernel, stride: stride)
        return (y, Cache(inputShape: input.shape, argmax: argmax))
    }
    public func backward(_ dOutput: Tensor, cache: Cache, targets: GradientTargets) -> Tensor? {
        guard targets.contains(.input) else { return nil }
        return Pooling.maxPoolBackward(dOutput, argmax: cache.argmax, inputShape: cache.inputShape,
                                       kernel: kernel, stride: stride)
    }
    public func stateEntries(prefix: String) -> [StateEntry] { [] }
}

/// Average pooling with a square window, no padding (`F.avg_pool2d(x, k)`; ResNet heads use k = 4,
/// WideResNet k = 8). Shapes as `MaxPool2d`.
public final class AvgPool2d: Layer {
    public let kernel: Int, stride: Int
    public struct Cache { public let inputShape: [Int] }
    public init(kernel: Int, stride: Int? = nil) { self.kernel = kernel; self.stride = stride ?? kernel }
    public func forward(_ input: Tensor, mode: ForwardMode) -> (output: Tensor, cache: Cache) {
        (Pooling.avgPool(input, kernel: kernel, stride: stride), Cache(inputShape: input.shape))
    }
    public func backward(_ dOutput: Tensor, cache: Cache, targets: GradientTargets) -> Tensor? {
        guard targets.contains(.input) else { return nil }
        return Pooling.avgPoolBackward(dOutput, inputShape: cache.inputShape, kernel: kernel, stride: stride)
    }
    public func stateEntries(prefix: String) -> [StateEntry] { [] }
}

/// Inverted dropout (PyTorch `nn.Dropout(p)`): in `.training` mode zeroes each element with
/// probability p and scales survivors by 1/(1−p); identity in `.inference` mode.
///
/// The mask stream comes from the layer's own seeded generator, whose state is saved for exact
/// resume (`randomState`).
public final class Dropout: Layer {
    public let probability: Float
    public var randomState: SplitMix64
    public enum Cache { case identity, masked(Tensor) }

    public init(probability: Float, seed: UInt64) {
        precondition(probability >= 0 && probability < 1, "Dropout: p must be in [0, 1), got \(probability)")
        self.probability = probability
        randomState = SplitMix64(seed: seed)
    }
    public func forward(_ input: Tensor, mode: ForwardMode) -> (output: Tensor, cache: Cache) {
        guard mode == .training, probability > 0 else { return (input, .identity) }
        let (y, mask) = Kernels.Dropout.forward(input, p: probability, rng: &randomState)
        return (y, .masked(mask))
    }
    public func backward(_ dOutput: Tensor, cache: Cache, targets: GradientTargets) -> Tensor? {
        guard targets.contains(.input) else { return nil }
        switch cache {
        case .identity: return dOutput
        case .masked(let mask): return Kernels.Dropout.backward(dOutput, mask: mask)
        }
    }
    public func stateEntries(prefix: String) -> [StateEntry] { [] }
}
