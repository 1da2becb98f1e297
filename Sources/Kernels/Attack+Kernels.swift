// Attack+Kernels.swift: the elementwise pieces of an adversarial attack step: a sign step, the
// L∞ and L2 projections onto the ε-ball and the [0, 1] image box, per-sample L2 norms and a
// per-sample scaled add, each a FloatVector main loop plus a scalar tail, with Tensor-level entry
// points (so Attacks never touches a pointer) and naive `Reference` twins at the end.
// It does not compute gradients or know about models; Attacks/PGD.swift drives these.

import Tensors

// MARK: - Pointer kernels

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
        for r in 0..<max(rows, 0) {
            norms[r] = Float(squaredDistance(input + r * rowLength, nil, count: rowLength).squareRoot())
        }
    }

    /// `target[r, :] += factors[r] · source[r, :]` for each of `rows` rows (one fused multiply-add
    /// per element). The normalised-gradient L2 step uses `factors[r] = α / ‖g_r‖`.
    public static func addScaledRows(target: UnsafeMutablePointer<Float>, source: UnsafePointer<Float>,
                                     factors: UnsafePointer<Float>, rows: Int, rowLength: Int) {
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

// MARK: - Tensor-level entry points

extension Perturbation {
    /// `values += stepSize · sign(gradient)` (same element count).
    public static func signStep(_ values: inout Tensor, gradient: Tensor, stepSize: Float) {
        precondition(values.count == gradient.count, "Perturbation.signStep: \(values.shape) vs \(gradient.shape)")
        values.withUnsafeMutablePointer { x in
            gradient.withUnsafePointer { g in signStep(values: x, gradient: g, stepSize: stepSize, count: gradient.count) }
        }
    }

    /// L∞ ball (radius `epsilon` around `center`), then [0, 1] box.
    public static func projectLinf(_ values: inout Tensor, center: Tensor, epsilon: Float) {
        precondition(values.shape == center.shape, "Perturbation.projectLinf: \(values.shape) vs \(center.shape)")
        values.withUnsafeMutablePointer { x in
            center.withUnsafePointer { c in projectLinf(values: x, center: c, epsilon: epsilon, count: center.count) }
        }
    }

    /// [0, 1] box, then per-sample L2 ball (radius `epsilon` around `center`), for `[N, …]` tensors.
    public static func projectL2(_ values: inout Tensor, center: Tensor, epsilon: Float) {
        precondition(values.shape == center.shape && values.rank >= 1,
                     "Perturbation.projectL2: \(values.shape) vs \(center.shape)")
        let (rows, rowLength) = rowGeometry(center)
        values.withUnsafeMutablePointer { x in
            center.withUnsafePointer { c in
                projectL2(values: x, center: c, epsilon: epsilon, rows: rows, rowLength: rowLength)
            }
        }
    }

    /// `values = clamp(values, 0, 1)`.
    public static func clampToUnitInterval(_ values: inout Tensor) {
        let n = values.count
        values.withUnsafeMutablePointer { clampToUnitInterval(values: $0, count: n) }
    }

    /// Per-sample L2 norms of an `[N, …]` tensor: `[N]` values.
    public static func rowL2Norms(_ input: Tensor) -> [Float] {
        precondition(input.rank >= 1, "Perturbation.rowL2Norms: needs a batch dimension, got \(input.shape)")
        let (rows, rowLength) = rowGeometry(input)
        var norms = [Float](repeating: 0, count: rows)
        norms.withUnsafeMutableBufferPointer { n in
            input.withUnsafePointer { x in
                if let base = n.baseAddress { rowL2Norms(norms: base, input: x, rows: rows, rowLength: rowLength) }
            }
        }
        return norms
    }

    /// `target[r] += factors[r] · source[r]` for the samples `r` of `[N, …]` tensors.
    public static func addScaledRows(_ target: inout Tensor, _ source: Tensor, factors: [Float]) {
        precondition(target.shape == source.shape && target.rank >= 1 && factors.count == source.shape[0],
                     "Perturbation.addScaledRows: \(target.shape), \(source.shape), \(factors.count) factors")
        let (rows, rowLength) = rowGeometry(source)
        target.withUnsafeMutablePointer { t in
            source.withUnsafePointer { s in
                factors.withUnsafeBufferPointer { f in
                    if let base = f.baseAddress {
                        addScaledRows(target: t, source: s, factors: base, rows: rows, rowLength: rowLength)
                    }
                }
            }
        }
    }

    /// `(N, product of the other dimensions)` of an `[N, …]` tensor.
    private static func rowGeometry(_ t: Tensor) -> (rows: Int, rowLength: Int) {
        let rows = t.shape[0]
        return (rows, rows == 0 ? 0 : t.count / rows)
    }
}

// MARK: - Reference twins

extension Reference {
    /// Twin of `Perturbation.signStep`.
    public static func perturbationSignStep(values: UnsafeMutablePointer<Float>, gradient: UnsafePointer<Float>,
                                            stepSize: Float, count: Int) {
        for i in 0..<max(count, 0) {
            let s: Float = gradient[i] > 0 ? 1 : (gradient[i] < 0 ? -1 : 0)
            values[i] += s == 0 ? 0 : s * stepSize
        }
    }

    /// Twin of `Perturbation.projectLinf`.
    public static func perturbationProjectLinf(values: UnsafeMutablePointer<Float>, center: UnsafePointer<Float>,
                                               epsilon: Float, count: Int) {
        for i in 0..<max(count, 0) {
            var x = values[i]
            if x < center[i] - epsilon { x = center[i] - epsilon }
            if x > center[i] + epsilon { x = center[i] + epsilon }
            if x < 0 { x = 0 }
            if x > 1 { x = 1 }
            values[i] = x
        }
    }

    /// Twin of `Perturbation.rowL2Norms`: sequential Double sums.
    public static func perturbationRowL2Norms(norms: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
                                              rows: Int, rowLength: Int) {
        for r in 0..<max(rows, 0) {
            var s = 0.0
            for i in 0..<rowLength { s += Double(input[r * rowLength + i]) * Double(input[r * rowLength + i]) }
            norms[r] = Float(s.squareRoot())
        }
    }

    /// Twin of `Perturbation.addScaledRows`, computed in Double and rounded once.
    public static func perturbationAddScaledRows(target: UnsafeMutablePointer<Float>, source: UnsafePointer<Float>,
                                                 factors: UnsafePointer<Float>, rows: Int, rowLength: Int) {
        for r in 0..<max(rows, 0) {
            for i in 0..<rowLength {
                let k = r * rowLength + i
                target[k] = Float(Double(target[k]) + Double(factors[r]) * Double(source[k]))
            }
        }
    }

    /// Twin of `Perturbation.projectL2`, in Double per row.
    public static func perturbationProjectL2(values: UnsafeMutablePointer<Float>, center: UnsafePointer<Float>,
                                             epsilon: Float, rows: Int, rowLength: Int) {
        for r in 0..<max(rows, 0) {
            let base = r * rowLength
            var s = 0.0
            for i in 0..<rowLength {
                values[base + i] = min(max(values[base + i], 0), 1)
                let d = Double(values[base + i]) - Double(center[base + i])
                s += d * d
            }
            let norm = s.squareRoot()
            guard norm > Double(epsilon) else { continue }
            let factor = Double(epsilon) / norm
            for i in 0..<rowLength {
                let c = Double(center[base + i])
                values[base + i] = min(max(Float(c + factor * (Double(values[base + i]) - c)), 0), 1)
            }
        }
    }
}
