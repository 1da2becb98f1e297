// LinearLayer.swift: the fully connected layer (PyTorch `nn.Linear` names and layout: `weight
// [out, in]`, `bias [out]`). Arithmetic: Kernels/Linear.swift (one sgemm per pass).

import Kernels
import Tensors

/// `y = x · Wᵀ + b`. Shapes: input `[N, in]` (any `[N, …]` with in = product of the rest is
/// flattened), output `[N, out]`.
public final class LinearLayer: Layer {
    public let inFeatures: Int, outFeatures: Int
    public let weight: Parameter
    public let bias: Parameter?

    public struct Cache {
        public let input: Tensor
    }

    public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true,
                weightInit: Initializer = .pytorchDefault, biasInit: Initializer = .pytorchDefaultBias,
                rng: inout SplitMix64) {
        self.inFeatures = inFeatures; self.outFeatures = outFeatures
        weight = Parameter(weightInit.make(shape: [outFeatures, inFeatures], fanIn: inFeatures,
                                           fanOut: outFeatures, rng: &rng))
        self.bias = bias ? Parameter(biasInit.make(shape: [outFeatures], fanIn: inFeatures, fanOut: outFeatures,
                                                   rng: &rng)) : nil
    }

    public func forward(_ input: Tensor, mode: ForwardMode) -> (output: Tensor, cache: Cache) {
        let x = input.reshaped([input.shape[0], input.count / max(input.shape[0], 1)])
        precondition(x.shape[1] == inFeatures, "LinearLayer(\(inFeatures)→\(outFeatures)): input \(input.shape)")
        return (Linear.forward(x, weight: weight.value, bias: bias?.value), Cache(input: x))
    }

    public func backward(_ dOutput: Tensor, cache: Cache, targets: GradientTargets) -> Tensor? {
        if targets.contains(.parameters) {
            if let bias {
                Linear.backwardWeight(dOutput, input: cache.input, dWeight: &weight.gradient, dBias: &bias.gradient)
            } else {
                var scratch = Tensor(zeros: [outFeatures])
                Linear.backwardWeight(dOutput, input: cache.input, dWeight: &weight.gradient, dBias: &scratch)
            }
        }
        guard targets.contains(.input) else { return nil }
        return Linear.backwardInput(dOutput, weight: weight.value, inputShape: cache.input.shape)
    }

    public func stateEntries(prefix: String) -> [StateEntry] {
        var e = [StateEntry(prefix + "weight", .parameter(weight))]
        if let bias { e.append(StateEntry(prefix + "bias", .parameter(bias))) }
        return e
    }
}
