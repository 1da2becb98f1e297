// PerturbationNorm.swift: the one norm enum of an ε-ball, shared by Attacks (the attack's ball),
// MemoryBank (stored in every bank header; its on-disk codes live in MemoryBank/BankConfig.swift) and
// Training (configs). JSON and flag spellings: "linf", "l2".

/// The norm of the ε-ball around a clean image.
public enum PerturbationNorm: String, Codable, Sendable, Hashable, CaseIterable {
    /// `‖x̃ − x‖∞ ≤ ε`: sign steps, per-pixel clipping (TRADES, MART, HAT, Madry).
    case linf
    /// `‖x̃ − x‖₂ ≤ ε` per sample: normalised-gradient steps, per-sample rescaling (TRADES L2 variant).
    case l2
}
