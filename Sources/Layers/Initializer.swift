// Initializer.swift: weight initialisation schemes named after their PyTorch counterparts, so that
// each model can state exactly which one its reference uses (algorithms.md §6). Seeded; no globals.

import Tensors

/// How a weight tensor is initialised. `fanIn` = in-features (linear) or C·R·S (conv);
/// `fanOut` = out-features or K·R·S.
public enum Initializer: Sendable, Hashable {
    /// PyTorch's default for `nn.Conv2d` and `nn.Linear` weights, `kaiming_uniform_(a = √5)`:
    /// U(−b, b) with b = 1/√fanIn.
    case pytorchDefault
    /// `kaiming_normal_` with its defaults (mode fan_in, gain √2): N(0, 2/fanIn). SmallCNN convs.
    case kaimingNormalFanIn
    /// N(0, 2/fanOut) with fanOut = R·S·K: WideResNet convs (`normal_(0, sqrt(2/n))`, n = k²·out).
    case kaimingNormalFanOut
    /// All zeros (SmallCNN's last layer, BatchNorm β, biases in WRN's head).
    case zeros
    /// All ones (BatchNorm γ).
    case ones
    /// U(−1/√fanIn, 1/√fanIn): PyTorch's default bias initialisation for `nn.Conv2d` and `nn.Linear`.
    case pytorchDefaultBias

    /// A tensor of `shape` initialised with this scheme.
    public func make(shape: [Int], fanIn: Int, fanOut: Int, rng: inout SplitMix64) -> Tensor {
        switch self {
        case .zeros:
            return Tensor(zeros: shape)
        case .ones:
            return Tensor(shape: shape, repeating: 1)
        case .pytorchDefault, .pytorchDefaultBias:
            let bound = 1 / Float(fanIn).squareRoot()
            return Tensor.randomUniform(shape: shape, low: -bound, high: bound, rng: &rng)
        case .kaimingNormalFanIn:
            return Tensor.randomNormal(shape: shape, std: (2 / Float(fanIn)).squareRoot(), rng: &rng)
        case .kaimingNormalFanOut:
            return Tensor.randomNormal(shape: shape, std: (2 / Float(fanOut)).squareRoot(), rng: &rng)
        }
    }
}
