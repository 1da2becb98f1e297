// BenchData.swift: `memloss bench data`: streams one or more epochs of a dataset through the prefetcher
// (read from the mapping + augment + float conversion) and reports images/s, the consumer's wait, and
// peak RSS from /proc/self/status. Optionally generates a synthetic .mlds file first (--synthetic N)
// and deletes it after. Measurement and printing only; the pipeline is Datasets'.

import ArgumentParser
import Datasets
import Foundation
import Training

struct BenchData: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data",
        abstract: "Data pipeline throughput (read + augment through the prefetcher) and peak RSS.",
        discussion: """
            Example (the ≥ 4 GB scale check): memloss bench data --synthetic 1400000 --augment
            writes a 4.3 GB synthetic file under --scratch, streams one epoch, reports, deletes it.
            """)

    @Option(help: "Data spec (see `memloss data --help`). Ignored with --synthetic.")
    var source: String = "demo"

    @Option(help: "Which part to stream.")
    var part: DatasetPartition = .train

    @Option(help: "Generate a synthetic 3×32×32, 10-class set of this many samples first, then delete it.")
    var synthetic: Int?

    @Option(help: "Directory for the --synthetic file.")
    var scratch: String = NSTemporaryDirectory()

    @Flag(help: "Keep the --synthetic file.")
    var keep = false

    @Option(help: "Batch size.")
    var batch: Int = 128

    @Option(help: "Prefetch ring depth (slots).")
    var depth: Int = 3

    @Option(help: "Epochs to stream.")
    var epochs: Int = 1

    @Option(help: "Seed of order and augmentation.")
    var seed: UInt64 = 0

    @Flag(inversion: .prefixedNo, help: "Random crop (pad 4) + flip; default: the source's standard augmentation.")
    var augment: Bool?

    @Option(help: "Resident-page budget in MiB before mapped pages are dropped (0 = never drop).")
    var residentBudget: Int?

    @Option(help: "Simulated compute per batch on the consumer side, in milliseconds.")
    var consumerMs: Double = 0

    @Flag(help: "Print JSON.")
    var json = false

    struct Report: Codable {
        var source: String
        var samples: Int
        var shape: String
        var fileBytes: Int
        var batchSize: Int
        var depth: Int
        var epochs: Int
        var augmentation: AugmentationConfig
        var residentBudgetBytes: Int
        var generationSeconds: Double?
        var images: Int
        var batches: Int
        var seconds: Double
        var imagesPerSecond: Double
        var pixelMegabytesPerSecond: Double
        var consumerWaitSeconds: Double
        var producerBusySeconds: Double
        var producerBlockedSeconds: Double
        var peakRSSBytes: Int?
        var peakRSSIncludesGeneration: Bool
        var endRSSBytes: Int?
        var endRSSAnonBytes: Int?
        var endRSSFileBytes: Int?
    }

    func run() throws {
        var generationSeconds: Double?
        var syntheticPath: String?
        let spec: String
        if let n = synthetic {
            let path = (scratch as NSString).appendingPathComponent("memloss-bench-\(getpid()).mlds")
            var s = SyntheticSpec.standard
            s.count = n
            s.seed = seed
            FileHandle.standardError.write(Data("generating \(n) samples (\(formatBytes(s.fileSize))) into \(path)…\n".utf8))
            let t0 = Date()
            try SyntheticGenerator(s).write(to: path)
            generationSeconds = Date().timeIntervalSince(t0)
            syntheticPath = path
            spec = "synthetic:\(path)"
        } else {
            spec = source
        }
        defer {
            if let syntheticPath, !keep { try? FileManager.default.removeItem(atPath: syntheticPath) }
        }

        let dataSource = try DataSource(parsing: spec)
        let dataset = try dataSource.open(part)
        if let residentBudget { dataset.residentBudget = residentBudget << 20 }
        let augmentation = augment.map { $0 ? AugmentationConfig.cifar : .none } ?? dataSource.standardAugmentation
        let loader = BatchLoader(dataset: dataset, augmentation: augmentation, seed: seed)
        // Measure the streaming peak only: reset VmHWM (Linux ≥ 4.0) after generation and open.
        let peakReset = SystemStats.resetPeakRSS()

        var images = 0, batches = 0
        var wait = 0.0, busy = 0.0, blocked = 0.0
        let start = DispatchTime.now().uptimeNanoseconds
        for epoch in 0..<epochs {
            let plan = EpochPlan(count: dataset.count, seed: seed, epoch: epoch, batchSize: batch)
            let prefetcher = Prefetcher(loader: loader, plan: plan, depth: depth)
            while let b = try prefetcher.next() {
                images += b.count
                batches += 1
                if consumerMs > 0 { Thread.sleep(forTimeInterval: consumerMs / 1000) }
            }
            let st = prefetcher.statistics
            wait += st.consumerWaitSeconds
            busy += st.producerBusySeconds
            blocked += st.producerBlockedSeconds
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
        let status = SystemStats.processStatus()

        let report = Report(
            source: "\(dataSource) (\(part.rawValue))", samples: dataset.count, shape: "\(dataset.shape)",
            fileBytes: dataset.byteCount, batchSize: batch, depth: depth, epochs: epochs, augmentation: augmentation,
            residentBudgetBytes: dataset.residentBudget, generationSeconds: generationSeconds, images: images,
            batches: batches, seconds: seconds, imagesPerSecond: Double(images) / seconds,
            pixelMegabytesPerSecond: Double(images * dataset.shape.pixelCount) / seconds / 1e6,
            consumerWaitSeconds: wait, producerBusySeconds: busy, producerBlockedSeconds: blocked,
            peakRSSBytes: status["VmHWM"], peakRSSIncludesGeneration: !peakReset, endRSSBytes: status["VmRSS"],
            endRSSAnonBytes: status["RssAnon"], endRSSFileBytes: status["RssFile"])
        if json {
            try printJSON(report)
            return
        }
        func mib(_ b: Int?) -> String { b.map { String(format: "%.1f MiB", Double($0) / 1_048_576) } ?? "n/a" }
        let aug = augmentation.isIdentity ? "none" : "crop pad \(augmentation.padding)\(augmentation.flip ? " + flip" : "")"
        print("memloss bench data")
        print("  source      \(report.source): \(dataset.count) × \(dataset.shape), \(dataset.classCount) classes, files \(formatBytes(dataset.byteCount))")
        if let g = generationSeconds { print("  generated   in \(String(format: "%.1f", g)) s") }
        print("  pipeline    batch \(batch), depth \(depth), \(epochs) epoch(s), augmentation \(aug), "
              + "resident budget \(dataset.residentBudget == 0 ? "off" : mib(dataset.residentBudget))")
        print("  throughput  \(String(format: "%.0f", report.imagesPerSecond)) images/s "
              + "(\(images) images, \(batches) batches in \(String(format: "%.2f", seconds)) s; "
              + "\(String(format: "%.0f", report.pixelMegabytesPerSecond)) MB/s of uint8 pixels read)")
        print("  consumer    waited \(String(format: "%.2f", wait)) s (\(String(format: "%.0f", 100 * wait / max(seconds, 1e-9)))% of wall; "
              + "simulated compute \(consumerMs) ms/batch)")
        print("  producer    busy \(String(format: "%.2f", busy)) s, blocked on a full ring \(String(format: "%.2f", blocked)) s")
        print("  memory      peak RSS (VmHWM) \(mib(report.peakRSSBytes))\(peakReset ? " while streaming" : " (includes setup)"); "
              + "at end RSS \(mib(report.endRSSBytes)) = anon \(mib(report.endRSSAnonBytes)) + file \(mib(report.endRSSFileBytes))")
        print("  note        RSS counts mapped file pages only while they are in this process's page tables; "
              + "they are dropped (MADV_DONTNEED) whenever file-backed RSS grew by the resident budget. The kernel "
              + "page cache (see `free`) may still hold the file: reclaimable, not charged to RSS, and warm here, "
              + "so these figures are page-cache-warm; a cold first epoch is bounded by disk reads instead.")
    }
}
