// Perturbation+Reference.swift: the naive scalar twins of the Perturbation kernels, one plain loop
// each, that the tests compare the SIMD versions against (Tests/KernelsTests/PerturbationTests.swift).

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
