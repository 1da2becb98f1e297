// DriftPlot.swift: the SVG of `membank diff --svg`: two stacked panels over the generation axis,
// cosine similarity of δ (to the reference and to the previous generation) on [−1, 1], and the L2
// distance to the reference. Plain SVG 1.1 in the house style of Training/Report.swift.

import Foundation

/// A two-panel line plot: cosine (fixed range [−1, 1]) above, L2 distance below.
public struct DriftPlot {
    public struct Series {
        public var name: String
        public var points: [(x: Double, y: Double)]
        public var color: String
    }

    public var title: String
    public var cosine: [Series]
    public var distance: [Series]

    static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e"]

    /// The plot of one sample's drift.
    public init(sample d: SampleDrift) {
        title = "Sample \(d.id): δ across generations (reference \(d.referenceGeneration))"
        cosine = [
            Series(name: "cos to ref", points: d.rows.compactMap { r in r.cosineToReference.map { (Double(r.generation), $0) } },
                   color: Self.palette[0]),
            Series(name: "cos to prev", points: d.rows.compactMap { r in r.cosineToPrevious.map { (Double(r.generation), $0) } },
                   color: Self.palette[1]),
        ]
        distance = [
            Series(name: "L2 to ref", points: d.rows.compactMap { r in r.distanceToReference.map { (Double(r.generation), $0) } },
                   color: Self.palette[0]),
            Series(name: "L2 to prev", points: d.rows.compactMap { r in r.distanceToPrevious.map { (Double(r.generation), $0) } },
                   color: Self.palette[1]),
        ]
    }

    /// The plot of the population drift series (means and medians over samples).
    public init(population p: PopulationDrift) {
        title = "All samples: δ across generations (reference \(p.from))"
        func points(_ f: (PopulationDriftPoint) -> Double?) -> [(x: Double, y: Double)] {
            p.series.compactMap { s in f(s).map { (Double(s.generation), $0) } }
        }
        cosine = [
            Series(name: "mean cos ref", points: points { $0.cosineToReference.mean }, color: Self.palette[0]),
            Series(name: "median cos ref", points: points { $0.cosineToReference.median }, color: Self.palette[2]),
            Series(name: "mean cos prev", points: points { $0.cosineToPrevious?.mean }, color: Self.palette[1]),
        ]
        distance = [
            Series(name: "mean L2 ref", points: points { $0.distanceToReference.mean }, color: Self.palette[0]),
            Series(name: "p90 L2 ref", points: points { $0.distanceToReference.p90 }, color: Self.palette[3]),
        ]
    }

    /// The SVG document (640×560).
    public func render() -> String {
        let w = 640.0, h = 560.0
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(h))\" "
            + "viewBox=\"0 0 \(Int(w)) \(Int(h))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        s += "<text x=\"60\" y=\"22\" font-size=\"15\" font-weight=\"bold\">\(escape(title))</text>\n"
        let xs = (cosine + distance).flatMap { $0.points.map(\.x) }
        let x0 = xs.min() ?? 0, x1 = max(xs.max() ?? 1, x0 + 1)
        let ds = distance.flatMap { $0.points.map(\.y) }
        let d1 = max(ds.max() ?? 1, 1e-9)
        s += panel(series: cosine, top: 40, height: 220, x: x0...x1, y: -1...1, yLabel: "cosine similarity", xLabel: nil)
        s += panel(series: distance, top: 310, height: 200, x: x0...x1, y: 0...(d1 * 1.05), yLabel: "L2 distance", xLabel: "generation")
        return s + "</svg>\n"
    }

    private func panel(series: [Series], top: Double, height ph: Double, x: ClosedRange<Double>, y: ClosedRange<Double>,
                       yLabel: String, xLabel: String?) -> String {
        let left = 60.0, pw = 640.0 - left - 150
        func px(_ v: Double) -> Double { left + (v - x.lowerBound) / (x.upperBound - x.lowerBound) * pw }
        func py(_ v: Double) -> Double { top + (1 - (v - y.lowerBound) / (y.upperBound - y.lowerBound)) * ph }
        func f(_ v: Double) -> String { String(format: "%.1f", v) }
        func label(_ v: Double) -> String { abs(v) >= 100 ? String(format: "%.0f", v) : String(format: "%.3g", v) }
        var s = ""
        for i in 0...4 {
            let yv = y.lowerBound + (y.upperBound - y.lowerBound) * Double(i) / 4, yy = py(yv)
            s += "<line x1=\"\(f(left))\" y1=\"\(f(yy))\" x2=\"\(f(left + pw))\" y2=\"\(f(yy))\" stroke=\"#ddd\"/>\n"
            s += "<text x=\"\(f(left - 6))\" y=\"\(f(yy + 4))\" text-anchor=\"end\">\(label(yv))</text>\n"
        }
        // Generation ticks: every integer generation when there are few, else 5 evenly spaced.
        let span = x.upperBound - x.lowerBound
        let ticks: [Double] = span <= 12 ? stride(from: x.lowerBound, through: x.upperBound, by: 1).map { $0 }
                                         : (0...4).map { x.lowerBound + span * Double($0) / 4 }
        for t in ticks {
            s += "<text x=\"\(f(px(t)))\" y=\"\(f(top + ph + 16))\" text-anchor=\"middle\">\(label(t))</text>\n"
        }
        s += "<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(pw))\" height=\"\(f(ph))\" fill=\"none\" stroke=\"#444\"/>\n"
        if let xLabel {
            s += "<text x=\"\(f(left + pw / 2))\" y=\"\(f(top + ph + 36))\" text-anchor=\"middle\">\(escape(xLabel))</text>\n"
        }
        s += "<text transform=\"translate(14 \(f(top + ph / 2))) rotate(-90)\" text-anchor=\"middle\">\(escape(yLabel))</text>\n"
        for (k, ser) in series.enumerated() where !ser.points.isEmpty {
            let pts = ser.points.map { "\(f(px($0.x))),\(f(py($0.y)))" }.joined(separator: " ")
            s += "<polyline fill=\"none\" stroke=\"\(ser.color)\" stroke-width=\"2\" points=\"\(pts)\"/>\n"
            if ser.points.count <= 40 {
                for p in ser.points { s += "<circle cx=\"\(f(px(p.x)))\" cy=\"\(f(py(p.y)))\" r=\"3\" fill=\"\(ser.color)\"/>\n" }
            }
            let ly = top + 14 + Double(k) * 18
            s += "<line x1=\"\(f(left + pw + 12))\" y1=\"\(f(ly - 4))\" x2=\"\(f(left + pw + 32))\" y2=\"\(f(ly - 4))\" stroke=\"\(ser.color)\" stroke-width=\"3\"/>\n"
            s += "<text x=\"\(f(left + pw + 38))\" y=\"\(f(ly))\">\(escape(ser.name))</text>\n"
        }
        return s
    }

    private func escape(_ t: String) -> String {
        t.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;")
    }
}
