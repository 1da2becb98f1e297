// StudyPlots.swift: the SVG plots of `memloss study report` (docs/study.md, "Report"): robust accuracy
// against the memory window K (one series per stride) for every arm with a grid over `mem-k`, and the
// per-epoch validation robust accuracy of each group, and the same against training seconds (time to
// robustness, docs/warm-start.md) (at most 8 groups per plot). Hand-written SVG 1.1,
// 640×400, with ticked axes, a legend and ±1 sd error bars where n ≥ 2; no dependency, no file I/O.

import Foundation

// MARK: - Chart

/// A line chart with error bars: named series of (x, mean, sd) over shared numeric axes.
public struct StudyChart: Sendable {
    public struct Point: Sendable, Equatable {
        public var x: Double
        public var y: Double
        /// Half-length of the error bar (±1 sd); nil draws none.
        public var sd: Double?
        public init(x: Double, y: Double, sd: Double? = nil) { self.x = x; self.y = y; self.sd = sd }
    }

    public struct Series: Sendable {
        public var name: String
        public var points: [Point]
        public var dashed: Bool
        public init(name: String, points: [Point], dashed: Bool = false) { self.name = name; self.points = points; self.dashed = dashed }
    }

    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var series: [Series]
    /// Tick positions of the x axis (nil: evenly spaced round numbers).
    public var xTicks: [Double]?
    /// Whether x ticks are integers (epochs).
    public var integerX: Bool

    public static let width = 640.0, height = 400.0
    static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
    /// Legend names longer than this are cut (the full name is the entry's tooltip).
    static let legendCharacters = 26

    public init(title: String, xLabel: String, yLabel: String, series: [Series], xTicks: [Double]? = nil, integerX: Bool = false) {
        self.title = title; self.xLabel = xLabel; self.yLabel = yLabel; self.series = series
        self.xTicks = xTicks; self.integerX = integerX
    }

    /// The chart as a standalone SVG document. Each data point is a `<circle class="point">` whose
    /// `data-series`, `data-x` and `data-y` attributes carry its values.
    public func render() -> String {
        let w = StudyChart.width, h = StudyChart.height
        let left = 62.0, right = 190.0, top = 40.0, bottom = 52.0
        let pw = w - left - right, ph = h - top - bottom
        let all = series.flatMap(\.points)
        let xs = all.map(\.x)
        var ys = all.flatMap { p in [p.y - (p.sd ?? 0), p.y + (p.sd ?? 0)] }
        // 5% headroom so points and error bars do not sit on the frame.
        if let lo = ys.min(), let hi = ys.max(), hi > lo { ys += [lo - (hi - lo) * 0.05, hi + (hi - lo) * 0.05] }
        let xt = xTicks ?? StudyChart.ticks(xs.min() ?? 0, xs.max() ?? 1, integer: integerX)
        var x0 = min(xt.first ?? 0, xs.min() ?? 0), x1 = max(xt.last ?? 1, xs.max() ?? 1)
        if x1 - x0 < 1e-12 { x0 -= 1; x1 += 1 }
        // Room on each side so the first and last points are off the frame.
        let pad = (x1 - x0) * 0.04
        x0 -= pad; x1 += pad
        let yt = StudyChart.ticks(ys.min() ?? 0, ys.max() ?? 1, integer: false)
        let y0 = yt.first ?? 0, y1 = max(yt.last ?? 1, y0 + 1e-12)
        func px(_ x: Double) -> Double { left + (x - x0) / (x1 - x0) * pw }
        func py(_ y: Double) -> Double { top + (1 - (y - y0) / (y1 - y0)) * ph }
        func f(_ v: Double) -> String { String(format: "%.1f", v) }

        var s = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        s += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(h))\" viewBox=\"0 0 \(Int(w)) \(Int(h))\" "
            + "font-family=\"sans-serif\" font-size=\"12\">\n"
        s += "<title>\(StudyChart.escape(title))</title>\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        s += "<text x=\"\(f(left))\" y=\"24\" font-size=\"15\" font-weight=\"bold\">\(StudyChart.escape(title))</text>\n"
        // Axes: grid lines, ticks and labels.
        for v in yt {
            let y = py(v)
            s += "<line x1=\"\(f(left))\" y1=\"\(f(y))\" x2=\"\(f(left + pw))\" y2=\"\(f(y))\" stroke=\"#e4e4e4\"/>\n"
            s += "<line x1=\"\(f(left - 5))\" y1=\"\(f(y))\" x2=\"\(f(left))\" y2=\"\(f(y))\" stroke=\"#444\"/>\n"
            s += "<text x=\"\(f(left - 8))\" y=\"\(f(y + 4))\" text-anchor=\"end\">\(StudyChart.label(v))</text>\n"
        }
        for v in xt {
            let x = px(v)
            s += "<line x1=\"\(f(x))\" y1=\"\(f(top + ph))\" x2=\"\(f(x))\" y2=\"\(f(top + ph + 5))\" stroke=\"#444\"/>\n"
            s += "<text x=\"\(f(x))\" y=\"\(f(top + ph + 19))\" text-anchor=\"middle\">\(StudyChart.label(v))</text>\n"
        }
        s += "<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(pw))\" height=\"\(f(ph))\" fill=\"none\" stroke=\"#444\"/>\n"
        s += "<text x=\"\(f(left + pw / 2))\" y=\"\(f(h - 12))\" text-anchor=\"middle\">\(StudyChart.escape(xLabel))</text>\n"
        s += "<text transform=\"translate(16 \(f(top + ph / 2))) rotate(-90)\" text-anchor=\"middle\">\(StudyChart.escape(yLabel))</text>\n"

        // Series are shifted apart by a few pixels so error bars at one x do not hide each other.
        let dodge = 4.0
        for (k, ser) in series.enumerated() {
            let dx = (Double(k) - Double(series.count - 1) / 2) * dodge
            let color = StudyChart.palette[k % StudyChart.palette.count]
            let dash = ser.dashed ? " stroke-dasharray=\"6 4\"" : ""
            let name = StudyChart.escape(ser.name)
            s += "<g class=\"series\" data-series=\"\(name)\">\n"
            let sorted = ser.points.sorted { $0.x < $1.x }
            if sorted.count > 1 {
                let pts = sorted.map { "\(f(px($0.x) + dx)),\(f(py($0.y)))" }.joined(separator: " ")
                s += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\"\(dash) points=\"\(pts)\"/>\n"
            }
            for p in sorted {
                let (cx, cy) = (px(p.x) + dx, py(p.y))
                if let sd = p.sd, sd > 0 {
                    let (a, b) = (py(p.y - sd), py(p.y + sd))
                    s += "<g class=\"errorbar\" stroke=\"\(color)\"><line x1=\"\(f(cx))\" y1=\"\(f(a))\" x2=\"\(f(cx))\" y2=\"\(f(b))\"/>"
                        + "<line x1=\"\(f(cx - 4))\" y1=\"\(f(a))\" x2=\"\(f(cx + 4))\" y2=\"\(f(a))\"/>"
                        + "<line x1=\"\(f(cx - 4))\" y1=\"\(f(b))\" x2=\"\(f(cx + 4))\" y2=\"\(f(b))\"/></g>\n"
                }
                let sdText = p.sd.map { " ± " + StudyChart.label($0) } ?? ""
                s += "<circle class=\"point\" data-series=\"\(name)\" data-x=\"\(p.x)\" data-y=\"\(p.y)\" cx=\"\(f(cx))\" cy=\"\(f(cy))\" "
                    + "r=\"3.5\" fill=\"\(color)\"><title>\(name): \(StudyChart.label(p.x)) → \(StudyChart.label(p.y))\(sdText)</title></circle>\n"
            }
            s += "</g>\n"
            // Legend entry.
            let ly = top + 10 + Double(k) * 18, lx = left + pw + 14
            let short = ser.name.count > StudyChart.legendCharacters
                ? String(ser.name.prefix(StudyChart.legendCharacters - 1)) + "…" : ser.name
            s += "<g class=\"legend\"><title>\(name)</title>"
                + "<line x1=\"\(f(lx))\" y1=\"\(f(ly))\" x2=\"\(f(lx + 22))\" y2=\"\(f(ly))\" stroke=\"\(color)\" stroke-width=\"3\"\(dash)/>"
                + "<text x=\"\(f(lx + 28))\" y=\"\(f(ly + 4))\" font-size=\"11\">\(StudyChart.escape(short))</text></g>\n"
        }
        if all.isEmpty {
            s += "<text x=\"\(f(left + pw / 2))\" y=\"\(f(top + ph / 2))\" text-anchor=\"middle\" fill=\"#888\">no finished cells</text>\n"
        }
        return s + "</svg>\n"
    }

    /// About 5 round tick values (1, 2 or 5 × 10ᵏ apart) covering [lo, hi].
    static func ticks(_ lo: Double, _ hi: Double, integer: Bool) -> [Double] {
        var (a, b) = (lo, hi)
        if b - a < 1e-12 { a -= integer ? 1 : max(abs(a) * 0.05, 0.5); b += integer ? 1 : max(abs(b) * 0.05, 0.5) }
        let raw = (b - a) / 5
        let mag = pow(10, (log10(raw)).rounded(.down))
        var step = [1.0, 2, 5, 10].map { $0 * mag }.first { $0 >= raw } ?? 10 * mag
        if integer { step = max(1, step.rounded()) }
        let first = (a / step).rounded(.down) * step, last = (b / step).rounded(.up) * step
        var out: [Double] = []
        var v = first
        while v <= last + step * 1e-9 && out.count < 50 { out.append(abs(v) < step * 1e-9 ? 0 : v); v += step }
        return out
    }

    static func label(_ v: Double) -> String {
        if v == v.rounded() && abs(v) < 1e9 { return String(Int(v)) }
        return String(format: "%.3g", v)
    }

    static func escape(_ t: String) -> String {
        t.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}

// MARK: - The study's plots

public enum StudyPlots {
    /// Groups per validation-curve plot; more groups make several plots.
    public static let groupsPerCurvePlot = 8

    /// Every plot of a report, with its file name (inside `plots/`).
    public static func charts(for report: StudyReport) -> [(file: String, chart: StudyChart)] {
        windowCharts(report) + curveCharts(report) + timeCurveCharts(report)
    }

    /// The robust metric the K plots show: `pgd20` when evaluated, else the first attack.
    static func robustMetric(_ report: StudyReport) -> StudyMetric? {
        let attacks = report.metrics.filter { $0.kind == .accuracy && $0.key != "clean" && $0.key != "autoattack" }
        return attacks.first { $0.key == "pgd20" } ?? attacks.first
    }

    /// (a) For every arm with a grid over `mem-k`: robust accuracy (%) against K, one series per
    /// `mem-stride` value (AutoAttack dashed, when present); one plot per setting of its other grid flags.
    static func windowCharts(_ report: StudyReport) -> [(file: String, chart: StudyChart)] {
        guard let robust = robustMetric(report) else { return [] }
        var out: [(String, StudyChart)] = []
        var arms: [String] = []
        for g in report.groups where g.point["mem-k"] != nil && !arms.contains(g.arm) { arms.append(g.arm) }
        for arm in arms {
            let groups = report.groups.filter { $0.arm == arm && $0.point["mem-k"].flatMap(Double.init) != nil }
            var panels: [String] = []
            for g in groups where !panels.contains(otherSettings(g)) { panels.append(otherSettings(g)) }
            for panel in panels {
                let members = groups.filter { otherSettings($0) == panel }
                var strides: [String] = []
                for g in members where !strides.contains(g.point["mem-stride"] ?? "") { strides.append(g.point["mem-stride"] ?? "") }
                strides.sort { (Double($0) ?? .infinity, $0) < (Double($1) ?? .infinity, $1) }
                var series: [StudyChart.Series] = []
                for (metric, dashed) in [(robust, false)] + (report.metrics.first { $0.key == "autoattack" }.map { [($0, true)] } ?? []) {
                    for stride in strides {
                        let pts = members.filter { ($0.point["mem-stride"] ?? "") == stride }.compactMap { g -> StudyChart.Point? in
                            guard let k = g.point["mem-k"].flatMap(Double.init), let st = g.metrics[metric.key] else { return nil }
                            return StudyChart.Point(x: k, y: st.mean * 100, sd: st.sd.map { $0 * 100 })
                        }
                        if pts.isEmpty { continue }
                        series.append(.init(name: metric.label + (stride.isEmpty ? "" : ", stride \(stride)"), points: pts, dashed: dashed))
                    }
                }
                let ks = Set(members.compactMap { $0.point["mem-k"].flatMap(Double.init) }).sorted()
                let file = "k-" + safe(arm) + (panel.isEmpty ? "" : "_" + safe(panel)) + ".svg"
                let title = "\(arm): robust accuracy vs K" + (panel.isEmpty ? "" : " (\(panel))")
                out.append((file, StudyChart(title: title, xLabel: "memory window K (mem-k)", yLabel: "robust accuracy (%), mean ± sd",
                                             series: series, xTicks: ks)))
            }
        }
        return out
    }

    /// A group's grid settings other than mem-k and mem-stride, as `flag=value,…` (sorted).
    static func otherSettings(_ g: StudyGroupSummary) -> String {
        g.point.filter { $0.key != "mem-k" && $0.key != "mem-stride" }.sorted { $0.key < $1.key }
            .map { "\($0.key)=\($0.value)" }.joined(separator: ",")
    }

    /// (b) Validation robust accuracy (%) per epoch, mean ± sd over seeds, one line per group.
    static func curveCharts(_ report: StudyReport) -> [(file: String, chart: StudyChart)] {
        let curves = report.curves.filter { !$0.points.isEmpty }
        guard !curves.isEmpty else { return [] }
        let chunks = stride(from: 0, to: curves.count, by: groupsPerCurvePlot).map {
            Array(curves[$0..<min(curves.count, $0 + groupsPerCurvePlot)])
        }
        return chunks.enumerated().map { i, chunk in
            let series = chunk.map { c in
                StudyChart.Series(name: c.group, points: c.points.map {
                    StudyChart.Point(x: Double($0.epoch), y: $0.statistic.mean * 100, sd: $0.statistic.sd.map { $0 * 100 })
                })
            }
            let part = chunks.count > 1 ? " (\(i + 1) of \(chunks.count))" : ""
            return ("val-robust-\(i + 1).svg",
                    StudyChart(title: "Validation robust accuracy per epoch\(part)", xLabel: "epoch",
                               yLabel: "val robust accuracy (%), mean ± sd", series: series, integerX: true))
        }
    }

    /// (c) Time to robustness: validation robust accuracy (%) against training seconds (Σ epoch_seconds
    /// to that epoch, mean over seeds; ±1 sd of the accuracy), one line per group; only the curve
    /// points whose cells all have training seconds (docs/warm-start.md).
    static func timeCurveCharts(_ report: StudyReport) -> [(file: String, chart: StudyChart)] {
        let curves = report.curves.compactMap { c -> StudyCurve? in
            let points = c.points.filter { $0.trainingSeconds != nil }
            return points.isEmpty ? nil : StudyCurve(group: c.group, points: points)
        }
        guard !curves.isEmpty else { return [] }
        let chunks = stride(from: 0, to: curves.count, by: groupsPerCurvePlot).map {
            Array(curves[$0..<min(curves.count, $0 + groupsPerCurvePlot)])
        }
        return chunks.enumerated().map { i, chunk in
            let series = chunk.map { c in
                StudyChart.Series(name: c.group, points: c.points.compactMap { p in
                    p.trainingSeconds.map { StudyChart.Point(x: $0.mean, y: p.statistic.mean * 100, sd: p.statistic.sd.map { $0 * 100 }) }
                })
            }
            let part = chunks.count > 1 ? " (\(i + 1) of \(chunks.count))" : ""
            return ("val-robust-time-\(i + 1).svg",
                    StudyChart(title: "Validation robust accuracy vs training time\(part)",
                               xLabel: "training seconds (Σ epoch_seconds, mean over seeds)",
                               yLabel: "val robust accuracy (%), mean ± sd", series: series))
        }
    }

    /// Whether `name` is a file name `charts(for:)` produces (`k-….svg`, `val-robust-N.svg`,
    /// `val-robust-time-N.svg`).
    static func isPlotFileName(_ name: String) -> Bool {
        name.hasSuffix(".svg") && (name.hasPrefix("k-") || name.hasPrefix("val-robust-"))
    }

    static func safe(_ s: String) -> String {
        String(s.map { $0.isASCII && ($0.isLetter || $0.isNumber || "+-._=".contains($0)) ? $0 : "-" })
    }
}
