// TRADESMethod.swift: TRADES (Zhang et al. 2019): the KL-PGD inner maximisation, then clean CE plus
// β times the batch-mean KL between the clean and adversarial predictions, with gradients through
// both arguments of the KL. The attack is Attacks.TRADESAttack; the KL kernel is Kernels.Loss.kl.

import Attacks
import Kernels
import Layers
import Tensors

/// TRADES (algorithms.md §2):
///
/// ```
/// x̃ = KL-PGD(x)                                        inference mode (TRADESAttack)
/// z = f(x), z̃ = f(x̃)                                   training mode, two separate passes
/// L = CE(z, y) + β · (1/B) Σ_i KL(softmax(z_i) ‖ softmax(z̃_i))
/// ```
/// - One clean forward pass feeds both the CE and the KL target (the HAT repository's form; the
///   original TRADES code runs f(x) twice), so BatchNorm running statistics update **twice** per step.
/// - The clean softmax is **not** detached: the KL's gradient flows into z as well as z̃ (§2.2).
/// - Auxiliary gradients are added to ∂L/∂z before the single clean backward pass.
///
/// Terms: `ce`, `kl` (unweighted batch-mean KL), the auxiliaries' terms, `total`.
public struct TRADESMethod: TrainingMethod {
    public let config: TRADESConfig

    public init(config: TRADESConfig = TRADESConfig()) { self.config = config }

    public func step(model: AnyClassifier, images: Tensor, labels: [Int32], auxiliary: [any AuxiliaryLoss],
                     attackStart: AttackStart, rng: inout SplitMix64) -> MethodStepResult {
        let adversarial = TRADESAttack.attack(model, images: images, config: config.attack, mode: .inference,
                                               start: attackStart, rng: &rng)
        return loss(model: model, clean: images, adversarial: adversarial, labels: labels, auxiliary: auxiliary)
    }

    /// The outer loss for a given adversarial batch: the two training-mode passes, the loss, and the
    /// accumulation of its parameter gradients (everything in `step` after the attack).
    public func loss(model: AnyClassifier, clean: Tensor, adversarial: Tensor, labels: [Int32],
                     auxiliary: [any AuxiliaryLoss] = []) -> MethodStepResult {
        let (cleanLogits, cleanCache) = model.forward(clean, mode: .training)
        let (advLogits, advCache) = model.forward(adversarial, mode: .training)
        let ce = Loss.crossEntropy(cleanLogits, labels: labels)
        let kl = Loss.kl(cleanLogits, advLogits, scale: config.beta)
        var terms = LossTerms()
        terms.add("ce", ce.loss)
        terms.add("kl", kl.loss, weight: config.beta)
        var dClean = ce.dLogits
        Elementwise.accumulate(&dClean, kl.dLogitsP)
        terms.applyAuxiliaries(auxiliary, model: model, cleanLogits: cleanLogits, labels: labels, dCleanLogits: &dClean)
        accumulateParameterGradients(model, dClean, cache: cleanCache)
        accumulateParameterGradients(model, kl.dLogitsQ, cache: advCache)
        return terms.result(cleanLogits: cleanLogits, adversarial: adversarial, adversarialLogits: advLogits)
    }
}
