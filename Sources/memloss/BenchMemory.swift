// BenchMemory.swift: `memloss bench memory`: the MemLoss training step with the on-disk bank against the
// in-RAM float32 memory, in the same run on the same model (steps interleaved, order alternating, same
// attack seed), and bytes per entry / error / codec throughput for every codec on the δ of that real
// attack. The first K epochs train the model (TRADES + MemLoss through the disk bank) and fill K
// generations in both stores; the measured epoch reads all K for every sample. Printing only.

import ArgumentParser
import Attacks
import Datasets
import Foundation
import Kernels
import Layers
import MemoryBank
import Models
import Tensors
import Training

struct BenchMemory: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "memory",
        abstract: "MemLoss step time with the disk bank vs the in-RAM float32 memory, and bytes per entry of real PGD δ per codec.",
        discussion: """
            Defaults: the embedded MNIST subset with SmallCNN×0.5 and TRADES (10 steps, ε = 0.3). For CIFAR-sized
            δ pass e.g. --data synthetic:FILE (see `memloss data synth`) --model resnet18 --width 0.25 --epsilon 8/255.
            """)

    @Option(help: "Data source (as for `memloss train`).")
    var data: String = "demo"
    @Option(help: "Model name.")
    var model: String = "smallcnn"
    @Option(help: "Width multiplier.")
    var width: Double = 0.5
    @Option(help: "Batch size.")
    var batch: Int = 64
    @Option(help: "Batches per epoch (the population is the first batches × batch samples).")
    var batches: Int = 12
    @Option(help: "Window K (K epochs fill the memory; the next epoch is measured).")
    var window: Int = 1
    @Option(help: "Codec of the disk bank.")
    var codec: String = "q8"
    @Option(help: "Attack steps (TRADES KL-PGD, step ε/4).")
    var attackSteps: Int = 10
    @Option(help: "ε (default: 0.3 for 1-channel data, 8/255 otherwise).")
    var epsilon: String?
    @Option(help: "Directory for the temporary bank.")
    var scratch: String = NSTemporaryDirectory()
    @Option(help: "Seed.")
    var seed: UInt64 = 1
    @Flag(help: "Print JSON.")
    var json = false

    struct Side: Codable {
        var meanStepSeconds: Double
        var medianStepSeconds: Double
        var lookupSeconds: Double
        var recordSeconds: Double
    }

    struct Report: Codable {
        var data: String
        var model: String
        var shape: [Int]
        var batch: Int
        var batches: Int
        var window: Int
        var codec: String
        var epsilon: Float
        var ram: Side
        var disk: Side
        /// disk mean / ram mean − 1.
        var diskOverhead: Double
        var bankWaitSeconds: Double
        var writerBlockedSeconds: Double
        /// Mean |mem term (disk) − mem term (RAM)| over the measured steps, and the mean term.
        var memTermMeanAbsDifference: Double
        var memTermMean: Double
        var entriesReadPerStep: Double
        var bankBytesPerEntry: Double
        var float32ImageBytes: Int
        var codecs: [BenchBank.CodecFigures]
        var peakRSSBytes: Int?
    }

    func run() throws {
        guard batch >= 1, batches >= 1, window >= 1, attackSteps >= 1 else { throw ValidationError("counts must be ≥ 1") }
        guard let bankCodec = BankCodec(rawValue: codec) else {
            throw ValidationError("--codec '\(codec)': expected " + BankCodec.allCases.map(\.rawValue).joined(separator: ", "))
        }
        let source: DataSource, dataset: Dataset
        do {
            source = try DataSource(parsing: data)
            dataset = try source.open(.train)
        } catch { throw ValidationError("\(error)") }
        let epsText = epsilon ?? (dataset.shape.channels == 1 ? "0.3" : "8/255")
        guard let eps = parseEpsilon(epsText), eps > 0 else { throw ValidationError("--epsilon '\(epsText)' is not a positive number") }
        let spec: ModelSpec
        do { spec = try ModelSpec(parsing: model, classes: dataset.classCount, width: width) } catch { throw ValidationError("\(error)") }
        guard spec.inputShape == dataset.shape.dimensions else {
            throw ValidationError("\(spec.name) takes \(spec.inputShape) images but \(data) has \(dataset.shape)")
        }
        let net = spec.build(seed: seed)
        let attack = PGDConfig(epsilon: eps, stepSize: eps / 4, steps: attackSteps, norm: .linf, randomStart: .gaussian(std: 0.001))
        let method = try makeMethod(.trades(TRADESConfig(attack: attack, beta: 6)), helper: nil)
        let optimizer = SGD(parameters: net.namedParameters, config: SGDConfig(learningRate: 0.02, momentum: 0.9, weightDecay: 0))
        let population = Array(0..<min(batch * batches, dataset.count))
        let loader = BatchLoader(dataset: dataset, augmentation: source.standardAugmentation, seed: seed)

        let diskConfig = MemoryStoreConfig(window: window, codec: bankCodec, kind: .disk)
        var ramConfig = diskConfig
        ramConfig.kind = .ram
        let term = MemLossTermConfig()
        let directory = URL(fileURLWithPath: scratch).appendingPathComponent("memloss-bench-memory-\(getpid())")
        try? FileManager.default.removeItem(at: directory)
        defer { try? FileManager.default.removeItem(at: directory) }
        let ram = RAMMemoryStore(config: ramConfig, sampleCount: dataset.count, shape: dataset.shape.dimensions)
        let disk = try DiskMemoryStore(config: diskConfig, directory: directory, dataset: dataset, epsilon: eps, norm: .linf,
                                       createdBy: "{\"bench\": \"memory\"}", keepThrough: nil)
        defer { disk.close() }

        // Fill: K epochs of real training through the disk bank, recording into both stores.
        var lastDeltas: [[Float]] = []
        var step = 0
        for epoch in 0..<window {
            let plan = EpochPlan(population: population, seed: seed, epoch: epoch, batchSize: batch)
            try ram.beginEpoch(epoch, plan: plan)
            try disk.beginEpoch(epoch, plan: plan)
            lastDeltas = []
            for b in 0..<plan.batchCount {
                let x = loader.load(ids: plan.batchIDs(b), epoch: epoch, index: b)
                _ = try ram.next(ids: x.ids)
                let ex = try disk.next(ids: x.ids)
                net.zeroGradients()
                var rng = SplitMix64.derived(seed: seed, stream: UInt64(step))
                let r = method.step(model: net, images: x.images, labels: x.labels,
                                    auxiliary: [MemLossTerm(config: term, examples: ex, selected: term.selectEntries(ex))], rng: &rng)
                optimizer.step(learningRate: 0.02)
                let meta = memoryMetadata(adversarialLogits: r.adversarialLogits!, labels: x.labels)
                try ram.record(ids: x.ids, views: x.views, clean: x.images, adversarial: r.adversarial!, metadata: meta)
                try disk.record(ids: x.ids, views: x.views, clean: x.images, adversarial: r.adversarial!, metadata: meta)
                var delta = r.adversarial!.copy()
                Elementwise.addScaled(&delta, x.images, scale: -1)
                let n = dataset.shape.pixelCount, all = delta.scalars
                for i in 0..<x.count { lastDeltas.append(Array(all[(i * n)..<((i + 1) * n)])) }
                step += 1
            }
            _ = try ram.endEpoch()
            _ = try disk.endEpoch()
        }

        // Measure: the epoch after the fill, both stores on the same (frozen) model and seeds.
        let epoch = window
        let plan = EpochPlan(population: population, seed: seed, epoch: epoch, batchSize: batch)
        try ram.beginEpoch(epoch, plan: plan)
        try disk.beginEpoch(epoch, plan: plan)
        var times: [MemoryStoreKind: [Double]] = [.ram: [], .disk: []]
        var lookups: [MemoryStoreKind: Double] = [.ram: 0, .disk: 0], records: [MemoryStoreKind: Double] = [.ram: 0, .disk: 0]
        var termDifference = 0.0, termTotal = 0.0, entries = 0
        for b in 0..<plan.batchCount {
            let x = loader.load(ids: plan.batchIDs(b), epoch: epoch, index: b)
            var terms: [MemoryStoreKind: Float] = [:]
            let order: [MemoryStoreKind] = b % 2 == 0 ? [.ram, .disk] : [.disk, .ram]
            for kind in order {
                let store: any MemoryStore = kind == .ram ? ram : disk
                let t0 = SystemStats.now
                let ex = try store.next(ids: x.ids)
                let t1 = SystemStats.now
                net.zeroGradients()
                var rng = SplitMix64.derived(seed: seed, stream: UInt64(step))
                let r = method.step(model: net, images: x.images, labels: x.labels,
                                    auxiliary: [MemLossTerm(config: term, examples: ex, selected: term.selectEntries(ex))], rng: &rng)
                let t2 = SystemStats.now
                let meta = memoryMetadata(adversarialLogits: r.adversarialLogits!, labels: x.labels)
                try store.record(ids: x.ids, views: x.views, clean: x.images, adversarial: r.adversarial!, metadata: meta)
                let t3 = SystemStats.now
                times[kind]!.append(t3 - t0)
                lookups[kind]! += t1 - t0
                records[kind]! += t3 - t2
                terms[kind] = r.terms["mem"] ?? 0
                if kind == .disk { entries += ex.presentCount }
            }
            termDifference += Double(abs(terms[.disk]! - terms[.ram]!))
            termTotal += Double(terms[.ram]!)
            step += 1
        }
        _ = try ram.endEpoch()
        let diskReport = try disk.endEpoch()

        func side(_ k: MemoryStoreKind) -> Side {
            let t = times[k]!, sorted = t.sorted()
            return Side(meanStepSeconds: t.reduce(0, +) / Double(t.count), medianStepSeconds: sorted[sorted.count / 2],
                        lookupSeconds: lookups[k]! / Double(t.count), recordSeconds: records[k]! / Double(t.count))
        }
        let r = side(.ram), d = side(.disk), steps = Double(plan.batchCount)
        var codecs: [BenchBank.CodecFigures] = []
        for c in BankCodec.allCases {
            codecs.append(try measureCodec(c, flavour: "trades-\(attackSteps)", deltas: lastDeltas, shape: dataset.shape.dimensions,
                                           epsilon: eps))
        }
        let report = Report(
            data: data, model: spec.name, shape: dataset.shape.dimensions, batch: batch, batches: plan.batchCount, window: window,
            codec: codec, epsilon: eps, ram: r, disk: d, diskOverhead: d.meanStepSeconds / r.meanStepSeconds - 1,
            bankWaitSeconds: diskReport.bankWaitSeconds, writerBlockedSeconds: diskReport.writerBlockedSeconds,
            memTermMeanAbsDifference: termDifference / steps, memTermMean: termTotal / steps,
            entriesReadPerStep: Double(entries) / steps, bankBytesPerEntry: diskReport.bytesPerEntry,
            float32ImageBytes: dataset.shape.pixelCount * 4, codecs: codecs, peakRSSBytes: ProcessStatus.read()["VmHWM"])
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
            return
        }
        printText(report)
    }

    private func printText(_ r: Report) {
        func ms(_ s: Double) -> String { String(format: "%.1f ms", s * 1000) }
        print("memloss bench memory: \(r.model) on \(r.data) (\(r.shape.map(String.init).joined(separator: "×"))), TRADES "
              + "\(attackSteps)-step attack, ε = \(r.epsilon), batch \(r.batch), K = \(r.window), codec \(r.codec); "
              + "\(r.batches) measured steps per store, interleaved")
        print("  RAM (float32)  step mean \(ms(r.ram.meanStepSeconds)), median \(ms(r.ram.medianStepSeconds)); "
              + "lookup \(ms(r.ram.lookupSeconds)), record \(ms(r.ram.recordSeconds))")
        print("  disk bank      step mean \(ms(r.disk.meanStepSeconds)), median \(ms(r.disk.medianStepSeconds)); "
              + "lookup \(ms(r.disk.lookupSeconds)) (bank wait \(String(format: "%.3f", r.bankWaitSeconds)) s total), "
              + "record \(ms(r.disk.recordSeconds)) (writer blocked \(String(format: "%.3f", r.writerBlockedSeconds)) s)")
        print(String(format: "  disk vs RAM: %+.2f%% step time (target within ±3%%); mem term %.5f, mean |disk − RAM| %.2e; "
                     + "%.0f entries read per step", 100 * r.diskOverhead, r.memTermMean, r.memTermMeanAbsDifference,
                     r.entriesReadPerStep))
        print(String(format: "  bank: %.0f bytes per entry in the last generation (float32 image %d B, %.1f× smaller)",
                     r.bankBytesPerEntry, r.float32ImageBytes, Double(r.float32ImageBytes) / max(r.bankBytesPerEntry, 1)))
        print("\ncodecs on the real δ of the last fill epoch (record + 8-byte index slot; "
              + "single-thread MB/s of float32 δ):")
        print("  codec    B/entry  ×float32  max err    bound      enc MB/s  dec MB/s")
        for c in r.codecs {
            print("  " + c.codec.padding(toLength: 7, withPad: " ", startingAt: 0)
                  + String(format: " %8.0f  %7.3f   %9.2e  %9.2e  %8.0f  %8.0f", c.bytesPerEntry, c.fractionOfFloat32Image,
                           c.maxAbsError, c.errorBound, c.encodeMegabytesPerSecond, c.decodeMegabytesPerSecond))
        }
        if let p = r.peakRSSBytes { print(String(format: "\npeak RSS %.1f MiB", Double(p) / 1_048_576)) }
    }
}
