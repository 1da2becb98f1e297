// Square.swift: the L∞ Square Attack (Andriushchenko et al., ECCV 2020) as AutoAttack runs it
// (algorithms.md §5.4): a score-based black-box random search with square windows of ±2ε, a
// window size that shrinks on a fixed iteration schedule, and only improvements of the margin kept.
// It needs logits only (no gradients), which makes it the cascade's check on gradient masking.

import Kernels
import Layers
import Tensors

/// Square's settings. Defaults: AutoAttack's standard version (5,000 queries, p_init = 0.8,
/// margin loss, one run; [aa] `square.py`).
public struct SquareConfig: Codable, Sendable, Hashable {
    /// L∞ radius ε (the attack is L∞ only).
    public var epsilon: Float
    /// Iterations, one forward pass of the still-robust samples each (plus one for the start).
    public var queries: Int
    /// Initial fraction p of the image area a window covers.
    public var pInit: Float

    public init(epsilon: Float, queries: Int = 5000, pInit: Float = 0.8) {
        self.epsilon = epsilon; self.queries = queries; self.pInit = pInit
    }

    /// The first problem with these values, or nil.
    public var problem: String? {
        if !(epsilon >= 0 && epsilon.isFinite) { return "Square ε \(epsilon) must be a finite number ≥ 0" }
        if queries < 1 { return "Square queries \(queries) must be ≥ 1" }
        if !(pInit > 0 && pInit <= 1) { return "Square p_init \(pInit) must be in (0, 1]" }
        return nil
    }
}

/// The L∞ Square Attack on a batch.
///
/// ```
/// x̃ = box(x + ε·v),  v ∈ {−1, +1}^{C×1×W} per sample   (vertical stripes)
/// m(x̃) = z_y − max_{j≠y} z_j                            (margin; ≤ 0 means misclassified)
/// repeat `queries` times, on the samples with m > 0:
///   s = max(round(√(p·H·W)), 1);  a random s×s window, a random sign σ_c per channel
///   x' = box(ball(x̃ + 2ε·σ_c on the window));  keep x' if m(x') < m(x̃) or m(x') ≤ 0
/// ```
/// Shapes: `images [N, C, H, W]` in [0, 1], `labels [N]`. Forward passes in `.inference` mode.
/// Windows and signs are drawn per sample (the [aa] code shares one window across the batch).
public enum Square {
    public struct Result {
        /// `[N, C, H, W]`: the best point found per sample (inside the ball and the box).
        public var adversarial: Tensor
        /// Misclassified clean, or the margin reached ≤ 0.
        public var fooled: [Bool]
    }

    // MARK: - Schedule (pure)

    /// Iterations after which p halves once more ([aa] `p_selection`), compared with the 0-based
    /// iteration index as is: AutoAttack builds its Square with `resc_schedule=False`, so a
    /// 5,000-query run halves p after iterations 10, 50, 200, 500, 1000, 2000 and 4000 and never
    /// reaches the last two thresholds (its smallest p is p_init/128, not p_init/512).
    public static let scheduleThresholds = [10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000]

    /// p at iteration `iteration` (0-based), whatever the query budget:
    /// `pInit / 2^{#thresholds θ with iteration > θ}`.
    ///
    /// With p_init = 0.8 on 32×32 images the window side goes 29, 20, 14, 10, 7, 5, 4, 3
    /// (`windowSide`); the 1×1 and 2×2 windows of a rescaled schedule are never used.
    public static func p(iteration: Int, pInit: Float) -> Float {
        let halvings = scheduleThresholds.filter { iteration > $0 }.count
        return pInit / Float(1 << halvings)
    }

    /// The window side `max(round(√(p·H·W)), 1)`, at most `min(H, W)`.
    public static func windowSide(p: Float, height: Int, width: Int) -> Int {
        let s = Int((Double(p) * Double(height * width)).squareRoot().rounded(.toNearestOrEven))
        return min(max(s, 1), min(height, width))
    }

    /// Draws of signs for one window before giving up on changing the image (the paper's code
    /// redraws when the window would leave the image as it is; that query would be wasted).
    static let maximumRedraws = 10

    // MARK: - Attack

    /// - Precondition: `config.problem == nil`; images `[N, C, H, W]`; one label per image.
    public static func attack<M: Classifier>(_ model: M, images: Tensor, labels: [Int32], config: SquareConfig,
                                             rng: inout SplitMix64) -> Result {
        var random = RowRandom(shared: rng)
        defer { rng = random.sharedState }
        return attack(model, images: images, labels: labels, config: config, random: &random)
    }

    /// Square as above, its draws from `random` (one stream per row: a row's result does not depend
    /// on the other rows of the batch).
    public static func attack<M: Classifier>(_ model: M, images: Tensor, labels: [Int32], config: SquareConfig,
                                             random: inout RowRandom) -> Result {
        precondition(random.perRow.map { $0.count == labels.count } ?? true, "Square: one random stream per row expected")
        if let p = config.problem { preconditionFailure("Square: \(p)") }
        precondition(images.rank == 4 && labels.count == images.shape[0], "Square: \(labels.count) labels for \(images.shape)")
        let (n, c, h, w) = (images.shape[0], images.shape[1], images.shape[2], images.shape[3])
        let len = c * h * w, e = config.epsilon
        let x0 = images.scalars
        var fooled = Predictions.correct(model.logits(images, mode: .inference), labels: labels).map { !$0 }
        // Start: vertical stripes of ±ε per sample and channel, clamped to the box.
        var best = x0
        for i in 0..<n where !fooled[i] {
            for ch in 0..<c {
                for col in 0..<w {
                    let v: Float = random.next(row: i) & 1 == 0 ? e : -e
                    for row in 0..<h {
                        let j = i * len + (ch * h + row) * w + col
                        best[j] = min(max(x0[j] + v, 0), 1)
                    }
                }
            }
        }
        var margin = margins(model, best, rows: Array(0..<n), labels: labels, shape: images.shape)
        for i in 0..<n where margin[i] <= 0 { fooled[i] = true }
        for iteration in 0..<config.queries {
            let open = (0..<n).filter { !fooled[$0] }
            if open.isEmpty { break }
            let s = windowSide(p: p(iteration: iteration, pInit: config.pInit), height: h, width: w)
            var candidates = [Float]()
            candidates.reserveCapacity(open.count * len)
            for i in open {
                candidates += proposal(best: best[(i * len)..<((i + 1) * len)], clean: x0[(i * len)..<((i + 1) * len)],
                                       side: s, channels: c, height: h, width: w, epsilon: e, random: &random, row: i)
            }
            let m = margins(model, candidates, rows: open, labels: labels, shape: images.shape)
            for (k, i) in open.enumerated() where m[k] < margin[i] || m[k] <= 0 {
                margin[i] = m[k]
                best.replaceSubrange((i * len)..<((i + 1) * len), with: candidates[(k * len)..<((k + 1) * len)])
                if m[k] <= 0 { fooled[i] = true }
            }
        }
        return Result(adversarial: Tensor(shape: images.shape, values: best), fooled: fooled)
    }

    /// One candidate: `best` with a random s×s window moved by ±2ε (a sign per channel), then
    /// clipped to the ε-ball around `clean` and to [0, 1] (only the window changes).
    static func proposal(best: ArraySlice<Float>, clean: ArraySlice<Float>, side s: Int, channels c: Int, height h: Int,
                         width w: Int, epsilon e: Float, random: inout RowRandom, row i: Int) -> [Float] {
        var out = Array(best)
        let x = Array(clean)
        let top = random.nextInt(below: h - s + 1, row: i), left = random.nextInt(below: w - s + 1, row: i)
        for _ in 0..<maximumRedraws {
            var changed = false
            for ch in 0..<c {
                let delta: Float = random.next(row: i) & 1 == 0 ? 2 * e : -2 * e
                for row in top..<(top + s) {
                    for col in left..<(left + s) {
                        let j = (ch * h + row) * w + col
                        let v = min(max(min(max(out[j] + delta, x[j] - e), x[j] + e), 0), 1)
                        if abs(v - out[j]) > windowChangeTolerance { changed = true }
                        out[j] = v
                    }
                }
            }
            if changed { break }
        }
        return out
    }

    /// A window moving no pixel by more than this counts as unchanged (the paper's code uses 1e-7).
    static let windowChangeTolerance: Float = 1e-7

    /// `z_y − max_{j≠y} z_j` for the samples `rows` (whose images are the rows of `flat`).
    static func margins<M: Classifier>(_ model: M, _ flat: [Float], rows: [Int], labels: [Int32], shape: [Int]) -> [Float] {
        let logits = model.logits(Tensor(shape: [rows.count] + shape.dropFirst(), values: flat), mode: .inference)
        let k = logits.shape[1], z = logits.scalars
        return rows.enumerated().map { r, i in
            let y = Int(labels[i])
            var other = -Float.infinity
            for j in 0..<k where j != y { other = max(other, z[r * k + j]) }
            return z[r * k + y] - other
        }
    }
}
