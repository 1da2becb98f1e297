// MemLoss.swift: the MemLoss term (algorithms.md §1.4, design.md §3) over a window of K remembered
// generations, its options (β′, weighting, reduction, selection; the window, stride, codec and store
// are MemoryStoreConfig's), the selection of memory entries, and the term itself as an `AuxiliaryLoss`:
//
//   L_mem = β′ · (1/B) Σ_i c_i Σ_{k∈S_i} w_ik · KL(p(x_i) ‖ p(x′_ik)),
//   w_ik = 1.0000001 − p_y(x′_ik),   c_i = 1/|S_i| (mean) or 1 (sum)
//
// with a separate training-mode forward pass for the memory examples, gradients through both KL
// arguments and (by default, author style) through the weight. Where the examples come from (RAM or
// the on-disk bank) is MemoryStore's business.

import Foundation
import Kernels
import Layers
import MemoryBank
import Tensors

/// How the memory term weights each entry.
public enum MemoryWeighting: String, Codable, Sendable, CaseIterable {
    /// w = 1.0000001 − p_y(x′), gradient flows through w (the authors' commented "XPRIME WEIGHTED").
    case difficulty
    /// The same weight treated as a constant.
    case difficultyDetached = "difficulty-detached"
    /// w = 1.
    case uniform
}

/// How the entries of one sample are combined (design.md §3; algorithms.md §1.4 for K > 1).
public enum MemoryReduction: String, Codable, Sendable, CaseIterable {
    /// c_i = 1/|S_i|: a sample weighs the same whatever the number of its remembered entries.
    case mean
    /// c_i = 1: every remembered entry counts fully.
    case sum
}

/// Which stored entries of a batch enter the term. Uses only what the bank recorded at generation
/// time (no extra forward pass): p_y(x̃) and the margin z_y − max_{j≠y} z_j.
public enum MemorySelection: Hashable, Sendable, CustomStringConvertible, Codable {
    /// Every entry present.
    case all
    /// The ⌈F·M⌉ entries of the batch (M present) with the lowest stored p_y (ties: batch order,
    /// then window slot), at least one when M > 0. F in (0, 1].
    case hardest(fraction: Double)
    /// Entries whose stored margin is negative (the example fooled the model when it was made).
    case misclassified

    /// Parses `all`, `hardest:F` or `misclassified`.
    public init?(parsing text: String) {
        switch text {
        case "all": self = .all
        case "misclassified": self = .misclassified
        default:
            guard text.hasPrefix("hardest:"), let f = Double(text.dropFirst("hardest:".count)), f > 0, f <= 1 else {
                return nil
            }
            self = .hardest(fraction: f)
        }
    }

    public var description: String {
        switch self {
        case .all: return "all"
        case .misclassified: return "misclassified"
        case .hardest(let f): return "hardest:\(f)"
        }
    }

    public init(from decoder: Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let s = MemorySelection(parsing: text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                                                    debugDescription: "'\(text)' is not all, hardest:F (0 < F ≤ 1) or misclassified"))
        }
        self = s
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}

/// Options of the MemLoss term itself: how much it weighs and which remembered entries it reads.
/// Defaults (design.md §3): β′ = 2, difficulty weighting, mean reduction, all entries.
public struct MemLossTermConfig: Codable, Sendable, Hashable {
    /// β′, the memory-term weight.
    public var beta: Float
    public var weighting: MemoryWeighting
    public var reduce: MemoryReduction
    public var select: MemorySelection

    public static let defaultBeta: Float = 2
    /// Keeps the weight above 0 when p_y(x′) = 1 (the authors' 1.0000001).
    public static let weightOffset: Float = 1.0000001

    public init(beta: Float = MemLossTermConfig.defaultBeta, weighting: MemoryWeighting = .difficulty,
                reduce: MemoryReduction = .mean, select: MemorySelection = .all) {
        self.beta = beta; self.weighting = weighting; self.reduce = reduce; self.select = select
    }

    enum CodingKeys: String, CodingKey { case beta, weighting, reduce, select }

    /// Keys absent from a config file keep their defaults.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = MemLossTermConfig()
        beta = try c.decodeIfPresent(Float.self, forKey: .beta) ?? d.beta
        weighting = try c.decodeIfPresent(MemoryWeighting.self, forKey: .weighting) ?? d.weighting
        reduce = try c.decodeIfPresent(MemoryReduction.self, forKey: .reduce) ?? d.reduce
        select = try c.decodeIfPresent(MemorySelection.self, forKey: .select) ?? d.select
    }

    /// One selected memory entry: its row in the `[B·K]` slab, its batch position and c_i.
    public struct SelectedEntry: Equatable, Sendable {
        public var row: Int
        public var position: Int
        public var coefficient: Float
    }

    /// Applies the selection rule and the reduction to a batch's examples (pure: tests drive it).
    /// Rows are returned in slab order (sample-major, then slot). TrainingStep is its one caller
    /// in training; the term consumes the result.
    public func selectEntries(_ m: MemoryExamples) -> [SelectedEntry] {
        var rows: [Int] = []
        for r in 0..<(m.count * m.window) where m.present[r] {
            if select == .misclassified && !(m.storedMargin[r] < 0) { continue }
            rows.append(r)
        }
        if case .hardest(let f) = select, !rows.isEmpty {
            let keep = max(1, Int((f * Double(rows.count)).rounded(.up)))
            let ranked = rows.sorted { a, b in
                m.storedPY[a] != m.storedPY[b] ? m.storedPY[a] < m.storedPY[b] : a < b
            }
            rows = Array(ranked.prefix(keep)).sorted()
        }
        var perSample = [Int](repeating: 0, count: m.count)
        for r in rows { perSample[r / m.window] += 1 }
        return rows.map { r in
            let i = r / m.window
            return SelectedEntry(row: r, position: i, coefficient: reduce == .mean ? 1 / Float(perSample[i]) : 1)
        }
    }
}

/// MemLoss as `TrainConfig.memLoss`: the term's options and the store's options. Its JSON form is
/// flat and unchanged (`{"beta": 2, "window": 1, "codec": "q8", "store": "disk", …}`); absent keys
/// keep their defaults.
public struct MemLossConfig: Codable, Sendable, Hashable {
    public var term: MemLossTermConfig
    public var store: MemoryStoreConfig

    public init(term: MemLossTermConfig = MemLossTermConfig(), store: MemoryStoreConfig = MemoryStoreConfig()) {
        self.term = term; self.store = store
    }

    /// The flat form, field for field as in the JSON.
    public init(beta: Float = MemLossTermConfig.defaultBeta, weighting: MemoryWeighting = .difficulty, window: Int = 1,
                stride: Int = 1, reduce: MemoryReduction = .mean, select: MemorySelection = .all, codec: BankCodec = .q8,
                store: MemoryStoreKind = .disk, directory: String? = nil) {
        self.init(term: MemLossTermConfig(beta: beta, weighting: weighting, reduce: reduce, select: select),
                  store: MemoryStoreConfig(window: window, stride: stride, codec: codec, kind: store, directory: directory))
    }

    /// Both halves read their keys from the one flat object.
    public init(from decoder: Decoder) throws {
        term = try MemLossTermConfig(from: decoder)
        store = try MemoryStoreConfig(from: decoder)
    }

    /// Both halves write their keys into the one flat object.
    public func encode(to encoder: Encoder) throws {
        try term.encode(to: encoder)
        try store.encode(to: encoder)
    }

    /// The first invalid field as (name, value, expectation), named as in the flat JSON.
    public var problem: (field: String, value: String, expected: String)? {
        if !(term.beta.isFinite && term.beta >= 0) { return ("memLoss.beta", "\(term.beta)", "a finite number ≥ 0") }
        if store.window < 1 || store.window > 64 { return ("memLoss.window", "\(store.window)", "an integer in 1…64") }
        if store.stride < 1 || store.stride > 1000 { return ("memLoss.stride", "\(store.stride)", "an integer in 1…1000") }
        if case .hardest(let f) = term.select, !(f > 0 && f <= 1) {
            return ("memLoss.select", "\(term.select)", "hardest:F with 0 < F ≤ 1")
        }
        if store.recordOnly && store.kind == .ram {
            return ("memLoss.store", "ram", "disk with recordOnly (a RAM memory that is never read keeps nothing after the run)")
        }
        return nil
    }
}

/// The memory examples of one batch of B samples and K window slots, as the term consumes them.
public struct MemoryExamples {
    /// B (rows of the training batch).
    public var count: Int
    /// K.
    public var window: Int
    /// x′ as `[R, C, H, W]` with R ≥ B·K; row `i·K + k` is sample i's example from slot k where present.
    public var images: Tensor
    /// `present[i·K + k]` (B·K values).
    public var present: [Bool]
    /// p_y(x̃) and margin recorded when each entry was made (B·K values; meaningful where present).
    public var storedPY: [Float]
    public var storedMargin: [Float]
    /// Entries looked up but not found (sample not in that generation) and entries skipped as damaged.
    public var absent: Int
    public var corrupt: Int
    /// One line per damaged entry, naming the file, generation and sample.
    public var problems: [String]
    /// The view each entry was made in (B·K values; meaningful where present): the warm start maps
    /// x′ from it into the batch's view (WarmStart.swift).
    public var views: [ViewParameters]

    /// `views` nil: every entry was made in the identity view.
    public init(count: Int, window: Int, images: Tensor, present: [Bool], storedPY: [Float], storedMargin: [Float],
                absent: Int = 0, corrupt: Int = 0, problems: [String] = [], views: [ViewParameters]? = nil) {
        precondition(present.count >= count * window && storedPY.count >= count * window && storedMargin.count >= count * window,
                     "MemoryExamples: need B·K presence and metadata values")
        precondition((views?.count ?? count * window) >= count * window, "MemoryExamples: need B·K views")
        self.count = count; self.window = window; self.images = images; self.present = present
        self.storedPY = storedPY; self.storedMargin = storedMargin
        self.absent = absent; self.corrupt = corrupt; self.problems = problems
        self.views = views ?? Array(repeating: .identity, count: count * window)
    }

    /// A batch without memory (epoch 1, or every slot's generation missing).
    public static func empty(count: Int, window: Int, absent: Int = 0) -> MemoryExamples {
        MemoryExamples(count: count, window: window, images: Tensor(zeros: [0]), present: Array(repeating: false, count: count * window),
                       storedPY: Array(repeating: 0, count: count * window), storedMargin: Array(repeating: 0, count: count * window),
                       absent: absent)
    }

    /// Entries present.
    public var presentCount: Int { present.prefix(count * window).reduce(0) { $0 + ($1 ? 1 : 0) } }
}

/// The MemLoss term as an `AuxiliaryLoss` for one step, over the entries TrainingStep selected.
/// With no selected entry it does nothing at all (no forward pass), so epoch 1 is exactly the base
/// method. With a `PassProfiler` on the model, everything after the selection check (gather, forward,
/// KL, backward) is one `.memLoss` interval.
public struct MemLossTerm: AuxiliaryLoss {
    public let config: MemLossTermConfig
    public let examples: MemoryExamples
    /// `config.selectEntries(examples)`, computed by the caller (TrainingStep, which also counts it).
    public let selected: [MemLossTermConfig.SelectedEntry]

    public init(config: MemLossTermConfig, examples: MemoryExamples, selected: [MemLossTermConfig.SelectedEntry]) {
        self.config = config; self.examples = examples; self.selected = selected
    }

    /// Terms: `mem`, the weighted, β′-scaled value added to the loss.
    public func apply(model: AnyClassifier, cleanLogits: Tensor, labels: [Int32])
        -> (terms: [String: Float], dCleanLogits: Tensor) {
        var dClean = Tensor(zeros: cleanLogits.shape)
        precondition(examples.count == cleanLogits.shape[0], "MemLossTerm: examples for \(examples.count) samples, batch \(cleanLogits.shape[0])")
        guard !selected.isEmpty else { return ([:], dClean) }
        let pass = model.beginPass(.memLoss); defer { model.endPass(pass) }
        let b = cleanLogits.shape[0], k = cleanLogits.shape[1], m = selected.count
        let cleanSub = cleanLogits.gatherRows(selected.map(\.position))
        let (memLogits, cache) = model.forward(examples.images.gatherRows(selected.map(\.row)), mode: .training)
        let q = Loss.softmax(memLogits).scalars
        let ys = selected.map { Int(labels[$0.position]) }
        let weights: [Float] = selected.enumerated().map { r, e in
            e.coefficient * (config.weighting == .uniform ? 1 : MemLossTermConfig.weightOffset - q[r * k + ys[r]])
        }
        // The kernel computes scale · Σ_r w_r·KL_r / m (value unscaled); scale = β′·m/B gives β′/B.
        let scale = config.beta * Float(m) / Float(b)
        let kl = Loss.kl(cleanSub, memLogits, sampleWeights: weights, scale: scale)
        var dMem = kl.dLogitsQ
        if config.weighting == .difficulty {
            // ∂w/∂z′_j = −c·q_y (δ_yj − q_j); contributes β′/B · KL_r · ∂w/∂z′.
            let f = config.beta / Float(b)
            for r in 0..<m {
                let y = ys[r], qy = q[r * k + y], c = selected[r].coefficient
                for j in 0..<k {
                    let dw = -c * qy * ((j == y ? 1 : 0) - q[r * k + j])
                    dMem[flat: r * k + j] += f * kl.perSample[r] * dw
                }
            }
        }
        _ = model.backward(dMem, cache: cache, targets: .parameters)
        let dp = kl.dLogitsP.scalars
        for (r, e) in selected.enumerated() {
            for c in 0..<k { dClean[flat: e.position * k + c] += dp[r * k + c] }
        }
        let value = kl.loss * scale
        return (["mem": value], dClean)
    }
}

/// What the bank records about an adversarial example when it is made (from the training-mode
/// logits of x̃): label, p_y(x̃), margin z_y − max_{j≠y} z_j, and CE(f(x̃), y).
public func memoryMetadata(adversarialLogits logits: Tensor, labels: [Int32]) -> [EntryMetadata] {
    let k = logits.shape[1]
    let p = Loss.softmax(logits).scalars, z = logits.scalars
    return labels.enumerated().map { i, y in
        let yi = Int(y)
        var other = -Float.infinity
        for j in 0..<k where j != yi { other = max(other, z[i * k + j]) }
        let py = p[i * k + yi]
        return EntryMetadata(label: y, pY: py, margin: z[i * k + yi] - other, loss: -log(max(py, .leastNormalMagnitude)))
    }
}
