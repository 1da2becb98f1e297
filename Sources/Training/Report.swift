// Report.swift: report.md of a run, with SVG line plots of the training loss and the validation
// accuracies drawn from metrics.jsonl (plain SVG 1.1 that any browser shows; no dependencies).

import Datasets
import Foundation
import SystemIO
import Tensors

/// A minimal SVG line chart: several named series over a shared x axis.
public struct SVGLineChart {
    public struct Series {
        public var name: String
        public var points: [(x: Double, y: Double)]
        public var color: String
        public init(name: String, points: [(x: Double, y: Double)], color: String) {
            self.name = name; self.points = points; self.color = color
        }
    }
    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var series: [Series]
    public var yRange: ClosedRange<Double>?

    public init(title: String, xLabel: String, yLabel: String, series: [Series], yRange: ClosedRange<Double>? = nil) {
        self.title = title; self.xLabel = xLabel; self.yLabel = yLabel; self.series = series; self.yRange = yRange
    }

    /// The chart as an SVG document (640×360).
    public func render() -> String {
        let w = 640.0, h = 360.0, left = 60.0, right = 150.0, top = 36.0, bottom = 44.0
        let all = series.flatMap(\.points)
        let xs = all.map(\.x), ys = all.map(\.y)
        let x0 = xs.min() ?? 0, x1 = max(xs.max() ?? 1, x0 + 1e-9)
        var y0 = yRange?.lowerBound ?? (ys.min() ?? 0), y1 = yRange?.upperBound ?? (ys.max() ?? 1)
        if y1 - y0 < 1e-9 { y0 -= 0.5; y1 += 0.5 }
        let pw = w - left - right, ph = h - top - bottom
        func px(_ x: Double) -> Double { left + (x - x0) / (x1 - x0) * pw }
        func py(_ y: Double) -> Double { top + (1 - (y - y0) / (y1 - y0)) * ph }
        func f(_ v: Double) -> String { String(format: "%.1f", v) }
        func label(_ v: Double) -> String { abs(v) >= 100 ? String(format: "%.0f", v) : String(format: "%.3g", v) }
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(h))\" "
            + "viewBox=\"0 0 \(Int(w)) \(Int(h))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        s += "<text x=\"\(f(left))\" y=\"22\" font-size=\"15\" font-weight=\"bold\">\(escape(title))</text>\n"
        for i in 0...4 {
            let yv = y0 + (y1 - y0) * Double(i) / 4, yy = py(yv)
            s += "<line x1=\"\(f(left))\" y1=\"\(f(yy))\" x2=\"\(f(left + pw))\" y2=\"\(f(yy))\" stroke=\"#ddd\"/>\n"
            s += "<text x=\"\(f(left - 6))\" y=\"\(f(yy + 4))\" text-anchor=\"end\">\(label(yv))</text>\n"
            let xv = x0 + (x1 - x0) * Double(i) / 4, xx = px(xv)
            s += "<text x=\"\(f(xx))\" y=\"\(f(top + ph + 16))\" text-anchor=\"middle\">\(label(xv))</text>\n"
        }
        s += "<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(pw))\" height=\"\(f(ph))\" fill=\"none\" stroke=\"#444\"/>\n"
        s += "<text x=\"\(f(left + pw / 2))\" y=\"\(f(h - 8))\" text-anchor=\"middle\">\(escape(xLabel))</text>\n"
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
        return s + "</svg>\n"
    }

    private func escape(_ t: String) -> String {
        t.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;")
    }
}

public enum Report {
    static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]

    /// Writes report.md, loss.svg and accuracy.svg into the run directory.
    public static func write(run: RunDirectory, config: TrainConfig, summary: TrainingSummary) throws {
        let lines = try MetricsLog.read(run.metrics)
        let steps = lines.compactMap { if case .step(let r) = $0 { return r } else { return nil } }
        let epochs = lines.compactMap { if case .epoch(let r) = $0 { return r } else { return nil } }
        func points<R>(_ rs: [R], x: (R) -> Int, y: (R) -> Double?) -> [(x: Double, y: Double)] {
            rs.compactMap { r in y(r).map { (Double(x(r)), $0) } }
        }
        let termKeys = Set(steps.flatMap(\.terms.keys)).sorted()
        var lossSeries = [SVGLineChart.Series(name: "total", points: points(steps, x: \.step, y: \.loss), color: palette[0])]
        for (i, k) in termKeys.enumerated() {
            lossSeries.append(.init(name: k, points: points(steps, x: \.step, y: { $0.terms[k] }),
                                    color: palette[(i + 1) % palette.count]))
        }
        let loss = SVGLineChart(title: "Training loss", xLabel: "step", yLabel: "loss", series: lossSeries)
        let acc = SVGLineChart(title: "Accuracy", xLabel: "epoch", yLabel: "accuracy", series: [
            .init(name: "train clean", points: points(epochs, x: \.epoch, y: \.trainCleanAccuracy), color: palette[0]),
            .init(name: "train adv", points: points(epochs, x: \.epoch, y: \.trainAdversarialAccuracy), color: palette[3]),
            .init(name: "val clean", points: points(epochs, x: \.epoch, y: \.valCleanAccuracy), color: palette[2]),
            .init(name: "val robust", points: points(epochs, x: \.epoch, y: \.valRobustAccuracy), color: palette[1]),
        ], yRange: 0...1)
        try AtomicFile.replace(Array(loss.render().utf8), at: run.url.appendingPathComponent("loss.svg"))
        try AtomicFile.replace(Array(acc.render().utf8), at: run.url.appendingPathComponent("accuracy.svg"))

        func pct(_ v: Double) -> String { String(format: "%.2f%%", v * 100) }
        var md = "# memloss run report\n\n"
        md += "| setting | value |\n|---|---|\n"
        md += "| data | `\(config.data)` |\n| model | \(config.model) (width \(config.width)) |\n"
        md += "| method | \(config.method.name) |\n| ε | \(config.epsilonText) |\n"
        if config.attackInit == .memory { md += "| attack init | memory |\n" }
        md += "| epochs × batch | \(config.epochs) × \(config.batchSize) |\n| seed | \(config.seed) |\n"
        md += "| wall time | \(String(format: "%.1f", summary.wallSeconds)) s |\n"
        md += "| peak RSS | \(String(format: "%.1f", Double(summary.peakRSSBytes) / 1_048_576)) MiB |\n\n"
        md += "## Results\n\n"
        md += "Best validation robust accuracy: \(pct(max(summary.bestValidationRobust, 0))) at epoch \(summary.bestEpoch) "
            + "(the `best` checkpoint; chosen on the held-out validation split, never on test).\n\n"
        if let t = summary.test {
            md += "Test set (n = \(t.n), ε = \(t.epsilonText) = \(t.epsilon), BN mode \(t.bnMode), seed \(t.seed), best checkpoint):\n\n"
            md += "| attack | accuracy |\n|---|---|\n| natural | \(pct(t.cleanAccuracy)) |\n"
            for a in t.attacks { md += "| \(a.attack) | \(pct(a.accuracy)) |\n" }
            md += "| worst case | \(pct(t.worstCaseAccuracy)) |\n\n"
        }
        md += "## Curves\n\n![training loss](loss.svg)\n\n![accuracy](accuracy.svg)\n\n"
        md += "## Per epoch\n\n| epoch | train loss | train clean | train adv | val clean | val robust | img/s | data wait (s) |\n"
        md += "|---|---|---|---|---|---|---|---|\n"
        for r in epochs {
            func v(_ x: Double?, _ p: Bool = true) -> String {
                guard let x else { return "–" }
                return p ? pct(x) : String(format: "%.3f", x)
            }
            md += "| \(r.epoch) | \(v(r.trainLoss, false)) | \(v(r.trainCleanAccuracy)) | \(v(r.trainAdversarialAccuracy)) "
                + "| \(v(r.valCleanAccuracy)) | \(v(r.valRobustAccuracy)) | \(String(format: "%.0f", r.imagesPerSecond)) "
                + "| \(String(format: "%.2f", r.dataWaitSeconds)) |\n"
        }
        if let m = config.memLoss { md += memorySection(m, epochs: epochs, imageBytes: imageBytes(config)) }
        if config.attackInit == .memory {
            md += "\n## Warm start\n\nSamples whose training attack started from their memory entry "
                + "(`--attack-init memory`, docs/warm-start.md):\n\n| epoch | warm starts |\n|---|---|\n"
            for r in epochs { md += "| \(r.epoch) | \(r.warmStarts.map(String.init) ?? "–") |\n" }
        }
        md += "\nFiles: `config.json` (resolved configuration), `metrics.jsonl`, `checkpoints/`, `eval/`"
            + (config.memLoss?.store.kind == .disk || WarmStart.bankConfig(config) != nil ? ", `bank/` (inspect with `membank`)" : "") + ".\n"
        try AtomicFile.replace(Array(md.utf8), at: run.report)
    }
}

extension Report {
    /// float32 bytes of one training image (the size an in-RAM memory entry takes), or nil.
    static func imageBytes(_ config: TrainConfig) -> Int? {
        guard let source = try? DataSource(parsing: config.data), let d = try? source.open(.train) else { return nil }
        return d.shape.pixelCount * 4
    }

    /// The MemLoss section: the term's settings, and per epoch the term's value, the entries used,
    /// damaged entries, the bank's size on disk and bytes per entry.
    static func memorySection(_ m: MemLossConfig, epochs: [EpochRecord], imageBytes: Int?) -> String {
        let t = m.term, st = m.store
        var md = "\n## Memory (MemLoss)\n\n"
        md += "L = L_base + β′·(1/B) Σ_i c_i Σ_{k∈S_i} w_ik·KL(p(x_i) ‖ p(x′_ik)) with β′ = \(t.beta), "
            + "weighting \(t.weighting.rawValue), K = \(st.window), stride \(st.stride), reduction \(t.reduce.rawValue) "
            + "(c_i = \(t.reduce == .mean ? "1/|S_i|" : "1")), selection \(t.select); memory in "
            + (st.kind == .disk ? "the on-disk bank (codec \(st.codec.rawValue))" : "RAM (float32 reference)") + ".\n\n"
        if let last = epochs.last?.memory, last.bytesPerEntry > 0 {
            md += String(format: "Bank at the end: %.2f MiB on disk, generations %@; last generation %.0f bytes per entry",
                         Double(last.totalBytes) / 1_048_576, "\(last.generations)", last.bytesPerEntry)
            if let imageBytes, st.kind == .disk {
                md += String(format: " (a float32 image is %d bytes: %.1f× smaller)", imageBytes, Double(imageBytes) / last.bytesPerEntry)
            }
            md += ".\n\n"
        }
        md += "| epoch | mem term | entries used | samples with memory | damaged (skipped) | written | generation bytes | bytes/entry | bank wait (s) |\n"
        md += "|---|---|---|---|---|---|---|---|---|\n"
        for r in epochs {
            func i(_ v: Int?) -> String { v.map { "\($0)" } ?? "–" }
            let mem = r.memory
            md += "| \(r.epoch) | \(r.trainTerms["mem"].map { String(format: "%.4f", $0) } ?? "0") | \(i(r.memEntriesUsed)) "
                + "| \(i(r.memSamplesWithMemory)) | \(i(mem?.entriesCorrupt)) | \(i(mem?.entriesWritten)) "
                + "| \(i(mem?.generationBytes)) | \(mem.map { String(format: "%.1f", $0.bytesPerEntry) } ?? "–") "
                + "| \(mem.map { String(format: "%.2f", $0.bankWaitSeconds) } ?? "–") |\n"
        }
        md += "\nThe mem term is the batch-size-weighted mean over the epoch's steps (0 in epoch 1: no memory yet, "
            + "the step is the base method).\n"
        return md
    }
}
