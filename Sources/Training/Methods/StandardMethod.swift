// StandardMethod.swift: natural training (cross-entropy on clean images) and Madry PGD adversarial
// training (cross-entropy on PGD-CE examples), the two methods with a single loss term.

import Attacks
import Kernels
import Layers
import Tensors

/// Standard training: `L = CE(f(x), y)`, one training-mode forward pass (BatchNorm running
/// statistics updated once per step).
///
/// Terms: `ce`, `total`.
public struct StandardMethod: TrainingMethod {
    public let config: StandardConfig

    public init(config: StandardConfig = StandardConfig()) { self.config = config }

    public func step(model: AnyClassifier, images: Tensor, labels: [Int32], auxiliary: [any AuxiliaryLoss],
                     attackStart: AttackStart, rng: inout SplitMix64) -> MethodStepResult {
        let (logits, cache) = model.forward(images, mode: .training)
        let ce = Loss.crossEntropy(logits, labels: labels)
        var terms = LossTerms()
        terms.add("ce", ce.loss)
        var dClean = ce.dLogits
        terms.applyAuxiliaries(auxiliary, model: model, cleanLogits: logits, labels: labels, dCleanLogits: &dClean)
        accumulateParameterGradients(model, dClean, cache: cache)
        return terms.result(cleanLogits: logits, adversarial: nil, adversarialLogits: nil)
    }
}

/// Madry PGD adversarial training (algorithms.md §5.1):
///
/// ```
/// x̃ = PGD_CE(x)            inference mode, input gradients only (config.attack: uniform start)
/// L = CE(f(x̃), y)           training mode
/// ```
/// Clean logits, which the step reports (the trainer's clean accuracy; auxiliaries need them):
/// - without auxiliaries, one extra **inference-mode** forward pass of `x`, nothing cached and no
///   BatchNorm update: BatchNorm running statistics are updated **once** per step, as in the reference;
/// - with auxiliaries, a **training-mode** forward pass of `x` (the auxiliaries need training-mode
///   logits and a backward pass through them): running statistics are then updated **twice**.
///
/// Terms: `adv_ce`, the auxiliaries' terms, `total`.
public struct PGDATMethod: TrainingMethod {
    public let config: PGDATConfig

    public init(config: PGDATConfig = PGDATConfig()) { self.config = config }

    public func step(model: AnyClassifier, images: Tensor, labels: [Int32], auxiliary: [any AuxiliaryLoss],
                     attackStart: AttackStart, rng: inout SplitMix64) -> MethodStepResult {
        let adversarial = PGD.attack(model, images: images, labels: labels, config: config.attack,
                                     objective: .crossEntropy, mode: .inference, start: attackStart, rng: &rng)
        let (advLogits, advCache) = model.forward(adversarial, mode: .training)
        let ce = Loss.crossEntropy(advLogits, labels: labels)
        var terms = LossTerms()
        terms.add("adv_ce", ce.loss)
        accumulateParameterGradients(model, ce.dLogits, cache: advCache)

        let cleanLogits: Tensor
        if auxiliary.isEmpty {
            // Not an attack pass, though in inference mode: profiled as part of the outer forward.
            let pass = model.beginPass(.outerForward)
            cleanLogits = model.logits(images, mode: .inference)
            model.endPass(pass)
        } else {
            let (logits, cache) = model.forward(images, mode: .training)
            var dClean = Tensor(zeros: logits.shape)
            terms.applyAuxiliaries(auxiliary, model: model, cleanLogits: logits, labels: labels, dCleanLogits: &dClean)
            accumulateParameterGradients(model, dClean, cache: cache)
            cleanLogits = logits
        }
        return terms.result(cleanLogits: cleanLogits, adversarial: adversarial, adversarialLogits: advLogits)
    }
}
