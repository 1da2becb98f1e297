// AutoAttack.swift: the AutoAttack cascade (Croce & Hein 2020; algorithms.md §5.4): clean
// predictions first, then APGD-CE → APGD-T → FAB-T → Square, each run only on the points still
// robust, a point broken as soon as one attack finds a verified adversarial; resumable from a
// state file (AutoAttack+State.swift). Parallelism comes from the batched kernels (one level).

import Foundation
import Kernels
import Layers
import SystemIO
import Tensors

/// AutoAttack: robust accuracy as the per-sample worst case over a fixed cascade of attacks.
///
/// ```
/// robust⁰ = clean-correct
/// for attack A in the preset's order:  S_A = {i : robust_i};  run A on S_A in batches
///     robust_i ← false  for i ∈ S_A whose adversarial x̃_i is misclassified and inside the ball and box
/// robust accuracy = #robust / n
/// ```
/// Every adversarial an attack returns is re-checked here (one inference forward pass and the
/// ε-ball / [0, 1] test), so `robust` never rests on an attack's own bookkeeping. Each record
/// keeps `S_A` (`attacked`) and the points it broke, so the "never re-attack a broken point"
/// property can be checked from the outcome.
///
/// Shapes: `images [n, C, H, W]` in [0, 1], `labels [n]`.
public enum AutoAttack {
    /// The attack lists of [aa]'s versions.
    public enum Preset: String, Codable, Sendable, Hashable, CaseIterable {
        /// APGD-CE, APGD-T (9 targets), FAB-T (9 targets), Square (5,000 queries; L∞ only).
        case standard
        /// APGD-CE and APGD-T only (most of the standard version's strength at a fraction of the cost).
        case fast
    }

    /// One attack of the cascade.
    public enum Component: String, Codable, Sendable, Hashable, CaseIterable {
        case apgdCE = "apgd-ce", apgdT = "apgd-t", fabT = "fab-t", square
    }

    /// The cascade's settings; every default is AutoAttack's standard version (algorithms.md §5.4).
    public struct Config: Codable, Sendable, Hashable {
        public var epsilon: Float
        public var norm: PerturbationNorm
        public var preset: Preset
        /// Seed of every random draw; each attack and batch derives its own stream from it.
        public var seed: UInt64
        /// Points per attack batch (250 in [aa]); results depend on it through the random streams.
        public var batchSize: Int
        /// APGD iterations per run (per target for APGD-T).
        public var apgdIterations: Int
        /// FAB-T iterations per target.
        public var fabIterations: Int
        /// Targets of APGD-T and FAB-T.
        public var targetCount: Int
        /// Square's query budget.
        public var squareQueries: Int

        public static let defaultBatchSize = 250

        public init(epsilon: Float, norm: PerturbationNorm = .linf, preset: Preset = .standard, seed: UInt64 = 0,
                    batchSize: Int = Config.defaultBatchSize, apgdIterations: Int = APGDConfig.defaultIterations,
                    fabIterations: Int = 100, targetCount: Int = APGDConfig.defaultTargetCount, squareQueries: Int = 5000) {
            self.epsilon = epsilon; self.norm = norm; self.preset = preset; self.seed = seed; self.batchSize = batchSize
            self.apgdIterations = apgdIterations; self.fabIterations = fabIterations; self.targetCount = targetCount
            self.squareQueries = squareQueries
        }

        /// The attacks this configuration runs, in order. Square is L∞ only, so an L2 standard
        /// run has three (`skipped` names the fourth).
        public var components: [Component] {
            switch preset {
            case .fast: return [.apgdCE, .apgdT]
            case .standard: return norm == .linf ? [.apgdCE, .apgdT, .fabT, .square] : [.apgdCE, .apgdT, .fabT]
            }
        }

        /// Attacks of the preset that this configuration cannot run, with the reason.
        public var skipped: [(component: Component, reason: String)] {
            preset == .standard && norm == .l2 ? [(.square, "Square is implemented for L∞ only")] : []
        }

        public var apgdCE: APGDConfig {
            APGDConfig(epsilon: epsilon, norm: norm, loss: .crossEntropy, iterations: apgdIterations, restarts: 1)
        }
        public var apgdT: APGDConfig {
            APGDConfig(epsilon: epsilon, norm: norm, loss: .targetedDLR, iterations: apgdIterations, restarts: 1,
                       targetCount: targetCount)
        }
        public var fabT: FABConfig {
            FABConfig(epsilon: epsilon, norm: norm, iterations: fabIterations, targetCount: targetCount)
        }
        public var square: SquareConfig { SquareConfig(epsilon: epsilon, queries: squareQueries) }

        /// The first problem with these values for a model with `classes` outputs, as
        /// (field, problem), or nil.
        public func problem(classes: Int) -> (field: String, problem: String)? {
            if !(epsilon >= 0 && epsilon.isFinite) { return ("epsilon", "must be a finite number ≥ 0, got \(epsilon)") }
            if batchSize < 1 { return ("batchSize", "must be ≥ 1, got \(batchSize)") }
            if let p = apgdCE.problem(classes: classes) { return ("apgdIterations", p) }
            if let p = apgdT.problem(classes: classes) { return ("targetCount", p) }
            if components.contains(.fabT), let p = fabT.problem(classes: classes) { return ("fabIterations", p) }
            if components.contains(.square), let p = square.problem { return ("squareQueries", p) }
            return nil
        }
    }

    /// What one attack of the cascade did.
    public struct AttackRecord: Codable, Sendable, Equatable {
        public var attack: Component
        /// Indices (into the evaluated set) still robust when the attack started: the points it ran on.
        public var attacked: [Int]
        /// Indices it broke (verified adversarials), a subset of `attacked`.
        public var broken: [Int]
        /// Wall-clock seconds spent in this attack (summed over resumed sessions).
        public var seconds: Double
        /// Batches of `attacked` finished (`attacked` is cut into `batchSize` chunks in order).
        public var batchesDone: Int
        public var complete: Bool
    }

    /// The result of a cascade.
    public struct Outcome {
        /// Per point: correctly classified clean.
        public var clean: [Bool]
        /// Per point: correct clean and under every attack (the per-sample worst case).
        public var robust: [Bool]
        /// One record per attack run so far, in cascade order.
        public var records: [AttackRecord]
        /// Seconds of the clean pass.
        public var cleanSeconds: Double
        /// `[n, C, H, W]`: each broken point's verified adversarial, the clean image elsewhere.
        /// Nil when part of the run came from a state file (adversarials are not stored there).
        public var adversarial: Tensor?
        /// Whether a state file supplied part of the result.
        public var resumed: Bool
        /// False when `shouldContinue` stopped the run early (the state file holds the progress).
        public var finished: Bool

        public var cleanAccuracy: Double { fraction(clean) }
        public var robustAccuracy: Double { fraction(robust) }
        private func fraction(_ v: [Bool]) -> Double { v.isEmpty ? 0 : Double(v.filter { $0 }.count) / Double(v.count) }
    }

    /// Progress after each batch: the attack, batches done and in total for it.
    public struct Progress: Sendable {
        public var attack: Component
        public var batchesDone: Int
        public var batchCount: Int
        public var robustCount: Int
    }

    /// Tolerance of the ball and box re-check of returned adversarials (float rounding of the
    /// projections: one ulp of values ≤ 1, relative for L2 norms).
    public static let verificationTolerance: Float = 1e-6

    /// Runs the cascade.
    ///
    /// - Parameters:
    ///   - stateFile: if given, progress is written there atomically after the clean pass and after
    ///     every batch; if it exists when the run starts, the run continues from it, provided it was
    ///     written for the same configuration, images, labels and model weights.
    ///   - shouldContinue: called after every batch (after the state is saved); returning false
    ///     stops the run with `finished == false`.
    ///   - pointKeys: nil: each attack draws from one stream per batch (a point's draws depend on its
    ///     batch). Otherwise one key per point (e.g. its position in a larger evaluated set): APGD's
    ///     starts and Square's proposals for point i come from a stream of (seed, attack, key i), so a
    ///     point's result does not depend on which points share its batch or its MPI rank.
    /// - Throws: `AutoAttackError` for an invalid configuration, a state file that cannot be read or
    ///   does not match (naming the file and the field), or a failed write.
    public static func run<M: Classifier>(model: M, images: Tensor, labels: [Int32], config: Config,
                                          stateFile: URL? = nil, pointKeys: [UInt64]? = nil,
                                          shouldContinue: ((Progress) -> Bool)? = nil) throws(AutoAttackError) -> Outcome {
        if let p = config.problem(classes: model.classCount) { throw .invalidConfig(field: p.field, problem: p.problem) }
        guard images.rank == 4, labels.count == images.shape[0] else {
            throw .invalidConfig(field: "images", problem: "expected [n, C, H, W] with one label each, got \(images.shape) "
                                 + "and \(labels.count) labels")
        }
        if let pointKeys, pointKeys.count != labels.count {
            throw .invalidConfig(field: "pointKeys", problem: "expected one key per point (\(labels.count)), got \(pointKeys.count)")
        }
        let identity = StateIdentity(config: config, images: images, labels: labels, model: model, pointKeys: pointKeys)
        var state: CascadeState
        var resumed = false
        if let stateFile, FileManager.default.fileExists(atPath: stateFile.path) {
            state = try CascadeState.load(from: stateFile, expecting: identity)
            resumed = true
        } else {
            let start = Date()
            let clean = batchedCorrectness(model, images: images, labels: labels, batchSize: config.batchSize)
            state = CascadeState(identity: identity, clean: clean, robust: clean, cleanSeconds: Date().timeIntervalSince(start),
                                 records: [])
            if let stateFile { try state.save(to: stateFile) }
        }
        var adversarial: Tensor? = resumed ? nil : images
        for component in config.components {
            let index: Int
            if let k = state.records.firstIndex(where: { $0.attack == component }) {
                index = k
            } else {
                let robust = state.robust
                state.records.append(AttackRecord(attack: component, attacked: robust.indices.filter { robust[$0] },
                                                  broken: [], seconds: 0, batchesDone: 0, complete: false))
                index = state.records.count - 1
            }
            let finished = try runAttack(model, component, record: index, images: images, labels: labels, config: config,
                                         pointKeys: pointKeys, state: &state, adversarial: &adversarial, stateFile: stateFile,
                                         shouldContinue: shouldContinue)
            if !finished {
                return Outcome(clean: state.clean, robust: state.robust, records: state.records, cleanSeconds: state.cleanSeconds,
                               adversarial: adversarial, resumed: resumed, finished: false)
            }
        }
        return Outcome(clean: state.clean, robust: state.robust, records: state.records, cleanSeconds: state.cleanSeconds,
                       adversarial: adversarial, resumed: resumed, finished: true)
    }

    /// Runs the remaining batches of one attack; false if `shouldContinue` asked to stop.
    static func runAttack<M: Classifier>(_ model: M, _ component: Component, record k: Int, images: Tensor, labels: [Int32],
                                         config: Config, pointKeys: [UInt64]?, state: inout CascadeState, adversarial: inout Tensor?,
                                         stateFile: URL?, shouldContinue: ((Progress) -> Bool)?) throws(AutoAttackError) -> Bool {
        let attacked = state.records[k].attacked
        let batchCount = (attacked.count + config.batchSize - 1) / config.batchSize
        while state.records[k].batchesDone < batchCount {
            let b = state.records[k].batchesDone
            let rows = Array(attacked[(b * config.batchSize)..<min(attacked.count, (b + 1) * config.batchSize)])
            let start = Date()
            let x = gatherRows(images, rows), y = rows.map { labels[$0] }
            var random = pointKeys.map { keys in
                RowRandom(perRow: rows.map { SplitMix64.derived(seed: config.seed ^ streamTag(component) ^ pointSalt, stream: keys[$0]) })
            } ?? RowRandom(shared: SplitMix64.derived(seed: config.seed ^ streamTag(component), stream: UInt64(b)))
            let candidate = attack(model, component, images: x, labels: y, config: config, random: &random)
            let verified = verify(model, candidate, clean: x, labels: y, epsilon: config.epsilon, norm: config.norm)
            let hit = rows.indices.filter { verified[$0] }
            var robust = state.robust
            for j in hit { robust[rows[j]] = false }
            state.robust = robust
            state.records[k].broken += hit.map { rows[$0] }
            if adversarial != nil { scatterRows(&adversarial!, gatherRows(candidate, hit), hit.map { rows[$0] }) }
            state.records[k].seconds += Date().timeIntervalSince(start)
            state.records[k].batchesDone = b + 1
            state.records[k].complete = b + 1 == batchCount
            if let stateFile { try state.save(to: stateFile) }
            FaultPoint.hit("autoattack.afterBatch")  // the resume tests kill a run here, its state saved
            let progress = Progress(attack: component, batchesDone: b + 1, batchCount: batchCount,
                                    robustCount: robust.filter { $0 }.count)
            if let shouldContinue, !shouldContinue(progress) { return false }
        }
        state.records[k].complete = true
        if let stateFile { try state.save(to: stateFile) }
        return true
    }

    /// One attack on one batch: its candidate adversarials `[B, C, H, W]`.
    static func attack<M: Classifier>(_ model: M, _ component: Component, images: Tensor, labels: [Int32], config: Config,
                                      random: inout RowRandom) -> Tensor {
        switch component {
        case .apgdCE: return APGD.attack(model, images: images, labels: labels, config: config.apgdCE, random: &random).adversarial
        case .apgdT: return APGD.attack(model, images: images, labels: labels, config: config.apgdT, random: &random).adversarial
        case .fabT: return FAB.attack(model, images: images, labels: labels, config: config.fabT).adversarial
        case .square: return Square.attack(model, images: images, labels: labels, config: config.square, random: &random).adversarial
        }
    }

    /// Salt of the per-point streams (`pointKeys`), so they never coincide with the per-batch ones.
    static let pointSalt: UInt64 = 0x706F_696E_7473_6431  // "pointsd1"

    /// A distinct random stream per attack (so adding or removing one does not shift the others).
    static func streamTag(_ c: Component) -> UInt64 {
        switch c {
        case .apgdCE: return 0xA9D6_0001
        case .apgdT: return 0xA9D6_0002
        case .fabT: return 0xFAB0_0003
        case .square: return 0x5C0A_0004
        }
    }

    /// Per row: `candidate` is misclassified (inference mode) and within ε of `clean` and in [0, 1].
    public static func verify<M: Classifier>(_ model: M, _ candidate: Tensor, clean: Tensor, labels: [Int32],
                                             epsilon: Float, norm: PerturbationNorm) -> [Bool] {
        let wrong = Predictions.correct(model.logits(candidate, mode: .inference), labels: labels).map { !$0 }
        let n = clean.shape[0], len = n == 0 ? 0 : clean.count / n
        let a = candidate.scalars, c = clean.scalars
        return (0..<n).map { i in
            guard wrong[i] else { return false }
            var linf = 0.0, squares = 0.0
            for j in (i * len)..<((i + 1) * len) {
                if !(a[j] >= 0 && a[j] <= 1) { return false }
                let d = Double(a[j]) - Double(c[j])
                linf = max(linf, abs(d)); squares += d * d
            }
            let tol = Double(verificationTolerance)
            return norm == .linf ? linf <= Double(epsilon) + tol : squares.squareRoot() <= Double(epsilon) * (1 + tol) + tol
        }
    }

    /// Clean correctness in batches of `batchSize` (inference mode).
    static func batchedCorrectness<M: Classifier>(_ model: M, images: Tensor, labels: [Int32], batchSize: Int) -> [Bool] {
        var out = [Bool]()
        var lo = 0
        while lo < labels.count {
            let hi = min(labels.count, lo + batchSize)
            out += Predictions.correct(model.logits(images.rows(lo..<hi), mode: .inference), labels: Array(labels[lo..<hi]))
            lo = hi
        }
        return out
    }
}
