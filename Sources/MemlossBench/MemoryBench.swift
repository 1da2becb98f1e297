// MemoryBench.swift: `memloss bench memory` as a library: the MemLoss training step with the on-disk bank
// against the in-RAM float32 memory, in the same run on the same model (steps interleaved, order
// alternating, same attack seed), and bytes per entry / error / codec throughput for every codec on the δ
// of that real attack. The first K epochs train the model (TRADES + MemLoss through the disk bank) and
// fill K generations in both stores; the measured epoch reads all K for every sample. Optionally dumps the
// float32 δ and clean images of the last fill epoch as .npy for codec analysis (docs/membank.md *Codecs on
// real δ*). Measurement only.

import Attacks
import Datasets
import Foundation
import Kernels
import Layers
import MemoryBank
import Models
import Tensors
import Training

/// What `MemoryBench.run` measures. Defaults: the embedded MNIST subset with SmallCNN×0.5 and TRADES
/// (10 steps of ε/4, ε = 0.3 on 1-channel data, 8/255 otherwise), batch 64, 12 batches, K = 1, q8.
public struct MemoryBenchConfig: Codable, Sendable {
    /// Data source (as for `memloss train`).
    public var data = "demo"
    /// Model name and width multiplier (the model must take the data's images).
    public var model = "smallcnn"
    public var width = 0.5
    public var batch = 64
    /// Batches per epoch (the population is the first batches × batch samples).
    public var batches = 12
    /// Window K (K epochs fill the memory; the next epoch is measured).
    public var window = 1
    /// Codec of the disk bank (`BankCodec` raw value).
    public var codec = "q8"
    /// Attack steps (TRADES KL-PGD, step ε/4).
    public var attackSteps = 10
    /// ε; nil = 0.3 for 1-channel data, 8/255 otherwise.
    public var epsilon: Float?
    /// Directory for the temporary bank (deleted after).
    public var scratch = NSTemporaryDirectory()
    public var seed: UInt64 = 1
    /// When set, the float32 δ of the last fill epoch is written here as `.npy` `[count, C, H, W]`, and
    /// the clean images they were made on next to it (`<stem>-images.npy`), and `<stem>-meta.json` with
    /// each row's sample ID, the generation, ε, α and the start noise's seed and σ (codec analysis).
    public var dumpDeltas: String?
    /// The attack's Gaussian start: false draws it from the step's random stream (the trainer's
    /// default), true makes it the per-sample Tensors.StartNoise of (seed, epoch, sample ID), the
    /// noise the `q8rcn` codec regenerates (its figures are only meaningful then).
    public var perSampleStartNoise = false

    public init() {}
}

/// One store's per-step times, seconds.
public struct MemoryBenchSide: Codable, Sendable {
    public var meanStepSeconds: Double
    public var medianStepSeconds: Double
    public var lookupSeconds: Double
    public var recordSeconds: Double
}


/// What `MemoryBench.run` measured (its JSON is `memloss bench memory --json`).
public struct MemoryBenchReport: Codable, Sendable {
    public var data: String
    public var model: String
    public var shape: [Int]
    public var batch: Int
    public var batches: Int
    public var window: Int
    public var codec: String
    public var epsilon: Float
    public var ram: MemoryBenchSide
    public var disk: MemoryBenchSide
    /// disk mean / ram mean − 1.
    public var diskOverhead: Double
    public var bankWaitSeconds: Double
    public var writerBlockedSeconds: Double
    /// Mean |mem term (disk) − mem term (RAM)| over the measured steps, and the mean term.
    public var memTermMeanAbsDifference: Double
    public var memTermMean: Double
    public var entriesReadPerStep: Double
    public var bankBytesPerEntry: Double
    public var float32ImageBytes: Int
    public var codecs: [BankBench.CodecFigures]
    public var peakRSSBytes: Int?
}

public enum MemoryBenchError: Error, CustomStringConvertible {
    case invalid(String)

    public var description: String {
        switch self {
        case .invalid(let m): return "bench memory: \(m)"
        }
    }
}

/// Runs the memory bench (see the file banner).
public enum MemoryBench {
    public static func run(_ c: MemoryBenchConfig) throws -> MemoryBenchReport {
        let data = c.data, model = c.model, width = c.width, batch = c.batch, batches = c.batches, window = c.window
        let codec = c.codec, attackSteps = c.attackSteps, scratch = c.scratch, seed = c.seed, perSample = c.perSampleStartNoise
        guard batch >= 1, batches >= 1, window >= 1, attackSteps >= 1 else { throw MemoryBenchError.invalid("counts must be ≥ 1") }
        guard let bankCodec = BankCodec(rawValue: codec) else {
            throw MemoryBenchError.invalid("--codec '\(codec)': expected " + BankCodec.allCases.map(\.rawValue).joined(separator: ", "))
        }
        let source: DataSource, dataset: Dataset
        do {
            source = try DataSource(parsing: data)
            dataset = try source.open(.train)
        } catch { throw MemoryBenchError.invalid("\(error)") }
        let eps = c.epsilon ?? (dataset.shape.channels == 1 ? 0.3 : 8 / 255)
        guard eps > 0, eps.isFinite else { throw MemoryBenchError.invalid("ε \(eps) is not a positive number") }
        let spec: ModelSpec
        do { spec = try ModelSpec(parsing: model, classes: dataset.classCount, width: width) } catch { throw MemoryBenchError.invalid("\(error)") }
        guard spec.inputShape == dataset.shape.dimensions else {
            throw MemoryBenchError.invalid("\(spec.name) takes \(spec.inputShape) images but \(data) has \(dataset.shape)")
        }
        let net = spec.build(seed: seed)
        let startSigma: Float = 0.001  // TRADES's Gaussian start (algorithms.md §2.1)
        let attack = PGDConfig(epsilon: eps, stepSize: eps / 4, steps: attackSteps, norm: .linf, randomStart: .gaussian(std: startSigma))
        let method = try makeMethod(.trades(TRADESConfig(attack: attack, beta: 6)), helper: nil)
        let optimizer = SGD(parameters: net.namedParameters, config: SGDConfig(learningRate: 0.02, momentum: 0.9, weightDecay: 0))
        let population = Array(0..<min(batch * batches, dataset.count))
        let loader = BatchLoader(dataset: dataset, augmentation: source.standardAugmentation, seed: seed)

        let diskConfig = MemoryStoreConfig(window: window, codec: bankCodec, kind: .disk)
        var ramConfig = diskConfig
        ramConfig.kind = .ram
        let directory = URL(fileURLWithPath: scratch).appendingPathComponent("memloss-bench-memory-\(getpid())")
        try? FileManager.default.removeItem(at: directory)
        defer { try? FileManager.default.removeItem(at: directory) }
        let ram = RAMMemoryStore(config: ramConfig, sampleCount: dataset.count, shape: dataset.shape.dimensions)
        // The δ's start noise, as the trainer hands it to a q8rcn bank (per-sample starts only).
        let startNoise = perSample ? BankStartNoise(seed: StartNoise(runSeed: seed).seed, sigma: startSigma) : nil
        guard bankCodec != .q8rcn || startNoise != nil else {
            throw MemoryBenchError.invalid("--codec q8rcn regenerates the attack's start noise: add --per-sample-start-noise")
        }
        let disk = try DiskMemoryStore(config: diskConfig, directory: directory, dataset: dataset, epsilon: eps, norm: .linf,
                                       createdBy: "{\"bench\": \"memory\"}", keepThrough: nil,
                                       startNoise: bankCodec == .q8rcn ? startNoise : nil)
        defer { disk.close() }
        let both = MirroredMemoryStore(primary: disk, mirror: ram)
        func trainingStep(_ memory: any MemoryStore) -> TrainingStep {
            var step = TrainingStep(model: net, method: method, optimizer: optimizer, memory: memory, seed: seed)
            if c.perSampleStartNoise { step.startNoise = StartNoise(runSeed: seed) }
            return step
        }
        let fillStep = trainingStep(both), ramStep = trainingStep(ram), diskStep = trainingStep(disk)

        // Fill: K epochs of real training steps with the disk bank's memory, recording into both stores.
        var lastDeltas: [[Float]] = []
        var lastImages: [[Float]] = []
        var lastIDs: [Int] = []
        var step = 0
        for epoch in 0..<window {
            let plan = EpochPlan(population: population, seed: seed, epoch: epoch, batchSize: batch)
            try both.beginEpoch(epoch, plan: plan)
            lastDeltas = []
            lastImages = []
            lastIDs = []
            for b in 0..<plan.batchCount {
                let x = loader.load(ids: plan.batchIDs(b), epoch: epoch, index: b)
                let outcome = try fillStep.run(x, globalStep: step, learningRate: 0.02)
                guard var delta = outcome.adversarial?.copy() else { throw MemoryBenchError.invalid("the method made no adversarial examples") }
                Elementwise.addScaled(&delta, x.images, scale: -1)
                let n = dataset.shape.pixelCount, all = delta.scalars
                for i in 0..<x.count { lastDeltas.append(Array(all[(i * n)..<((i + 1) * n)])) }
                lastIDs += x.ids
                if c.dumpDeltas != nil {
                    let clean = x.images.scalars
                    for i in 0..<x.count { lastImages.append(Array(clean[(i * n)..<((i + 1) * n)])) }
                }
                step += 1
            }
            _ = try both.endEpoch()
        }

        if let path = c.dumpDeltas {
            let shape = [lastDeltas.count] + dataset.shape.dimensions
            try writeNPY(lastDeltas, shape: shape, to: path)
            let stem = path.hasSuffix(".npy") ? String(path.dropLast(4)) : path
            try writeNPY(lastImages, shape: shape, to: stem + "-images.npy")
            // What it takes to re-code the dump offline (q8rcn regenerates each row's start noise).
            var side: [String: Any] = [
                "sampleIDs": lastIDs, "generation": window - 1, "shape": dataset.shape.dimensions,
                "epsilon": Double(eps), "stepSize": Double(attack.stepSize), "attackSteps": attackSteps,
                "startSigma": Double(startSigma), "perSampleStartNoise": perSample,
            ]
            if let noise = startNoise { side["noiseSeed"] = String(noise.seed) }
            let json = try JSONSerialization.data(withJSONObject: side, options: [.sortedKeys])
            do { try json.write(to: URL(fileURLWithPath: stem + "-meta.json"), options: .atomic) } catch {
                throw MemoryBenchError.invalid("--dump-deltas: cannot write \(stem)-meta.json (\(error.localizedDescription))")
            }
        }

        // Measure: the epoch after the fill, both stores on the same frozen model (no update) and the
        // same global step (so the same attack start).
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
                let outcome = try (kind == .ram ? ramStep : diskStep).run(x, globalStep: step, learningRate: 0.02, update: false)
                times[kind]!.append(outcome.seconds.total)
                lookups[kind]! += outcome.seconds.memoryFetch
                records[kind]! += outcome.seconds.record
                terms[kind] = outcome.terms["mem"] ?? 0
                if kind == .disk { entries += outcome.memory?.entriesPresent ?? 0 }
            }
            termDifference += Double(abs(terms[.disk]! - terms[.ram]!))
            termTotal += Double(terms[.ram]!)
            step += 1
        }
        _ = try ram.endEpoch()
        let diskReport = try disk.endEpoch()

        func side(_ k: MemoryStoreKind) -> MemoryBenchSide {
            let t = times[k]!, sorted = t.sorted()
            return MemoryBenchSide(meanStepSeconds: t.reduce(0, +) / Double(t.count), medianStepSeconds: sorted[sorted.count / 2],
                        lookupSeconds: lookups[k]! / Double(t.count), recordSeconds: records[k]! / Double(t.count))
        }
        let r = side(.ram), d = side(.disk), steps = Double(plan.batchCount)
        var codecs: [BankBench.CodecFigures] = []
        for c in BankCodec.allCases {
            let noise = c == .q8rcn ? startNoise : nil
            codecs.append(try BankBench.measureCodec(c, flavour: "trades-\(attackSteps)", deltas: lastDeltas, shape: dataset.shape.dimensions,
                                                     epsilon: eps, startNoise: noise, generation: window - 1, ids: lastIDs))
        }
        return MemoryBenchReport(
            data: data, model: spec.name, shape: dataset.shape.dimensions, batch: batch, batches: plan.batchCount, window: window,
            codec: codec, epsilon: eps, ram: r, disk: d, diskOverhead: d.meanStepSeconds / r.meanStepSeconds - 1,
            bankWaitSeconds: diskReport.bankWaitSeconds, writerBlockedSeconds: diskReport.writerBlockedSeconds,
            memTermMeanAbsDifference: termDifference / steps, memTermMean: termTotal / steps,
            entriesReadPerStep: Double(entries) / steps, bankBytesPerEntry: diskReport.bytesPerEntry,
            float32ImageBytes: dataset.shape.pixelCount * 4, codecs: codecs, peakRSSBytes: SystemStats.processStatus()["VmHWM"])
    }
}

/// Writes rows of float32 values as one NumPy 1.0 `.npy` array (`<f4`, C order) of `shape`.
private func writeNPY(_ rows: [[Float]], shape: [Int], to path: String) throws {
    let dims = shape.map(String.init).joined(separator: ", ") + (shape.count == 1 ? "," : "")
    var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (\(dims)), }"
    // The data starts at a multiple of 64: magic (6) + version (2) + length (2) + header + "\n".
    while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
    header += "\n"
    var bytes: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0, UInt8(header.utf8.count & 0xFF), UInt8(header.utf8.count >> 8)]
    bytes += Array(header.utf8)
    bytes.reserveCapacity(bytes.count + 4 * shape.reduce(1, *))
    for row in rows {
        for v in row {
            let b = v.bitPattern
            for k in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: b >> (8 * k))) }
        }
    }
    do { try Data(bytes).write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
        throw MemoryBenchError.invalid("--dump-deltas: cannot write \(path) (\(error.localizedDescription))\nhint: check that the directory exists and is writable")
    }
}

/// Two memory stores driven as one: the primary's examples feed the step, the mirror follows every
/// call (its examples are fetched and dropped, it records the same adversarial examples), so one
/// `TrainingStep` fills both. The primary's report is returned.
final class MirroredMemoryStore: MemoryStore {
    let primary: any MemoryStore
    let mirror: any MemoryStore

    init(primary: any MemoryStore, mirror: any MemoryStore) {
        precondition(primary.config.window == mirror.config.window && primary.config.stride == mirror.config.stride,
                     "MirroredMemoryStore: the two stores must remember the same window")
        self.primary = primary
        self.mirror = mirror
    }

    var config: MemoryStoreConfig { primary.config }
    var readsWindow: Bool { primary.readsWindow }

    func beginEpoch(_ epoch: Int, plan: EpochPlan, resuming: MemoryCheckpoint?) throws {
        try primary.beginEpoch(epoch, plan: plan, resuming: resuming)
        try mirror.beginEpoch(epoch, plan: plan, resuming: resuming)
    }

    /// The primary's position (the bench never resumes; the mirror is checkpointed alike).
    func checkpoint(batch: Int) throws -> MemoryCheckpoint {
        _ = try mirror.checkpoint(batch: batch)
        return try primary.checkpoint(batch: batch)
    }

    func next(ids: [Int]) throws -> MemoryExamples {
        _ = try mirror.next(ids: ids)
        return try primary.next(ids: ids)
    }

    func record(ids: [Int], views: [ViewParameters], clean: Tensor, adversarial: Tensor, metadata: [EntryMetadata]) throws {
        try primary.record(ids: ids, views: views, clean: clean, adversarial: adversarial, metadata: metadata)
        try mirror.record(ids: ids, views: views, clean: clean, adversarial: adversarial, metadata: metadata)
    }

    func endEpoch() throws -> MemoryEpochReport {
        _ = try mirror.endEpoch()
        return try primary.endEpoch()
    }

    func close() {
        mirror.close()
        primary.close()
    }
}
