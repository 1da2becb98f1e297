// BankBench.swift: `memloss bench bank` as a library: bytes per stored perturbation for every codec
// against a float32 image, single-thread encode/decode throughput of the codecs, and the bank's write
// (append → seal) and read (prefetcher) throughput, on attack-shaped δ from SurrogatePGD: 10-step L∞
// sign-PGD with α = ε/4 against a 32-unit scorer over smooth random images, from three starts (zero,
// TRADES' 0.001·N(0,1), uniform in the ε-ball), plus the i.i.d. sign-flip model of systems.md §5.
// Measurement only; the codecs and the bank are MemoryBank's, printing is the executable's.

import Foundation
import MemoryBank
import Tensors
import Training

/// What `BankBench.run` measures. Defaults are the CLI's.
public struct BankBenchConfig: Codable, Sendable {
    /// Perturbations per flavour.
    public var samples = 2048
    /// ε (L∞), in [0, 1] pixel units.
    public var epsilon: Float = 8 / 255
    /// Batch size and window K of the bank read (K generations are written, then read back).
    public var batch = 128
    public var window = 2
    /// Prefetch ring depth of the bank read.
    public var depth = 3
    /// Directory for the temporary bank (deleted after).
    public var scratch = NSTemporaryDirectory()
    /// Seed of images, scorer and starts.
    public var seed: UInt64 = 0
    /// `[C, H, W]` of one δ: CIFAR's.
    public var shape = [3, 32, 32]

    public init() {}
}

/// What `BankBench.run` measured (its JSON is `memloss bench bank --json`).
public struct BankBenchReport: Codable, Sendable {
    public typealias CodecFigures = BankBench.CodecFigures
    public struct FlavourStatistics: Codable, Sendable {
        public var flavour: String
        public var meanDistinctQ8Levels: Double
        public var saturatedFraction: Double
        public var generationSeconds: Double
    }

    public struct BankFigures: Codable, Sendable {
        public var codec: String
        public var flavour: String
        public var generations: Int
        public var entriesPerGeneration: Int
        public var segmentBytes: Int
        public var writeEntriesPerSecond: Double
        public var writeMegabytesPerSecond: Double
        public var appendBlockedSeconds: Double
        public var sealSeconds: Double
        public var readBatches: Int
        public var readEntries: Int
        public var readEntriesPerSecond: Double
        public var readMegabytesPerSecond: Double
        public var consumerWaitSeconds: Double
        public var producerBusySeconds: Double
    }

    public var samples: Int
    public var shape: [Int]
    public var epsilon: Float
    public var float32ImageBytes: Int
    public var targetBytes: Int
    public var lz4Version: String
    public var flavours: [FlavourStatistics]
    /// Every codec on every flavour.
    public var codecs: [CodecFigures]
    /// The bank's write and read for q8, levels and f32 on the `trades` flavour.
    public var bank: [BankFigures]
    /// VmHWM at the end (includes every generated δ).
    public var peakRSSBytes: Int?
}

/// Runs the bank bench (see the file banner).
public enum BankBench {
    public struct CodecFigures: Codable, Sendable {
        public var flavour: String
        public var codec: String
        /// Record (48-byte header + payload + padding) + 8-byte index slot, mean over entries.
        public var bytesPerEntry: Double
        public var payloadBytesPerEntry: Double
        public var fractionOfFloat32Image: Double
        public var meetsTarget: Bool
        public var lz4Fraction: Double
        public var maxAbsError: Float
        public var errorBound: Float
        public var encodeMegabytesPerSecond: Double
        public var decodeMegabytesPerSecond: Double
        /// `levels` only: entries per bit width 0…8, per layout (packed, planes, direct), mean palette size.
        public var bitWidthHistogram: [Int]?
        public var layoutHistogram: [Int]?
        public var meanPaletteSize: Double?
    }

    /// The δ flavours: SurrogatePGD from each start, and the i.i.d. sign-flip model.
    public enum Flavour: String, CaseIterable, Sendable {
        /// Scorer PGD from δ = 0.
        case zero
        /// Scorer PGD from 0.001·N(0, 1) (TRADES' start).
        case trades
        /// Scorer PGD from U(−ε, ε) (PGD-AT's random start).
        case uniform
        /// No scorer: each step's sign flips with p = 0.25 per pixel, i.i.d. (systems.md §5 "pgd10").
        case iid
    }

    /// Sign-PGD steps (α = ε/4), scorer units and images per batch of the generated δ.
    public static let steps = 10
    public static let scorerUnits = 32
    static let chunk = 256
    /// The i.i.d. model's per-step flip probability (systems.md §5).
    public static let flipProbability: Float = 0.25
    /// The size target: a tenth of a float32 image.
    public static func targetBytes(shape: [Int]) -> Int { shape.reduce(1, *) * 4 / 10 }

    public static func run(_ c: BankBenchConfig) throws -> BankBenchReport {
        guard c.samples >= 1, c.batch >= 1, c.window >= 1, c.depth >= 1 else {
            throw BankBenchError.invalid("samples, batch, window and depth must be ≥ 1")
        }
        guard c.epsilon > 0, c.epsilon.isFinite else { throw BankBenchError.invalid("ε must be > 0") }
        var flavourStats: [BankBenchReport.FlavourStatistics] = []
        var deltasByFlavour: [(String, [[Float]])] = []
        for flavour in Flavour.allCases {
            let t0 = SystemStats.now
            let deltas = generate(count: c.samples, flavour: flavour, config: c)
            let seconds = SystemStats.now - t0
            let (levels, saturated) = SurrogatePGD.levelStatistics(deltas, epsilon: c.epsilon)
            flavourStats.append(.init(flavour: flavour.rawValue, meanDistinctQ8Levels: levels, saturatedFraction: saturated,
                                      generationSeconds: seconds))
            deltasByFlavour.append((flavour.rawValue, deltas))
        }
        var codecFigures: [CodecFigures] = []
        for (flavour, deltas) in deltasByFlavour {
            for codec in BankCodec.allCases {
                codecFigures.append(try measureCodec(codec, flavour: flavour, deltas: deltas, shape: c.shape, epsilon: c.epsilon))
            }
        }
        var bankFigures: [BankBenchReport.BankFigures] = []
        let readFlavour = Flavour.trades.rawValue
        let readDeltas = deltasByFlavour.first { $0.0 == readFlavour }!.1
        for codec in [BankCodec.q8, .levels, .f32] {
            bankFigures.append(try measureBank(codec, flavour: readFlavour, deltas: readDeltas, config: c))
        }
        let imageBytes = c.shape.reduce(1, *) * 4
        return BankBenchReport(samples: c.samples, shape: c.shape, epsilon: c.epsilon, float32ImageBytes: imageBytes,
                               targetBytes: targetBytes(shape: c.shape), lz4Version: EntryCodec.lz4Version,
                               flavours: flavourStats, codecs: codecFigures, bank: bankFigures,
                               peakRSSBytes: SystemStats.processStatus()["VmHWM"])
    }

    /// `count` δ of `flavour`, one `[C·H·W]` array each: SurrogatePGD (10 steps of ε/4, 32 units, seeded by
    /// `seed`) over smooth images (stream 100, the same images for every flavour), its thresholds, start
    /// and flips drawn from a per-flavour stream.
    public static func generate(count: Int, flavour: Flavour, config c: BankBenchConfig) -> [[Float]] {
        let direction: SurrogatePGD.Direction = flavour == .iid ? .signFlips(probability: flipProbability) : .scorer
        let attack = SurrogatePGD(shape: c.shape, epsilon: c.epsilon, steps: steps, hidden: scorerUnits, direction: direction,
                                  seed: c.seed)
        let start: SurrogatePGD.Start
        switch flavour {
        case .zero, .iid: start = .zero
        case .trades: start = .gaussian(std: 0.001)
        case .uniform: start = .uniform
        }
        let n = c.shape.reduce(1, *)
        var rng = SplitMix64.derived(seed: c.seed, stream: 2 + UInt64(Flavour.allCases.firstIndex(of: flavour)!))
        var imageRNG = SplitMix64.derived(seed: c.seed, stream: 100)
        var result: [[Float]] = []
        result.reserveCapacity(count)
        for first in stride(from: 0, to: count, by: chunk) {
            let b = min(chunk, count - first)
            let images = SurrogatePGD.smoothImages(count: b, shape: c.shape, rng: &imageRNG)
            let delta = attack.perturb(images, start: start, rng: &rng).scalars
            for i in 0..<b { result.append(Array(delta[(i * n)..<((i + 1) * n)])) }
        }
        return result
    }

    static func measureBank(_ codec: BankCodec, flavour: String, deltas: [[Float]], config c: BankBenchConfig) throws
        -> BankBenchReport.BankFigures {
        let directory = URL(fileURLWithPath: c.scratch).appendingPathComponent("memloss-bench-bank-\(getpid())-\(codec.rawValue)")
        try? FileManager.default.removeItem(at: directory)
        defer { try? FileManager.default.removeItem(at: directory) }
        let config = BankConfig(sampleCount: deltas.count, shape: c.shape, epsilon: c.epsilon, codec: codec,
                                window: c.window, stride: 1, createdBy: "{\"bench\": \"bank\"}")
        let bank = try Bank.create(at: directory, config: config)
        var writeSeconds = 0.0, sealSeconds = 0.0, segmentBytes = 0
        for g in 0..<c.window {
            let t0 = DispatchTime.now().uptimeNanoseconds
            try bank.beginGeneration(g)
            for (id, d) in deltas.enumerated() {
                try bank.append(id: id, delta: d, view: ViewParameters(dx: 1, dy: -1, flip: id % 2 == 0),
                                metadata: EntryMetadata(label: Int32(id % 10), pY: 0.5, margin: 0.1, loss: 1))
            }
            let t1 = DispatchTime.now().uptimeNanoseconds
            let summary = try bank.sealGeneration()
            let t2 = DispatchTime.now().uptimeNanoseconds
            writeSeconds += Double(t2 - t0) * 1e-9
            sealSeconds += Double(t2 - t1) * 1e-9
            segmentBytes = summary.fileBytes
        }
        let blocked = bank.statistics.appendBlockedSeconds
        let reader = try bank.reader()
        bank.close()

        let batches = stride(from: 0, to: deltas.count, by: c.batch).map { Array($0..<min($0 + c.batch, deltas.count)) }
        let t0 = DispatchTime.now().uptimeNanoseconds
        let prefetcher = BankPrefetcher(reader: reader, epoch: c.window, batches: batches, depth: c.depth)
        var entries = 0
        while let b = try prefetcher.next() { entries += b.presentCount }
        let readSeconds = Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
        let stats = prefetcher.statistics
        let written = Double(c.window * deltas.count)
        let floatBytes = Double(c.shape.reduce(1, *) * 4)
        return BankBenchReport.BankFigures(
            codec: codec.rawValue, flavour: flavour, generations: c.window, entriesPerGeneration: deltas.count,
            segmentBytes: segmentBytes, writeEntriesPerSecond: written / writeSeconds,
            writeMegabytesPerSecond: written * floatBytes / writeSeconds / 1e6, appendBlockedSeconds: blocked,
            sealSeconds: sealSeconds, readBatches: batches.count, readEntries: entries,
            readEntriesPerSecond: Double(entries) / readSeconds,
            readMegabytesPerSecond: Double(entries) * floatBytes / readSeconds / 1e6,
            consumerWaitSeconds: stats.consumerWaitSeconds, producerBusySeconds: stats.producerBusySeconds)
    }

    /// Bytes per entry, max error and single-thread encode/decode throughput of `codec` on `deltas`
    /// (each `shape` in [C, H, W] order), against a float32 image of the same shape. Shared by
    /// `bench bank` (synthetic δ) and `bench memory` (δ of a real attack). `q8rcn` regenerates the
    /// start noise `startNoise` of (generation, ids[i]) for δ i (ids nil: 0, 1, …); without
    /// `startNoise` (δ not made from it) it codes under seed 0, σ = 0.001, which predicts nothing.
    public static func measureCodec(_ codec: BankCodec, flavour: String, deltas: [[Float]], shape: [Int],
                                     epsilon: Float, startNoise: BankStartNoise? = nil, generation: Int = 0,
                                     ids: [Int]? = nil) throws -> CodecFigures {
        let n = shape.reduce(1, *), float32ImageBytes = n * 4
        let sampleIDs = ids ?? Array(0..<deltas.count)
        let noise = codec == .q8rcn ? (startNoise ?? BankStartNoise(seed: 0, sigma: 0.001)) : nil
        let config = BankConfig(sampleCount: (sampleIDs.max() ?? 0) + 1, shape: shape, epsilon: epsilon, codec: codec, startNoise: noise)
        let entryCodec = EntryCodec(config: config)
        var records = [[UInt8]](repeating: [], count: deltas.count)
        var recordBytes = 0, payloadBytes = 0, lz4 = 0, paletteTotal = 0
        var widths = [Int](repeating: 0, count: 9)
        var layouts = [Int](repeating: 0, count: 3)
        // Encode: best of 3 passes (the first also collects the statistics).
        var encodeSeconds = Double.infinity
        for pass in 0..<3 {
            let t0 = DispatchTime.now().uptimeNanoseconds
            for (id, d) in deltas.enumerated() {
                let s = entryCodec.encode(id: sampleIDs[id], generation: generation, delta: d, into: &records[id])
                if pass == 0 {
                    recordBytes += s.recordBytes
                    payloadBytes += s.storedBytes
                    if s.lz4 { lz4 += 1 }
                    if codec == .levels {
                        widths[s.bitWidth] += 1
                        layouts[s.layout] += 1
                        paletteTotal += s.paletteCount
                    }
                }
            }
            encodeSeconds = min(encodeSeconds, Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9)
        }
        var out = [Float](repeating: 0, count: n)
        var maxError: Float = 0
        var decodeSeconds = Double.infinity
        for pass in 0..<3 {
            let t0 = DispatchTime.now().uptimeNanoseconds
            for (id, record) in records.enumerated() {
                _ = try entryCodec.decode(record: record, id: sampleIDs[id], generation: generation, into: &out)
                if pass == 0 {
                    for i in 0..<n { maxError = max(maxError, abs(out[i] - deltas[id][i])) }
                }
            }
            decodeSeconds = min(decodeSeconds, Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9)
        }
        let count = Double(deltas.count)
        let floatMB = count * Double(n * 4) / 1e6
        let perEntry = Double(recordBytes + 8 * deltas.count) / count
        return CodecFigures(
            flavour: flavour, codec: codec.rawValue, bytesPerEntry: perEntry, payloadBytesPerEntry: Double(payloadBytes) / count,
            fractionOfFloat32Image: perEntry / Double(float32ImageBytes), meetsTarget: perEntry <= Double(float32ImageBytes / 10),
            lz4Fraction: Double(lz4) / count, maxAbsError: maxError,
            errorBound: codec.errorBound(epsilon: epsilon, value: epsilon),
            encodeMegabytesPerSecond: floatMB / encodeSeconds, decodeMegabytesPerSecond: floatMB / decodeSeconds,
            bitWidthHistogram: codec == .levels ? widths : nil, layoutHistogram: codec == .levels ? layouts : nil,
            meanPaletteSize: codec == .levels ? Double(paletteTotal) / count : nil)
    }
}

public enum BankBenchError: Error, CustomStringConvertible {
    case invalid(String)

    public var description: String {
        switch self {
        case .invalid(let m): return "bench bank: \(m)"
        }
    }
}
