// MethodConfig.swift: the typed configuration of each training method (standard, PGD-AT, TRADES,
// MART, HAT) with every default declared once and sourced, the `MethodConfig` sum type the run
// configuration holds, and `makeMethod`, which turns a configuration into a `TrainingMethod`.
// The losses themselves live in the other files of this folder.

import Attacks
import Layers

// MARK: - Per-method configurations

/// Standard (natural) training: cross-entropy on clean images. No parameters.
public struct StandardConfig: Codable, Sendable, Hashable {
    public init() {}
}

/// Madry PGD adversarial training (algorithms.md §5.1): CE on PGD-CE adversarial examples.
public struct PGDATConfig: Codable, Sendable, Hashable {
    /// The training attack; default `PGDConfig.madryCIFAR` (8/255, 2/255, 10 steps, uniform start).
    public var attack: PGDConfig

    public static let defaultAttack = PGDConfig.madryCIFAR

    public init(attack: PGDConfig = PGDATConfig.defaultAttack) { self.attack = attack }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: MethodCodingKeys.self)
        self.init(attack: try c.decodeIfPresent(PGDConfig.self, forKey: .attack) ?? Self.defaultAttack)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: MethodCodingKeys.self)
        try c.encode(attack, forKey: .attack)
    }
}

/// TRADES (algorithms.md §2): `CE(f(x), y) + β·KL(p(x) ‖ p(x̃))` with the KL-PGD attack.
public struct TRADESConfig: Codable, Sendable, Hashable {
    /// The KL-PGD attack; default `PGDConfig.tradesTrainCIFAR` (0.031, 0.007, 10 steps, Gaussian 0.001).
    public var attack: PGDConfig
    /// β, the robust-term weight (multiplies the KL; not 1/β): 6.0 in TRADES CIFAR-10 (§2.3).
    public var beta: Float

    public static let defaultAttack = PGDConfig.tradesTrainCIFAR
    public static let defaultBeta: Float = 6

    public init(attack: PGDConfig = TRADESConfig.defaultAttack, beta: Float = TRADESConfig.defaultBeta) {
        self.attack = attack; self.beta = beta
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: MethodCodingKeys.self)
        self.init(attack: try c.decodeIfPresent(PGDConfig.self, forKey: .attack) ?? Self.defaultAttack,
                  beta: try c.decodeIfPresent(Float.self, forKey: .beta) ?? Self.defaultBeta)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: MethodCodingKeys.self)
        try c.encode(attack, forKey: .attack); try c.encode(beta, forKey: .beta)
    }
}

/// MART (algorithms.md §3): `BCE + β·KL_w` with a CE-PGD attack from a Gaussian start.
public struct MARTConfig: Codable, Sendable, Hashable {
    /// The CE-PGD attack; default `PGDConfig.martTrainCIFAR` (0.031, 0.007, 10 steps, Gaussian 0.001).
    public var attack: PGDConfig
    /// β of the weighted KL: 6.0 for WRN-34-10 (`train_wideresnet.py`); MART's ResNet-18 script uses 5.0.
    public var beta: Float

    public static let defaultAttack = PGDConfig.martTrainCIFAR
    public static let defaultBeta: Float = 6

    public init(attack: PGDConfig = MARTConfig.defaultAttack, beta: Float = MARTConfig.defaultBeta) {
        self.attack = attack; self.beta = beta
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: MethodCodingKeys.self)
        self.init(attack: try c.decodeIfPresent(PGDConfig.self, forKey: .attack) ?? Self.defaultAttack,
                  beta: try c.decodeIfPresent(Float.self, forKey: .beta) ?? Self.defaultBeta)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: MethodCodingKeys.self)
        try c.encode(attack, forKey: .attack); try c.encode(beta, forKey: .beta)
    }
}

/// HAT (algorithms.md §4): `CE(f(x), y) + β·KL(p(x) ‖ p(x̃)) + γ·CE(f(x + h·(x̃ − x)), ŷ_helper)`.
public struct HATConfig: Codable, Sendable, Hashable {
    /// The TRADES KL-PGD attack; default `PGDConfig.hatTrainCIFAR` (8/255, 2/255, 10 steps, Gaussian 0.001).
    public var attack: PGDConfig
    /// β: 2.5 (HAT README command for CIFAR-10 ResNet-18, §4.3).
    public var beta: Float
    /// γ, the helper-loss weight: 0.5 (README command; the parser default is 1.0).
    public var gamma: Float
    /// h, how far past x̃ the helper example goes: 2.0 (parser default; the function's own default is 3.5).
    public var h: Float

    public static let defaultAttack = PGDConfig.hatTrainCIFAR
    public static let defaultBeta: Float = 2.5
    public static let defaultGamma: Float = 0.5
    public static let defaultH: Float = 2.0

    public init(attack: PGDConfig = HATConfig.defaultAttack, beta: Float = HATConfig.defaultBeta,
                gamma: Float = HATConfig.defaultGamma, h: Float = HATConfig.defaultH) {
        self.attack = attack; self.beta = beta; self.gamma = gamma; self.h = h
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: MethodCodingKeys.self)
        self.init(attack: try c.decodeIfPresent(PGDConfig.self, forKey: .attack) ?? Self.defaultAttack,
                  beta: try c.decodeIfPresent(Float.self, forKey: .beta) ?? Self.defaultBeta,
                  gamma: try c.decodeIfPresent(Float.self, forKey: .gamma) ?? Self.defaultGamma,
                  h: try c.decodeIfPresent(Float.self, forKey: .h) ?? Self.defaultH)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: MethodCodingKeys.self)
        try c.encode(attack, forKey: .attack); try c.encode(beta, forKey: .beta)
        try c.encode(gamma, forKey: .gamma); try c.encode(h, forKey: .h)
    }
}

/// JSON keys of every method configuration (one flat object: `{"method": "trades", "attack": …, "beta": 6}`).
enum MethodCodingKeys: String, CodingKey { case method, attack, beta, gamma, h }

// MARK: - MethodConfig

/// A training method with its configuration.
///
/// JSON form: one flat object naming the method, e.g. `{"method": "trades", "beta": 6, "attack": {…}}`;
/// absent fields take the method's defaults.
public enum MethodConfig: Codable, Hashable, Sendable {
    case standard(StandardConfig)
    case pgdAT(PGDATConfig)
    case trades(TRADESConfig)
    case mart(MARTConfig)
    case hat(HATConfig)

    /// Method names, as the CLI and the JSON form spell them.
    public static let names = ["standard", "pgd-at", "trades", "mart", "hat"]

    public var name: String {
        switch self {
        case .standard: return "standard"
        case .pgdAT: return "pgd-at"
        case .trades: return "trades"
        case .mart: return "mart"
        case .hat: return "hat"
        }
    }

    /// The method named `name` (one of `names`; `pgdat`, `madry` also accepted) with its defaults,
    /// or nil for an unknown name. When `attack` is given, its ε, step size, steps, norm and
    /// restarts replace the method's default attack, but the random start stays the method's own
    /// convention (uniform for PGD-AT, Gaussian 0.001 for TRADES, MART and HAT), so switching
    /// methods never silently carries one method's start into another.
    public static func defaultConfig(named name: String, attack: PGDConfig? = nil) -> MethodConfig? {
        func adopt(_ base: PGDConfig) -> PGDConfig {
            guard var a = attack else { return base }
            a.randomStart = base.randomStart
            return a
        }
        switch name.lowercased() {
        case "standard", "natural": return .standard(StandardConfig())
        case "pgd-at", "pgdat", "madry": return .pgdAT(PGDATConfig(attack: adopt(PGDATConfig.defaultAttack)))
        case "trades": return .trades(TRADESConfig(attack: adopt(TRADESConfig.defaultAttack)))
        case "mart": return .mart(MARTConfig(attack: adopt(MARTConfig.defaultAttack)))
        case "hat": return .hat(HATConfig(attack: adopt(HATConfig.defaultAttack)))
        default: return nil
        }
    }

    /// The training attack (nil for standard training). Setting it on `.standard` does nothing.
    public var attack: PGDConfig? {
        get {
            switch self {
            case .standard: return nil
            case .pgdAT(let c): return c.attack
            case .trades(let c): return c.attack
            case .mart(let c): return c.attack
            case .hat(let c): return c.attack
            }
        }
        set {
            guard let a = newValue else { return }
            switch self {
            case .standard: break
            case .pgdAT(var c): c.attack = a; self = .pgdAT(c)
            case .trades(var c): c.attack = a; self = .trades(c)
            case .mart(var c): c.attack = a; self = .mart(c)
            case .hat(var c): c.attack = a; self = .hat(c)
            }
        }
    }

    /// β (TRADES, MART, HAT; nil for standard and PGD-AT, where setting it does nothing).
    public var beta: Float? {
        get {
            switch self {
            case .standard, .pgdAT: return nil
            case .trades(let c): return c.beta
            case .mart(let c): return c.beta
            case .hat(let c): return c.beta
            }
        }
        set {
            guard let b = newValue else { return }
            switch self {
            case .standard, .pgdAT: break
            case .trades(var c): c.beta = b; self = .trades(c)
            case .mart(var c): c.beta = b; self = .mart(c)
            case .hat(var c): c.beta = b; self = .hat(c)
            }
        }
    }

    /// The first problem with these values, or nil when they are usable.
    public var problem: String? {
        if let a = attack, let p = a.problem { return p }
        if let b = beta, !(b >= 0 && b.isFinite) { return "β \(b) must be a finite number ≥ 0" }
        if case .hat(let c) = self {
            if !(c.gamma >= 0 && c.gamma.isFinite) { return "γ \(c.gamma) must be a finite number ≥ 0" }
            if !c.h.isFinite { return "h \(c.h) must be finite" }
        }
        return nil
    }

    // MARK: Codable

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: MethodCodingKeys.self)
        let name = try c.decode(String.self, forKey: .method)
        switch name {
        case "standard": self = .standard(StandardConfig())
        case "pgd-at": self = .pgdAT(try PGDATConfig(from: decoder))
        case "trades": self = .trades(try TRADESConfig(from: decoder))
        case "mart": self = .mart(try MARTConfig(from: decoder))
        case "hat": self = .hat(try HATConfig(from: decoder))
        default:
            throw DecodingError.dataCorruptedError(
                forKey: .method, in: c,
                debugDescription: "unknown method '\(name)'; expected one of \(MethodConfig.names.joined(separator: ", "))")
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: MethodCodingKeys.self)
        try c.encode(name, forKey: .method)
        switch self {
        case .standard: break
        case .pgdAT(let m): try m.encode(to: encoder)
        case .trades(let m): try m.encode(to: encoder)
        case .mart(let m): try m.encode(to: encoder)
        case .hat(let m): try m.encode(to: encoder)
        }
    }
}

// MARK: - Construction

/// Why a method could not be built.
public enum MethodError: Error, CustomStringConvertible, Equatable {
    case invalid(method: String, problem: String)
    case missingHelper

    public var description: String {
        switch self {
        case .invalid(let m, let p):
            return "method \(m): \(p)\nhint: see `memloss train --help` for the method options"
        case .missingHelper:
            return "method hat needs a helper model (a standard-trained checkpoint of the same architecture)\n"
                + "hint: train one with `memloss train --method standard`, then pass --helper-checkpoint"
        }
    }
}

/// The training method for `config`. `helper` is HAT's frozen standard-trained model (ignored by
/// the other methods).
public func makeMethod(_ config: MethodConfig, helper: AnyClassifier?) throws -> any TrainingMethod {
    if let p = config.problem { throw MethodError.invalid(method: config.name, problem: p) }
    switch config {
    case .standard(let c): return StandardMethod(config: c)
    case .pgdAT(let c): return PGDATMethod(config: c)
    case .trades(let c): return TRADESMethod(config: c)
    case .mart(let c): return MARTMethod(config: c)
    case .hat(let c):
        guard let helper else { throw MethodError.missingHelper }
        return HATMethod(config: c, helper: helper)
    }
}
