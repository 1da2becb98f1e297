// BenchScale.swift: `memloss bench scale`: parses flags into a ScaleBenchConfig, runs MemlossBench.ScaleBench
// (synthetic data of N samples on disk, K bank generations filled with attack-shaped δ, then real MemLoss
// training steps reading all K) and prints its report as text or JSON. Parsing and printing only.

import ArgumentParser
import Datasets
import Foundation
import MemlossBench
import MemoryBank

struct BenchScale: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scale",
        abstract: "Out of core at scale: peak RSS, page cache, bank bytes and step time for N samples and K generations.",
        discussion: """
            Writes (or reuses) a synthetic dataset of N samples under --scratch, fills bank generations 0…K−1 with a
            fast attack (L∞ sign-PGD against a fixed random surrogate scorer, on each sample's augmented view,
            through the real bank writer with fsync), then runs --steps real MemLoss training steps of epoch K
            that read all K generations for every sample. Example (the design target):
              memloss bench scale --n 1000000 --k 8
            The dataset (N·C·H·W bytes) is kept for reuse; the bank is deleted unless --keep-bank.
            """)

    @Option(name: .customLong("n"), help: "N, samples in the synthetic dataset.")
    var sampleCount: Int
    @Option(name: .customLong("k"), help: "K, memory window: generations filled and read.")
    var window: Int
    @Option(help: "Sample shape CxHxW.")
    var shape: String = "3x32x32"
    @OptionGroup var shared: BenchModelOptions
    @Option(help: "Training method of the measured epoch: trades or pgd-at.")
    var method: String?
    @Option(help: "Attack steps of the measured epoch (α = ε/4).")
    var attackSteps: Int?
    @Option(help: "Sign steps of the fill's surrogate PGD (α = ε/2).")
    var fillSteps: Int?
    @Option(help: "Measured training steps (batches of epoch K).")
    var steps: Int?
    @Option(help: "Batch size.")
    var batch: Int?
    @Option(help: "Bank codec: \(BankCodec.allCases.map(\.rawValue).joined(separator: ", ")).")
    var codec: String?
    @Option(help: "Directory for the dataset (reused) and the bank.")
    var scratch: String = "/work/scale-data"
    @Option(help: "Seed of the synthetic data.")
    var dataSeed: UInt64 = 0
    @Option(help: "Seed of orders, views, scorer, model and attack.")
    var seed: UInt64?
    @Option(help: "Resident-page budget in MiB of the dataset mapping and of the bank prefetcher each (default: 32 MiB each).")
    var residentBudget: Int?
    @Flag(inversion: .prefixedNo, help: "fsync segments on seal.")
    var sync = true
    @Flag(help: "Keep the bank directory after the run.")
    var keepBank = false
    @Flag(help: "Print JSON.")
    var json = false

    func run() throws {
        let dims = shape.split(separator: "x").compactMap { Int($0) }
        guard dims.count == 3, dims.allSatisfy({ $0 >= 1 }) else { throw ValidationError("--shape '\(shape)': expected CxHxW") }
        let imageShape = ImageShape(channels: dims[0], height: dims[1], width: dims[2])
        let dataPath = (scratch as NSString).appendingPathComponent(
            ScaleBenchConfig.dataFileName(count: sampleCount, shape: imageShape, classCount: 10, seed: dataSeed))
        let bankPath = (scratch as NSString).appendingPathComponent("bank-n\(sampleCount)-k\(window)-\(getpid())")
        var c = ScaleBenchConfig(sampleCount: sampleCount, window: window, shape: imageShape, dataPath: dataPath, bankDirectory: bankPath)
        c.dataSeed = dataSeed
        if let model = shared.model { c.model = model }
        if let width = shared.width { c.width = width }
        if let epsilon = try shared.parsedEpsilon() { c.epsilon = epsilon }
        if let method { c.method = method }
        if let attackSteps { c.attackSteps = attackSteps }
        if let fillSteps { c.fillSteps = fillSteps }
        if let steps { c.steps = steps }
        if let batch { c.batchSize = batch }
        if let seed { c.seed = seed }
        if let codec {
            guard let k = BankCodec(rawValue: codec) else {
                throw ValidationError("--codec '\(codec)': expected " + BankCodec.allCases.map(\.rawValue).joined(separator: ", "))
            }
            c.codec = k
        }
        c.sync = sync
        if let residentBudget {
            guard residentBudget >= 0 else { throw ValidationError("--resident-budget must be ≥ 0") }
            c.datasetResidentBudget = residentBudget << 20
            c.bankResidentBudget = residentBudget << 20
        }
        defer { if !keepBank { try? FileManager.default.removeItem(atPath: bankPath) } }
        let report = try ScaleBench.run(c) { line in FileHandle.standardError.write(Data("  … \(line)\n".utf8)) }
        if json {
            try printJSON(report)
        } else {
            printText(report)
        }
    }

    private func printText(_ r: ScaleBenchReport) {
        func mib(_ b: Int) -> String { String(format: "%.1f MiB", Double(b) / 1_048_576) }
        func gb(_ b: Int) -> String { String(format: "%.2f GB", Double(b) / 1e9) }
        func ms(_ s: Double) -> String { String(format: "%.1f ms", s * 1000) }
        let c = r.config, e = r.epoch, m = r.memory, b = r.bank
        print("memloss bench scale: N = \(c.sampleCount), K = \(c.window), \(c.shape), batch \(c.batchSize), codec \(c.codec.rawValue), "
              + "ε = \(c.epsilon), resident budgets \(mib(c.datasetResidentBudget)) (data) + \(mib(c.bankResidentBudget)) (bank)")
        print("  dataset   \(r.dataset.path): \(gb(r.dataset.bytes)) "
              + (r.dataset.reused ? "(reused)" : String(format: "(written in %.1f s, peak RSS %@)", r.dataset.writeSeconds,
                                                        mib(m.peakRSSDatasetWrite))))
        print("  fill      generations 0…\(c.window - 1): \(r.fill.entriesWritten) entries (N·K) in "
              + String(format: "%.1f s (%.0f entries/s), %.0f B/entry; writer queue blocked %.1f s, peak %d queued",
                       r.fill.seconds, Double(r.fill.entriesWritten) / max(r.fill.seconds, 1e-9), r.fill.bytesPerEntry,
                       r.fill.writerBlockedSeconds, r.fill.peakQueuedEntries))
        print("            δ = \(r.fill.method)")
        print("  epoch \(e.epoch)   \(e.method), \(e.model) (\(e.parameters) parameters): \(e.steps) steps, "
              + "\(e.samplesTrained) samples trained")
        print("            step median \(ms(e.medianStepSeconds)) (mean \(ms(e.meanStepSeconds))), "
              + String(format: "%.0f img/s; per step: data-wait %@, bank-wait %@", e.imagesPerSecond, ms(e.dataWaitSeconds),
                       ms(e.bankWaitSeconds)))
        print("            entries read \(e.entriesRead) = samples trained × K (\(e.samplesTrained) × \(c.window)); "
              + "absent \(e.entriesAbsent), damaged \(e.entriesCorrupt); written \(e.entriesWritten) "
              + String(format: "(real δ: %.0f B/entry)", e.bytesPerEntry))
        print("  bank      window on disk \(gb(b.windowBytes)), " + String(format: "%.0f B/entry", b.bytesPerEntry)
              + "; as float32 in RAM \(gb(b.float32Bytes)) (" + String(format: "%.3f", b.fractionOfFloat32) + " of it); "
              + "directory at end \(gb(b.directoryBytesAtEnd)), generations \(b.generationsAtEnd)")
        print("  memory    peak RSS \(mib(m.peakRSS)) (fill \(mib(m.peakRSSFill)), epoch \(mib(m.peakRSSEpoch))"
              + (m.peakReset ? "" : ", peak not resettable: includes setup") + "); RSS at start \(mib(m.rssAtStart)), "
              + "largest sampled anon \(mib(m.rssAnonMaxSampled)), file \(mib(m.rssFileMaxSampled)); "
              + "at end anon \(mib(m.rssAnonAtEnd)) + file \(mib(m.rssFileAtEnd))")
        print("            page cache (system-wide Cached, not RSS): start \(gb(m.pageCacheAtStart)), max \(gb(m.pageCacheMax)), "
              + "end \(gb(m.pageCacheAtEnd))")
        print("  counters  written \(r.entriesWrittenTotal) = N·K + samples trained; read = samples trained × K: checked")
    }
}
