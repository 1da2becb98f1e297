// BankDrift.swift: `membank diff`: how stable a sample's adversarial direction is across generations
// (the mechanism MemLoss relies on): cosine similarity and L2 distance of δ between generations, for
// one sample over every generation, or for every sample between two generations. δ is compared in the
// original image frame (each δ's recorded view undone), over the pixels both views cover.

import MemoryBank
import Tensors

/// δ of one entry moved from its augmented view back to the unaugmented image frame.
public struct FramedDelta {
    /// `[C, H, W]` values in the original frame (0 where the view did not cover the pixel).
    public var values: [Float]
    /// True where the view covered the pixel.
    public var covered: [Bool]

    /// Undoes the view (Datasets' `renderView`: view pixel (y, x) shows source pixel
    /// `sy = y + dy`, `sx = flip ? W − 1 − x + dx : x + dx`; pixels outside the source are padding).
    /// The identity view returns `delta` unchanged with every pixel covered.
    public init(delta: [Float], view: ViewParameters, shape: [Int]) {
        let c = shape[0], h = shape[1], w = shape[2]
        let dx = Int(view.dx), dy = Int(view.dy)
        if dx == 0 && dy == 0 && !view.flip {
            values = delta
            covered = [Bool](repeating: true, count: delta.count)
            return
        }
        values = [Float](repeating: 0, count: delta.count)
        covered = [Bool](repeating: false, count: delta.count)
        for ch in 0..<c {
            for y in 0..<h {
                let sy = y + dy
                guard sy >= 0 && sy < h else { continue }
                for x in 0..<w {
                    let sx = view.flip ? w - 1 - x + dx : x + dx
                    guard sx >= 0 && sx < w else { continue }
                    values[(ch * h + sy) * w + sx] = delta[(ch * h + y) * w + x]
                    covered[(ch * h + sy) * w + sx] = true
                }
            }
        }
    }

    /// cos and L2 distance to `other` over the pixels both cover, and that share of the image.
    public func compare(to other: FramedDelta) -> (cosine: Double?, distance: Double, overlap: Double) {
        let mask = zip(covered, other.covered).map { $0 && $1 }
        let overlap = Double(mask.filter { $0 }.count) / Double(max(1, mask.count))
        return (DeltaMath.cosine(values, other.values, mask: mask), DeltaMath.distance(values, other.values, mask: mask), overlap)
    }
}

/// One generation of one sample's drift table.
public struct DriftRow: Codable, Equatable, Sendable {
    public var generation: Int
    public var linf: Double
    public var l2: Double
    /// Against the previous generation holding the sample (nil on the first row).
    public var previousGeneration: Int?
    public var cosineToPrevious: Double?
    public var distanceToPrevious: Double?
    /// Against the reference generation (`--from`, default the first holding the sample).
    public var cosineToReference: Double?
    public var distanceToReference: Double?
    /// Share of pixels both views cover (1 without crop augmentation), against the reference.
    public var overlapWithReference: Double
}

/// `membank diff BANK ID`.
public struct SampleDrift: Codable, Equatable, Sendable {
    public var id: Int
    public var referenceGeneration: Int
    public var rows: [DriftRow]
}

/// One generation of the population drift series: every sample present in both it and the reference.
public struct PopulationDriftPoint: Codable, Equatable, Sendable {
    public var generation: Int
    public var samples: Int
    /// Cosine to the reference generation (nil cosines, from zero δ, are left out).
    public var cosineToReference: Summary
    public var distanceToReference: Summary
    /// Cosine to the previous live generation in the range (nil for the reference itself).
    public var cosineToPrevious: Summary?
}

/// `membank diff BANK --all --from G1 --to G2`.
public struct PopulationDrift: Codable, Equatable, Sendable {
    public var from: Int
    public var to: Int
    /// Samples present in both `from` and `to`, and their cosine / distance distribution.
    public var samples: Int
    public var cosine: Summary
    public var distance: Summary
    /// Share of those samples with cosine < 0 (the direction flipped).
    public var negativeCosineShare: Double
    /// The series over every live generation in [from, to].
    public var series: [PopulationDriftPoint]
    /// Damaged records skipped over all generations read (`membank verify` names them).
    public var damagedEntries: Int
}

public enum BankDrift {
    /// The live generations in `[from ?? first, to ?? last]`.
    /// - Throws: `generationMissing` when `from`/`to` are not live, `invalidArgument` when from > to.
    static func range(_ bank: InspectedBank, from: Int?, to: Int?) throws(MembankError) -> [Int] {
        let lo = try bank.resolveGeneration(from ?? bank.generations.first)
        let hi = try bank.resolveGeneration(to ?? bank.generations.last)
        guard lo <= hi else { throw .invalidArgument(name: "--from/--to", value: "\(lo)/\(hi)", expected: "--from ≤ --to") }
        return bank.generations.filter { $0 >= lo && $0 <= hi }
    }

    static func framed(_ bank: InspectedBank, id: Int, generation: Int) throws(MembankError) -> FramedDelta {
        let e = try bank.entry(id: id, generation: generation)
        return FramedDelta(delta: e.delta, view: e.info.view, shape: bank.config.shape)
    }

    /// The drift of sample `id` over the live generations in `[from, to]` that hold it.
    /// - Throws: `idOutOfRange`, `generationMissing`, `entryAbsent` (no generation in range holds it).
    public static func sample(_ bank: InspectedBank, id: Int, from: Int? = nil, to: Int? = nil) throws(MembankError) -> SampleDrift {
        try bank.checkID(id)
        let generations = try range(bank, from: from, to: to).filter { bank.reader.contains(id: id, generation: $0) }
        guard let first = generations.first else {
            throw .entryAbsent(id: id, generation: from ?? bank.generations.first ?? 0,
                               presentIn: bank.generations.filter { bank.reader.contains(id: id, generation: $0) })
        }
        let reference = try framed(bank, id: id, generation: first)
        var rows: [DriftRow] = []
        var previous: (Int, FramedDelta)?
        for g in generations {
            let e = try bank.entry(id: id, generation: g)
            let current = FramedDelta(delta: e.delta, view: e.info.view, shape: bank.config.shape)
            let toReference = current.compare(to: reference)
            let toPrevious = previous.map { current.compare(to: $0.1) }
            rows.append(DriftRow(generation: g, linf: DeltaMath.linf(e.delta), l2: DeltaMath.l2(e.delta),
                                 previousGeneration: previous?.0, cosineToPrevious: toPrevious?.cosine,
                                 distanceToPrevious: toPrevious?.distance, cosineToReference: toReference.cosine,
                                 distanceToReference: toReference.distance, overlapWithReference: toReference.overlap))
            previous = (g, current)
        }
        return SampleDrift(id: id, referenceGeneration: first, rows: rows)
    }

    /// The drift of every sample between `from` and `to`, and the series over the generations between.
    public static func population(_ bank: InspectedBank, from: Int? = nil, to: Int? = nil) throws(MembankError) -> PopulationDrift {
        try population([bank], from: from, to: to)
    }

    /// The population drift over the union of `banks` (a sharded bank's shards: disjoint sample
    /// sets with the same settings), over the generations in `[from, to]` live in every shard.
    public static func population(_ banks: [InspectedBank], from: Int? = nil, to: Int? = nil) throws(MembankError) -> PopulationDrift {
        var generations = try range(banks[0], from: from, to: to)
        for b in banks.dropFirst() {
            let live = Set(try range(b, from: generations.first, to: generations.last))
            generations = generations.filter { live.contains($0) }
        }
        let lo = generations.first!, hi = generations.last!
        var reference: [Int: FramedDelta] = [:]
        var damaged: [MemoryBankError] = []
        for bank in banks {
            damaged += try bank.forEachEntry(in: lo) { (id: Int, delta: [Float], info: EntryInfo) throws(MembankError) in
                reference[id] = FramedDelta(delta: delta, view: info.view, shape: bank.config.shape)
            }
        }
        var series: [PopulationDriftPoint] = []
        var previous = reference
        var last: (cosines: [Double], distances: [Double]) = ([], [])
        for g in generations {
            var current: [Int: FramedDelta] = [:]
            var cosines: [Double] = [], distances: [Double] = [], previousCosines: [Double] = []
            var samples = 0
            for bank in banks {
                damaged += try bank.forEachEntry(in: g) { (id: Int, delta: [Float], info: EntryInfo) throws(MembankError) in
                    let d = FramedDelta(delta: delta, view: info.view, shape: bank.config.shape)
                    current[id] = d
                    if let r = reference[id] {
                        samples += 1
                        let c = d.compare(to: r)
                        if let cos = c.cosine { cosines.append(cos) }
                        distances.append(c.distance)
                    }
                    if g != lo, let p = previous[id], let cos = d.compare(to: p).cosine { previousCosines.append(cos) }
                }
            }
            series.append(PopulationDriftPoint(generation: g, samples: samples, cosineToReference: Summary(cosines),
                                               distanceToReference: Summary(distances),
                                               cosineToPrevious: g == lo ? nil : Summary(previousCosines)))
            previous = current
            last = (cosines, distances)
        }
        let samples = series.last?.samples ?? 0
        return PopulationDrift(from: lo, to: hi, samples: samples, cosine: Summary(last.cosines), distance: Summary(last.distances),
                               negativeCosineShare: last.cosines.isEmpty ? 0 : Double(last.cosines.filter { $0 < 0 }.count) / Double(last.cosines.count),
                               series: series, damagedEntries: Set(damaged.map { "\($0)" }).count)
    }

    // MARK: - Text

    static func opt(_ v: Double?) -> String { v.map(fmt) ?? "–" }

    public static func text(_ d: SampleDrift) -> String {
        var out = "sample \(d.id): δ across generations (reference generation \(d.referenceGeneration); original image frame)\n"
        out += Table(header: ["generation", "‖δ‖∞", "‖δ‖₂", "cos prev", "L2 prev", "cos ref", "L2 ref", "overlap"],
                     rows: d.rows.map {
                         [String($0.generation), fmt($0.linf), fmt($0.l2), opt($0.cosineToPrevious), opt($0.distanceToPrevious),
                          opt($0.cosineToReference), opt($0.distanceToReference), percent($0.overlapWithReference)]
                     }).render()
        return out
    }

    public static func text(_ p: PopulationDrift) -> String {
        var out = "all samples: generation \(p.from) → \(p.to), \(group(p.samples)) samples in both (original image frame)\n"
        out += "  cosine   mean \(opt(p.cosine.mean)), median \(opt(p.cosine.median)), p10 \(opt(p.cosine.p10)), "
            + "p90 \(opt(p.cosine.p90)); cos < 0: \(percent(p.negativeCosineShare))\n"
        out += "  L2 dist  mean \(opt(p.distance.mean)), median \(opt(p.distance.median)), max \(opt(p.distance.max))\n"
        if p.damagedEntries > 0 {
            out += "  skipped \(p.damagedEntries) damaged record\(p.damagedEntries == 1 ? "" : "s") "
                + "(left out of every figure; `membank verify` lists them)\n"
        }
        out += Table(header: ["generation", "samples", "mean cos ref", "median cos ref", "mean L2 ref", "mean cos prev"],
                     rows: p.series.map {
                         [String($0.generation), group($0.samples), opt($0.cosineToReference.mean), opt($0.cosineToReference.median),
                          opt($0.distanceToReference.mean), opt($0.cosineToPrevious?.mean)]
                     }).render()
        return out
    }
}
