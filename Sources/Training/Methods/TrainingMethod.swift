// TrainingMethod.swift: the contract every training method meets (one step = attack + loss +
// parameter-gradient accumulation, no zeroing, no optimizer step), the hook through which extra
// loss terms on the clean logits plug in (MemLoss, issue 5), and the helpers methods share.
// Concrete methods: Standard/PGDAT/TRADES/MART/HATMethod.swift in this folder.

import Attacks
import Kernels
import Layers
import Tensors

/// An extra loss term on the clean training-mode logits (the MemLoss memory term plugs in here).
public protocol AuxiliaryLoss {
    /// Given the clean training-mode logits `[B, classes]`, returns named loss terms (already
    /// scaled: they are added to the step's total as they are) and the gradient with respect to the
    /// clean logits `[B, classes]`; may run its own forward/backward passes on the model
    /// (accumulating parameter gradients).
    func apply(model: AnyClassifier, cleanLogits: Tensor, labels: [Int32]) -> (terms: [String: Float], dCleanLogits: Tensor)
}

/// What one method step computed.
public struct MethodStepResult {
    /// The total loss whose parameter gradient was accumulated (method terms with their weights,
    /// plus every auxiliary term).
    public var loss: Float
    /// Named terms: the method's unweighted components (`ce`, `kl`, `bce`, `helper_ce`, …; the
    /// weights are in the config), the auxiliaries' terms as they returned them, and `total` (= `loss`).
    public var terms: [String: Float]
    /// Clean logits `[B, classes]` (training mode, except PGD-AT without auxiliaries: see `PGDATMethod`).
    public var cleanLogits: Tensor
    /// The adversarial images `[B, C, H, W]` (nil for standard training).
    public var adversarial: Tensor?
    /// Training-mode logits of the adversarial images (nil for standard training).
    public var adversarialLogits: Tensor?

    public init(loss: Float, terms: [String: Float], cleanLogits: Tensor, adversarial: Tensor?, adversarialLogits: Tensor?) {
        self.loss = loss; self.terms = terms; self.cleanLogits = cleanLogits
        self.adversarial = adversarial; self.adversarialLogits = adversarialLogits
    }
}

/// A training method: one step on a batch.
///
/// A step runs the method's attack (inference mode, input gradients only), its training-mode
/// forward passes, and the backward passes that **accumulate** parameter gradients into the model.
/// It neither zeroes gradients nor steps the optimizer: the trainer does both, once per step.
/// Each auxiliary's `dCleanLogits` is added to the method's clean-logit gradient before the single
/// backward pass of the clean batch.
public protocol TrainingMethod {
    /// - Parameters:
    ///   - images: `[B, C, H, W]` in [0, 1]; labels: `[B]`.
    ///   - auxiliary: extra terms on the clean logits (the MemLoss term carries the memory it needs,
    ///     fetched by sample ID before the step: see TrainingStep).
    ///   - attackStart: rows whose attack starts from given images (the warm start from the bank,
    ///     docs/warm-start.md); the others, and the random stream, are the method's random start.
    ///     Ignored by standard training (no attack).
    ///   - rng: draws the attack's random start.
    func step(model: AnyClassifier, images: Tensor, labels: [Int32], auxiliary: [any AuxiliaryLoss],
              attackStart: AttackStart, rng: inout SplitMix64) -> MethodStepResult
}

extension TrainingMethod {
    /// A step whose attack starts from the method's random start for every row.
    public func step(model: AnyClassifier, images: Tensor, labels: [Int32], auxiliary: [any AuxiliaryLoss],
                     rng: inout SplitMix64) -> MethodStepResult {
        step(model: model, images: images, labels: labels, auxiliary: auxiliary, attackStart: .none, rng: &rng)
    }
}

// MARK: - Shared pieces

/// Running sum of a step's loss and its named terms.
struct LossTerms {
    private(set) var terms: [String: Float] = [:]
    private(set) var total: Float = 0

    /// Records an unweighted component and adds `weight ×` it to the total.
    mutating func add(_ name: String, _ value: Float, weight: Float = 1) {
        precondition(terms[name] == nil, "loss term '\(name)' reported twice")
        terms[name] = value
        total += weight * value
    }

    /// Runs every auxiliary on the clean logits: adds its terms (to the total as they are) and its
    /// gradient to `dCleanLogits`.
    mutating func applyAuxiliaries(_ auxiliary: [any AuxiliaryLoss], model: AnyClassifier, cleanLogits: Tensor,
                                   labels: [Int32], dCleanLogits: inout Tensor) {
        for aux in auxiliary {
            let r = aux.apply(model: model, cleanLogits: cleanLogits, labels: labels)
            precondition(r.dCleanLogits.shape == cleanLogits.shape,
                         "AuxiliaryLoss \(type(of: aux)): gradient \(r.dCleanLogits.shape) for logits \(cleanLogits.shape)")
            Elementwise.accumulate(&dCleanLogits, r.dCleanLogits)
            for (name, value) in r.terms.sorted(by: { $0.key < $1.key }) { add(name, value) }
        }
    }

    /// The step result, with `total` added to the terms.
    func result(cleanLogits: Tensor, adversarial: Tensor?, adversarialLogits: Tensor?) -> MethodStepResult {
        var t = terms
        t["total"] = total
        return MethodStepResult(loss: total, terms: t, cleanLogits: cleanLogits, adversarial: adversarial,
                                adversarialLogits: adversarialLogits)
    }
}

/// Backward pass of one forward pass, accumulating parameter gradients only.
@inline(__always)
func accumulateParameterGradients(_ model: AnyClassifier, _ dLogits: Tensor, cache: AnyClassifier.Cache) {
    _ = model.backward(dLogits, cache: cache, targets: .parameters)
}
