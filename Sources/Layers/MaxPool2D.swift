// MaxPool2D.swift: the max-pooling layer (square window, no padding), parameter-free; its cache keeps
// the argmax of every window for the backward scatter. Arithmetic: Kernels/Pooling.swift.

import Kernels
import Tensors

/// Max pooling with a square window, no padding (PyTorch `nn.MaxPool2d(k, s)`).
/// Shapes: `[N, C, H, W]` → `[N, C, ⌊(H−k)/s⌋+1, ⌊(W−k)/s⌋+1]`.
public final class MaxPool2D: Layer {
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
