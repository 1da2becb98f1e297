// AutoAttackReport.swift: `memloss eval --attack autoattack`: the AutoAttack cascade (Attacks/
// AutoAttack.swift) on a set of samples, PGD-20 on the same samples, APGD-CE at a large ε, and the
// gradient-masking sanity checks built from them, as a JSON-encodable report and its Markdown.
// Thresholds and their reasons: docs/autoattack.md §Sanity checks.

import Attacks
import Datasets
import Foundation
import Layers
import Tensors

/// Settings of an AutoAttack evaluation beyond the cascade's own (`AutoAttack.Config`).
public struct AutoAttackOptions: Sendable {
    public var preset: AutoAttack.Preset
    public var norm: PerturbationNorm
    public var seed: UInt64
    public var batchSize: Int
    /// Continue from / save progress to this state file.
    public var stateFile: URL?
    /// The radius of the "accuracy falls to ~0" check; nil = `defaultLargeEpsilon`.
    public var largeEpsilon: Float?
    /// Points of the large-ε check (the first ones of the evaluated set).
    public var largeEpsilonSamples: Int
    /// Budgets of the cascade (AutoAttack's standard values by default; tests shrink them).
    public var apgdIterations = APGDConfig.defaultIterations
    public var fabIterations = 100
    public var targetCount = APGDConfig.defaultTargetCount
    public var squareQueries = 5000

    /// Check (2): Square may break at most this fraction of n beyond the white-box attacks.
    public static let squareMargin = 0.01
    /// Check (3): accuracy under APGD-CE at the large ε must be at most this.
    public static let largeEpsilonAccuracyLimit = 0.05
    /// Check (3) uses at most this many points by default (APGD-CE, 100 iterations).
    public static let defaultLargeEpsilonSamples = 100

    public init(preset: AutoAttack.Preset = .standard, norm: PerturbationNorm = .linf, seed: UInt64 = 0,
                batchSize: Int = AutoAttack.Config.defaultBatchSize, stateFile: URL? = nil, largeEpsilon: Float? = nil,
                largeEpsilonSamples: Int = AutoAttackOptions.defaultLargeEpsilonSamples) {
        self.preset = preset; self.norm = norm; self.seed = seed; self.batchSize = batchSize; self.stateFile = stateFile
        self.largeEpsilon = largeEpsilon; self.largeEpsilonSamples = largeEpsilonSamples
    }

    /// A radius whose ball contains the uniform mid-grey image from every image in [0, 1]ᵈ, so no
    /// classifier can be right on every point of it: 0.5 for L∞, `0.5·√d` for L2.
    public static func defaultLargeEpsilon(norm: PerturbationNorm, imageShape: [Int]) -> Float {
        norm == .linf ? 0.5 : 0.5 * Float(imageShape.reduce(1, *)).squareRoot()
    }
}

/// An AutoAttack evaluation: the cascade's breakdown, PGD-20 and the sanity checks.
public struct AutoAttackReport: Codable, Sendable {
    public struct AttackEntry: Codable, Sendable {
        public var attack: String
        /// Points still robust when the attack started.
        public var attacked: Int
        /// Points it broke.
        public var broken: Int
        /// Robust accuracy after this attack (fraction of n).
        public var robustAccuracyAfter: Double
        public var seconds: Double

        public init(attack: String, attacked: Int, broken: Int, robustAccuracyAfter: Double, seconds: Double) {
            self.attack = attack; self.attacked = attacked; self.broken = broken
            self.robustAccuracyAfter = robustAccuracyAfter; self.seconds = seconds
        }
    }

    /// One gradient-masking signal: `passed` is nil when the check could not be evaluated.
    public struct SanityCheck: Codable, Sendable {
        public var name: String
        public var rule: String
        public var value: String
        public var passed: Bool?
    }

    public struct Reference: Codable, Sendable {
        public var attack: String
        /// Fraction correct under the attack alone; and also correct clean (the worst case with clean).
        public var accuracy: Double
        public var worstCaseAccuracy: Double
        public var seconds: Double
    }

    public struct LargeEpsilon: Codable, Sendable {
        public var epsilon: Float
        public var n: Int
        public var attack: String
        public var accuracy: Double
        public var seconds: Double

        public init(epsilon: Float, n: Int, attack: String, accuracy: Double, seconds: Double) {
            self.epsilon = epsilon; self.n = n; self.attack = attack; self.accuracy = accuracy; self.seconds = seconds
        }
    }

    public var n: Int
    /// The sample IDs evaluated (indices into the split).
    public var ids: [Int]
    public var split: String
    public var seed: UInt64
    public var bnMode: String
    public var epsilonText: String
    public var epsilon: Float
    public var norm: String
    public var version: String
    public var attacksRun: [String]
    public var attacksSkipped: [String]
    public var batchSize: Int
    public var budgets: [String: Int]
    public var cleanAccuracy: Double
    public var cleanSeconds: Double
    /// The per-sample worst case over the clean input and every attack of the cascade.
    public var robustAccuracy: Double
    public var attacks: [AttackEntry]
    public var pgd20: Reference
    /// Points PGD-20 broke that the cascade did not (a weak-cascade signal; 0 expected).
    public var brokenByPGD20Only: Int
    public var largeEpsilon: LargeEpsilon
    public var checks: [SanityCheck]
    /// Names of the failed checks (empty when all evaluated checks pass).
    public var violations: [String]
    public var resumed: Bool
    public var seconds: Double
    /// Where the numbers came from (checkpoint, model, data); filled in by the caller.
    public var source: [String: String]
}

/// One rank's part of an AutoAttack evaluation (positions k ≡ rank mod R of the evaluated IDs),
/// per point, indexed by position in the whole evaluated list; what rank 0 gathers to build the report.
public struct AutoAttackShard: Codable, Sendable, Equatable {
    public struct Record: Codable, Sendable, Equatable {
        public var attack: String
        /// Positions attacked and broken.
        public var attacked: [Int]
        public var broken: [Int]
        public var seconds: Double
    }
    /// The positions this shard evaluated, ascending.
    public var positions: [Int]
    /// Per position of `positions`: clean correct, robust after the cascade, correct under PGD-20.
    public var clean: [Bool]
    public var robust: [Bool]
    public var pgdCorrect: [Bool]
    public var records: [Record]
    public var cleanSeconds: Double
    public var pgdSeconds: Double
    public var pgdName: String
    public var resumed: Bool
    public var seconds: Double
}

public enum AutoAttackEvaluation {
    /// Runs the cascade, PGD-20 and the large-ε check on the samples `ids` of `dataset`.
    ///
    /// The cascade draws its random numbers per point, keyed by the point's position in `ids`, so a
    /// point's result does not depend on its batch (AutoAttack.run's `pointKeys`); PGD-20 draws per
    /// batch of `options.batchSize`.
    /// - Parameter progress: called after every cascade batch; return false to stop (the state file,
    ///   if any, keeps the progress). A stopped run returns nil.
    public static func run<M: Classifier>(model: M, dataset: Dataset, ids: [Int], split: String, epsilonText: String,
                                          epsilon: Float, options o: AutoAttackOptions,
                                          progress: ((AutoAttack.Progress) -> Bool)? = nil) throws -> AutoAttackReport? {
        guard let part = try runShard(model: model, dataset: dataset, ids: ids, rank: 0, size: 1, epsilon: epsilon, options: o,
                                      progress: progress) else { return nil }
        let large = largeEpsilonCheck(model, dataset, ids, options: o)
        return assemble([part], ids: ids, split: split, epsilonText: epsilonText, epsilon: epsilon, options: o, large: large)
    }

    /// The evaluation as one of `parallel.size` ranks: this rank runs the cascade and PGD-20 on the
    /// positions k ≡ rank (mod R) of `ids`, rank 0 gathers every shard, runs the large-ε check on the
    /// first points of `ids` and builds the report (docs/distributed.md §5). A failure on any rank
    /// stops every rank together (`DataParallel.agreeing`).
    /// - Returns: the report on rank 0 (nil if a rank was stopped by `progress`); nil on the others.
    public static func run<M: Classifier>(model: M, dataset: Dataset, ids: [Int], split: String, epsilonText: String,
                                          epsilon: Float, options o: AutoAttackOptions, parallel: DataParallel,
                                          progress: ((AutoAttack.Progress) -> Bool)? = nil) throws -> AutoAttackReport? {
        guard parallel.isDistributed else {
            return try run(model: model, dataset: dataset, ids: ids, split: split, epsilonText: epsilonText, epsilon: epsilon,
                           options: o, progress: progress)
        }
        let part = try parallel.agreeing("AutoAttack") {
            try runShard(model: model, dataset: dataset, ids: ids, rank: parallel.rank, size: parallel.size, epsilon: epsilon,
                         options: o, progress: progress)
        }
        guard let parts = try parallel.gatherToRoot(part) else { return nil }
        let finished = parts.compactMap { $0 }
        guard finished.count == parts.count else { return nil }
        let large = largeEpsilonCheck(model, dataset, ids, options: o)
        return assemble(finished, ids: ids, split: split, epsilonText: epsilonText, epsilon: epsilon, options: o, large: large)
    }

    /// The cascade and PGD-20 on the positions `rank, rank + size, …` of `ids`; nil if stopped.
    public static func runShard<M: Classifier>(model: M, dataset: Dataset, ids: [Int], rank: Int, size: Int, epsilon: Float,
                                               options o: AutoAttackOptions,
                                               progress: ((AutoAttack.Progress) -> Bool)? = nil) throws -> AutoAttackShard? {
        let start = SystemStats.now
        let positions = Array(stride(from: rank, to: ids.count, by: size))
        let batch = BatchLoader(dataset: dataset, augmentation: .none, seed: o.seed).load(ids: positions.map { ids[$0] }, epoch: 0)
        let (x, y) = (batch.images, batch.labels)
        let config = AutoAttack.Config(epsilon: epsilon, norm: o.norm, preset: o.preset, seed: o.seed, batchSize: o.batchSize,
                                       apgdIterations: o.apgdIterations, fabIterations: o.fabIterations,
                                       targetCount: o.targetCount, squareQueries: o.squareQueries)
        let outcome = try AutoAttack.run(model: model, images: x, labels: y, config: config, stateFile: o.stateFile,
                                         pointKeys: positions.map { UInt64($0) }, shouldContinue: progress)
        guard outcome.finished else { return nil }
        let (pgd, pgdCorrect) = pgd20(model, x, y, epsilon: epsilon, norm: o.norm, seed: o.seed, batchSize: o.batchSize)
        return AutoAttackShard(
            positions: positions, clean: outcome.clean, robust: outcome.robust, pgdCorrect: pgdCorrect,
            records: outcome.records.map {
                .init(attack: $0.attack.rawValue, attacked: $0.attacked.map { positions[$0] }, broken: $0.broken.map { positions[$0] },
                      seconds: $0.seconds)
            },
            cleanSeconds: outcome.cleanSeconds, pgdSeconds: pgd.seconds, pgdName: pgd.name, resumed: outcome.resumed,
            seconds: SystemStats.now - start)
    }

    /// The report from the shards of every rank (together covering every position of `ids` once):
    /// per-point results put back at their positions, counts over the union, times the slowest shard's.
    public static func assemble(_ shards: [AutoAttackShard], ids: [Int], split: String, epsilonText: String, epsilon: Float,
                                options o: AutoAttackOptions, large: AutoAttackReport.LargeEpsilon) -> AutoAttackReport {
        let n = ids.count
        var clean = [Bool](repeating: false, count: n), robust = clean, pgdCorrect = clean
        for s in shards {
            for (k, p) in s.positions.enumerated() { clean[p] = s.clean[k]; robust[p] = s.robust[k]; pgdCorrect[p] = s.pgdCorrect[k] }
        }
        func fraction(_ k: Int) -> Double { n == 0 ? 0 : Double(k) / Double(n) }
        let config = AutoAttack.Config(epsilon: epsilon, norm: o.norm, preset: o.preset, seed: o.seed, batchSize: o.batchSize)
        var robustLeft = clean.filter { $0 }.count
        var entries = [AutoAttackReport.AttackEntry]()
        for c in config.components {
            let records = shards.compactMap { $0.records.first { $0.attack == c.rawValue } }
            guard !records.isEmpty else { continue }
            let broken = records.reduce(0) { $0 + $1.broken.count }
            robustLeft -= broken
            entries.append(.init(attack: c.rawValue, attacked: records.reduce(0) { $0 + $1.attacked.count }, broken: broken,
                                 robustAccuracyAfter: fraction(robustLeft), seconds: records.map(\.seconds).max() ?? 0))
        }
        let pgdWorst = zip(pgdCorrect, clean).map { $0 && $1 }
        let pgdOnly = (0..<n).filter { !pgdWorst[$0] && robust[$0] && clean[$0] }.count
        let robustAccuracy = fraction(robust.filter { $0 }.count)
        let checks = sanityChecks(robust: robustAccuracy, pgdWorst: fraction(pgdWorst.filter { $0 }.count),
                                  square: entries.first { $0.attack == AutoAttack.Component.square.rawValue }, n: n,
                                  large: large)
        return AutoAttackReport(
            n: n, ids: ids, split: split, seed: o.seed, bnMode: "inference", epsilonText: epsilonText, epsilon: epsilon,
            norm: o.norm.rawValue, version: o.preset.rawValue, attacksRun: config.components.map(\.rawValue),
            attacksSkipped: config.skipped.map { "\($0.component.rawValue): \($0.reason)" }, batchSize: o.batchSize,
            budgets: ["apgdIterations": o.apgdIterations, "fabIterations": o.fabIterations, "targetCount": o.targetCount,
                      "squareQueries": o.squareQueries],
            cleanAccuracy: fraction(clean.filter { $0 }.count), cleanSeconds: shards.map(\.cleanSeconds).max() ?? 0,
            robustAccuracy: robustAccuracy, attacks: entries,
            pgd20: .init(attack: shards.first?.pgdName ?? "pgd20", accuracy: fraction(pgdCorrect.filter { $0 }.count),
                         worstCaseAccuracy: fraction(pgdWorst.filter { $0 }.count), seconds: shards.map(\.pgdSeconds).max() ?? 0),
            brokenByPGD20Only: pgdOnly, largeEpsilon: large, checks: checks,
            violations: checks.filter { $0.passed == false }.map(\.name), resumed: shards.contains { $0.resumed },
            seconds: (shards.map(\.seconds).max() ?? 0) + large.seconds, source: [:])
    }

    /// PGD-20 (CE, 20 steps of ε/4, uniform start; `PGDConfig.pgd20Eval`) per sample, in batches.
    static func pgd20<M: Classifier>(_ model: M, _ x: Tensor, _ y: [Int32], epsilon: Float, norm: PerturbationNorm, seed: UInt64,
                                     batchSize: Int) -> (attack: (name: String, seconds: Double), correct: [Bool]) {
        let start = SystemStats.now
        let spec = AttackSpec.pgd(.evaluation(epsilon: epsilon, steps: 20, norm: norm))
        var correct = [Bool]()
        var lo = 0, b: UInt64 = 0
        while lo < y.count {
            let hi = min(y.count, lo + batchSize)
            var rng = SplitMix64.derived(seed: seed ^ 0x9D20, stream: b)
            correct += spec.correctness(model: model, images: x.rows(lo..<hi), labels: Array(y[lo..<hi]), rng: &rng)
            lo = hi; b += 1
        }
        return ((spec.name, SystemStats.now - start), correct)
    }

    /// APGD-CE at the large ε on the first points of `ids` (one batch, one stream).
    static func largeEpsilonCheck<M: Classifier>(_ model: M, _ dataset: Dataset, _ ids: [Int],
                                                 options o: AutoAttackOptions) -> AutoAttackReport.LargeEpsilon {
        let start = SystemStats.now
        let e = o.largeEpsilon ?? AutoAttackOptions.defaultLargeEpsilon(norm: o.norm, imageShape: dataset.shape.dimensions)
        let m = min(o.largeEpsilonSamples, ids.count)
        guard m > 0 else { return .init(epsilon: e, n: 0, attack: "apgd-ce", accuracy: 0, seconds: 0) }
        let batch = BatchLoader(dataset: dataset, augmentation: .none, seed: o.seed).load(ids: Array(ids.prefix(m)), epoch: 0)
        let (x, y) = (batch.images, batch.labels)
        var rng = SplitMix64.derived(seed: o.seed ^ 0x1A46E, stream: 0)
        let r = APGD.attack(model, images: x.rows(0..<m), labels: Array(y[0..<m]),
                            config: APGDConfig(epsilon: e, norm: o.norm, loss: .crossEntropy, iterations: o.apgdIterations),
                            rng: &rng)
        let correct = r.fooled.filter { !$0 }.count
        return .init(epsilon: e, n: m, attack: "apgd-ce", accuracy: Double(correct) / Double(m), seconds: SystemStats.now - start)
    }

    /// The three gradient-masking signals (docs/autoattack.md §Sanity checks).
    public static func sanityChecks(robust: Double, pgdWorst: Double, square: AutoAttackReport.AttackEntry?, n: Int,
                             large: AutoAttackReport.LargeEpsilon) -> [AutoAttackReport.SanityCheck] {
        func pct(_ v: Double) -> String { String(format: "%.2f%%", v * 100) }
        var checks = [AutoAttackReport.SanityCheck]()
        checks.append(.init(name: "autoattack-below-pgd20", rule: "AutoAttack robust accuracy ≤ PGD-20 robust accuracy",
                            value: "\(pct(robust)) vs \(pct(pgdWorst))", passed: robust <= pgdWorst))
        let squareRule = "Square breaks ≤ \(pct(AutoAttackOptions.squareMargin)) of n beyond APGD-CE, APGD-T and FAB-T"
        if let square, n > 0 {
            let extra = Double(square.broken) / Double(n)
            checks.append(.init(name: "square-not-stronger", rule: squareRule,
                                value: "\(square.broken) of \(n) (\(pct(extra)))", passed: extra <= AutoAttackOptions.squareMargin))
        } else {
            checks.append(.init(name: "square-not-stronger", rule: squareRule,
                                value: "not evaluated (Square was not run)", passed: nil))
        }
        let largeRule = "accuracy under APGD-CE at ε = \(large.epsilon) ≤ \(pct(AutoAttackOptions.largeEpsilonAccuracyLimit))"
        checks.append(.init(name: "large-epsilon-to-zero", rule: largeRule,
                            value: large.n > 0 ? "\(pct(large.accuracy)) of \(large.n)" : "not evaluated (no points)",
                            passed: large.n > 0 ? large.accuracy <= AutoAttackOptions.largeEpsilonAccuracyLimit : nil))
        return checks
    }
}

// MARK: - Markdown

extension AutoAttackReport {
    /// The report as a Markdown page (settings, per-attack breakdown with times, PGD-20, checks).
    public func markdown() -> String {
        func pct(_ v: Double) -> String { String(format: "%.2f%%", v * 100) }
        func secs(_ v: Double) -> String { String(format: "%.1f s", v) }
        var s = "# AutoAttack evaluation\n\n"
        if !violations.isEmpty {
            s += "**Sanity check violated: \(violations.joined(separator: ", ")).** The robust accuracy below may be "
                + "overestimated (gradient masking); see the checks at the end.\n\n"
        }
        s += "| setting | value |\n|---|---|\n"
        for (k, v) in source.sorted(by: { $0.key < $1.key }) { s += "| \(k) | `\(v)` |\n" }
        s += "| ε | \(epsilonText) (as written) = \(epsilon) (float) |\n"
        s += "| norm | \(norm == "linf" ? "L∞" : "L2") |\n"
        s += "| version | \(version): \(attacksRun.joined(separator: " → "))\(attacksSkipped.isEmpty ? "" : "; skipped: " + attacksSkipped.joined(separator: "; ")) |\n"
        s += "| n | \(n) (\(split) IDs \(AutoAttackReport.describe(ids))) |\n"
        s += "| seed | \(seed) |\n| BN mode | \(bnMode) (running statistics) |\n| batch | \(batchSize) |\n"
        s += "| budgets | \(budgets.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")) |\n"
        if resumed { s += "| resumed | yes (continued from a state file; times are summed over sessions) |\n" }
        s += "\n## Results\n\n| stage | points attacked | broken | robust accuracy after | time |\n|---|---:|---:|---:|---:|\n"
        s += "| clean | \(n) | \(n - Int((cleanAccuracy * Double(n)).rounded())) | \(pct(cleanAccuracy)) | \(secs(cleanSeconds)) |\n"
        for a in attacks {
            s += "| \(a.attack) | \(a.attacked) | \(a.broken) | \(pct(a.robustAccuracyAfter)) | \(secs(a.seconds)) |\n"
        }
        s += "\n**AutoAttack robust accuracy: \(pct(robustAccuracy))** (per-sample worst case; clean \(pct(cleanAccuracy))).\n\n"
        s += "Reference: \(pgd20.attack) robust accuracy \(pct(pgd20.worstCaseAccuracy)) (attack alone "
            + "\(pct(pgd20.accuracy))), \(secs(pgd20.seconds)); points PGD-20 broke that AutoAttack did not: \(brokenByPGD20Only).\n\n"
        s += "## Sanity checks (gradient-masking signals)\n\n| check | rule | value | result |\n|---|---|---|---|\n"
        for c in checks {
            let result = c.passed.map { $0 ? "pass" : "**VIOLATED**" } ?? "not evaluated"
            s += "| \(c.name) | \(c.rule) | \(c.value) | \(result) |\n"
        }
        s += "\nLarge-ε check: \(largeEpsilon.attack) on the first \(largeEpsilon.n) points at ε = \(largeEpsilon.epsilon), "
            + "\(secs(largeEpsilon.seconds)). Total time \(secs(seconds)).\n"
        return s
    }

    /// `a..<b` for a contiguous ascending ID list, else the count and the first few.
    static func describe(_ ids: [Int]) -> String {
        guard let first = ids.first else { return "none" }
        if ids == Array(first..<(first + ids.count)) { return "\(first)..<\(first + ids.count)" }
        return "\(ids.prefix(5).map(String.init).joined(separator: ", ")), … (\(ids.count) listed in the JSON)"
    }
}
