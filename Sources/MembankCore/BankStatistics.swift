// BankStatistics.swift: `membank stats`: per generation, the distribution of δ values (a histogram over
// [−ε, ε]), the per-entry L∞ and L2 norms, the share of saturated values, p_y and the margin the
// trainer recorded at generation time, and the same per class. The rules (bins, saturation
// threshold) are in docs/membank.md §stats and in the doc comments below.

import MemoryBank

/// One histogram bin `[lower, upper)` (the last bin also holds `upper`).
public struct HistogramBin: Codable, Equatable, Sendable {
    public var lower: Double
    public var upper: Double
    public var count: Int
}

/// How saturation was judged, and how much of the generation is saturated.
public struct Saturation: Codable, Equatable, Sendable {
    /// `"value"` (L∞ banks: per δ value) or `"entry"` (L2 banks: per entry on the sphere).
    public var unit: String
    /// The rule in words, e.g. `|δ| ≥ ε − t, t = max(ε/254, 2⁻²³)`.
    public var rule: String
    /// The threshold compared against (|δ_i| for L∞, ‖δ‖₂ for L2).
    public var threshold: Double
    public var count: Int
    public var share: Double
}

/// The statistics of one class within a generation.
public struct ClassStats: Codable, Equatable, Sendable {
    public var label: Int
    public var entries: Int
    public var meanLinf: Double
    public var meanL2: Double
    /// Share of saturated values (L∞) or entries (L2), as in `Saturation`.
    public var saturatedShare: Double
    public var meanPY: Double
    public var meanMargin: Double
    /// Share of entries with margin < 0 (misclassified at x̃ when generated).
    public var misclassifiedShare: Double
}

/// The statistics of one generation.
public struct GenerationStats: Codable, Equatable, Sendable {
    public var generation: Int
    public var entries: Int
    /// entries · C·H·W.
    public var values: Int
    public var epsilon: Double
    public var norm: String
    public var codec: String
    /// `bins` equal bins over [−ε, ε] (see `BankStatistics.histogram`).
    public var histogram: [HistogramBin]
    /// Values with |δ| > ε + t (outside every bin).
    public var outsideRange: Int
    /// Per-entry `max_i |δ_i|` and `‖δ‖₂`.
    public var linf: Summary
    public var l2: Summary
    public var saturation: Saturation
    /// p_y(x̃) and the logit margin z_y − max_{j≠y} z_j recorded when the entry was made.
    public var pY: Summary
    public var margin: Summary
    /// Share of entries with margin < 0.
    public var misclassifiedShare: Double
    /// Values the codec clamped at encode time (sum of the records' clampedCount).
    public var clampedValues: Int
    /// Ascending by label.
    public var perClass: [ClassStats]
    /// Damaged records skipped (not in any figure above); `membank verify` names them.
    public var damagedEntries: Int
    /// Non-finite `pY` / `margin` values left out of the `pY`, `margin` and per-class summaries.
    public var nonFiniteMetadata: Int
}

public enum BankStatistics {
    /// Default number of histogram bins: 21, so the middle bin is centred on δ = 0 and the two end
    /// bins hold the saturated values ±ε.
    public static let defaultBins = 21

    /// The tolerance `t` of the saturation and range rules: half the codec's quantisation step
    /// (the largest reconstruction error, spec §7), and at least 2⁻²³ (the rounding of x̃ − x for
    /// pixels in [0, 1]):
    /// ```
    /// q8, levels, q8rc: ε/254     q4: ε/14     f16: ε·2⁻¹¹     f32: 0       t = max(that, 2⁻²³)
    /// ```
    public static func tolerance(codec: BankCodec, epsilon: Float) -> Double {
        let e = Double(epsilon)
        let half: Double
        switch codec {
        case .q8, .levels, .q8rc, .q8rcn: half = e / 254
        case .q4: half = e / 14
        case .f16: half = e * 0x1p-11
        case .f32: half = 0
        }
        return max(half, 0x1p-23)
    }

    /// The relative tolerance of the L2 "on the sphere" rule: ‖δ‖₂ ≥ (1 − 10⁻³)·ε.
    public static let sphereTolerance = 1e-3

    /// Bin of value `x` among `bins` equal bins over [−ε, ε], or nil when `|x| > ε + t`:
    /// ```
    /// k = ⌊(x + ε) / (2ε) · bins⌋, clamped to 0…bins−1 (so x = ε, and ε < |x| ≤ ε + t, land in an end bin)
    /// ```
    /// Non-finite `x` (readers reject such δ, but the function is public) gives nil too.
    public static func bin(of x: Float, epsilon: Float, bins: Int, tolerance t: Double) -> Int? {
        let v = Double(x), e = Double(epsilon)
        if !(abs(v) <= e + t) || !(e > 0) { return nil }  // also NaN: no Double → Int conversion of it
        let k = Int(((v + e) / (2 * e) * Double(bins)).rounded(.down))
        return min(bins - 1, max(0, k))
    }

    /// Computes the statistics of `generation` (every entry decoded once).
    /// - Parameter bins: histogram bins, ≥ 1.
    /// - Throws: `.bank(corruptRecord…)` at the first damaged record.
    public static func compute(_ bank: InspectedBank, generation: Int, bins: Int = defaultBins) throws(MembankError) -> GenerationStats {
        try compute([bank], generation: generation, bins: bins)
    }

    /// The statistics of `generation` over the union of `banks` (the shards of a sharded bank, which
    /// share one config: ShardedBank checks it), every entry of every shard decoded once.
    public static func compute(_ banks: [InspectedBank], generation: Int, bins: Int = defaultBins) throws(MembankError) -> GenerationStats {
        guard bins >= 1 && bins <= 10_000 else { throw .invalidArgument(name: "--bins", value: "\(bins)", expected: "1…10000") }
        guard let first = banks.first else { throw .invalidArgument(name: "BANK", value: "no shards", expected: "a bank directory") }
        let config = first.config
        let eps = config.epsilon, e = Double(eps)
        let t = tolerance(codec: config.codec, epsilon: eps)
        let perValue = config.norm == .linf
        var counts = [Int](repeating: 0, count: bins)
        var outside = 0, clamped = 0, saturatedTotal = 0, nonFinite = 0
        var linfs: [Double] = [], l2s: [Double] = [], pYs: [Double] = [], margins: [Double] = []
        struct ClassAccumulator {
            var entries = 0, values = 0, saturated = 0, misclassified = 0, pYCount = 0, marginCount = 0
            var linf = 0.0, l2 = 0.0, pY = 0.0, margin = 0.0
        }
        var classes: [Int: ClassAccumulator] = [:]
        var skipped: [MemoryBankError] = []
        for bank in banks { skipped += try bank.forEachEntry(in: generation) { (_: Int, delta: [Float], info: EntryInfo) throws(MembankError) in
            var saturated = 0
            for x in delta {
                if let k = bin(of: x, epsilon: eps, bins: bins, tolerance: t) { counts[k] += 1 } else { outside += 1 }
                if perValue && Double(abs(x)) >= e - t { saturated += 1 }
            }
            let linf = DeltaMath.linf(delta), l2 = DeltaMath.l2(delta)
            if !perValue { saturated = l2 >= (1 - sphereTolerance) * e ? 1 : 0 }
            saturatedTotal += saturated
            linfs.append(linf)
            l2s.append(l2)
            let pY = info.metadata.pY, margin = info.metadata.margin
            if pY.isFinite { pYs.append(Double(pY)) } else { nonFinite += 1 }
            if margin.isFinite { margins.append(Double(margin)) } else { nonFinite += 1 }
            clamped += info.clampedCount
            var c = classes[Int(info.metadata.label), default: ClassAccumulator()]
            c.entries += 1
            c.values += delta.count
            c.saturated += saturated
            c.linf += linf
            c.l2 += l2
            if pY.isFinite { c.pY += Double(pY); c.pYCount += 1 }
            if margin.isFinite { c.margin += Double(margin); c.marginCount += 1 }
            if margin < 0 { c.misclassified += 1 }
            classes[Int(info.metadata.label)] = c
        } }
        let entries = linfs.count, values = entries * config.elementCount
        let histogram = (0..<bins).map { k in
            HistogramBin(lower: -e + 2 * e * Double(k) / Double(bins), upper: -e + 2 * e * Double(k + 1) / Double(bins), count: counts[k])
        }
        let unitCount = perValue ? values : entries
        let saturation = Saturation(
            unit: perValue ? "value" : "entry",
            rule: perValue ? "|δ_i| ≥ ε − t, t = max(codec half-step, 2⁻²³) = \(t)"
                           : "‖δ‖₂ ≥ (1 − \(sphereTolerance))·ε",
            threshold: perValue ? e - t : (1 - sphereTolerance) * e,
            count: saturatedTotal, share: unitCount == 0 ? 0 : Double(saturatedTotal) / Double(unitCount))
        let perClass = classes.keys.sorted().map { label -> ClassStats in
            let c = classes[label]!, n = Double(c.entries)
            return ClassStats(label: label, entries: c.entries, meanLinf: c.linf / n, meanL2: c.l2 / n,
                              saturatedShare: Double(c.saturated) / Double(perValue ? c.values : c.entries),
                              meanPY: c.pY / Double(max(1, c.pYCount)), meanMargin: c.margin / Double(max(1, c.marginCount)),
                              misclassifiedShare: Double(c.misclassified) / n)
        }
        return GenerationStats(
            generation: generation, entries: entries, values: values, epsilon: e, norm: config.norm.rawValue,
            codec: config.codec.rawValue, histogram: histogram, outsideRange: outside, linf: Summary(linfs), l2: Summary(l2s),
            saturation: saturation, pY: Summary(pYs), margin: Summary(margins),
            misclassifiedShare: entries == 0 ? 0 : Double(margins.filter { $0 < 0 }.count) / Double(entries),
            clampedValues: clamped, perClass: perClass, damagedEntries: skipped.count, nonFiniteMetadata: nonFinite)
    }

    // MARK: - Text

    /// The human report of one generation: summary lines, the histogram as bars, the per-class table.
    public static func text(_ s: GenerationStats) -> String {
        var out = "generation \(s.generation): \(s.entries) entries, \(s.values) values, ε = \(fmt(s.epsilon)) (\(s.norm)), codec \(s.codec)\n"
        out += Table(header: ["per entry", "mean", "min", "p10", "median", "p90", "max"], rows: [
            summaryRow("L∞ ‖δ‖∞", s.linf), summaryRow("L2 ‖δ‖₂", s.l2), summaryRow("p_y(x̃)", s.pY), summaryRow("margin", s.margin),
        ]).render()
        out += "saturated \(s.saturation.unit)s: \(s.saturation.count) (\(percent(s.saturation.share))); rule \(s.saturation.rule)\n"
        out += "misclassified at generation (margin < 0): \(percent(s.misclassifiedShare)); clamped by the codec: \(s.clampedValues)"
        out += s.outsideRange > 0 ? "; outside [−ε, ε]: \(s.outsideRange)\n" : "\n"
        out += InspectedBank.skippedNote(s.damagedEntries, in: s.generation)
        if s.nonFiniteMetadata > 0 {
            out += "non-finite p_y/margin values: \(s.nonFiniteMetadata) (left out of those summaries; `membank verify` names them)\n"
        }
        out += "histogram of δ values over [−ε, ε] (\(s.histogram.count) bins)\n"
        let peak = max(1, s.histogram.map(\.count).max() ?? 1)
        for b in s.histogram {
            let bar = String(repeating: "#", count: Int((Double(b.count) / Double(peak) * 40).rounded()))
            out += "  [\(pad(fmt(b.lower), 10)), \(pad(fmt(b.upper), 10)))  \(pad(String(b.count), 10))  \(bar)\n"
        }
        out += "per class\n"
        out += Table(header: ["label", "entries", "mean L∞", "mean L2", "saturated", "mean p_y", "mean margin", "margin < 0"],
                     rows: s.perClass.map {
                         [String($0.label), String($0.entries), fmt($0.meanLinf), fmt($0.meanL2), percent($0.saturatedShare),
                          fmt($0.meanPY), fmt($0.meanMargin), percent($0.misclassifiedShare)]
                     }).render()
        return out
    }

    private static func summaryRow(_ name: String, _ s: Summary) -> [String] {
        [name] + [s.mean, s.min, s.p10, s.median, s.p90, s.max].map { $0.map(fmt) ?? "–" }
    }
}
