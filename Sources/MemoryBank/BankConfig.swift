// BankConfig.swift: what a bank stores and how (shape, ε, norm, codec, window K, stride s), the
// per-entry metadata and view bytes, the directory's file names, and the window arithmetic: which
// generations epoch e reads and which the writer keeps under its retention policy (docs/format/membank-v1.md
// §3, §3.1). No I/O here.

import Tensors

/// The norm of the attack's ε-ball (Tensors' `PerturbationNorm`). On disk: 1 = L∞, 2 = L2 (values
/// never reused).
extension PerturbationNorm {
    var code: UInt8 { self == .linf ? 1 : 2 }

    init?(code: UInt8) {
        switch code {
        case 1: self = .linf
        case 2: self = .l2
        default: return nil
        }
    }
}

/// How a perturbation is stored (spec §7). On disk: 1 f32, 2 f16, 3 q8, 4 q4, 5 levels, 6 q8rc, 7 q8rcn.
public enum BankCodec: String, Codable, CaseIterable, Sendable {
    /// float32, lossless (the reference).
    case f32
    /// IEEE binary16, round to nearest even; error ≤ half an ulp of binary16.
    case f16
    /// int8 levels with scale ε/127 (L∞) or max|δ|/127 (L2); error ≤ scale/2 = ε/254.
    case q8
    /// 4-bit levels (−7…7) with scale ε/7 (L∞) or max|δ|/7 (L2), two per byte; error ≤ ε/14.
    case q4
    /// The q8 levels re-encoded as a palette + minimal-width indices (packed or bit planes), per
    /// entry; lossless with respect to q8, so q8's error bound.
    case levels
    /// The q8 levels entropy-coded by an adaptive binary range coder with a spatial context model
    /// (spec §7.5); lossless with respect to q8, so q8's error bound.
    case q8rc
    /// q8rc with the attack's start noise known to the decoder: interior levels may be coded relative
    /// to the level of the regenerated noise (spec §7.6; the bank's `startNoise`); lossless with
    /// respect to q8, so q8's error bound.
    case q8rcn

    var code: UInt8 {
        switch self {
        case .f32: return 1
        case .f16: return 2
        case .q8: return 3
        case .q4: return 4
        case .levels: return 5
        case .q8rc: return 6
        case .q8rcn: return 7
        }
    }

    init?(code: UInt8) {
        switch code {
        case 1: self = .f32
        case 2: self = .f16
        case 3: self = .q8
        case 4: self = .q4
        case 5: self = .levels
        case 6: self = .q8rc
        case 7: self = .q8rcn
        default: return nil
        }
    }

    /// The largest level of the quantising codecs (nil for f32/f16).
    var levelLimit: Int8? {
        switch self {
        case .q8, .levels, .q8rc, .q8rcn: return 127
        case .q4: return 7
        case .f32, .f16: return nil
        }
    }

    /// Maximum absolute reconstruction error for a value `x` inside the ε-ball (spec §7), with the
    /// binary32 rounding allowance `2u·ε`. For L2, pass the entry's max|δ| as `epsilon`.
    public func errorBound(epsilon: Float, value x: Float = 0) -> Float {
        let rounding = 2 * 0x1p-24 * epsilon
        switch self {
        case .f32: return 0
        case .f16: return abs(x) >= 0x1p-14 ? abs(x) * 0x1p-11 : 0x1p-25
        case .q8, .levels, .q8rc, .q8rcn: return epsilon / 127 / 2 + rounding
        case .q4: return epsilon / 7 / 2 + rounding
        }
    }
}

/// The configuration of a bank, stored in the manifest and in every segment header.
public struct BankConfig: Codable, Hashable, Sendable {
    /// N: sample IDs are 0..<sampleCount (1…2³²−1).
    public var sampleCount: Int
    /// [C, H, W] of one perturbation (each ≥ 1; C·H·W ≤ 2²⁶).
    public var shape: [Int]
    /// ε of the attack, in input units ([0, 1] pixels); > 0. Sets the L∞ quantisation scale.
    public var epsilon: Float
    public var norm: PerturbationNorm
    /// Codec of every record (design.md §3 default: q8).
    public var codec: BankCodec
    /// K: memory slots read per sample (1…65535; design.md §3 default 1).
    public var window: Int
    /// s: spacing in epochs between remembered generations (1…65535; default 1).
    public var stride: Int
    /// Free text stored with the bank: the resolved training configuration as JSON (style.md §9.4).
    public var createdBy: String
    /// The attack's start noise, which the `q8rcn` codec regenerates (spec §4, §7.6): required for
    /// `q8rcn`, nil for every other codec.
    public var startNoise: BankStartNoise?

    public init(sampleCount: Int, shape: [Int], epsilon: Float, norm: PerturbationNorm = .linf,
                codec: BankCodec = .q8, window: Int = 1, stride: Int = 1, createdBy: String = "",
                startNoise: BankStartNoise? = nil) {
        self.sampleCount = sampleCount
        self.shape = shape
        self.epsilon = epsilon
        self.norm = norm
        self.codec = codec
        self.window = window
        self.stride = stride
        self.createdBy = createdBy
        self.startNoise = startNoise
    }

    /// n = C·H·W.
    public var elementCount: Int { shape.reduce(1, *) }

    /// Largest `createdBy` in bytes (spec §4).
    public static let maximumCreatedByBytes = 1 << 24
    /// Largest C·H·W (spec §4): keeps every record size within u32.
    public static let maximumElementCount = 1 << 26

    /// Throws `invalidConfig` when a field is outside its allowed values.
    public func validate() throws(MemoryBankError) {
        if sampleCount < 1 || sampleCount > Int(UInt32.max) {
            throw .invalidConfig(reason: "sampleCount \(sampleCount) outside 1…\(UInt32.max)")
        }
        if shape.count != 3 || shape.contains(where: { $0 < 1 || $0 > Int(UInt32.max) }) {
            throw .invalidConfig(reason: "shape \(shape) must be [C, H, W] with every entry ≥ 1")
        }
        // Multiplied with overflow checks: the module builds -Ounchecked, where `*` would wrap.
        var product = 1
        for d in shape {
            let (p, overflow) = product.multipliedReportingOverflow(by: d)
            if overflow || p > BankConfig.maximumElementCount {
                throw .invalidConfig(reason: "C·H·W of \(shape) exceeds \(BankConfig.maximumElementCount)")
            }
            product = p
        }
        if !(epsilon.isFinite && epsilon > 0) { throw .invalidConfig(reason: "epsilon \(epsilon) must be finite and > 0") }
        if window < 1 || window > Int(UInt16.max) { throw .invalidConfig(reason: "window K = \(window) outside 1…65535") }
        if stride < 1 || stride > Int(UInt16.max) { throw .invalidConfig(reason: "stride s = \(stride) outside 1…65535") }
        if createdBy.utf8.count > BankConfig.maximumCreatedByBytes {
            throw .invalidConfig(reason: "createdBy has \(createdBy.utf8.count) bytes, at most \(BankConfig.maximumCreatedByBytes)")
        }
        switch (codec, startNoise) {
        case (.q8rcn, nil):
            throw .invalidConfig(reason: "codec q8rcn needs startNoise (seed, σ, generator of the attack's start noise)")
        case (.q8rcn, let noise?):
            if noise.generator != StartNoise.irwinHall12 {
                throw .invalidConfig(reason: "startNoise generator \(noise.generator), this version knows 1 (Irwin–Hall 12)")
            }
            if !(noise.sigma.isFinite && noise.sigma >= 0) {
                throw .invalidConfig(reason: "startNoise σ \(noise.sigma) must be finite and ≥ 0")
            }
        case (_, .some):
            throw .invalidConfig(reason: "startNoise is only stored with codec q8rcn (codec \(codec.rawValue))")
        case (_, nil):
            break
        }
    }

    // MARK: - Window arithmetic (spec §3.1)

    /// The generations epoch `epoch` reads, slot k = 1…K: `[e − s, e − 2s, …, e − K·s]` (some may
    /// be negative or absent from the bank: those slots are empty).
    public func generationsRead(atEpoch epoch: Int) -> [Int] {
        (1...window).map { epoch - $0 * stride }
    }

    /// The generations the writer keeps after sealing `generation`: `[g − K·s, g]`, i.e. every
    /// generation an epoch `e ≥ g` reads. Epochs after g need `[g + 1 − K·s, g]`; the one extra
    /// generation `g − K·s` is what epoch g itself read, kept so that a run that crashes after
    /// sealing g but before its checkpoint can redo epoch g exactly (spec §3.1).
    public func retainedRange(afterSealing generation: Int) -> ClosedRange<Int> {
        (generation - window * stride)...generation
    }

    /// Whether the writer keeps generation `h` after sealing `generation` under `retention`:
    /// `.window` keeps `retainedRange(afterSealing:)`, `.all` keeps every generation `≤ generation`
    /// (nothing is deleted; spec §3.1).
    public func retains(_ h: Int, afterSealing generation: Int, retention: BankRetention) -> Bool {
        switch retention {
        case .window: return retainedRange(afterSealing: generation).contains(h)
        case .all: return h <= generation
        }
    }

    /// The configuration fields that must agree between a manifest, its segments and a reopened
    /// bank (all but `createdBy`), as (name, value) pairs for error messages.
    func structuralFields() -> [(String, String)] {
        [("sampleCount", "\(sampleCount)"), ("shape", "\(shape)"), ("epsilon", "\(epsilon)"),
         ("norm", norm.rawValue), ("codec", codec.rawValue), ("window", "\(window)"), ("stride", "\(stride)"),
         ("startNoise", startNoise.map { "generator \($0.generator), seed \($0.seed), σ \($0.sigma)" } ?? "none")]
    }

    /// The first structural field that differs from `other`, as (field, self's value, other's value).
    func firstStructuralDifference(from other: BankConfig) -> (String, String, String)? {
        for (a, b) in zip(structuralFields(), other.structuralFields()) where a.1 != b.1 {
            return (a.0, a.1, b.1)
        }
        if epsilon.bitPattern != other.epsilon.bitPattern { return ("epsilon", "\(epsilon)", "\(other.epsilon)") }
        if startNoise?.sigma.bitPattern != other.startNoise?.sigma.bitPattern {
            return ("startNoise σ", "\(startNoise?.sigma ?? 0)", "\(other.startNoise?.sigma ?? 0)")
        }
        return nil
    }
}

/// The attack's start noise as a bank stores it (spec §4): the `q8rcn` codec regenerates the
/// unit noise z of every entry with Tensors.StartNoise(seed:) at (generation, sample ID) and
/// multiplies it by σ. Nothing about models.
public struct BankStartNoise: Codable, Hashable, Sendable {
    /// Generator id: 1 = Tensors.StartNoise (Irwin–Hall of twelve 16-bit uniforms).
    public var generator: UInt8
    /// The noise seed (`StartNoise.seed`, a run's seed ^ `StartNoise.seedSalt`).
    public var seed: UInt64
    /// σ of the Gaussian start (TRADES: 0.001).
    public var sigma: Float

    public init(generator: UInt8 = StartNoise.irwinHall12, seed: UInt64, sigma: Float) {
        self.generator = generator
        self.seed = seed
        self.sigma = sigma
    }
}

/// Which sealed generations the writer keeps (spec §3.1). A runtime policy of the writer, not
/// stored in the bank: readers never depend on which generations were deleted. The trainer keeps
/// it in its configuration (`memLoss.keep`), so a resumed run applies the same policy.
public enum BankRetention: String, Codable, CaseIterable, Sendable {
    /// The window's `K·s + 1` newest generations, `[g − K·s, g]` after sealing `g` (the default).
    case window
    /// Every generation: nothing is deleted (replay and analysis of a whole run; the bank grows by
    /// one generation per epoch).
    case all
}

/// What the trainer knew about an entry when it made it (stored as given, never interpreted).
public struct EntryMetadata: Hashable, Codable, Sendable {
    /// Class label of the sample.
    public var label: Int32
    /// p_y(x̃): the model's probability of the label at the adversarial point.
    public var pY: Float
    /// Logit margin z_y − max_{j≠y} z_j at x̃.
    public var margin: Float
    /// The attack's loss at x̃.
    public var loss: Float

    public init(label: Int32, pY: Float = 0, margin: Float = 0, loss: Float = 0) {
        self.label = label
        self.pY = pY
        self.margin = margin
        self.loss = loss
    }

    public static let zero = EntryMetadata(label: 0)
}

/// File names inside a bank directory (spec §3).
enum BankLayout {
    static let manifestName = "manifest.mbm"
    static let lockName = "writer.lock"
    static let segmentSuffix = ".mbs"
    static let temporarySuffix = ".tmp"

    /// `gen-0000000007.mbs`: "gen-" + the generation in at least 10 zero-padded digits.
    static func segmentName(_ generation: Int) -> String {
        let digits = String(generation)
        return "gen-" + String(repeating: "0", count: max(0, 10 - digits.count)) + digits + segmentSuffix
    }

    /// The generation of a final segment name, or nil for any other name.
    static func generation(ofSegmentName name: String) -> Int? {
        guard name.hasPrefix("gen-"), name.hasSuffix(segmentSuffix) else { return nil }
        let digits = name.dropFirst(4).dropLast(segmentSuffix.count)
        guard digits.count >= 10, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return Int(digits)
    }
}
