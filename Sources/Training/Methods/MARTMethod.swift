// MARTMethod.swift: MART (Wang et al. 2020): a boosted cross-entropy on CE-PGD examples plus a KL
// term weighted per sample by the clean misclassification probability 1 − p_y(x), with the
// gradient through that weight derived by hand (it is not detached in the reference).

import Attacks
import Foundation
import Kernels
import Layers
import Tensors

/// MART (algorithms.md §3):
///
/// ```
/// x̃ = PGD_CE(x)                      inference mode, Gaussian 0.001 start (config.attack)
/// z = f(x), z̃ = f(x̃)                 training mode, two separate passes
/// p = softmax(z), p̃ = softmax(z̃), ŷ_i = argmax_{c ≠ y_i} p̃_ic   (no gradient through ŷ)
/// BCE  = CE(z̃, y) − (1/B) Σ_i log(bceOffset − p̃_iŷ + probabilityFloor)
/// KL_w = (1/B) Σ_i KL(p_i ‖ p̃_i) · (weightOffset − p_iy)
/// L    = BCE + β · KL_w
/// ```
/// Gradients (all per sample i, class c; δ the Kronecker delta):
/// ```
/// ∂BCE/∂z̃_c  = CE part + (1/B) · p̃_ŷ (δ_ŷc − p̃_c) / (bceOffset − p̃_ŷ + probabilityFloor)
/// ∂KL_w/∂z, ∂KL_w/∂z̃ through the KL with w fixed (Loss.kl with sample weights), plus through the
///   weight, which is not detached:  ∂w_i/∂z_c = −p_y (δ_yc − p_c), so ∂KL_w/∂z_c += −(1/B) KL_i p_y (δ_yc − p_c)
/// ```
/// - The KL uses exact log-softmaxes, so the reference's `log(p̃ + 1e-12)` floor inside the KL is
///   not applied (it changes a term only where p̃_c < ~1e-10, and there by < 1e-12/p̃_c relative).
/// - BatchNorm running statistics update **twice** per step. There is no clean CE term in MART;
///   auxiliary gradients are added to ∂L/∂z before the clean backward pass.
///
/// Terms: `bce`, `kl` (the weighted KL_w, unmultiplied by β), the auxiliaries' terms, `total`.
public struct MARTMethod: TrainingMethod {
    public let config: MARTConfig

    /// `1.0001` in `log(1.0001 − p̃_ŷ)`: keeps the log finite when the wrong-class probability reaches 1.
    public static let bceOffset: Float = 1.0001
    /// `1e-12` added inside that log, as the reference does (keeps log(·) finite if the offset is lowered).
    public static let probabilityFloor: Float = 1e-12
    /// `1.0000001` in the KL weight `1.0000001 − p_y(x)`: keeps the weight above 0 when p_y = 1.
    public static let weightOffset: Float = 1.0000001

    public init(config: MARTConfig = MARTConfig()) { self.config = config }

    public func step(model: AnyClassifier, images: Tensor, labels: [Int32], auxiliary: [any AuxiliaryLoss],
                     attackStart: AttackStart, rng: inout SplitMix64) -> MethodStepResult {
        let adversarial = PGD.attack(model, images: images, labels: labels, config: config.attack,
                                     objective: .crossEntropy, mode: .inference, start: attackStart, rng: &rng)
        return loss(model: model, clean: images, adversarial: adversarial, labels: labels, auxiliary: auxiliary)
    }

    /// The outer loss for a given adversarial batch (everything in `step` after the attack).
    public func loss(model: AnyClassifier, clean: Tensor, adversarial: Tensor, labels: [Int32],
                     auxiliary: [any AuxiliaryLoss] = []) -> MethodStepResult {
        let (cleanLogits, cleanCache) = model.forward(clean, mode: .training)
        let (advLogits, advCache) = model.forward(adversarial, mode: .training)
        var terms = LossTerms()

        let (bce, dAdvBCE) = boostedCrossEntropy(advLogits, labels: labels)
        terms.add("bce", bce)

        // Weighted KL with the weight's own gradient.
        let b = labels.count, k = cleanLogits.shape[1]
        let p = Loss.softmax(cleanLogits).scalars
        let weights = (0..<b).map { i in MARTMethod.weightOffset - p[i * k + Int(labels[i])] }
        let kl = Loss.kl(cleanLogits, advLogits, sampleWeights: weights, scale: config.beta)
        terms.add("kl", kl.loss, weight: config.beta)
        var dClean = kl.dLogitsP.scalars
        let factor = config.beta / Float(b)
        for i in 0..<b {
            let y = Int(labels[i]), py = p[i * k + y], g = -factor * kl.perSample[i] * py
            for c in 0..<k { dClean[i * k + c] += g * ((c == y ? 1 : 0) - p[i * k + c]) }
        }
        var dCleanLogits = Tensor(shape: cleanLogits.shape, values: dClean)
        var dAdv = dAdvBCE
        Elementwise.accumulate(&dAdv, kl.dLogitsQ)

        terms.applyAuxiliaries(auxiliary, model: model, cleanLogits: cleanLogits, labels: labels, dCleanLogits: &dCleanLogits)
        accumulateParameterGradients(model, dCleanLogits, cache: cleanCache)
        accumulateParameterGradients(model, dAdv, cache: advCache)
        return terms.result(cleanLogits: cleanLogits, adversarial: adversarial, adversarialLogits: advLogits)
    }

    /// MART's BCE on the adversarial logits `[B, classes]` and its gradient (see the type's formula).
    func boostedCrossEntropy(_ logits: Tensor, labels: [Int32]) -> (loss: Float, dLogits: Tensor) {
        let b = labels.count, k = logits.shape[1]
        let ce = Loss.crossEntropy(logits, labels: labels)
        let q = Loss.softmax(logits).scalars
        var d = ce.dLogits.scalars
        var margin = 0.0
        for i in 0..<b {
            let y = Int(labels[i])
            var other = -1
            for c in 0..<k where c != y && (other < 0 || q[i * k + c] > q[i * k + other]) { other = c }
            let qo = q[i * k + other]
            let inside = MARTMethod.bceOffset - qo + MARTMethod.probabilityFloor
            margin -= Double(log(inside))
            let g = qo / (inside * Float(b))
            for c in 0..<k { d[i * k + c] += g * ((c == other ? 1 : 0) - q[i * k + c]) }
        }
        return (ce.loss + Float(margin / Double(b)), Tensor(shape: logits.shape, values: d))
    }
}
