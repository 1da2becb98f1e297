// PGD.swift: projected gradient descent (ascent) in the L∞ or L2 ball and the [0, 1] box, with
// random starts and restarts, and the two attacks defined as PGD: FGSM (one step of ε) and the
// TRADES inner maximisation (KL to the clean prediction). Models are seen only through
// `Classifier`; only input gradients are computed. Objectives: AttackObjective.swift.

import Foundation
import Kernels
import Layers
import Tensors

/// Projected gradient ascent on an `AttackObjective` (Madry et al. 2018; TRADES, MART, HAT).
///
/// ```
/// x̃⁰ = start(x)                                       (RandomStart; a Gaussian start is not projected;
///                                                      AttackStart rows: given images, projected)
/// L∞: x̃ᵗ⁺¹ = box(ball∞(x̃ᵗ + α·sign(∇ℓ(x̃ᵗ))))          ball first, then box (algorithms.md Π_ε)
/// L2: x̃ᵗ⁺¹ = ball₂(box(x̃ᵗ + α·∇ℓ/‖∇ℓ‖₂))              per sample; TRADES L2 order (§2.1)
/// ```
/// Shapes: `images [N, C, H, W]` in [0, 1], `labels [N]`; returns `[N, C, H, W]`.
///
/// - The output satisfies `‖x̃ − x‖ ≤ ε` and `0 ≤ x̃ ≤ 1` (up to one rounding, ≤ 1e-6), also with
///   `steps = 0`. With `ε = 0` it is exactly `images`.
/// - A zero-norm gradient in an L2 step is replaced by a fresh Gaussian direction (TRADES does
///   the same, without normalising it; the projection makes the difference moot).
/// - With `restarts > 1`, later restarts attack only the samples that every earlier restart left
///   correctly classified (judged in `.inference` mode); per sample the output is the first
///   restart that misclassifies, or the last one. In `.training` mode those sub-batches have
///   their own BatchNorm statistics.
/// - Does not hold: a gradient with respect to parameters (backward runs with `targets: .input`),
///   or any BatchNorm running-statistics update when `mode` is `.inference` (the default).
public enum PGD {
    /// - Parameters:
    ///   - mode: BatchNorm / Dropout behaviour of every forward pass (`.inference` in all references).
    ///   - rng: draws the random starts (and L2 zero-gradient directions).
    ///   - start: rows that start from given images instead (the warm start, AttackStart.swift); the
    ///     random start is still drawn for the whole batch first, unless `start.noise` gives a
    ///     Gaussian start's noise (then nothing is drawn for it). Only the first restart uses it.
    /// - Precondition: `config.problem == nil`; one label per image.
    public static func attack<M: Classifier>(_ model: M, images: Tensor, labels: [Int32], config: PGDConfig,
                                             objective: AttackObjective, mode: ForwardMode = .inference,
                                             start override: AttackStart = .none, rng: inout SplitMix64) -> Tensor {
        if let problem = config.problem { preconditionFailure("PGD: \(problem)") }
        precondition(images.rank >= 2 && labels.count == images.shape[0],
                     "PGD: \(labels.count) labels for images \(images.shape)")
        var best = run(model, images: images, labels: labels, config: config, objective: objective, mode: mode,
                       start: override, rng: &rng)
        guard config.restarts > 1 else { return best }
        var open = robustRows(model, best, labels: labels, among: Array(0..<labels.count))
        for _ in 1..<config.restarts where !open.isEmpty {
            let subLabels = open.map { labels[$0] }
            let adversarial = run(model, images: gatherRows(images, open), labels: subLabels, config: config,
                                  objective: objective.selecting(rows: open), mode: mode, rng: &rng)
            scatterRows(&best, adversarial, open)
            open = robustRows(model, best, labels: labels, among: open)
        }
        return best
    }

    /// One run: start (with `override`'s rows replaced), then `steps` ascent steps, each followed by
    /// the projection.
    static func run<M: Classifier>(_ model: M, images: Tensor, labels: [Int32], config: PGDConfig,
                                   objective: AttackObjective, mode: ForwardMode, start override: AttackStart = .none,
                                   rng: inout SplitMix64) -> Tensor {
        var x: Tensor
        if let z = override.noise, case .gaussian(let std) = config.randomStart {
            precondition(z.shape == images.shape, "PGD: start noise \(z.shape) for images \(images.shape)")
            x = Elementwise.add(images, Tensor(shape: z.shape, values: z.scalars.map { std * $0 }))
        } else {
            x = start(images, config: config, rng: &rng)
        }
        override.apply(to: &x, center: images, config: config)
        for _ in 0..<config.steps {
            var g = objective.inputGradient(model: model, input: x, labels: labels, mode: mode)
            switch config.norm {
            case .linf:
                Perturbation.signStep(&x, gradient: g, stepSize: config.stepSize)
            case .l2:
                let norms = nonZeroGradientNorms(&g, rng: &rng)
                Perturbation.addScaledRows(&x, g, factors: norms.map { config.stepSize / $0 })
            }
            project(&x, center: images, config: config)
        }
        // A Gaussian start is unprojected until the first step; with no steps, project it here.
        if config.steps == 0 { project(&x, center: images, config: config) }
        return x
    }

    /// The starting point (see `RandomStart`).
    static func start(_ images: Tensor, config: PGDConfig, rng: inout SplitMix64) -> Tensor {
        switch config.randomStart {
        case .none:
            return images
        case .gaussian(let std):
            return Elementwise.add(images, Tensor.randomNormal(shape: images.shape, std: std, rng: &rng))
        case .uniform:
            let e = config.epsilon
            switch config.norm {
            case .linf:
                var x = Elementwise.add(images, Tensor.randomUniform(shape: images.shape, low: -e, high: e, rng: &rng))
                Perturbation.clampToUnitInterval(&x)
                return x
            case .l2:
                // Uniform in the ball: a Gaussian direction scaled to radius ε·u^(1/d).
                var direction = Tensor.randomNormal(shape: images.shape, std: 1, rng: &rng)
                let norms = nonZeroGradientNorms(&direction, rng: &rng)
                let d = Double(images.count / max(images.shape[0], 1))
                var factors = [Float]()
                for n in norms { factors.append(Float(Double(e) * pow(Double(rng.nextFloat()), 1 / d)) / n) }
                var x = images
                Perturbation.addScaledRows(&x, direction, factors: factors)
                Perturbation.projectL2(&x, center: images, epsilon: e)
                return x
            }
        }
    }

    /// Projection onto the ε-ball around `center` and the [0, 1] box.
    static func project(_ x: inout Tensor, center: Tensor, config: PGDConfig) {
        switch config.norm {
        case .linf: Perturbation.projectLinf(&x, center: center, epsilon: config.epsilon)
        case .l2: Perturbation.projectL2(&x, center: center, epsilon: config.epsilon)
        }
    }

    /// Per-sample L2 norms of `g`, after replacing every all-zero (or non-finite-norm) sample by a
    /// fresh standard Gaussian, so every returned norm is positive and finite.
    static func nonZeroGradientNorms(_ g: inout Tensor, rng: inout SplitMix64) -> [Float] {
        var norms = Perturbation.rowL2Norms(g)
        let rowLength = g.shape[0] == 0 ? 0 : g.count / g.shape[0]
        for r in 0..<norms.count where !(norms[r] > 0 && norms[r].isFinite) {
            for i in 0..<rowLength { g[flat: r * rowLength + i] = rng.nextNormal() }
            norms[r] = Perturbation.rowL2Norms(gatherRows(g, [r]))[0]
        }
        return norms
    }

    /// The samples among `rows` that `model` still classifies correctly at `x` (inference mode).
    static func robustRows<M: Classifier>(_ model: M, _ x: Tensor, labels: [Int32], among rows: [Int]) -> [Int] {
        let logits = model.logits(gatherRows(x, rows), mode: .inference)
        return zip(rows, Predictions.correct(logits, labels: rows.map { labels[$0] })).filter { $0.1 }.map { $0.0 }
    }
}

/// FGSM (Goodfellow et al. 2015): one L∞ sign step of size ε on the objective, no random start,
/// then the [0, 1] clamp. Deterministic, so it takes no random generator.
public enum FGSM {
    public static func attack<M: Classifier>(_ model: M, images: Tensor, labels: [Int32], epsilon: Float,
                                             objective: AttackObjective = .crossEntropy,
                                             mode: ForwardMode = .inference) -> Tensor {
        // An L∞ run with no random start draws no random numbers; the generator is a placeholder.
        var unused = SplitMix64(seed: 0)
        return PGD.attack(model, images: images, labels: labels, config: .fgsm(epsilon: epsilon), objective: objective,
                          mode: mode, rng: &unused)
    }
}

/// The TRADES inner maximisation (algorithms.md §2.1): PGD on `Σ_i KL(p(x_i) ‖ p(x̃_i))`, where
/// the clean prediction `p(x)` is computed once, in `mode` (inference in TRADES, MART's and HAT's
/// code), before the attack and held constant. The start is the config's (TRADES: Gaussian
/// 0.001, not clamped before the first step).
public enum TRADESAttack {
    /// - Returns: the adversarial images `[N, C, H, W]`.
    /// - Note: with `config.restarts > 1`, "misclassified" means "predicted differently from the
    ///   clean prediction" (the KL attack has no labels).
    /// - Parameter start: rows starting from given images (see `PGD.attack`).
    public static func attack<M: Classifier>(_ model: M, images: Tensor, config: PGDConfig,
                                             mode: ForwardMode = .inference, start: AttackStart = .none,
                                             rng: inout SplitMix64) -> Tensor {
        attack(model, images: images, cleanLogits: model.logits(images, mode: mode), config: config, mode: mode,
               start: start, rng: &rng)
    }

    /// The same, with the clean logits `[N, classes]` already computed (in `mode`) by the caller.
    public static func attack<M: Classifier>(_ model: M, images: Tensor, cleanLogits: Tensor, config: PGDConfig,
                                             mode: ForwardMode = .inference, start: AttackStart = .none,
                                             rng: inout SplitMix64) -> Tensor {
        PGD.attack(model, images: images, labels: Predictions.argmax(cleanLogits), config: config,
                   objective: .kl(clean: cleanLogits), mode: mode, start: start, rng: &rng)
    }
}
