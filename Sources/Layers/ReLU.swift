// ReLU.swift: the rectifier layer, max(x, 0), parameter-free; its cache keeps the input for the
// backward mask. Arithmetic: Kernels/Activation.swift.

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
