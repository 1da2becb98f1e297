// Perturbation+Tensor.swift: Tensor-level entry points of the `Perturbation` kernels (sign step,
// projections, clamp, row norms, scaled rows), so that Attacks never touches a pointer. Each checks
// shapes, opens the pointers once and calls the kernel of Perturbation.swift.

import Tensors

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
