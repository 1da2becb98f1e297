// AvgPool2D.swift: the average-pooling layer (square window, no padding) of the ResNet heads,
// parameter-free; its cache keeps only the input shape. Arithmetic: Kernels/Pooling.swift.

import Kernels
import Tensors

/// Average pooling with a square window, no padding (`F.avg_pool2d(x, k)`; ResNet heads use k = 4,
/// WideResNet k = 8). Shapes as `MaxPool2D`.
public final class AvgPool2D: Layer {
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
