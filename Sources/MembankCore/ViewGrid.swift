// ViewGrid.swift: the pictures of `membank show` and `membank render`: for each sample, three panels
// side by side: the clean view x (the augmented view δ was made on, rebuilt from the data set), δ
// amplified to be visible, and x' = clip(x + δ, 0, 1); one row per sample, upscaled by nearest
// neighbour, written as PNG (PNGImage.swift). Layout and mapping: docs/membank.md §show.

import Datasets
import Foundation
import MemoryBank
import Tensors

/// The three panels of one sample, each `[C, H, W]` in [0, 1].
public struct SampleTriptych: Sendable {
    public var id: Int
    public var generation: Int
    public var label: Int
    public var pY: Float
    public var margin: Float
    public var view: ViewParameters
    public var clean: [Float]
    public var amplified: [Float]
    public var adversarial: [Float]

    /// δ amplification to [0, 1]:
    /// ```
    /// L∞: a = 0.5 + δ / (2ε)          (−ε → 0 black, 0 → mid grey, +ε → 1 white)
    /// L2: a = 0.5 + δ / (2·max|δ|)    (per entry; all 0.5 when δ = 0)
    /// ```
    /// clamped to [0, 1].
    public static func amplify(_ delta: [Float], epsilon: Float, norm: PerturbationNorm) -> [Float] {
        let range = norm == .linf ? epsilon : Float(DeltaMath.linf(delta))
        guard range > 0 else { return [Float](repeating: 0.5, count: delta.count) }
        return delta.map { min(1, max(0, 0.5 + $0 / (2 * range))) }
    }
}

/// Opening the data set the bank was written from, and building the panels.
public struct ViewSource {
    public let bank: InspectedBank
    public let dataset: Dataset
    public let spec: String

    /// Opens the training split of `dataSpec`, or of the spec recorded in the bank's `createdBy`.
    /// - Throws: `noDatasetRecorded`, `datasetUnavailable`, `datasetMismatch` (shape differs).
    public init(bank: InspectedBank, dataSpec: String?) throws(MembankError) {
        guard let spec = dataSpec ?? bank.recordedDataSpec else { throw .noDatasetRecorded(key: InspectedBank.dataKey) }
        let dataset: Dataset
        do {
            dataset = try DataSource(parsing: spec).open(.train)
        } catch {
            throw .datasetUnavailable(spec: spec, reason: "\(error)")
        }
        if dataset.shape.dimensions != bank.config.shape {
            throw .datasetMismatch(spec: spec, field: "shape [C, H, W]", dataset: "\(dataset.shape.dimensions)", bank: "\(bank.config.shape)")
        }
        self.bank = bank
        self.dataset = dataset
        self.spec = spec
    }

    /// The panels of sample `id` in `generation`.
    /// - Throws: `idOutOfRange`, `generationMissing`, `entryAbsent`, `datasetMismatch` (ID beyond the data set).
    public func triptych(id: Int, generation: Int) throws(MembankError) -> SampleTriptych {
        let e = try bank.entry(id: id, generation: generation)
        guard id < dataset.count else {
            throw .datasetMismatch(spec: spec, field: "sample count", dataset: "\(dataset.count) (no sample \(id))",
                                   bank: "\(bank.config.sampleCount)")
        }
        let view = e.info.view
        let clean = dataset.renderView(id: id, view: view).scalars
        let adversarial = zip(clean, e.delta).map { min(1, max(0, $0 + $1)) }
        let c = bank.config
        return SampleTriptych(id: id, generation: generation, label: Int(e.info.metadata.label), pY: e.info.metadata.pY,
                              margin: e.info.metadata.margin, view: e.info.view, clean: clean,
                              amplified: SampleTriptych.amplify(e.delta, epsilon: c.epsilon, norm: c.norm), adversarial: adversarial)
    }
}

/// Lays out triptychs as a PNG grid.
public enum ViewGrid {
    /// Default nearest-neighbour upscaling (28×28 MNIST → 112×112 panels).
    public static let defaultScale = 4
    /// Separator and margin width, in output pixels.
    public static let gap = 4
    /// Separator colour (white, distinct from δ's mid grey).
    public static let background: UInt8 = 255

    /// `[0, 1]` → byte: `round(255·clamp(v, 0, 1))`; NaN → 0 (stated, not left to the operand order of
    /// `max`: the Float → UInt8 conversion must never see a NaN).
    public static func byte(_ v: Float) -> UInt8 { v.isNaN ? 0 : UInt8((min(1, max(0, v)) * 255).rounded()) }

    /// The grid, one row per triptych, columns clean | amplified δ | x':
    /// ```
    /// panel size     P_w = W·scale, P_h = H·scale
    /// image size     width = 3·P_w + 4·gap, height = rows·P_h + (rows + 1)·gap
    /// panel (r, k)   top-left at (gap + k·(P_w + gap), gap + r·(P_h + gap)), k = 0 clean, 1 δ, 2 x'
    /// pixel          output (X, Y) inside a panel shows source pixel (⌊X/scale⌋, ⌊Y/scale⌋)
    /// ```
    /// C = 3 gives RGB, any other C greyscale of channel 0. - Precondition: `rows` non-empty, `scale ≥ 1`.
    public static func image(_ rows: [SampleTriptych], shape: [Int], scale: Int = defaultScale) -> PNGImage {
        precondition(!rows.isEmpty && scale >= 1)
        let c = shape[0], h = shape[1], w = shape[2]
        let channels = c == 3 ? 3 : 1
        let pw = w * scale, ph = h * scale
        let width = 3 * pw + 4 * gap, height = rows.count * ph + (rows.count + 1) * gap
        var image = PNGImage(width: width, height: height, channels: channels, fill: background)
        for (r, t) in rows.enumerated() {
            for (k, panel) in [t.clean, t.amplified, t.adversarial].enumerated() {
                let x0 = gap + k * (pw + gap), y0 = gap + r * (ph + gap)
                for y in 0..<ph {
                    for x in 0..<pw {
                        let src = (y / scale) * w + x / scale
                        let dst = ((y0 + y) * width + (x0 + x)) * channels
                        for ch in 0..<channels { image.pixels[dst + ch] = byte(panel[ch * h * w + src]) }
                    }
                }
            }
        }
        return image
    }

    /// The legend printed next to a written PNG: one line per row.
    public static func legend(_ rows: [SampleTriptych]) -> String {
        var out = "columns: clean view x | δ amplified (0.5 + δ/2ε) | x' = clip(x + δ, 0, 1)\n"
        out += Table(header: ["row", "id", "generation", "label", "p_y", "margin", "view"],
                     rows: rows.enumerated().map { r, t in
                         [String(r), String(t.id), String(t.generation), String(t.label), fmt(Double(t.pY)), fmt(Double(t.margin)),
                          "dx \(t.view.dx), dy \(t.view.dy)\(t.view.flip ? ", flip" : "")"]
                     }).render()
        return out
    }

    /// Parses `--ids 1,2,5-9` into IDs (ranges inclusive).
    public static func parseIDs(_ text: String) throws(MembankError) -> [Int] {
        var ids: [Int] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let p = part.trimmingCharacters(in: .whitespaces)
            let bounds = p.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false).map { Int($0) }
            if bounds.count == 1, let a = bounds[0] {
                ids.append(a)
            } else if bounds.count == 2, let a = bounds[0], let b = bounds[1], a <= b, b - a < 100_000 {
                ids += Array(a...b)
            } else {
                throw .invalidArgument(name: "--ids", value: text, expected: "comma-separated IDs or ranges, e.g. 0,5,10-12")
            }
        }
        return ids
    }

    /// `count` distinct IDs drawn without replacement from `candidates` (a seeded partial
    /// Fisher–Yates shuffle), in ascending order.
    public static func randomIDs(from candidates: [Int], count: Int, seed: UInt64) throws(MembankError) -> [Int] {
        guard count >= 1 else { throw .invalidArgument(name: "--random", value: "\(count)", expected: "≥ 1") }
        var pool = candidates
        var rng = SplitMix64(seed: seed)
        let k = min(count, pool.count)
        for i in 0..<k { pool.swapAt(i, i + rng.nextInt(below: pool.count - i)) }
        return pool.prefix(k).sorted()
    }
}
