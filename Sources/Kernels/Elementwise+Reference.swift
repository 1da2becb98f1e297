// Elementwise+Reference.swift: naive twins of the Elementwise kernels (plain scalar loops, sums in
// Double). For tests only; no SIMD, no threads.

extension Reference {
    /// Twin of `Elementwise.add`: `output[i] = a[i] + b[i]`.
    public static func elementwiseAdd(output: UnsafeMutablePointer<Float>, a: UnsafePointer<Float>,
                                      b: UnsafePointer<Float>, count: Int) {
        for i in 0..<max(count, 0) { output[i] = a[i] + b[i] }
    }

    /// Twin of `Elementwise.accumulate`: `target[i] += source[i]`.
    public static func elementwiseAccumulate(into target: UnsafeMutablePointer<Float>,
                                             from source: UnsafePointer<Float>, count: Int) {
        for i in 0..<max(count, 0) { target[i] += source[i] }
    }

    /// Twin of `Elementwise.scale`: `output[i] = factor · input[i]`.
    public static func elementwiseScale(output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
                                        by factor: Float, count: Int) {
        for i in 0..<max(count, 0) { output[i] = factor * input[i] }
    }

    /// Twin of `Elementwise.addScaled`: `target[i] += factor · source[i]`, computed in Double and rounded once.
    public static func elementwiseAddScaled(into target: UnsafeMutablePointer<Float>,
                                            from source: UnsafePointer<Float>, scale factor: Float, count: Int) {
        for i in 0..<max(count, 0) { target[i] = Float(Double(target[i]) + Double(factor) * Double(source[i])) }
    }

    /// Twin of `Elementwise.sum`: sequential sum in Double.
    public static func elementwiseSum(_ input: UnsafePointer<Float>, count: Int) -> Float {
        var total = 0.0
        for i in 0..<max(count, 0) { total += Double(input[i]) }
        return Float(total)
    }

    /// Twin of `Elementwise.copy`.
    public static func elementwiseCopy(output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, count: Int) {
        for i in 0..<max(count, 0) { output[i] = input[i] }
    }
}
