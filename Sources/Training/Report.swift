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
        let records = MetricsLog.read(run.metrics)
        let steps = records.filter { $0["type"] as? String == "step" }
        let epochs = records.filter { $0["type"] as? String == "epoch" }
        func series(_ rs: [[String: Any]], x: String, y: String) -> [(x: Double, y: Double)] {
            rs.compactMap { r in
                guard let xv = (r[x] as? NSNumber)?.doubleValue, let yv = (r[y] as? NSNumber)?.doubleValue else { return nil }
                return (xv, yv)
            }
        }
        let termKeys = Set(steps.flatMap { $0.keys.filter { $0.hasPrefix("loss_") } }).sorted()
        var lossSeries = [SVGLineChart.Series(name: "total", points: series(steps, x: "step", y: "loss"), color: palette[0])]
        for (i, k) in termKeys.enumerated() {
            lossSeries.append(.init(name: String(k.dropFirst(5)), points: series(steps, x: "step", y: k),
                                    color: palette[(i + 1) % palette.count]))
        }
        let loss = SVGLineChart(title: "Training loss", xLabel: "step", yLabel: "loss", series: lossSeries)
        let acc = SVGLineChart(title: "Accuracy", xLabel: "epoch", yLabel: "accuracy", series: [
            .init(name: "train clean", points: series(epochs, x: "epoch", y: "train_clean_accuracy"), color: palette[0]),
            .init(name: "train adv", points: series(epochs, x: "epoch", y: "train_adversarial_accuracy"), color: palette[3]),
            .init(name: "val clean", points: series(epochs, x: "epoch", y: "val_clean_accuracy"), color: palette[2]),
            .init(name: "val robust", points: series(epochs, x: "epoch", y: "val_robust_accuracy"), color: palette[1]),
        ], yRange: 0...1)
        try AtomicFile.replace(Array(loss.render().utf8), at: run.url.appendingPathComponent("loss.svg"))
        try AtomicFile.replace(Array(acc.render().utf8), at: run.url.appendingPathComponent("accuracy.svg"))

        func pct(_ v: Double) -> String { String(format: "%.2f%%", v * 100) }
        var md = "# memloss run report\n\n"
        md += "| setting | value |\n|---|---|\n"
        md += "| data | `\(config.data)` |\n| model | \(config.model) (width \(config.width)) |\n"
        md += "| method | \(config.method.name) |\n| ε | \(config.epsilonText) |\n"
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
            func v(_ k: String, _ p: Bool = true) -> String {
                guard let x = (r[k] as? NSNumber)?.doubleValue else { return "–" }
                return p ? pct(x) : String(format: "%.3f", x)
            }
            md += "| \(r["epoch"] ?? "") | \(v("train_loss", false)) | \(v("train_clean_accuracy")) | \(v("train_adversarial_accuracy")) "
                + "| \(v("val_clean_accuracy")) | \(v("val_robust_accuracy")) | \(String(format: "%.0f", (r["images_per_second"] as? NSNumber)?.doubleValue ?? 0)) "
                + "| \(String(format: "%.2f", (r["data_wait_seconds"] as? NSNumber)?.doubleValue ?? 0)) |\n"
        }
        if let m = config.memLoss { md += memorySection(m, epochs: epochs, imageBytes: imageBytes(config)) }
        md += "\nFiles: `config.json` (resolved configuration), `metrics.jsonl`, `checkpoints/`, `eval/`"
            + (config.memLoss?.store == .disk ? ", `bank/` (inspect with `membank`)" : "") + ".\n"
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
    static func memorySection(_ m: MemLossConfig, epochs: [[String: Any]], imageBytes: Int?) -> String {
        func num(_ r: [String: Any], _ k: String) -> Double? { (r[k] as? NSNumber)?.doubleValue }
        var md = "\n## Memory (MemLoss)\n\n"
        md += "L = L_base + β′·(1/B) Σ_i c_i Σ_{k∈S_i} w_ik·KL(p(x_i) ‖ p(x′_ik)) with β′ = \(m.beta), "
            + "weighting \(m.weighting.rawValue), K = \(m.window), stride \(m.stride), reduction \(m.reduce.rawValue) "
            + "(c_i = \(m.reduce == .mean ? "1/|S_i|" : "1")), selection \(m.select); memory in "
            + (m.store == .disk ? "the on-disk bank (codec \(m.codec.rawValue))" : "RAM (float32 reference)") + ".\n\n"
        if let last = epochs.last, let bpe = num(last, "bank_bytes_per_entry"), bpe > 0 {
            let total = num(last, "bank_total_bytes") ?? 0
            md += String(format: "Bank at the end: %.2f MiB on disk, generations %@; last generation %.0f bytes per entry",
                         total / 1_048_576, "\(last["bank_generations"] ?? "[]")", bpe)
            if let imageBytes, m.store == .disk {
                md += String(format: " (a float32 image is %d bytes: %.1f× smaller)", imageBytes, Double(imageBytes) / bpe)
            }
            md += ".\n\n"
        }
        md += "| epoch | mem term | entries used | samples with memory | damaged (skipped) | written | generation bytes | bytes/entry | bank wait (s) |\n"
        md += "|---|---|---|---|---|---|---|---|---|\n"
        for r in epochs {
            func i(_ k: String) -> String { num(r, k).map { String(format: "%.0f", $0) } ?? "–" }
            md += "| \(r["epoch"] ?? "") | \(num(r, "train_loss_mem").map { String(format: "%.4f", $0) } ?? "0") | \(i("mem_entries_used")) "
                + "| \(i("mem_samples_with_memory")) | \(i("mem_entries_corrupt")) | \(i("mem_entries_written")) "
                + "| \(i("bank_generation_bytes")) | \(num(r, "bank_bytes_per_entry").map { String(format: "%.1f", $0) } ?? "–") "
                + "| \(num(r, "bank_wait_seconds").map { String(format: "%.2f", $0) } ?? "–") |\n"
        }
        md += "\nThe mem term is the batch-size-weighted mean over the epoch's steps (0 in epoch 1: no memory yet, "
            + "the step is the base method).\n"
        return md
    }
}
