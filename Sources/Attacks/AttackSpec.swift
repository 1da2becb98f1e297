// AttackSpec.swift: the evaluation attacks by name (`natural`, `fgsm`, `pgd20`, `pgdN`, `cw`, `cwN`,
// each with an optional `:STEP`), parsed into typed values, and the per-sample "still correct after
// the attack" vector an evaluation aggregates. The worst case over several attacks (AND of the
// vectors) is the evaluation runner's job (Training/Evaluation.swift), not this file's.

import Foundation
import Layers
import Tensors

/// An evaluation attack.
public enum AttackSpec: Codable, Hashable, Sendable, CustomStringConvertible {
    /// No attack: clean accuracy.
    case natural
    /// One L∞ sign step of size ε (FGSM).
    case fgsm(epsilon: Float)
    /// PGD on the cross-entropy.
    case pgd(PGDConfig)
    /// CW∞: PGD on the margin loss (algorithms.md §5.3).
    case cw(PGDConfig)

    /// Parses an attack name (case-insensitive):
    ///
    /// | name | attack |
    /// |---|---|
    /// | `natural`, `clean` | no attack |
    /// | `fgsm` | FGSM, step ε |
    /// | `pgd20`, `pgdN` (`pgd` = `pgd20`) | N steps of ε/4 (`PGDConfig.evaluationStepFraction`), uniform start |
    /// | `cw`, `cwN` | margin PGD, N = 30 (`PGDConfig.cwDefaultSteps`) steps of ε/10 (`cwStepFraction`), uniform start |
    ///
    /// `pgdN` and `cwN` take an optional step size suffix, a decimal or a fraction: `pgd20:0.003`
    /// (the TRADES script's PGD-20), `pgd40:1/255`. All attacks are L∞ with radius `epsilon`.
    public init(parsing text: String, epsilon: Float) throws(AttackSpecError) {
        guard epsilon >= 0 && epsilon.isFinite else { throw .badEpsilon(epsilon) }
        let name = text.trimmingCharacters(in: .whitespaces).lowercased()
        let parts = name.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        let head = parts[0]
        var step: Float? = nil
        if parts.count == 2 {
            guard let s = AttackSpec.parseNumber(parts[1]), s > 0, s.isFinite else { throw .badStepSize(text) }
            step = s
        }
        switch head {
        case "natural", "clean":
            guard step == nil else { throw .badStepSize(text) }
            self = .natural
        case "fgsm":
            guard step == nil else { throw .badStepSize(text) }
            self = .fgsm(epsilon: epsilon)
        case "pgd":
            self = .pgd(.evaluation(epsilon: epsilon, steps: 20, stepSize: step))
        case "cw":
            self = .cw(.cwEval(epsilon: epsilon, stepSize: step))
        default:
            if head.hasPrefix("pgd") || head.hasPrefix("cw") {
                let isPGD = head.hasPrefix("pgd")
                let digits = head.dropFirst(isPGD ? 3 : 2)
                guard let n = Int(digits), n >= 1, n <= AttackSpec.maximumSteps else { throw .badSteps(text) }
                self = isPGD ? .pgd(.evaluation(epsilon: epsilon, steps: n, stepSize: step))
                             : .cw(.cwEval(epsilon: epsilon, steps: n, stepSize: step))
            } else {
                throw .unknown(text)
            }
        }
    }

    /// Largest N accepted in `pgdN` / `cwN` (a typo guard, not a limit of the attack).
    public static let maximumSteps = 10_000

    /// A canonical name that parses back to this attack at the same ε: `natural`, `fgsm`,
    /// `pgd20:0.0078431…`, `cw30:0.0031…`.
    public var name: String {
        switch self {
        case .natural: return "natural"
        case .fgsm: return "fgsm"
        case .pgd(let c): return "pgd\(c.steps):\(c.stepSize)"
        case .cw(let c): return "cw\(c.steps):\(c.stepSize)"
        }
    }

    public var description: String {
        switch self {
        case .natural: return "natural"
        case .fgsm(let e): return "FGSM ε \(e)"
        case .pgd(let c): return c.description
        case .cw(let c): return "CW∞ (margin) " + c.description
        }
    }

    /// Per sample: is the model's prediction (inference mode) at the attacked input the true label?
    /// `natural` gives the clean correctness. Not ANDed with clean correctness: a worst case over
    /// attacks, clean included, is the AND of these vectors.
    ///
    /// Shapes: `images [N, C, H, W]`, `labels [N]` → `[N]`. `rng` draws the random starts.
    public func correctness<M: Classifier>(model: M, images: Tensor, labels: [Int32], rng: inout SplitMix64) -> [Bool] {
        let x: Tensor
        switch self {
        case .natural:
            x = images
        case .fgsm(let e):
            x = FGSM.attack(model, images: images, labels: labels, epsilon: e)
        case .pgd(let c):
            x = PGD.attack(model, images: images, labels: labels, config: c, objective: .crossEntropy, rng: &rng)
        case .cw(let c):
            x = PGD.attack(model, images: images, labels: labels, config: c, objective: .margin, rng: &rng)
        }
        return Predictions.correct(model.logits(x, mode: .inference), labels: labels)
    }

    // MARK: - Parsing helpers

    /// A decimal (`0.003`) or a fraction (`2/255`).
    static func parseNumber(_ s: String) -> Float? {
        let parts = s.split(separator: "/", omittingEmptySubsequences: false)
        if parts.count == 1 { return Float(s) }
        guard parts.count == 2, let a = Float(parts[0]), let b = Float(parts[1]), b != 0 else { return nil }
        return a / b
    }

    // MARK: - Codable: {"attack": "pgd", "config": {…}} / {"attack": "fgsm", "epsilon": 0.03}

    private enum CodingKeys: String, CodingKey { case attack, epsilon, config }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        switch try c.decode(String.self, forKey: .attack) {
        case "natural": self = .natural
        case "fgsm": self = .fgsm(epsilon: try c.decode(Float.self, forKey: .epsilon))
        case "pgd": self = .pgd(try c.decode(PGDConfig.self, forKey: .config))
        case "cw": self = .cw(try c.decode(PGDConfig.self, forKey: .config))
        case let other:
            throw DecodingError.dataCorruptedError(forKey: .attack, in: c,
                                                   debugDescription: "unknown attack '\(other)'; expected natural, fgsm, pgd or cw")
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .natural: try c.encode("natural", forKey: .attack)
        case .fgsm(let e): try c.encode("fgsm", forKey: .attack); try c.encode(e, forKey: .epsilon)
        case .pgd(let cfg): try c.encode("pgd", forKey: .attack); try c.encode(cfg, forKey: .config)
        case .cw(let cfg): try c.encode("cw", forKey: .attack); try c.encode(cfg, forKey: .config)
        }
    }
}

/// Why an attack name was rejected.
public enum AttackSpecError: Error, CustomStringConvertible, Equatable {
    case unknown(String)
    case badSteps(String)
    case badStepSize(String)
    case badEpsilon(Float)

    static let validNames = "natural (or clean), fgsm, pgd20, pgdN, cw, cwN; pgdN and cwN take an optional "
        + ":STEP (decimal or fraction), e.g. pgd20:0.003 or cw30:1/255"

    public var description: String {
        switch self {
        case .unknown(let n):
            return "unknown attack '\(n)'; valid attacks: \(AttackSpecError.validNames)\nhint: try pgd20"
        case .badSteps(let n):
            return "attack '\(n)': the step count must be an integer in 1...\(AttackSpec.maximumSteps); "
                + "valid attacks: \(AttackSpecError.validNames)\nhint: write e.g. pgd20 or cw30"
        case .badStepSize(let n):
            return "attack '\(n)': the step size after ':' must be a positive number or fraction, and only pgdN and cwN "
                + "take one; valid attacks: \(AttackSpecError.validNames)\nhint: write e.g. pgd20:0.003 or pgd20:2/255"
        case .badEpsilon(let e):
            return "attack ε \(e) must be a finite number ≥ 0\nhint: pass --epsilon 8/255 (or 0.3 for MNIST)"
        }
    }
}
