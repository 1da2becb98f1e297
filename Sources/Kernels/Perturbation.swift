// Perturbation.swift: the elementwise pieces of an adversarial attack step over raw buffers: a sign
// step, the L∞ and L2 projections onto the ε-ball and the [0, 1] image box, per-sample L2 norms and a
// per-sample scaled add, each a FloatVector main loop plus a scalar tail. Tensor-level entry points are
// in Perturbation+Tensor.swift, the naive twins in Perturbation+Reference.swift. It does not compute
// gradients or know about models; Attacks/PGD.swift drives these.

import Tensors

/// Flat kernels for perturbing images inside a norm ball and the [0, 1] box.
///
/// Shapes: a batch of `rows` samples, each `rowLength` contiguous floats (`[N, C·H·W]` for images
/// `[N, C, H, W]`). Single-threaded: every kernel here is one memory-bound pass that costs far less
/// than the forward/backward pass it follows.
public enum Perturbation {
    /// `values[i] += stepSize · sign(gradient[i])`, with `sign(0) = 0` (as `torch.sign`), so a zero
    /// gradient leaves the pixel where it is. The L∞ PGD / FGSM step.
    public static func signStep(values: UnsafeMutablePointer<Float>, gradient: UnsafePointer<Float>,
                                stepSize: Float, count: Int) {
        let profile = KernelProfile.begin(.elementwise); defer { KernelProfile.end(profile) }
        precondition(count >= 0, "Perturbation.signStep: negative count \(count)")
        let zero = FloatVector(repeating: 0), up = FloatVector(repeating: stepSize)
        let vectorCount = count / FloatVector.scalarCount
        for v in 0..<vectorCount {
            let i = v * FloatVector.scalarCount
            let g = loadVector(gradient + i)
            // +α where g > 0, −α where g < 0, 0 elsewhere (including g = ±0).
            let step = zero.replacing(with: up, where: g .> zero).replacing(with: -up, where: g .< zero)
            storeVector(loadVector(values + i) + step, values + i)
        }
        for i in (vectorCount * FloatVector.scalarCount)..<count {
            let g = gradient[i]
            if g > 0 { values[i] += stepSize } else if g < 0 { values[i] -= stepSize }
        }
    }

    /// L∞ projection: `values = clamp(clamp(values, center − ε, center + ε), 0, 1)`, ball first, then
    /// box (algorithms.md notation Π_ε). With `center` in [0, 1] the result lies in both sets.
    public static func projectLinf(values: UnsafeMutablePointer<Float>, center: UnsafePointer<Float>,
                                   epsilon: Float, count: Int) {
        let profile = KernelProfile.begin(.elementwise); defer { KernelProfile.end(profile) }
        precondition(count >= 0, "Perturbation.projectLinf: negative count \(count)")
        let e = FloatVector(repeating: epsilon), lo = FloatVector(repeating: 0), hi = FloatVector(repeating: 1)
        let vectorCount = count / FloatVector.scalarCount
        for v in 0..<vectorCount {
            let i = v * FloatVector.scalarCount
            let c = loadVector(center + i)
            var x = pointwiseMin(pointwiseMax(loadVector(values + i), c - e), c + e)
            x = pointwiseMin(pointwiseMax(x, lo), hi)
            storeVector(x, values + i)
        }
        for i in (vectorCount * FloatVector.scalarCount)..<count {
            let c = center[i]
            values[i] = min(max(min(max(values[i], c - epsilon), c + epsilon), 0), 1)
        }
    }

    /// `values = clamp(values, 0, 1)`.
    public static func clampToUnitInterval(values: UnsafeMutablePointer<Float>, count: Int) {
        let profile = KernelProfile.begin(.elementwise); defer { KernelProfile.end(profile) }
        precondition(count >= 0, "Perturbation.clampToUnitInterval: negative count \(count)")
        let lo = FloatVector(repeating: 0), hi = FloatVector(repeating: 1)
        let vectorCount = count / FloatVector.scalarCount
        for v in 0..<vectorCount {
            let i = v * FloatVector.scalarCount
            storeVector(pointwiseMin(pointwiseMax(loadVector(values + i), lo), hi), values + i)
        }
        for i in (vectorCount * FloatVector.scalarCount)..<count {
            values[i] = min(max(values[i], 0), 1)
        }
    }

    /// `norms[r] = ‖input[r, :]‖₂` for each of `rows` rows of `rowLength` floats.
    public static func rowL2Norms(norms: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
                                  rows: Int, rowLength: Int) {
        let profile = KernelProfile.begin(.elementwise); defer { KernelProfile.end(profile) }
        for r in 0..<max(rows, 0) {
            norms[r] = Float(squaredDistance(input + r * rowLength, nil, count: rowLength).squareRoot())
        }
    }

    /// `target[r, :] += factors[r] · source[r, :]` for each of `rows` rows (one fused multiply-add
    /// per element). The normalised-gradient L2 step uses `factors[r] = α / ‖g_r‖`.
    public static func addScaledRows(target: UnsafeMutablePointer<Float>, source: UnsafePointer<Float>,
                                     factors: UnsafePointer<Float>, rows: Int, rowLength: Int) {
        let profile = KernelProfile.begin(.elementwise); defer { KernelProfile.end(profile) }
        for r in 0..<max(rows, 0) {
            let t = target + r * rowLength, s = source + r * rowLength
            let factor = factors[r], f = FloatVector(repeating: factor)
            let vectorCount = rowLength / FloatVector.scalarCount
            for v in 0..<vectorCount {
                let i = v * FloatVector.scalarCount
                storeVector(loadVector(t + i).addingProduct(loadVector(s + i), f), t + i)
            }
            for i in (vectorCount * FloatVector.scalarCount)..<rowLength { t[i] = t[i].addingProduct(s[i], factor) }
        }
    }

    /// L2 projection, per row (sample): clamp to [0, 1], then pull `δ = values − center` back onto the
    /// ball `‖δ‖₂ ≤ ε` by `δ ← δ · ε/‖δ‖₂` when it is outside, then clamp to [0, 1] once more.
    ///
    /// The box-then-ball order is the TRADES L2 variant (algorithms.md §2.1). Shrinking δ towards
    /// a centre inside the box keeps the point inside the box, so the last clamp only removes a
    /// rounding ulp; it never moves a point further than that from the ball. With `epsilon = 0` the
    /// result is exactly `center`.
    public static func projectL2(values: UnsafeMutablePointer<Float>, center: UnsafePointer<Float>,
                                 epsilon: Float, rows: Int, rowLength: Int) {
        let profile = KernelProfile.begin(.elementwise); defer { KernelProfile.end(profile) }
        for r in 0..<max(rows, 0) {
            let x = values + r * rowLength, c = center + r * rowLength
            clampToUnitInterval(values: x, count: rowLength)
            let norm = Float(squaredDistance(UnsafePointer(x), c, count: rowLength).squareRoot())
            guard norm > epsilon else { continue }
            let factor = epsilon / norm, f = FloatVector(repeating: factor)
            let vectorCount = rowLength / FloatVector.scalarCount
            for v in 0..<vectorCount {
                let i = v * FloatVector.scalarCount
                let cv = loadVector(c + i)
                storeVector(cv.addingProduct(loadVector(x + i) - cv, f), x + i)
            }
            for i in (vectorCount * FloatVector.scalarCount)..<rowLength {
                x[i] = c[i].addingProduct(x[i] - c[i], factor)
            }
            clampToUnitInterval(values: x, count: rowLength)
        }
    }

    // MARK: - Helpers

    /// `Σ_i (a[i] − b[i])²` (or `Σ a[i]²` when `b` is nil) with four vector accumulators (one would
    /// serialise on the add latency), lanes and tail summed in Double.
    @inline(__always)
    static func squaredDistance(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>?, count: Int) -> Double {
        let width = FloatVector.scalarCount
        var a0 = FloatVector(), a1 = FloatVector(), a2 = FloatVector(), a3 = FloatVector()
        @inline(__always) func diff(_ i: Int) -> FloatVector {
            if let b { return loadVector(a + i) - loadVector(b + i) }
            return loadVector(a + i)
        }
        let unrolledCount = count / (4 * width)
        for u in 0..<unrolledCount {
            let i = u * 4 * width
            let d0 = diff(i), d1 = diff(i + width), d2 = diff(i + 2 * width), d3 = diff(i + 3 * width)
            a0 = a0.addingProduct(d0, d0); a1 = a1.addingProduct(d1, d1)
            a2 = a2.addingProduct(d2, d2); a3 = a3.addingProduct(d3, d3)
        }
        var i = unrolledCount * 4 * width
        while i + width <= count {
            let d = diff(i)
            a0 = a0.addingProduct(d, d)
            i += width
        }
        let combined = (a0 + a1) + (a2 + a3)
        var total = 0.0
        for lane in 0..<width { total += Double(combined[lane]) }
        while i < count {
            let d = Double(a[i]) - Double(b?[i] ?? 0)
            total += d * d
            i += 1
        }
        return total
    }
}
