// HATMethod.swift: Helper-based Adversarial Training (Rade & Moosavi-Dezfooli 2022): TRADES plus a
// cross-entropy on a helper example pushed past the adversarial one, labelled by a frozen
// standard-trained helper model. The helper is never trained and only runs in inference mode.

import Attacks
import Kernels
import Layers
import Tensors

/// HAT (algorithms.md §4):
///
/// ```
/// x̃   = KL-PGD(x)                           inference mode (TRADESAttack)
/// ŷ_h = argmax f_helper(x̃)                  helper frozen, inference mode, on x̃ (not on x_h)
/// x_h = x + h · (x̃ − x)                     not clipped to [0, 1] or to any ball (intended)
/// L   = CE(f(x), y) + β · (1/B) Σ_i KL(p(x_i) ‖ p(x̃_i)) + γ · CE(f(x_h), ŷ_h)
/// ```
/// Three separate training-mode passes (x, x̃, x_h), so BatchNorm running statistics update
/// **three** times per step; the clean softmax is not detached in the KL. Auxiliary gradients are
/// added to ∂L/∂f(x) before the clean backward pass.
///
/// Terms: `ce`, `kl` (unweighted), `helper_ce` (unweighted), the auxiliaries' terms, `total`.
public struct HATMethod: TrainingMethod {
    public let config: HATConfig
    /// The frozen helper model (loaded by the trainer from a standard-trained checkpoint).
    public let helper: AnyClassifier

    public init(config: HATConfig = HATConfig(), helper: AnyClassifier) {
        self.config = config
        self.helper = helper
    }

    public func step(model: AnyClassifier, images: Tensor, labels: [Int32], auxiliary: [any AuxiliaryLoss],
                     attackStart: AttackStart, rng: inout SplitMix64) -> MethodStepResult {
        precondition(helper.base !== model.base, "HAT: the helper must be a separate, frozen model")
        precondition(helper.classCount == model.classCount,
                     "HAT: helper has \(helper.classCount) classes, model \(model.classCount)")
        let adversarial = TRADESAttack.attack(model, images: images, config: config.attack, mode: .inference,
                                               start: attackStart, rng: &rng)
        let helperLabels = Predictions.argmax(helper.logits(adversarial, mode: .inference))
        return loss(model: model, clean: images, adversarial: adversarial, helperLabels: helperLabels, labels: labels,
                    auxiliary: auxiliary)
    }

    /// The helper example `x + h·(x̃ − x)` (unclipped).
    public func helperExample(clean: Tensor, adversarial: Tensor) -> Tensor {
        var x = clean
        Elementwise.addScaled(&x, Elementwise.add(adversarial, Elementwise.scaled(clean, by: -1)), scale: config.h)
        return x
    }

    /// The outer loss for a given adversarial batch and helper labels (everything in `step` after
    /// the attack and the helper's prediction).
    public func loss(model: AnyClassifier, clean: Tensor, adversarial: Tensor, helperLabels: [Int32], labels: [Int32],
                     auxiliary: [any AuxiliaryLoss] = []) -> MethodStepResult {
        let helperInput = helperExample(clean: clean, adversarial: adversarial)
        let (cleanLogits, cleanCache) = model.forward(clean, mode: .training)
        let (advLogits, advCache) = model.forward(adversarial, mode: .training)
        let (helpLogits, helpCache) = model.forward(helperInput, mode: .training)
        let ce = Loss.crossEntropy(cleanLogits, labels: labels)
        let kl = Loss.kl(cleanLogits, advLogits, scale: config.beta)
        let helperCE = Loss.crossEntropy(helpLogits, labels: helperLabels, scale: config.gamma)
        var terms = LossTerms()
        terms.add("ce", ce.loss)
        terms.add("kl", kl.loss, weight: config.beta)
        terms.add("helper_ce", helperCE.loss, weight: config.gamma)
        var dClean = ce.dLogits
        Elementwise.accumulate(&dClean, kl.dLogitsP)
        terms.applyAuxiliaries(auxiliary, model: model, cleanLogits: cleanLogits, labels: labels, dCleanLogits: &dClean)
        accumulateParameterGradients(model, dClean, cache: cleanCache)
        accumulateParameterGradients(model, kl.dLogitsQ, cache: advCache)
        accumulateParameterGradients(model, helperCE.dLogits, cache: helpCache)
        return terms.result(cleanLogits: cleanLogits, adversarial: adversarial, adversarialLogits: advLogits)
    }
}
