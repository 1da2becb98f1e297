// Conv2DLayer.swift: the 2-D convolution layer (PyTorch `nn.Conv2d` names: `weight [K, C, R, S]`,
// optional `bias [K]`). Square kernels, one stride and one zero padding for both axes.
// The arithmetic lives in Kernels/Conv2D.swift; this file only manages parameters and caches.

import Kernels
import Tensors

/// 2-D convolution: `y[n, k] = Σ_c x[n, c] ⋆ W[k, c] + b[k]`.
///
/// Shapes: input `[N, C, H, W]`, output `[N, K, P, Q]` with P = (H + 2·pad − R)/stride + 1.
public final class Conv2DLayer: Layer {
    public let inChannels: Int, outChannels: Int, kernel: Int, stride: Int, padding: Int
    public let weight: Parameter
    public let bias: Parameter?

    public struct Cache {
        /// The forward input, needed for the weight gradient.
        public let input: Tensor
        public let geometry: ConvGeometry
    }

    public init(_ inChannels: Int, _ outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0,
                bias: Bool = true, weightInit: Initializer = .pytorchDefault,
                biasInit: Initializer = .pytorchDefaultBias, rng: inout SplitMix64) {
        self.inChannels = inChannels; self.outChannels = outChannels
        self.kernel = kernel; self.stride = stride; self.padding = padding
        let fanIn = inChannels * kernel * kernel, fanOut = outChannels * kernel * kernel
        weight = Parameter(weightInit.make(shape: [outChannels, inChannels, kernel, kernel],
                                           fanIn: fanIn, fanOut: fanOut, rng: &rng))
        self.bias = bias ? Parameter(biasInit.make(shape: [outChannels], fanIn: fanIn, fanOut: fanOut, rng: &rng)) : nil
    }

    public func forward(_ input: Tensor, mode: ForwardMode) -> (output: Tensor, cache: Cache) {
        let g = Conv2D.geometry(input: input.shape, weight: weight.value.shape, stride: stride, padding: padding)
        let y = Conv2D.forward(input, weight: weight.value, bias: bias?.value, geometry: g)
        return (y, Cache(input: input, geometry: g))
    }

    public func backward(_ dOutput: Tensor, cache: Cache, targets: GradientTargets) -> Tensor? {
        if targets.contains(.parameters) {
            if let bias {
                Conv2D.backwardWeight(dOutput, input: cache.input, geometry: cache.geometry,
                                      dWeight: &weight.gradient, dBias: &bias.gradient)
            } else {
                Conv2D.backwardWeight(dOutput, input: cache.input, geometry: cache.geometry, dWeight: &weight.gradient)
            }
        }
        guard targets.contains(.input) else { return nil }
        return Conv2D.backwardInput(dOutput, weight: weight.value, geometry: cache.geometry)
    }

    public func stateEntries(prefix: String) -> [StateEntry] {
        var e = [StateEntry(prefix + "weight", .parameter(weight))]
        if let bias { e.append(StateEntry(prefix + "bias", .parameter(bias))) }
        return e
    }

    /// Multiply-accumulates of one forward pass for a single `[C, H, W]` input.
    public func macs(height: Int, width: Int) -> Int {
        let p = (height + 2 * padding - kernel) / stride + 1, q = (width + 2 * padding - kernel) / stride + 1
        return outChannels * p * q * inChannels * kernel * kernel
    }
}
