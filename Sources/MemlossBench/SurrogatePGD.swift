// SurrogatePGD.swift: the fast fill of `memloss bench scale`: a real L∞ sign-PGD (gradient sign steps,
// projection to the ε-ball and to [0, 1]) run on each sample's augmented view, but against a fixed random
// surrogate scorer (one linear+ReLU layer, 8 units, spatially smooth weights) instead of the network,
// so a million samples × K generations of attack-shaped δ cost a few GEMMs each. Not a training attack:
// it never sees the model being trained (the bench's measured epoch runs the real one).

import Foundation
import Kernels
import Tensors

/// L∞ sign-PGD from δ = 0 against the surrogate score `s(x) = Σ_j v_j · ReLU(w_j·x + b_j)`:
///
/// ```
/// x̃⁰ = x;   x̃ᵗ⁺¹ = clamp(Π_ε(x̃ᵗ + α · sign(∇ₓ s(x̃ᵗ))), 0, 1),   ∇ₓ s = Σ_j v_j · 1[w_j·x + b_j > 0] · w_j
/// δ = x̃ᵀ − x
/// ```
/// Shapes: `x [B, C, H, W]` (B views in [0, 1]), `W [J, C·H·W]` with J = 8, `v ∈ {−1, +1}^J`,
/// `b [B, J]`, `δ [B, C, H, W]`.
///
/// - `w_j` = a 4×4 lattice of U(−1, 1) per channel, bilinearly upsampled to H×W, plus 0.3·U(−1, 1)
///   white noise: real input gradients are spatially smooth with fine detail, so δ has runs LZ4 and the
///   `levels` codec can use.
/// - `b_bj = −w_j·x_b + 0.3·ε·‖w_j‖₁·u_bj`, u ~ U(−1, 1) per batch: every unit starts near its threshold,
///   so the steps switch units on and off and the gradient's sign pattern changes between steps, as
///   it does against a network (otherwise every pixel would saturate at ±ε in the same direction).
/// - Zero start (PGD-AT without a random start) and α = ε/4 by default: T steps give at most 2T+1
///   q8 levels per entry, most pixels saturated at ±ε or clipped by [0, 1].
///
/// Properties that do *not* hold: δ is not adversarial for the trained model, and its statistics
/// (levels, saturation) are those of this scorer, measured and reported by the bench, not those of a
/// real run (`docs/scale.md` compares them with the δ of the bench's real training epoch).
public struct SurrogatePGD: Sendable {
    public let epsilon: Float
    public let stepSize: Float
    public let steps: Int
    /// `[J, C·H·W]`.
    let weight: Tensor
    /// v_j ∈ {−1, +1}.
    let outputSigns: [Float]
    /// ‖w_j‖₁.
    let rowL1: [Float]

    /// Hidden units J of the scorer: 8 keeps the 2T + 1 GEMMs per batch cheap next to reading the view
    /// and encoding the entry, while units still switch between steps (with 3 steps of ε/2 at N = 10⁶,
    /// `levels` stored 1,169 B/entry with 32 units and 1,146 with 8: nearly the same δ statistics).
    public static let hidden = 8
    /// Spread of the per-image thresholds, as a fraction of the largest change the ε-ball allows.
    static let thresholdSpread: Float = 0.3
    /// Amplitude of the white noise added to the smooth weights.
    static let weightNoise: Float = 0.3

    /// - Parameters:
    ///   - shape: `[C, H, W]` of one sample.
    ///   - epsilon: ε > 0 in [0, 1] pixel units; `stepSize` defaults to ε/4.
    ///   - steps: T ≥ 1.
    ///   - seed: the scorer's weights are a pure function of (shape, seed).
    public init(shape: [Int], epsilon: Float, stepSize: Float? = nil, steps: Int, seed: UInt64) {
        precondition(shape.count == 3 && shape.allSatisfy { $0 >= 1 }, "SurrogatePGD: shape \(shape) is not [C, H, W]")
        precondition(epsilon > 0 && steps >= 1, "SurrogatePGD: need ε > 0 and steps ≥ 1")
        self.epsilon = epsilon
        self.stepSize = stepSize ?? epsilon / 4
        self.steps = steps
        let n = shape.reduce(1, *), j = SurrogatePGD.hidden
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
    /// (also the smooth images and scorer weights of `memloss bench bank`).
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

    /// δ = x̃ − x for a batch of views `images [B, C, H, W]` (returns `[B, C, H, W]`); `rng` draws the
    /// per-image thresholds (B·J values).
    /// - Complexity: (2T + 1) GEMMs of `B × C·H·W × J`, plus O(T·B·C·H·W) elementwise work.
    public func perturb(_ images: Tensor, rng: inout SplitMix64) -> Tensor {
        let b = images.shape[0], n = images.count / max(b, 1), j = SurrogatePGD.hidden
        precondition(n == weight.shape[1], "SurrogatePGD: images \(images.shape) do not match the scorer's \(n) inputs")
        let clean = images.reshaped([b, n])
        let center = Linear.forward(clean, weight: weight, bias: nil).scalars  // [B, J]
        var threshold = [Float](repeating: 0, count: b * j)
        for k in 0..<(b * j) {
            let spread = SurrogatePGD.thresholdSpread * epsilon * rowL1[k % j]
            threshold[k] = -center[k] + spread * (2 * rng.nextFloat() - 1)
        }
        var adversarial = clean.copy()
        var dScore = [Float](repeating: 0, count: b * j)
        for _ in 0..<steps {
            let pre = Linear.forward(adversarial, weight: weight, bias: nil).scalars
            for k in 0..<(b * j) { dScore[k] = pre[k] + threshold[k] > 0 ? outputSigns[k % j] : 0 }
            let gradient = Linear.backwardInput(Tensor(shape: [b, j], values: dScore), weight: weight, inputShape: [b, n])
            Perturbation.signStep(&adversarial, gradient: gradient, stepSize: stepSize)
            Perturbation.projectLinf(&adversarial, center: clean, epsilon: epsilon)
        }
        Elementwise.addScaled(&adversarial, clean, scale: -1)
        return adversarial.reshaped(images.shape)
    }

    /// One line for reports.
    public var description: String {
        "L∞ sign-PGD, \(steps) steps of α = ε/\(String(format: "%g", Double(epsilon / stepSize))) from δ = 0, "
            + "projected to the ε-ball and [0, 1] around each sample's augmented view, against a fixed random "
            + "linear+ReLU surrogate scorer (\(SurrogatePGD.hidden) units, smooth weights)"
    }
}
