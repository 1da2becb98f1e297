// DropoutLayer.swift: inverted dropout as a layer, with its own seeded mask stream (saved for exact
// resume); its cache keeps the mask. Arithmetic: Kernels/Dropout.swift.

import Kernels
import Tensors

/// Inverted dropout (PyTorch `nn.Dropout(p)`): in `.training` mode zeroes each element with
/// probability p and scales survivors by 1/(1−p); identity in `.inference` mode.
///
/// The mask stream comes from the layer's own seeded generator, whose state is saved for exact
/// resume (`randomState`).
public final class DropoutLayer: Layer {
    public let probability: Float
    public var randomState: SplitMix64
    public enum Cache { case identity, masked(Tensor) }

    public init(probability: Float, seed: UInt64) {
        precondition(probability >= 0 && probability < 1, "DropoutLayer: p must be in [0, 1), got \(probability)")
        self.probability = probability
        randomState = SplitMix64(seed: seed)
    }
    public func forward(_ input: Tensor, mode: ForwardMode) -> (output: Tensor, cache: Cache) {
        guard mode == .training, probability > 0 else { return (input, .identity) }
        let (y, mask) = Dropout.forward(input, p: probability, rng: &randomState)
        return (y, .masked(mask))
    }
    public func backward(_ dOutput: Tensor, cache: Cache, targets: GradientTargets) -> Tensor? {
        guard targets.contains(.input) else { return nil }
        switch cache {
        case .identity: return dOutput
        case .masked(let mask): return Dropout.backward(dOutput, mask: mask)
        }
    }
    public func stateEntries(prefix: String) -> [StateEntry] { [] }
}
