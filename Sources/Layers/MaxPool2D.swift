// MaxPool2D.swift: the max-pooling layer (square window, no padding), parameter-free; its cache keeps
// the argmax of every window for the backward scatter and the output (for the backward fused with the
// ReLU mask of the layer before it). Arithmetic: Kernels/Pooling.swift.

import Kernels
import Tensors

/// Max pooling with a square window, no padding (PyTorch `nn.MaxPool2d(k, s)`).
/// Shapes: `[N, C, H, W]` → `[N, C, ⌊(H−k)/s⌋+1, ⌊(W−k)/s⌋+1]`.
public final class MaxPool2D: Layer {
    public let kernel: Int, stride: Int
    public struct Cache {
        public let inputShape: [Int]
        public let argmax: [Int32]
        /// The forward's output (shared storage, not a copy): the ReLU mask of `backwardThroughReLU`.
        public let output: Tensor
    }
    public init(kernel: Int = 2, stride: Int? = nil) { self.kernel = kernel; self.stride = stride ?? kernel }
    public func forward(_ input: Tensor, mode: ForwardMode) -> (output: Tensor, cache: Cache) {
        let (y, argmax) = Pooling.maxPool(input, kernel: kernel, stride: stride)
        return (y, Cache(inputShape: input.shape, argmax: argmax, output: y))
    }
    public func backward(_ dOutput: Tensor, cache: Cache, targets: GradientTargets) -> Tensor? {
        guard targets.contains(.input) else { return nil }
        return Pooling.maxPoolBackward(dOutput, argmax: cache.argmax, inputShape: cache.inputShape,
                                       kernel: kernel, stride: stride)
    }
    /// The backward of ReLU → max pool in one pass, for a pool whose input is the output of a ReLU
    /// (or of a conv with a fused ReLU): `reluBackward(backward(dOutput), input: poolInput)`, bit for
    /// bit, computed from the pooled tensors only (`Pooling.maxPoolReLUBackward`). The caller must
    /// then skip that ReLU's own mask.
    public func backwardThroughReLU(_ dOutput: Tensor, cache: Cache, targets: GradientTargets) -> Tensor? {
        guard targets.contains(.input) else { return nil }
        return Pooling.maxPoolReLUBackward(dOutput, argmax: cache.argmax, pooled: cache.output,
                                           inputShape: cache.inputShape, kernel: kernel, stride: stride)
    }
    public func stateEntries(prefix: String) -> [StateEntry] { [] }
}
