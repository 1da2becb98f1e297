// SurrogatePGD.swift: the attack-shaped δ of the benches (`memloss bench scale`'s fill, `memloss bench
// bank`'s flavours): a real L∞ sign-PGD (gradient sign steps, projection to the ε-ball and to [0, 1]) run
// on each sample's image, but against a fixed random surrogate scorer (one linear+ReLU layer, J units,
// spatially smooth weights) instead of the network, so a million samples × K generations cost a few
// GEMMs each; from the three starts the training attacks use; or, without a scorer, the i.i.d. sign-flip
// model of systems.md §5. Also the smooth random images and fields they run on, and the q8-level
// statistics the benches report. Not a training attack: it never sees the model being trained.

import Foundation
import Kernels
import Tensors

/// L∞ sign-PGD against the surrogate score `s(x) = Σ_j v_j · ReLU(w_j·x + b_j)`:
///
/// ```
/// x̃⁰ = start(x);   x̃ᵗ⁺¹ = clamp(Π_ε(x̃ᵗ + α · sign(∇ₓ s(x̃ᵗ))), 0, 1),   ∇ₓ s = Σ_j v_j · 1[w_j·x + b_j > 0] · w_j
/// δ = x̃ᵀ − x
/// ```
/// Shapes: `x [B, C, H, W]` (B views in [0, 1]), `W [J, C·H·W]` (J = `hidden`, 8 by default), `v ∈ {−1, +1}^J`,
/// `b [B, J]`, `δ [B, C, H, W]`.
///
/// - `w_j` = a 4×4 lattice of U(−1, 1) per channel, bilinearly upsampled to H×W, plus 0.3·U(−1, 1)
///   white noise: real input gradients are spatially smooth with fine detail, so δ has runs LZ4 and the
///   `levels` codec can use.
/// - `b_bj = −w_j·x_b + 0.3·ε·‖w_j‖₁·u_bj`, u ~ U(−1, 1) per batch: every unit starts near its threshold,
///   so the steps switch units on and off and the gradient's sign pattern changes between steps, as
///   it does against a network (otherwise every pixel would saturate at ±ε in the same direction).
/// - Start (`Start`): x (zero, by default), x + 0.001·N(0, I) unclamped (TRADES' start), or
///   clamp(x + U(−ε, ε), 0, 1) (PGD-AT's), as `Attacks.RandomStart` defines them. α = ε/4 by default:
///   from a zero start T steps give at most 2T+1 q8 levels per entry, most pixels saturated at ±ε or
///   clipped by [0, 1].
/// - `Direction.signFlips(p)`: no scorer; step t's sign per pixel is step t−1's (+1 before the first),
///   flipped with probability p, i.i.d. (systems.md §5's "pgd10" model, p = 0.25).
///
/// Properties that do *not* hold: δ is not adversarial for the trained model, and its statistics
/// (levels, saturation) are those of this scorer, measured and reported by the bench, not those of a
/// real run (`docs/scale.md` compares them with the δ of the bench's real training epoch).
public struct SurrogatePGD: Sendable {
    /// Where the iterates start (`Attacks.RandomStart`'s L∞ forms).
    public enum Start: Sendable, Hashable {
        /// x̃⁰ = x.
        case zero
        /// x̃⁰ = x + std·N(0, I), not clamped (TRADES, MART, HAT training; std = 0.001).
        case gaussian(std: Float)
        /// x̃⁰ = clamp(x + U(−ε, ε), 0, 1) (PGD-AT).
        case uniform
    }

    /// What sets each step's sign.
    public enum Direction: Sendable, Hashable {
        /// sign(∇ₓ s(x̃ᵗ)) of the surrogate scorer.
        case scorer
        /// The previous step's sign (+1 at first) flipped with probability p per pixel, i.i.d.
        case signFlips(probability: Float)
    }

    public let epsilon: Float
    public let stepSize: Float
    public let steps: Int
    /// J, hidden units of the scorer.
    public let hidden: Int
    public let direction: Direction
    /// `[J, C·H·W]`.
    let weight: Tensor
    /// v_j ∈ {−1, +1}.
    let outputSigns: [Float]
    /// ‖w_j‖₁.
    let rowL1: [Float]

    /// Default hidden units J of the scorer: 8 keeps the 2T + 1 GEMMs per batch cheap next to reading
    /// the view and encoding the entry, while units still switch between steps (with 3 steps of ε/2 at
    /// N = 10⁶, `levels` stored 1,169 B/entry with 32 units and 1,146 with 8: nearly the same δ statistics).
    public static let defaultHidden = 8
    /// Spread of the per-image thresholds, as a fraction of the largest change the ε-ball allows.
    static let thresholdSpread: Float = 0.3
    /// Amplitude of the white noise added to the smooth weights.
    static let weightNoise: Float = 0.3

    /// - Parameters:
    ///   - shape: `[C, H, W]` of one sample.
    ///   - epsilon: ε > 0 in [0, 1] pixel units; `stepSize` defaults to ε/4.
    ///   - steps: T ≥ 1.
    ///   - hidden: J ≥ 1 scorer units.
    ///   - seed: the scorer's weights are a pure function of (shape, hidden, seed).
    public init(shape: [Int], epsilon: Float, stepSize: Float? = nil, steps: Int, hidden: Int = SurrogatePGD.defaultHidden,
                direction: Direction = .scorer, seed: UInt64) {
        precondition(shape.count == 3 && shape.allSatisfy { $0 >= 1 }, "SurrogatePGD: shape \(shape) is not [C, H, W]")
        precondition(epsilon > 0 && steps >= 1 && hidden >= 1, "SurrogatePGD: need ε > 0, steps ≥ 1 and hidden ≥ 1")
        self.epsilon = epsilon
        self.stepSize = stepSize ?? epsilon / 4
        self.steps = steps
        self.hidden = hidden
        self.direction = direction
        let n = shape.reduce(1, *), j = hidden
        var rng = SplitMix64.derived(seed: seed, stream: 0x7363_6F72_6572)  // "scorer"
        var values = [Float](repeating: 0, count: j * n)
        var l1 = [Float](repeating: 0, count: j)
        for unit in 0..<j {
            let field = SurrogatePGD.smoothField(shape: shape, grid: 4, rng: &rng)
            for p in 0..<n {
                let w = field[p] + SurrogatePGD.weightNoise * (2 * rng.nextFloat() - 1)
                values[unit * n + p] = w
                l1[unit] += abs(w)
            }
        }
        weight = Tensor(shape: [j, n], values: values)
        rowL1 = l1
        outputSigns = (0..<j).map { _ in rng.next() >> 63 == 1 ? 1 : -1 }
    }

    /// A `[C, H, W]` field: per channel a `grid × grid` lattice of U(low, high), bilinearly upsampled
    /// (the scorer's weights, and the smooth images of `smoothImages`).
    public static func smoothField(shape: [Int], grid: Int, low: Float = -1, high: Float = 1,
                                   rng: inout SplitMix64) -> [Float] {
        let c = shape[0], h = shape[1], w = shape[2]
        var out = [Float](repeating: 0, count: c * h * w)
        for ch in 0..<c {
            let lattice = (0..<(grid * grid)).map { _ in low + (high - low) * rng.nextFloat() }
            for y in 0..<h {
                let gy = Float(y) / Float(max(h - 1, 1)) * Float(grid - 1)
                let y0 = min(Int(gy), grid - 2), ty = gy - Float(y0)
                for x in 0..<w {
                    let gx = Float(x) / Float(max(w - 1, 1)) * Float(grid - 1)
                    let x0 = min(Int(gx), grid - 2), tx = gx - Float(x0)
                    let top = lattice[y0 * grid + x0] * (1 - tx) + lattice[y0 * grid + x0 + 1] * tx
                    let bottom = lattice[(y0 + 1) * grid + x0] * (1 - tx) + lattice[(y0 + 1) * grid + x0 + 1] * tx
                    out[(ch * h + y) * w + x] = top * (1 - ty) + bottom * ty
                }
            }
        }
        return out
    }

    /// `count` smooth random images `[count, C, H, W]` in [0, 1]: per image `smoothField(grid: 8, low: 0, high: 1)`
    /// (the stand-in images of `memloss bench bank`).
    public static func smoothImages(count: Int, shape: [Int], rng: inout SplitMix64) -> Tensor {
        var values: [Float] = []
        values.reserveCapacity(count * shape.reduce(1, *))
        for _ in 0..<count { values += smoothField(shape: shape, grid: 8, low: 0, high: 1, rng: &rng) }
        return Tensor(shape: [count] + shape, values: values)
    }

    /// δ = x̃ − x for a batch of views `images [B, C, H, W]` (returns `[B, C, H, W]`); `rng` draws the
    /// per-image thresholds (B·J values), then the start, then (`signFlips`) the flips.
    /// - Complexity: (2T + 1) GEMMs of `B × C·H·W × J`, plus O(T·B·C·H·W) elementwise work.
    public func perturb(_ images: Tensor, start: Start = .zero, rng: inout SplitMix64) -> Tensor {
        let b = images.shape[0], n = images.count / max(b, 1), j = hidden
        precondition(n == weight.shape[1], "SurrogatePGD: images \(images.shape) do not match the scorer's \(n) inputs")
        let clean = images.reshaped([b, n])
        let center = Linear.forward(clean, weight: weight, bias: nil).scalars  // [B, J]
        var threshold = [Float](repeating: 0, count: b * j)
        for k in 0..<(b * j) {
            let spread = SurrogatePGD.thresholdSpread * epsilon * rowL1[k % j]
            threshold[k] = -center[k] + spread * (2 * rng.nextFloat() - 1)
        }
        var adversarial = clean.copy()
        switch start {
        case .zero: break
        case .gaussian(let std):
            let noise = (0..<(b * n)).map { _ in std * rng.nextNormal() }
            Elementwise.addScaled(&adversarial, Tensor(shape: [b, n], values: noise), scale: 1)
        case .uniform:
            let noise = (0..<(b * n)).map { _ in epsilon * (2 * rng.nextFloat() - 1) }
            Elementwise.addScaled(&adversarial, Tensor(shape: [b, n], values: noise), scale: 1)
            Perturbation.projectLinf(&adversarial, center: clean, epsilon: epsilon)
        }
        var dScore = [Float](repeating: 0, count: b * j)
        var signs: [Float] = []
        if case .signFlips = direction { signs = [Float](repeating: 1, count: b * n) }
        for _ in 0..<steps {
            let gradient: Tensor
            switch direction {
            case .scorer:
                let pre = Linear.forward(adversarial, weight: weight, bias: nil).scalars
                for k in 0..<(b * j) { dScore[k] = pre[k] + threshold[k] > 0 ? outputSigns[k % j] : 0 }
                gradient = Linear.backwardInput(Tensor(shape: [b, j], values: dScore), weight: weight, inputShape: [b, n])
            case .signFlips(let p):
                for i in 0..<(b * n) where rng.nextFloat() < p { signs[i] = -signs[i] }
                gradient = Tensor(shape: [b, n], values: signs)
            }
            Perturbation.signStep(&adversarial, gradient: gradient, stepSize: stepSize)
            Perturbation.projectLinf(&adversarial, center: clean, epsilon: epsilon)
        }
        Elementwise.addScaled(&adversarial, clean, scale: -1)
        return adversarial.reshaped(images.shape)
    }

    /// Mean number of distinct q8 levels (round(δ/(ε/127)) clamped to ±127) per entry, and the fraction
    /// of values at ±127 (saturated at ±ε), over `deltas` (one array per entry).
    public static func levelStatistics(_ deltas: [[Float]], epsilon: Float) -> (meanLevels: Double, saturatedFraction: Double) {
        let scale = epsilon / 127
        var distinct = 0, saturated = 0, total = 0
        for d in deltas {
            var seen = Set<Int>()
            for x in d {
                let q = Int(max(-127, min(127, (x / scale).rounded(.toNearestOrEven))))
                seen.insert(q)
                if abs(q) == 127 { saturated += 1 }
            }
            distinct += seen.count
            total += d.count
        }
        return (Double(distinct) / Double(max(deltas.count, 1)), Double(saturated) / Double(max(total, 1)))
    }

    /// One line for reports.
    public var description: String {
        let how: String
        switch direction {
        case .scorer:
            how = "against a fixed random linear+ReLU surrogate scorer (\(hidden) units, smooth weights)"
        case .signFlips(let p):
            how = "with i.i.d. sign flips (p = \(p)) instead of a gradient"
        }
        return "L∞ sign-PGD, \(steps) steps of α = ε/\(String(format: "%g", Double(epsilon / stepSize))) from δ = 0, "
            + "projected to the ε-ball and [0, 1] around each sample's augmented view, " + how
    }
}
