// APGD.swift: Auto-PGD (Croce & Hein, ICML 2020) as AutoAttack runs it (algorithms.md §5.4):
// momentum 0.75, a step size that halves at shrinking checkpoints with a jump back to the best
// point, on the cross-entropy, DLR or targeted DLR loss, in the L∞ or L2 ball. The checkpoint
// schedule and the halving rule are pure functions so tests can drive them with scripted losses.

import Kernels
import Layers
import Tensors

/// The per-sample loss APGD maximises.
public enum APGDLoss: String, Codable, Sendable, Hashable {
    /// `CE(f(x̃), y)` (APGD-CE).
    case crossEntropy = "ce"
    /// `DLR(z, y)` (APGD-DLR, the "plus" version; see `DLR.untargeted`).
    case dlr
    /// `DLR_t(z, y, t)` for each of `targetCount` targets (APGD-T; see `DLR.targeted`).
    case targetedDLR = "dlr-targeted"
}

/// One APGD attack: radius, norm, loss, iteration budget and the schedule constants.
///
/// Defaults are AutoAttack's standard version (algorithms.md §5.4, [aa] `autopgd_base.py`):
/// N = 100 iterations, 1 restart, 9 targets for the targeted loss, ρ = 0.75, momentum 0.75, η⁰ = 2ε.
public struct APGDConfig: Codable, Sendable, Hashable {
    /// Radius ε of the threat model (pixel units of [0, 1] images; per-sample Euclidean for L2).
    public var epsilon: Float
    public var norm: PerturbationNorm
    public var loss: APGDLoss
    /// Iterations N per run (per restart, per target), ≥ 1.
    public var iterations: Int
    /// Runs per target, ≥ 1; later runs attack only the samples every earlier run left correct.
    public var restarts: Int
    /// Targets of the targeted loss: the 2nd … (targetCount+1)-th largest clean logits.
    public var targetCount: Int
    /// ρ of the oscillation condition: halve when the loss rose in at most ρ·k of the last k steps.
    public var rho: Float
    /// Momentum a of the update (1 on the first iteration).
    public var momentum: Float
    /// η⁰ = initialStepFactor · ε.
    public var initialStepFactor: Float

    public static let defaultIterations = 100
    public static let defaultTargetCount = 9
    public static let defaultRho: Float = 0.75
    public static let defaultMomentum: Float = 0.75
    public static let defaultInitialStepFactor: Float = 2

    public init(epsilon: Float, norm: PerturbationNorm = .linf, loss: APGDLoss, iterations: Int = APGDConfig.defaultIterations,
                restarts: Int = 1, targetCount: Int = APGDConfig.defaultTargetCount, rho: Float = APGDConfig.defaultRho,
                momentum: Float = APGDConfig.defaultMomentum,
                initialStepFactor: Float = APGDConfig.defaultInitialStepFactor) {
        self.epsilon = epsilon; self.norm = norm; self.loss = loss; self.iterations = iterations
        self.restarts = restarts; self.targetCount = targetCount; self.rho = rho; self.momentum = momentum
        self.initialStepFactor = initialStepFactor
    }

    /// The first problem with these values for a model with `classes` outputs, or nil.
    public func problem(classes: Int) -> String? {
        if !(epsilon >= 0 && epsilon.isFinite) { return "APGD ε \(epsilon) must be a finite number ≥ 0" }
        if iterations < 1 { return "APGD iterations \(iterations) must be ≥ 1" }
        if restarts < 1 { return "APGD restarts \(restarts) must be ≥ 1" }
        if !(rho >= 0 && rho <= 1) { return "APGD ρ \(rho) must be in [0, 1]" }
        if !(momentum >= 0 && momentum <= 1) { return "APGD momentum \(momentum) must be in [0, 1]" }
        if !(initialStepFactor > 0 && initialStepFactor.isFinite) { return "APGD initial step factor must be > 0" }
        switch loss {
        case .crossEntropy: return classes >= 2 ? nil : "APGD-CE needs ≥ 2 classes, the model has \(classes)"
        case .dlr: return classes >= 3 ? nil : "the DLR loss needs ≥ 3 classes, the model has \(classes)"
        case .targetedDLR:
            if classes < 4 { return "the targeted DLR loss needs ≥ 4 classes, the model has \(classes)" }
            if targetCount < 1 || targetCount > classes - 1 {
                return "APGD-T target count \(targetCount) must be in 1...\(classes - 1) for \(classes) classes"
            }
            return nil
        }
    }
}

/// Auto-PGD on a batch.
///
/// ```
/// x⁰ = box(x + ε·t/‖t‖)                   L∞: t ~ U(−1, 1)ᵈ, ‖·‖∞;  L2: t ~ N(0, I), ‖·‖₂
/// zᵏ⁺¹ = P(xᵏ + η·s(∇ℓ(xᵏ)))              s = sign (L∞) or g/‖g‖₂ (L2); P = box(ball(·))
/// xᵏ⁺¹ = P(xᵏ + a(zᵏ⁺¹ − xᵏ) + (1 − a)(xᵏ − xᵏ⁻¹))   a = 0.75, a = 1 on the first iteration
/// ```
/// η starts at 2ε per sample. At each checkpoint (`checkpoints(iterations:)`) a sample's η is
/// halved when `shouldHalve` says so, and that sample jumps back to its best point and gradient.
/// The loss is per sample; its gradient comes from the summed loss. Every iterate that is
/// misclassified is kept as that sample's adversarial output.
///
/// Shapes: `images [N, C, H, W]` in [0, 1], `labels [N]`; outputs `[N, C, H, W]` and `[N]`.
/// All forward passes are in `.inference` mode; only input gradients are computed.
public enum APGD {
    /// Per sample: the output and whether any iterate (start included) was misclassified.
    public struct Result {
        /// `[N, C, H, W]`: where `fooled`, the last misclassified iterate (inside the ball and the box);
        /// elsewhere the clean image (`attack`) or the start point (one `run`).
        public var adversarial: Tensor
        public var fooled: [Bool]
    }

    // MARK: - Schedule (pure)

    /// The checkpoints w₀ = 0 < w₁ < … ≤ N of an N-iteration run: the first interval is ⌊0.22N⌋,
    /// each next one is ⌊0.03N⌋ shorter, down to ⌊0.06N⌋ (each at least 1). The step size is
    /// examined after iteration wⱼ for j ≥ 1. N = 100 gives [0, 22, 41, 57, 70, 80, 87, 93, 99].
    public static func checkpoints(iterations n: Int) -> [Int] {
        let (first, decrement, minimum) = scheduleConstants(iterations: n)
        var points = [0], interval = first, t = first
        while t <= n {
            points.append(t)
            interval = max(interval - decrement, minimum)
            t += interval
        }
        return points
    }

    /// (⌊0.22N⌋, ⌊0.03N⌋, ⌊0.06N⌋), each at least 1, in integer arithmetic.
    static func scheduleConstants(iterations n: Int) -> (first: Int, decrement: Int, minimum: Int) {
        (max(22 * n / 100, 1), max(3 * n / 100, 1), max(6 * n / 100, 1))
    }

    /// The halving decision for one sample at a checkpoint.
    ///
    /// ```
    /// (i)  #{ i ∈ 1…k : ℓᵢ > ℓᵢ₋₁ } ≤ ρ·k           the loss rose in at most ρ·k of the last k steps
    /// (ii) !halvedAtLastCheck && bestNow ≤ bestAtLastCheck
    /// ```
    /// - Parameters:
    ///   - losses: k + 1 values: the loss at the previous checkpoint's iterate (the start point for
    ///     the first check), then the losses of the k iterates since.
    ///   - halvedAtLastCheck: whether η was halved at the previous check; `true` before the first
    ///     check (there is no previous check, so (ii) cannot fire; [aa] starts it so).
    ///   - bestAtLastCheck, bestNow: the highest loss seen up to the previous check (the start loss
    ///     before the first) and up to now.
    public static func shouldHalve(losses: [Float], rho: Float, halvedAtLastCheck: Bool,
                                   bestAtLastCheck: Float, bestNow: Float) -> Bool {
        precondition(losses.count >= 2, "APGD.shouldHalve: needs k + 1 ≥ 2 losses, got \(losses.count)")
        let k = losses.count - 1
        var increases = 0
        for i in 1...k where losses[i] > losses[i - 1] { increases += 1 }
        let oscillating = Double(increases) <= Double(rho) * Double(k)
        let stalled = !halvedAtLastCheck && bestNow <= bestAtLastCheck
        return oscillating || stalled
    }

    /// One sample's step size η through a run: fed the loss of each iterate in turn, it checks at
    /// the checkpoints of `checkpoints(iterations:)` and halves η when `shouldHalve` says so.
    /// Pure bookkeeping (no tensors), so tests can drive it with a scripted loss sequence.
    public struct StepSizeController: Sendable {
        public private(set) var stepSize: Float
        /// Iterations recorded so far.
        public private(set) var iteration = 0
        /// The iterations after which a check ran, and whether it halved η.
        public private(set) var checks: [(iteration: Int, halved: Bool)] = []
        let rho: Float
        let decrement: Int, minimum: Int
        var interval: Int
        /// The loss at the last check's iterate (the start before the first), then every loss since.
        var window: [Float]
        var bestLoss: Float, bestAtLastCheck: Float
        var halvedAtLastCheck = true

        public init(initialStepSize: Float, initialLoss: Float, iterations: Int, rho: Float) {
            let c = APGD.scheduleConstants(iterations: iterations)
            stepSize = initialStepSize; self.rho = rho
            interval = c.first; decrement = c.decrement; minimum = c.minimum
            window = [initialLoss]; bestLoss = initialLoss; bestAtLastCheck = initialLoss
        }

        /// Records the loss of the next iterate; true when this iterate ends an interval and η
        /// was halved (the caller then jumps back to the best point).
        public mutating func record(loss: Float) -> Bool {
            iteration += 1
            window.append(loss)
            if loss > bestLoss { bestLoss = loss }
            guard window.count - 1 == interval else { return false }
            let halve = APGD.shouldHalve(losses: window, rho: rho, halvedAtLastCheck: halvedAtLastCheck,
                                         bestAtLastCheck: bestAtLastCheck, bestNow: bestLoss)
            if halve { stepSize /= 2 }
            checks.append((iteration, halve))
            halvedAtLastCheck = halve
            bestAtLastCheck = bestLoss
            window = [loss]
            interval = max(interval - decrement, minimum)
            return halve
        }
    }

    // MARK: - Attack

    /// APGD on every sample; for the targeted loss, `config.targetCount` targets in turn (each
    /// on the samples no earlier target fooled), targets taken from the clean logits. The random
    /// starts come from one stream shared by the batch.
    /// - Precondition: `config.problem(classes:) == nil`; one label per image.
    public static func attack<M: Classifier>(_ model: M, images: Tensor, labels: [Int32], config: APGDConfig,
                                             rng: inout SplitMix64) -> Result {
        var random = RowRandom(shared: rng)
        defer { rng = random.sharedState }
        return attack(model, images: images, labels: labels, config: config, random: &random)
    }

    /// APGD as above, the random starts drawn from `random` (shared, or one stream per row: then a
    /// row's result does not depend on the other rows of the batch, up to float rounding).
    public static func attack<M: Classifier>(_ model: M, images: Tensor, labels: [Int32], config: APGDConfig,
                                             random: inout RowRandom) -> Result {
        if let p = config.problem(classes: model.classCount) { preconditionFailure("APGD: \(p)") }
        precondition(images.rank >= 2 && labels.count == images.shape[0], "APGD: \(labels.count) labels for \(images.shape)")
        precondition(random.perRow.map { $0.count == labels.count } ?? true, "APGD: one random stream per row expected")
        var best = images
        var fooled = Predictions.correct(model.logits(images, mode: .inference), labels: labels).map { !$0 }
        let cleanLogits = config.loss == .targetedDLR ? model.logits(images, mode: .inference) : nil
        let rounds = config.loss == .targetedDLR ? config.targetCount : 1
        for round in 0..<rounds {
            for _ in 0..<config.restarts {
                let open = (0..<labels.count).filter { !fooled[$0] }
                if open.isEmpty { return Result(adversarial: best, fooled: fooled) }
                let targets = cleanLogits.map { targetClasses(gatherRows($0, open), rank: round + 2) }
                let r = run(model, images: gatherRows(images, open), labels: open.map { labels[$0] }, targets: targets,
                            config: config, random: &random, rows: open)
                let hit = open.indices.filter { r.fooled[$0] }
                scatterRows(&best, gatherRows(r.adversarial, hit), hit.map { open[$0] })
                for k in hit { fooled[open[k]] = true }
            }
        }
        return Result(adversarial: best, fooled: fooled)
    }

    /// Per row of `logits [B, classes]`: the class with the `rank`-th largest logit (rank 1 = argmax;
    /// ties broken towards the lower class index).
    public static func targetClasses(_ logits: Tensor, rank: Int) -> [Int32] {
        let (b, k) = (logits.shape[0], logits.shape[1])
        precondition(rank >= 1 && rank <= k, "APGD.targetClasses: rank \(rank) for \(k) classes")
        let z = logits.scalars
        return (0..<b).map { i in Int32(DLR.descendingOrder(z, row: i, classes: k)[rank - 1]) }
    }

    /// One run from a random start on every sample of the batch (`rows`: the samples' rows in
    /// `random`'s indexing).
    static func run<M: Classifier>(_ model: M, images x0: Tensor, labels: [Int32], targets: [Int32]?,
                                   config: APGDConfig, random: inout RowRandom, rows: [Int]) -> Result {
        var s = RunState(images: x0, config: config, random: &random, rows: rows)
        s.evaluate(model, labels: labels, targets: targets)
        s.start()
        for i in 0..<config.iterations {
            s.step(momentum: i == 0 ? 1 : config.momentum)
            s.evaluate(model, labels: labels, targets: targets)
            s.recordBest()
            s.updateStepSizes()
        }
        return Result(adversarial: s.adversarial, fooled: s.fooled)
    }

    /// The per-batch state of one run (tensors are `[B, C, H, W]`, arrays per sample).
    struct RunState {
        let config: APGDConfig
        let center: Tensor
        let rows: Int
        var x: Tensor, previous: Tensor, gradient: Tensor
        var best: Tensor, bestGradient: Tensor
        var adversarial: Tensor
        var lossBest: [Float] = [], loss: [Float] = []
        var fooled: [Bool]
        var controllers: [StepSizeController] = []

        init(images: Tensor, config: APGDConfig, random: inout RowRandom, rows streamRows: [Int]) {
            self.config = config
            center = images
            rows = images.shape[0]
            x = APGD.randomStart(images, epsilon: config.epsilon, norm: config.norm, random: &random, rows: streamRows)
            previous = x; gradient = Tensor(zeros: images.shape); best = x; bestGradient = gradient; adversarial = x
            fooled = [Bool](repeating: false, count: rows)
        }

        /// Loss, gradient and predictions at `x`; misclassified samples keep `x` as their output.
        mutating func evaluate<M: Classifier>(_ model: M, labels: [Int32], targets: [Int32]?) {
            let (logits, cache) = model.forward(x, mode: .inference)
            let r = APGD.lossAndGradient(logits: logits, labels: labels, targets: targets, loss: config.loss)
            guard let g = model.backward(r.dLogits, cache: cache, targets: .input) else {
                preconditionFailure("APGD: the model returned no input gradient for targets .input")
            }
            gradient = g
            loss = r.values
            let wrong = zip(Predictions.argmax(logits), labels).enumerated().filter { $0.element.0 != $0.element.1 }.map(\.offset)
            if !wrong.isEmpty {
                scatterRows(&adversarial, gatherRows(x, wrong), wrong)
                for i in wrong { fooled[i] = true }
            }
        }

        /// After the first evaluation: the start is the best point; η⁰ = 2ε per sample.
        mutating func start() {
            best = x; bestGradient = gradient; lossBest = loss
            controllers = loss.map {
                StepSizeController(initialStepSize: config.initialStepFactor * config.epsilon, initialLoss: $0,
                                   iterations: config.iterations, rho: config.rho)
            }
        }

        /// Samples whose loss beat their best take `x` and its gradient as the new best point.
        mutating func recordBest() {
            let improved = (0..<rows).filter { loss[$0] > lossBest[$0] }
            guard !improved.isEmpty else { return }
            scatterRows(&best, gatherRows(x, improved), improved)
            scatterRows(&bestGradient, gatherRows(gradient, improved), improved)
            for i in improved { lossBest[i] = loss[i] }
        }

        /// Feeds each sample's loss to its controller; samples whose η was halved jump back to
        /// their best point and its gradient.
        mutating func updateStepSizes() {
            let halved = (0..<rows).filter { controllers[$0].record(loss: loss[$0]) }
            guard !halved.isEmpty else { return }
            scatterRows(&x, gatherRows(best, halved), halved)
            scatterRows(&gradient, gatherRows(bestGradient, halved), halved)
        }

        /// One momentum step: z = P(x + η·s(g)), x ← P(x + a(z − x) + (1 − a)(x − x_prev)).
        mutating func step(momentum a: Float) {
            let eta = controllers.map(\.stepSize)
            var z = x
            switch config.norm {
            case .linf:
                var signs = Tensor(zeros: x.shape)
                Perturbation.signStep(&signs, gradient: gradient, stepSize: 1)
                Perturbation.addScaledRows(&z, signs, factors: eta)
            case .l2:
                let norms = Perturbation.rowL2Norms(gradient)
                Perturbation.addScaledRows(&z, gradient, factors: (0..<rows).map { eta[$0] / (norms[$0] + APGD.normGuard) })
            }
            APGD.project(&z, center: center, epsilon: config.epsilon, norm: config.norm)
            var next = x
            Elementwise.addScaled(&next, Elementwise.add(z, Elementwise.scaled(x, by: -1)), scale: a)
            if a < 1 { Elementwise.addScaled(&next, Elementwise.add(x, Elementwise.scaled(previous, by: -1)), scale: 1 - a) }
            APGD.project(&next, center: center, epsilon: config.epsilon, norm: config.norm)
            previous = x
            x = next
        }
    }

    // MARK: - Pieces

    /// Keeps `g/‖g‖₂` and `δ/‖δ‖₂` finite for a zero vector ([aa] adds the same 1e-12).
    static let normGuard: Float = 1e-12

    /// The random start `box(x + ε·t/‖t‖)` (L∞: t ~ U(−1, 1), max-norm; L2: t ~ N(0, I), 2-norm).
    static func randomStart(_ images: Tensor, epsilon: Float, norm: PerturbationNorm, rng: inout SplitMix64) -> Tensor {
        var random = RowRandom(shared: rng)
        defer { rng = random.sharedState }
        return randomStart(images, epsilon: epsilon, norm: norm, random: &random, rows: Array(0..<images.shape[0]))
    }

    /// The random start, row k's t drawn from `random`'s row `rows[k]`.
    static func randomStart(_ images: Tensor, epsilon: Float, norm: PerturbationNorm, random: inout RowRandom,
                            rows: [Int]) -> Tensor {
        let t: Tensor
        let norms: [Float]
        let rowShape = Array(images.shape.dropFirst())
        switch norm {
        case .linf:
            t = random.tensor(rows: rows, rowShape: rowShape, uniformLow: -1, high: 1, normal: false)
            norms = rowMaxAbs(t)
        case .l2:
            t = random.tensor(rows: rows, rowShape: rowShape, uniformLow: 0, high: 0, normal: true)
            norms = Perturbation.rowL2Norms(t)
        }
        var x = images
        Perturbation.addScaledRows(&x, t, factors: norms.map { epsilon / ($0 + normGuard) })
        Perturbation.clampToUnitInterval(&x)
        return x
    }

    /// P = box(ball(·)): L∞ clips to [x − ε, x + ε] then [0, 1]; L2 rescales δ = v − x to
    /// `δ·min(ε, ‖δ‖₂)/‖δ‖₂` then clips to [0, 1] (the clip only shortens δ, so the result is in both).
    static func project(_ v: inout Tensor, center: Tensor, epsilon: Float, norm: PerturbationNorm) {
        switch norm {
        case .linf:
            Perturbation.projectLinf(&v, center: center, epsilon: epsilon)
        case .l2:
            let delta = Elementwise.add(v, Elementwise.scaled(center, by: -1))
            let norms = Perturbation.rowL2Norms(delta)
            // v = center + f·δ with f = min(ε, ‖δ‖)/‖δ‖, i.e. v += (f − 1)·δ (0 for samples inside the ball).
            let factors = norms.map { $0 > epsilon ? epsilon / $0 - 1 : 0 }
            Perturbation.addScaledRows(&v, delta, factors: factors)
            Perturbation.clampToUnitInterval(&v)
        }
    }

    /// Per-sample `max |t|` of an `[N, …]` tensor.
    static func rowMaxAbs(_ t: Tensor) -> [Float] {
        let n = t.shape[0], len = n == 0 ? 0 : t.count / n
        let s = t.scalars
        return (0..<n).map { r in
            var m: Float = 0
            for j in 0..<len { m = max(m, abs(s[r * len + j])) }
            return m
        }
    }

    /// Per-sample loss values and the gradient of their sum with respect to `logits [B, classes]`.
    public static func lossAndGradient(logits: Tensor, labels: [Int32], targets: [Int32]?,
                                       loss: APGDLoss) -> (values: [Float], dLogits: Tensor) {
        switch loss {
        case .crossEntropy:
            let r = Loss.crossEntropy(logits, labels: labels, scale: Float(logits.shape[0]))
            return (r.perSample, r.dLogits)
        case .dlr:
            return DLR.untargeted(logits: logits, labels: labels)
        case .targetedDLR:
            guard let targets else { preconditionFailure("APGD: the targeted DLR loss needs targets") }
            return DLR.targeted(logits: logits, labels: labels, targets: targets)
        }
    }
}

// MARK: - DLR

/// The Difference of Logits Ratio losses of APGD (algorithms.md §5.4). With the logits of a
/// sample sorted `z_π1 ≥ z_π2 ≥ …`:
///
/// ```
/// DLR(z, y)      = −(z_y − max_{i≠y} z_i) / (z_π1 − z_π3 + 1e-12)
/// DLR_t(z, y, t) = −(z_y − z_t) / (z_π1 − ½(z_π3 + z_π4) + 1e-12)
/// ```
/// Both are invariant to shifting and (positively) scaling the logits. Gradients: with
/// `L = −N/D`, `∂L/∂z = −∂N/∂z / D + N·∂D/∂z / D²`, where indices that coincide (y = π1, …)
/// add up. Ties in the sort are broken towards the lower class index.
public enum DLR {
    /// Keeps the denominator positive when the top logits tie ([aa] uses the same 1e-12).
    public static let denominatorGuard: Float = 1e-12

    /// Per-sample `DLR(z, y)` and the gradient of their sum. Shapes: `logits [B, C]` (C ≥ 3), `labels [B]`.
    public static func untargeted(logits: Tensor, labels: [Int32]) -> (values: [Float], dLogits: Tensor) {
        let (b, k) = (logits.shape[0], logits.shape[1])
        precondition(k >= 3 && labels.count == b, "DLR: needs ≥ 3 classes and one label per row, got \(logits.shape)")
        let z = logits.scalars
        var d = [Float](repeating: 0, count: z.count), values = [Float](repeating: 0, count: b)
        for i in 0..<b {
            let order = descendingOrder(z, row: i, classes: k)
            let y = Int(labels[i])
            let other = order[0] == y ? order[1] : order[0]
            let num = Double(z[i * k + y]) - Double(z[i * k + other])
            let den = Double(z[i * k + order[0]]) - Double(z[i * k + order[2]]) + Double(denominatorGuard)
            values[i] = Float(-num / den)
            d[i * k + y] += Float(-1 / den)
            d[i * k + other] += Float(1 / den)
            d[i * k + order[0]] += Float(num / (den * den))
            d[i * k + order[2]] -= Float(num / (den * den))
        }
        return (values, Tensor(shape: logits.shape, values: d))
    }

    /// Per-sample `DLR_t(z, y, t)` and the gradient of their sum. Shapes: `logits [B, C]` (C ≥ 4),
    /// `labels [B]`, `targets [B]`.
    public static func targeted(logits: Tensor, labels: [Int32], targets: [Int32]) -> (values: [Float], dLogits: Tensor) {
        let (b, k) = (logits.shape[0], logits.shape[1])
        precondition(k >= 4 && labels.count == b && targets.count == b,
                     "DLR.targeted: needs ≥ 4 classes and one label and target per row, got \(logits.shape)")
        let z = logits.scalars
        var d = [Float](repeating: 0, count: z.count), values = [Float](repeating: 0, count: b)
        for i in 0..<b {
            let order = descendingOrder(z, row: i, classes: k)
            let (y, t) = (Int(labels[i]), Int(targets[i]))
            let num = Double(z[i * k + y]) - Double(z[i * k + t])
            let den = Double(z[i * k + order[0]]) - 0.5 * (Double(z[i * k + order[2]]) + Double(z[i * k + order[3]]))
                + Double(denominatorGuard)
            values[i] = Float(-num / den)
            d[i * k + y] += Float(-1 / den)
            d[i * k + t] += Float(1 / den)
            let c = num / (den * den)
            d[i * k + order[0]] += Float(c)
            d[i * k + order[2]] -= Float(0.5 * c)
            d[i * k + order[3]] -= Float(0.5 * c)
        }
        return (values, Tensor(shape: logits.shape, values: d))
    }

    /// The class indices of row `row` of `z [B, classes]`, largest logit first (ties: lower index first).
    static func descendingOrder(_ z: [Float], row: Int, classes k: Int) -> [Int] {
        (0..<k).sorted { a, b in
            let (za, zb) = (z[row * k + a], z[row * k + b])
            return za != zb ? za > zb : a < b
        }
    }
}
