// PGDConfig.swift: the typed description of a projected-gradient attack (ε, step, steps, norm,
// random start, restarts) and its named presets, each with the source of its numbers. Every
// attack default in the project is declared here, once; the CLI and the method configs only
// parse into or refer to these values. The attack loop itself is in PGD.swift.

import Tensors

/// Where the iterates start.
public enum RandomStart: Codable, Sendable, Hashable {
    /// `x̃⁰ = x` (FGSM, deterministic PGD).
    case none
    /// L∞: `x̃⁰ = clamp(x + U(−ε, ε), 0, 1)` per pixel (Madry / HAT `core/attacks/pgd.py`, and the
    /// TRADES and MART PGD-20 evaluation scripts, which do not clamp the start; the clamp only
    /// matters for the first gradient). L2: uniform in the ε-ball (Gaussian direction, radius
    /// `ε·u^(1/d)`), clamped to [0, 1].
    case uniform
    /// `x̃⁰ = x + std·N(0, I)`, *not* clamped before the first step (TRADES and MART training,
    /// algorithms.md §2.1, §3). The reference value is `tradesGaussian`.
    case gaussian(std: Float)

    /// The TRADES / MART / HAT training start: `0.001·N(0, I)` (algorithms.md §2.1, §3, §4.2).
    public static let tradesGaussian = RandomStart.gaussian(std: 0.001)
}

/// A projected-gradient attack: `steps` steps of size `stepSize` inside the `norm` ball of radius
/// `epsilon` around the clean images and inside the [0, 1] box, from `randomStart`, repeated
/// `restarts` times (per sample, the first restart that misclassifies is kept, else the last).
///
/// Units: `epsilon` and `stepSize` are in pixel units of [0, 1] images (8/255 ≈ 0.0314; for L2 a
/// per-sample Euclidean length). `steps = 0` returns the (projected) start.
public struct PGDConfig: Codable, Sendable, Hashable, CustomStringConvertible {
    /// Radius ε of the threat model, ≥ 0.
    public var epsilon: Float
    /// Step size α, ≥ 0: the L∞ sign-step length, or the L2 step length along the normalised gradient.
    public var stepSize: Float
    /// Number of gradient steps, ≥ 0.
    public var steps: Int
    public var norm: PerturbationNorm
    public var randomStart: RandomStart
    /// Independent runs, ≥ 1 (HAT's "PGD+" evaluation uses 5, algorithms.md §5.2).
    public var restarts: Int

    /// One run, as every training attack and PGD-20 evaluation in the references.
    public static let defaultRestarts = 1

    public init(epsilon: Float, stepSize: Float, steps: Int, norm: PerturbationNorm = .linf, randomStart: RandomStart,
                restarts: Int = PGDConfig.defaultRestarts) {
        self.epsilon = epsilon; self.stepSize = stepSize; self.steps = steps
        self.norm = norm; self.randomStart = randomStart; self.restarts = restarts
    }

    /// The first problem with these values, or nil when they are usable.
    public var problem: String? {
        if !(epsilon >= 0 && epsilon.isFinite) { return "attack ε \(epsilon) must be a finite number ≥ 0" }
        if !(stepSize >= 0 && stepSize.isFinite) { return "attack step size \(stepSize) must be a finite number ≥ 0" }
        if steps < 0 { return "attack steps \(steps) must be ≥ 0" }
        if restarts < 1 { return "attack restarts \(restarts) must be ≥ 1" }
        if case .gaussian(let std) = randomStart, !(std >= 0 && std.isFinite) {
            return "Gaussian start std \(std) must be a finite number ≥ 0"
        }
        return nil
    }

    public var description: String {
        let start: String
        switch randomStart {
        case .none: start = "no random start"
        case .uniform: start = "uniform start"
        case .gaussian(let s): start = "Gaussian start \(s)"
        }
        return "PGD-\(steps) \(norm.rawValue) ε \(epsilon) α \(stepSize), \(start)"
            + (restarts > 1 ? ", \(restarts) restarts" : "")
    }

    // MARK: - Codable (`restarts` may be omitted: it then takes `defaultRestarts`)

    private enum CodingKeys: String, CodingKey { case epsilon, stepSize, steps, norm, randomStart, restarts }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(epsilon: try c.decode(Float.self, forKey: .epsilon), stepSize: try c.decode(Float.self, forKey: .stepSize),
                  steps: try c.decode(Int.self, forKey: .steps), norm: try c.decode(PerturbationNorm.self, forKey: .norm),
                  randomStart: try c.decode(RandomStart.self, forKey: .randomStart),
                  restarts: try c.decodeIfPresent(Int.self, forKey: .restarts) ?? PGDConfig.defaultRestarts)
    }
}

// MARK: - Presets

extension PGDConfig {
    /// TRADES CIFAR-10 training attack: ε = 0.031, α = 0.007, 10 steps, Gaussian 0.001 start
    /// (`train_trades_cifar10.py`, algorithms.md §2.3). Used with the KL objective.
    public static let tradesTrainCIFAR = PGDConfig(epsilon: 0.031, stepSize: 0.007, steps: 10, norm: .linf,
                                                   randomStart: .tradesGaussian)

    /// TRADES MNIST training attack: ε = 0.3, α = 0.01, 40 steps, Gaussian 0.001 start
    /// (`train_trades_mnist.py`, algorithms.md §2.3).
    public static let tradesMNIST = PGDConfig(epsilon: 0.3, stepSize: 0.01, steps: 40, norm: .linf,
                                              randomStart: .tradesGaussian)

    /// MART CIFAR-10 training attack: CE-PGD, ε = 0.031, α = 0.007, 10 steps, Gaussian 0.001 start
    /// (not uniform: `mart.py`, algorithms.md §3).
    public static let martTrainCIFAR = PGDConfig(epsilon: 0.031, stepSize: 0.007, steps: 10, norm: .linf,
                                                 randomStart: .tradesGaussian)

    /// HAT training attack: TRADES KL-PGD with ε = 8/255, α = 2/255, 10 steps, Gaussian 0.001 start
    /// (HAT parser defaults, algorithms.md §4.2).
    public static let hatTrainCIFAR = PGDConfig(epsilon: 8 / 255, stepSize: 2 / 255, steps: 10, norm: .linf,
                                                randomStart: .tradesGaussian)

    /// Madry PGD-AT training attack: ε = 8/255, α = 2/255, 10 steps, uniform start clamped to [0, 1]
    /// (HAT `adversarial_loss` / `core/attacks/pgd.py`, algorithms.md §5.1).
    public static let madryCIFAR = PGDConfig(epsilon: 8 / 255, stepSize: 2 / 255, steps: 10, norm: .linf,
                                             randomStart: .uniform)

    /// Evaluation step size as a fraction of ε: 1/4, which is HAT's PGD-20 step 2/255 at ε = 8/255
    /// (algorithms.md §5.2; TRADES' script uses 0.003 ≈ ε/10, MART's ε/10: reported numbers differ
    /// by about 0.5–1 point, so name the attack with an explicit `:STEP` to match those).
    public static let evaluationStepFraction: Float = 0.25

    /// PGD-`steps` evaluation (CE loss, uniform start, one run) with step `ε·evaluationStepFraction`
    /// unless `stepSize` is given.
    public static func evaluation(epsilon: Float, steps: Int, stepSize: Float? = nil, norm: PerturbationNorm = .linf) -> PGDConfig {
        PGDConfig(epsilon: epsilon, stepSize: stepSize ?? epsilon * evaluationStepFraction, steps: steps, norm: norm,
                  randomStart: .uniform)
    }

    /// PGD-20 evaluation: 20 steps of ε/4 (2/255 at ε = 8/255, HAT), uniform start, one run.
    public static func pgd20Eval(epsilon: Float) -> PGDConfig { evaluation(epsilon: epsilon, steps: 20) }

    /// Default CW∞ step count: 30, the common CW∞-30 setting (algorithms.md §5.3, [gk]; HAT's own
    /// script uses 40 steps of 0.01).
    public static let cwDefaultSteps = 30

    /// CW∞ step as a fraction of ε: 1/10, i.e. the literature's 0.003 at ε = 0.031 scaled with ε
    /// (algorithms.md §5.3). 30 steps then travel 3ε, enough to cross the ball.
    public static let cwStepFraction: Float = 0.1

    /// CW∞ evaluation configuration (run with the margin objective): `steps` steps of
    /// `ε·cwStepFraction` unless `stepSize` is given, uniform start, one run.
    public static func cwEval(epsilon: Float, steps: Int = cwDefaultSteps, stepSize: Float? = nil) -> PGDConfig {
        PGDConfig(epsilon: epsilon, stepSize: stepSize ?? epsilon * cwStepFraction, steps: steps, norm: .linf,
                  randomStart: .uniform)
    }

    /// FGSM (Goodfellow et al. 2015) as PGD: one sign step of size ε, no random start.
    public static func fgsm(epsilon: Float) -> PGDConfig {
        PGDConfig(epsilon: epsilon, stepSize: epsilon, steps: 1, norm: .linf, randomStart: .none)
    }
}
