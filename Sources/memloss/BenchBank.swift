// BenchBank.swift: `memloss bench bank`: bytes per stored perturbation for every codec against a float32
// 3×32×32 image (12,288 B), single-thread encode/decode throughput of the codecs, and the bank's write
// (append → seal) and read (prefetcher) throughput, on synthetic PGD-like δ: a 10-step L∞ sign-PGD with
// α = ε/4 against a fixed random linear+ReLU scorer with spatially smooth weights, over smooth random
// images, from three starts (zero, TRADES' 0.001·N(0,1), uniform in the ε-ball), plus the i.i.d. sign-
// flip model of systems.md §5. Measurement and printing only; the bank is MemoryBank's.

import ArgumentParser
import Foundation

import Kernels
import MemoryBank
import Tensors
import Training

struct BenchBank: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bank",
        abstract: "Memory bank: bytes per entry per codec, codec and bank read/write throughput.",
        discussion: """
            δ are synthetic (see the file banner); real runs differ, so re-measure with `membank stats` on a
            real bank. Times are single-thread codec times, and warm page cache for the bank read.
            """)

    @Option(help: "Perturbations per flavour.")
    var samples: Int = 2048

    @Option(help: "ε (L∞), in [0,1] pixel units.")
    var epsilon: Float = 8 / 255

    @Option(help: "Batch size of the bank read (prefetcher).")
    var batch: Int = 128

    @Option(help: "Window K of the bank read (K generations are written, then read back).")
    var window: Int = 2

    @Option(help: "Prefetch ring depth.")
    var depth: Int = 3

    @Option(help: "Directory for the temporary bank.")
    var scratch: String = NSTemporaryDirectory()

    @Option(help: "Seed of images, scorer and starts.")
    var seed: UInt64 = 0

    @Flag(help: "Print JSON.")
    var json = false

    static let shape = [3, 32, 32]
    static let float32ImageBytes = 3 * 32 * 32 * 4
    static let targetBytes = float32ImageBytes / 10

    struct CodecFigures: Codable {
        var flavour: String
        var codec: String
        /// Record (48-byte header + payload + padding) + 8-byte index slot, mean over entries.
        var bytesPerEntry: Double
        var payloadBytesPerEntry: Double
        var fractionOfFloat32Image: Double
        var meetsTarget: Bool
        var lz4Fraction: Double
        var maxAbsError: Float
        var errorBound: Float
        var encodeMegabytesPerSecond: Double
        var decodeMegabytesPerSecond: Double
        /// `levels` only: entries per bit width 0…8, per layout (packed, planes, direct), mean palette size.
        var bitWidthHistogram: [Int]?
        var layoutHistogram: [Int]?
        var meanPaletteSize: Double?
    }

    struct FlavourStatistics: Codable {
        var flavour: String
        var meanDistinctQ8Levels: Double
        var saturatedFraction: Double
        var generationSeconds: Double
    }

    struct BankFigures: Codable {
        var codec: String
        var flavour: String
        var generations: Int
        var entriesPerGeneration: Int
        var segmentBytes: Int
        var writeEntriesPerSecond: Double
        var writeMegabytesPerSecond: Double
        var appendBlockedSeconds: Double
        var sealSeconds: Double
        var readBatches: Int
        var readEntries: Int
        var readEntriesPerSecond: Double
        var readMegabytesPerSecond: Double
        var consumerWaitSeconds: Double
        var producerBusySeconds: Double
    }

    struct Report: Codable {
        var samples: Int
        var shape: [Int]
        var epsilon: Float
        var float32ImageBytes: Int
        var targetBytes: Int
        var lz4Version: String
        var flavours: [FlavourStatistics]
        var codecs: [CodecFigures]
        var bank: [BankFigures]
        var peakRSSBytes: Int?
    }

    func run() throws {
        guard samples >= 1, batch >= 1, window >= 1, depth >= 1 else { throw ValidationError("counts must be ≥ 1") }
        var flavourStats: [FlavourStatistics] = []
        var deltasByFlavour: [(String, [[Float]])] = []
        for flavour in SyntheticPGD.Flavour.allCases {
            let t0 = DispatchTime.now().uptimeNanoseconds
            let deltas = SyntheticPGD(shape: Self.shape, epsilon: epsilon, seed: seed).generate(count: samples, flavour: flavour)
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
            let (levels, saturated) = SyntheticPGD.levelStatistics(deltas, epsilon: epsilon)
            flavourStats.append(FlavourStatistics(flavour: flavour.rawValue, meanDistinctQ8Levels: levels,
                                                  saturatedFraction: saturated, generationSeconds: seconds))
            deltasByFlavour.append((flavour.rawValue, deltas))
        }

        var codecFigures: [CodecFigures] = []
        for (flavour, deltas) in deltasByFlavour {
            for codec in BankCodec.allCases {
                codecFigures.append(try measureCodec(codec, flavour: flavour, deltas: deltas, shape: Self.shape, epsilon: epsilon))
            }
        }

        var bankFigures: [BankFigures] = []
        let readFlavour = SyntheticPGD.Flavour.trades.rawValue
        let readDeltas = deltasByFlavour.first { $0.0 == readFlavour }!.1
        for codec in [BankCodec.q8, .levels, .f32] {
            bankFigures.append(try measureBank(codec, flavour: readFlavour, deltas: readDeltas))
        }

        let report = Report(samples: samples, shape: Self.shape, epsilon: epsilon, float32ImageBytes: Self.float32ImageBytes,
                            targetBytes: Self.targetBytes, lz4Version: EntryCodec.lz4Version, flavours: flavourStats,
                            codecs: codecFigures, bank: bankFigures, peakRSSBytes: ProcessStatus.read()["VmHWM"])
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            printText(report)
        }
    }

    // MARK: - Measurements

    private func measureBank(_ codec: BankCodec, flavour: String, deltas: [[Float]]) throws -> BankFigures {
        let directory = URL(fileURLWithPath: scratch).appendingPathComponent("memloss-bench-bank-\(getpid())-\(codec.rawValue)")
        try? FileManager.default.removeItem(at: directory)
        defer { try? FileManager.default.removeItem(at: directory) }
        let config = BankConfig(sampleCount: deltas.count, shape: Self.shape, epsilon: epsilon, codec: codec,
                                window: window, stride: 1, createdBy: "{\"bench\": \"bank\"}")
        let bank = try Bank.create(at: directory, config: config)
        var writeSeconds = 0.0, sealSeconds = 0.0, segmentBytes = 0
        for g in 0..<window {
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

        let batches = stride(from: 0, to: deltas.count, by: batch).map { Array($0..<min($0 + batch, deltas.count)) }
        let t0 = DispatchTime.now().uptimeNanoseconds
        let prefetcher = BankPrefetcher(reader: reader, epoch: window, batches: batches, depth: depth)
        var entries = 0
        while let b = try prefetcher.next() { entries += b.presentCount }
        let readSeconds = Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
        let stats = prefetcher.statistics
        let written = Double(window * deltas.count)
        let floatBytes = Double(Self.float32ImageBytes)
        return BankFigures(
            codec: codec.rawValue, flavour: flavour, generations: window, entriesPerGeneration: deltas.count,
            segmentBytes: segmentBytes, writeEntriesPerSecond: written / writeSeconds,
            writeMegabytesPerSecond: written * floatBytes / writeSeconds / 1e6, appendBlockedSeconds: blocked,
            sealSeconds: sealSeconds, readBatches: batches.count, readEntries: entries,
            readEntriesPerSecond: Double(entries) / readSeconds,
            readMegabytesPerSecond: Double(entries) * floatBytes / readSeconds / 1e6,
            consumerWaitSeconds: stats.consumerWaitSeconds, producerBusySeconds: stats.producerBusySeconds)
    }

    // MARK: - Text output

    private func printText(_ r: Report) {
        func f(_ x: Double, _ digits: Int = 0) -> String { String(format: "%.\(digits)f", x) }
        print("memloss bench bank: \(r.samples) δ per flavour, shape \(r.shape.map(String.init).joined(separator: "×")), "
              + "ε = \(r.epsilon), float32 image = \(r.float32ImageBytes) B, target ≤ \(r.targetBytes) B/entry, lz4 \(r.lz4Version)")
        print("\nflavours (10-step sign-PGD, α = ε/4):")
        for s in r.flavours {
            print("  \(s.flavour.padding(toLength: 9, withPad: " ", startingAt: 0)) distinct q8 levels/entry \(f(s.meanDistinctQ8Levels, 1)), "
                  + "saturated \(f(100 * s.saturatedFraction, 1))%  (generated in \(f(s.generationSeconds, 2)) s)")
        }
        print("\nbytes per entry (record + 8-byte index slot) and single-thread codec throughput (MB/s of float32 δ):")
        print("  flavour   codec    B/entry  payload  ×float32  target  lz4%   max err    bound      enc MB/s  dec MB/s  notes")
        for c in r.codecs {
            var notes = ""
            if let h = c.bitWidthHistogram {
                notes = "widths " + h.enumerated().filter { $0.element > 0 }.map { "\($0.offset)b:\($0.element)" }.joined(separator: " ")
                    + ", palette \(f(c.meanPaletteSize ?? 0, 1))"
                if let l = c.layoutHistogram { notes += ", layouts packed \(l[0]) planes \(l[1]) direct \(l[2])" }
            }
            print("  " + c.flavour.padding(toLength: 9, withPad: " ", startingAt: 0) + " " + c.codec.padding(toLength: 7, withPad: " ", startingAt: 0)
                  + String(format: " %8.0f %8.0f  %7.3f   %@  %4.0f  %9.2e  %9.2e  %8.0f  %8.0f  ",
                           c.bytesPerEntry, c.payloadBytesPerEntry, c.fractionOfFloat32Image, c.meetsTarget ? "yes" : " no",
                           100 * c.lz4Fraction, c.maxAbsError, c.errorBound, c.encodeMegabytesPerSecond, c.decodeMegabytesPerSecond)
                  + notes)
        }
        print("\nbank (flavour \(r.bank.first?.flavour ?? ""), fsync on seal; read through the prefetcher, warm page cache, no compute):")
        for b in r.bank {
            print("  \(b.codec.padding(toLength: 7, withPad: " ", startingAt: 0)) write \(f(b.writeEntriesPerSecond)) entries/s "
                  + "(\(f(b.writeMegabytesPerSecond)) MB/s of δ; append blocked \(f(b.appendBlockedSeconds, 3)) s, seal \(f(b.sealSeconds, 3)) s), "
                  + "segment \(b.segmentBytes) B; read \(f(b.readEntriesPerSecond)) entries/s (\(f(b.readMegabytesPerSecond)) MB/s of δ, "
                  + "\(b.readEntries) entries in \(b.readBatches) batches × K = \(b.generations)), consumer waited \(f(b.consumerWaitSeconds, 3)) s")
        }
        if let peak = r.peakRSSBytes { print("\npeak RSS \(f(Double(peak) / 1_048_576, 1)) MiB (includes all generated δ)") }
    }
}

/// Synthetic PGD perturbations (documented in the file banner).
struct SyntheticPGD {
    enum Flavour: String, CaseIterable {
        /// Scorer PGD from δ = 0.
        case zero
        /// Scorer PGD from 0.001·N(0, 1) (TRADES' start).
        case trades
        /// Scorer PGD from U(−ε, ε) (PGD-AT's random start).
        case uniform
        /// No scorer: each step's sign flips with p = 0.25 per pixel, i.i.d. (systems.md §5 "pgd10").
        case iid
    }

    let shape: [Int]
    let epsilon: Float
    let seed: UInt64
    let steps = 10
    let hidden = 32
    let chunk = 256

    var n: Int { shape.reduce(1, *) }

    /// A smooth random field [C, H, W] (Training.SurrogatePGD.smoothField).
    private func smoothField(grid: Int, low: Float, high: Float, rng: inout SplitMix64) -> [Float] {
        SurrogatePGD.smoothField(shape: shape, grid: grid, low: low, high: high, rng: &rng)
    }

    func generate(count: Int, flavour: Flavour) -> [[Float]] {
        var rng = SplitMix64.derived(seed: seed, stream: 1)
        // The fixed scorer: smooth weight rows (4×4 lattice) plus 30% white noise, ±1 output weights.
        var weights: [Float] = []
        for _ in 0..<hidden {
            let field = smoothField(grid: 4, low: -1, high: 1, rng: &rng)
            weights += field.map { $0 + 0.3 * (rng.nextFloat() * 2 - 1) }
        }
        let w = Tensor(shape: [hidden, n], values: weights)
        let rowL1 = (0..<hidden).map { j in weights[(j * n)..<((j + 1) * n)].reduce(0) { $0 + abs($1) } }
        let v: [Float] = (0..<hidden).map { _ in rng.nextFloat() < 0.5 ? 1 : -1 }
        var startRNG = SplitMix64.derived(seed: seed, stream: 2 + UInt64(Flavour.allCases.firstIndex(of: flavour)!))
        var result: [[Float]] = []
        result.reserveCapacity(count)
        var imageRNG = SplitMix64.derived(seed: seed, stream: 100)
        for start in stride(from: 0, to: count, by: chunk) {
            let b = min(chunk, count - start)
            let images = (0..<b).map { _ in smoothField(grid: 8, low: 0, high: 1, rng: &imageRNG) }
            var delta = (0..<b).map { _ -> [Float] in
                switch flavour {
                case .zero, .iid: return [Float](repeating: 0, count: n)
                case .trades: return (0..<n).map { _ in 0.001 * startRNG.nextNormal() }
                case .uniform: return (0..<n).map { _ in (startRNG.nextFloat() * 2 - 1) * epsilon }
                }
            }
            // Per-image biases put every unit near its threshold: −w·x plus up to ±30% of the largest
            // change the ε-ball allows, so steps flip units and the gradient's sign pattern changes.
            let clean = Linear.forward(Tensor(shape: [b, n], values: images.flatMap { $0 }), weight: w, bias: nil).scalars
            let bias = (0..<(b * hidden)).map { k in -clean[k] + 0.3 * epsilon * rowL1[k % hidden] * (imageRNG.nextFloat() * 2 - 1) }
            var previousSign = [[Float]](repeating: [Float](repeating: 1, count: n), count: b)
            for _ in 0..<steps {
                var adversarial = [Float](repeating: 0, count: b * n)
                for i in 0..<b {
                    for p in 0..<n { adversarial[i * n + p] = min(1, max(0, images[i][p] + delta[i][p])) }
                }
                var gradient = [Float](repeating: 0, count: b * n)
                if flavour != .iid {
                    let pre = Linear.forward(Tensor(shape: [b, n], values: adversarial), weight: w, bias: nil).scalars
                    let dOut = (0..<(b * hidden)).map { k in pre[k] + bias[k] > 0 ? v[k % hidden] : 0 }
                    gradient = Linear.backwardInput(Tensor(shape: [b, hidden], values: dOut), weight: w, inputShape: [b, n]).scalars
                }
                for i in 0..<b {
                    for p in 0..<n {
                        let s: Float
                        if flavour == .iid {
                            s = startRNG.nextFloat() < 0.25 ? -previousSign[i][p] : previousSign[i][p]
                            previousSign[i][p] = s
                        } else {
                            let g = gradient[i * n + p]
                            s = g > 0 ? 1 : (g < 0 ? -1 : 0)
                        }
                        let stepped = min(epsilon, max(-epsilon, delta[i][p] + epsilon / 4 * s))
                        delta[i][p] = min(1, max(0, images[i][p] + stepped)) - images[i][p]  // δ = x̃ − x
                    }
                }
            }
            result += delta
        }
        return result
    }

    /// Mean number of distinct q8 levels per entry and the fraction of values at ±127.
    static func levelStatistics(_ deltas: [[Float]], epsilon: Float) -> (Double, Double) {
        let scale = epsilon / 127
        var distinct = 0, saturated = 0, total = 0
        for d in deltas {
            var seen = Set<Int>()
            for x in d {
                let q = Int(max(-127, min(127, (x / scale).rounded(.toNearestOrEven))))
                seen.insert(q)
                if abs(q) == 127 { saturated += 1 }
            }
            distinct += seen.count
            total += d.count
        }
        return (Double(distinct) / Double(max(deltas.count, 1)), Double(saturated) / Double(max(total, 1)))
    }
}

/// Bytes per entry, max error and single-thread encode/decode throughput of `codec` on `deltas`
/// (each `shape` in [C, H, W] order), against a float32 image of the same shape. Shared by
/// `bench bank` (synthetic δ) and `bench memory` (δ of a real attack).
func measureCodec(_ codec: BankCodec, flavour: String, deltas: [[Float]], shape: [Int], epsilon: Float) throws -> BenchBank.CodecFigures {
    let n = shape.reduce(1, *), float32ImageBytes = n * 4
    let config = BankConfig(sampleCount: deltas.count, shape: shape, epsilon: epsilon, codec: codec)
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
            let s = entryCodec.encode(id: id, delta: d, into: &records[id])
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
            _ = try entryCodec.decode(record: record, id: id, into: &out)
            if pass == 0 {
                for i in 0..<n { maxError = max(maxError, abs(out[i] - deltas[id][i])) }
            }
        }
        decodeSeconds = min(decodeSeconds, Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9)
    }
    let count = Double(deltas.count)
    let floatMB = count * Double(n * 4) / 1e6
    let perEntry = Double(recordBytes + 8 * deltas.count) / count
    return BenchBank.CodecFigures(
        flavour: flavour, codec: codec.rawValue, bytesPerEntry: perEntry, payloadBytesPerEntry: Double(payloadBytes) / count,
        fractionOfFloat32Image: perEntry / Double(float32ImageBytes), meetsTarget: perEntry <= Double(float32ImageBytes / 10),
        lz4Fraction: Double(lz4) / count, maxAbsError: maxError,
        errorBound: codec.errorBound(epsilon: epsilon, value: epsilon),
        encodeMegabytesPerSecond: floatMB / encodeSeconds, decodeMegabytesPerSecond: floatMB / decodeSeconds,
        bitWidthHistogram: codec == .levels ? widths : nil, layoutHistogram: codec == .levels ? layouts : nil,
        meanPaletteSize: codec == .levels ? Double(paletteTotal) / count : nil)
}
