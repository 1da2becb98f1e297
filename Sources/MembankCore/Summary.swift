// Summary.swift: the number summaries every `membank` report uses: count, mean, min, quantiles
// (linear interpolation between order statistics, NumPy's default) and max, plus the vector maths of
// perturbations (L∞, L2, cosine similarity, L2 distance), all accumulated in Double.

/// count, mean, min, p10, median, p90, max of a list of numbers (nil fields for an empty list).
public struct Summary: Codable, Equatable, Sendable {
    public var count: Int
    public var mean: Double?
    public var min: Double?
    public var p10: Double?
    public var median: Double?
    public var p90: Double?
    public var max: Double?

    /// Summarises `values` (NaN values are not expected; they would sort last).
    public init(_ values: [Double]) {
        count = values.count
        guard !values.isEmpty else { return }
        let sorted = values.sorted()
        mean = values.reduce(0, +) / Double(values.count)
        min = sorted.first
        max = sorted.last
        p10 = Summary.quantile(sorted, 0.1)
        median = Summary.quantile(sorted, 0.5)
        p90 = Summary.quantile(sorted, 0.9)
    }

    /// The `q`-quantile of ascending `sorted` values by linear interpolation:
    /// ```
    /// h = (n − 1)·q,  Q = x[⌊h⌋] + (h − ⌊h⌋)·(x[⌊h⌋+1] − x[⌊h⌋])
    /// ```
    /// (NumPy's default `method="linear"`, R type 7). - Precondition: `sorted` non-empty, `0 ≤ q ≤ 1`.
    public static func quantile(_ sorted: [Double], _ q: Double) -> Double {
        precondition(!sorted.isEmpty && q >= 0 && q <= 1)
        let h = Double(sorted.count - 1) * q
        let lo = Int(h.rounded(.down)), hi = Swift.min(lo + 1, sorted.count - 1)
        return sorted[lo] + (h - Double(lo)) * (sorted[hi] - sorted[lo])
    }
}

/// Norms and similarities of perturbations (flat arrays of n values), accumulated in Double.
public enum DeltaMath {
    /// `max_i |δ_i|`.
    public static func linf(_ d: [Float]) -> Double {
        var m: Float = 0
        for v in d { m = Swift.max(m, abs(v)) }
        return Double(m)
    }

    /// `sqrt(Σ δ_i²)`.
    public static func l2(_ d: [Float]) -> Double {
        var s = 0.0
        for v in d { s += Double(v) * Double(v) }
        return s.squareRoot()
    }

    /// `cos(a, b) = Σ a_i b_i / (‖a‖₂ ‖b‖₂)` over the positions where `mask` is true (all when nil);
    /// nil when either restricted vector is zero (the direction is undefined).
    public static func cosine(_ a: [Float], _ b: [Float], mask: [Bool]? = nil) -> Double? {
        precondition(a.count == b.count)
        var dot = 0.0, aa = 0.0, bb = 0.0
        for i in 0..<a.count where mask?[i] ?? true {
            let x = Double(a[i]), y = Double(b[i])
            dot += x * y
            aa += x * x
            bb += y * y
        }
        guard aa > 0 && bb > 0 else { return nil }
        return dot / (aa.squareRoot() * bb.squareRoot())
    }

    /// `‖a − b‖₂` over the positions where `mask` is true (all when nil).
    public static func distance(_ a: [Float], _ b: [Float], mask: [Bool]? = nil) -> Double {
        precondition(a.count == b.count)
        var s = 0.0
        for i in 0..<a.count where mask?[i] ?? true {
            let d = Double(a[i]) - Double(b[i])
            s += d * d
        }
        return s.squareRoot()
    }
}
