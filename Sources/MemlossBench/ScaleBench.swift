// ScaleBench.swift: the out-of-core proof behind `memloss bench scale` (design.md §7 "Scale"): a
// synthetic dataset of N samples on disk (written once, reused), K generations of the disk bank filled
// through the real Bank writer with attack-shaped δ (SurrogatePGD), then S steps of a real MemLoss
// training epoch through DiskMemoryStore that read all K generations for every sample, with peak RSS,
// page cache, bank bytes, waits, step times and the counters that must add up. Orchestration and
// measurement only: the bank, the data pipeline and the method are the library's own.

import Attacks
import Datasets
import Foundation
import Layers
import MemoryBank
import Models
import Tensors
import Training

/// What `ScaleBench` runs. Defaults: CIFAR-shaped samples, ResNet-18 ×1/16, TRADES with a 2-step
/// KL-PGD (a cheap attack, so a step fits the 2-core budget), batch 64, codec `levels`, fsync on seal.
///
/// Batch 64, not 128: the MemLoss term is one training-mode forward/backward over the B·K remembered
/// examples (BatchNorm statistics over all of them), so a step's activations are O(B·K) whatever N is;
/// at K = 8 and B = 128 that working set alone measured ≈ 0.8 GiB (docs/scale.md).
public struct ScaleBenchConfig: Codable, Sendable {
    /// N, samples in the synthetic set (every one gets an entry in each filled generation).
    public var sampleCount: Int
    /// K, window slots: generations 0…K−1 are filled, epoch K is measured and reads all K.
    public var window: Int
    public var shape: ImageShape
    public var classCount = 10
    /// Seed of the synthetic data (part of the dataset file's identity).
    public var dataSeed: UInt64 = 0
    /// Seed of orders, views, the surrogate scorer, the model and the attack.
    public var seed: UInt64 = 1
    /// `ModelSpec` name and width multiplier; the model must take `shape`.
    public var model = "resnet18"
    public var width = 0.0625
    /// `trades` (β = 6, KL-PGD from 0.001·N(0,1)) or `pgd-at` (CE-PGD from a uniform start).
    public var method = "trades"
    /// Steps of the training attack (α = ε/4).
    public var attackSteps = 2
    /// ε, L∞, in [0, 1] pixel units.
    public var epsilon: Float = 8 / 255
    public var batchSize = 64
    /// S, measured training steps (batches of epoch K's order; capped at the epoch's batch count).
    public var steps = 20
    /// Sign steps of the fill's SurrogatePGD, of α = ε/2 (three steps reach ±ε and leave at most 7
    /// levels: few levels and saturation, like a real PGD, at a cost a million samples × K allow).
    public var fillSteps = 3
    public var codec: BankCodec = .levels
    /// Views of the data (the trainer's crop + flip by default).
    public var augmentation: AugmentationConfig = .cifar
    /// The `.mlds` file: reused when its header matches (N, shape, classes, seed), written otherwise.
    public var dataPath: String
    /// The bank directory; any bank already there is deleted first.
    public var bankDirectory: String
    /// fsync segments and the directory on seal (the real writer's durability).
    public var sync = true
    /// `Dataset.residentBudget` and the bank prefetcher's `residentBudget`, bytes: how much mapped
    /// file RSS each may hold before its pages are dropped. 32 MiB each: at N = 10⁶, K = 1 the dataset's
    /// 128 MiB default plus the bank's then 256 MiB raised peak RSS from 240 to 575 MiB for the same step
    /// time (docs/scale.md §4).
    public var datasetResidentBudget = 32 << 20
    public var bankResidentBudget = BankPrefetcher.defaultResidentBudget
    /// Ring slots of the data and bank prefetchers.
    public var prefetchDepth = 3
    /// SGD learning rate of the measured steps.
    public var learningRate: Float = 0.02

    public init(sampleCount: Int, window: Int, shape: ImageShape = ImageShape(channels: 3, height: 32, width: 32),
                dataPath: String, bankDirectory: String) {
        self.sampleCount = sampleCount
        self.window = window
        self.shape = shape
        self.dataPath = dataPath
        self.bankDirectory = bankDirectory
    }

    /// The dataset file name the CLI uses under its scratch directory: one file per (N, shape, classes, seed).
    public static func dataFileName(count: Int, shape: ImageShape, classCount: Int, seed: UInt64) -> String {
        "synthetic-n\(count)-\(shape.channels)x\(shape.height)x\(shape.width)-c\(classCount)-s\(seed).mlds"
    }
}

public enum ScaleBenchError: Error, CustomStringConvertible {
    case invalid(String)
    case datasetMismatch(path: String, found: String, expected: String)
    case incompleteWindow(step: Int, present: Int, expected: Int, absent: Int, corrupt: Int)
    case countersDisagree(String)

    public var description: String {
        switch self {
        case .invalid(let m): return "bench scale: \(m)"
        case .datasetMismatch(let p, let f, let e):
            return "bench scale: \(p) holds \(f), expected \(e)\nhint: delete the file or pass another --scratch"
        case .incompleteWindow(let s, let p, let e, let a, let c):
            return "bench scale: step \(s) found \(p) of \(e) memory entries (\(a) absent, \(c) damaged): the K generations are not all full"
        case .countersDisagree(let m): return "bench scale: counters disagree: \(m)"
        }
    }
}

/// What `ScaleBench.run` measured. Sizes in bytes, times in seconds.
public struct ScaleBenchReport: Codable, Sendable {
    public struct DatasetPart: Codable, Sendable {
        public var path: String
        public var bytes: Int
        public var reused: Bool
        public var writeSeconds: Double
    }

    public struct FillPart: Codable, Sendable {
        /// How the δ were made (SurrogatePGD.description).
        public var method: String
        public var generations: Int
        public var entriesWritten: Int
        public var seconds: Double
        /// Segment file size per filled generation.
        public var generationBytes: [Int]
        /// Mean bytes per entry (record + index slot) over the filled generations.
        public var bytesPerEntry: Double
        /// Seconds `append` waited on the writer's full queue.
        public var writerBlockedSeconds: Double
        public var peakQueuedEntries: Int
    }

    public struct EpochPart: Codable, Sendable {
        /// The epoch (= K), its method, model and parameter count.
        public var epoch: Int
        public var method: String
        public var model: String
        public var parameters: Int
        public var steps: Int
        public var samplesTrained: Int
        public var entriesRead: Int
        public var entriesAbsent: Int
        public var entriesCorrupt: Int
        /// Entries of generation K written by the measured steps, and that generation's bytes per entry
        /// (the real attack's δ, for comparison with the fill's): the segment's size minus the index
        /// slots of the N − S·B samples not trained, per entry written.
        public var entriesWritten: Int
        public var bytesPerEntry: Double
        /// Per-step means: waiting for the data prefetcher, waiting for the bank prefetcher (x′ rebuilt),
        /// and the whole step (waits + attack + losses + backward + SGD + record).
        public var dataWaitSeconds: Double
        public var bankWaitSeconds: Double
        public var meanStepSeconds: Double
        /// Median step time over steps 2…S (the first step warms caches and allocations).
        public var medianStepSeconds: Double
        /// batch / median step time.
        public var imagesPerSecond: Double
        public var writerBlockedSeconds: Double
    }

    public struct MemoryPart: Codable, Sendable {
        /// VmHWM over the fill and over the measured epoch (each reset to the RSS at its start), and the larger.
        public var peakRSSFill: Int
        public var peakRSSEpoch: Int
        public var peakRSS: Int
        /// True when VmHWM could be reset (otherwise the peaks include everything before, e.g. the data write).
        public var peakReset: Bool
        /// VmHWM while the dataset was written (0 when it was reused).
        public var peakRSSDatasetWrite: Int
        public var rssAtStart: Int
        /// Largest anonymous (heap) and file-backed (mapped dataset/bank pages) RSS sampled after
        /// every fill batch and every step: VmHWM is their sum's peak, these say which part it was.
        public var rssAnonMaxSampled: Int
        public var rssFileMaxSampled: Int
        public var rssAnonAtEnd: Int
        public var rssFileAtEnd: Int
        /// System-wide page cache (/proc/meminfo Cached): at the start, the largest value sampled
        /// (after every filled generation and every step), at the end.
        public var pageCacheAtStart: Int
        public var pageCacheMax: Int
        public var pageCacheAtEnd: Int
    }

    public struct BankPart: Codable, Sendable {
        /// Bytes on disk of the K generations the measured epoch read, and per entry.
        public var windowBytes: Int
        public var bytesPerEntry: Double
        /// The same N·K entries as float32 images in RAM: N·K·C·H·W·4.
        public var float32Bytes: Int
        /// windowBytes / float32Bytes.
        public var fractionOfFloat32: Double
        /// Every file of the bank directory after the measured epoch (retention applied).
        public var directoryBytesAtEnd: Int
        /// Live generations after the measured epoch.
        public var generationsAtEnd: [Int]
    }

    public var config: ScaleBenchConfig
    public var dataset: DatasetPart
    public var fill: FillPart
    public var epoch: EpochPart
    public var memory: MemoryPart
    public var bank: BankPart
    /// fill.entriesWritten + epoch.entriesWritten (= N·K + samples trained) and
    /// epoch.entriesRead (= samples trained · K): checked by `run`.
    public var entriesWrittenTotal: Int
}

/// Runs the scale bench (see the file banner). One at a time per bank directory.
public enum ScaleBench {
    /// Progress lines for long runs (the library never prints).
    public typealias Progress = @Sendable (String) -> Void

    public static func run(_ config: ScaleBenchConfig, progress: Progress = { _ in }) throws -> ScaleBenchReport {
        try validate(config)
        let (dataset, datasetPart, writePeak) = try prepareDataset(config, progress: progress)
        dataset.residentBudget = config.datasetResidentBudget
        let loader = BatchLoader(dataset: dataset, augmentation: config.augmentation, seed: config.seed)
        let bankURL = URL(fileURLWithPath: config.bankDirectory)
        try? FileManager.default.removeItem(at: bankURL)
        let memConfig = MemoryStoreConfig(window: config.window, codec: config.codec, kind: .disk)
        var pageCacheMax = SystemStats.pageCacheBytes ?? 0, anonMax = 0, fileMax = 0
        let pageCacheAtStart = pageCacheMax
        let sample = {
            pageCacheMax = max(pageCacheMax, SystemStats.pageCacheBytes ?? 0)
            let status = SystemStats.processStatus()
            anonMax = max(anonMax, status["RssAnon"] ?? 0)
            fileMax = max(fileMax, status["RssFile"] ?? 0)
        }
        let rssAtStart = SystemStats.currentRSSBytes
        let peakReset = SystemStats.resetPeakRSS()

        let store = try DiskMemoryStore(config: memConfig, directory: bankURL, dataset: dataset, epsilon: config.epsilon,
                                        norm: .linf, createdBy: "{\"bench\": \"scale\"}", keepThrough: nil,
                                        options: Bank.Options(sync: config.sync))
        defer { store.close() }
        store.prefetchDepth = config.prefetchDepth
        store.residentBudget = config.bankResidentBudget

        let fill = try fillGenerations(config, bank: store.bank, loader: loader, progress: progress, sample: sample)
        let peakFill = SystemStats.peakRSSBytes
        let windowBytes = fill.generationBytes.reduce(0, +)
        if peakReset { SystemStats.resetPeakRSS() }

        let epoch = try measuredEpoch(config, store: store, loader: loader, progress: progress, sample: sample)
        let peakEpoch = SystemStats.peakRSSBytes
        let status = SystemStats.processStatus()
        let pageCacheAtEnd = SystemStats.pageCacheBytes ?? 0
        let generationsAtEnd = store.bank.generations
        let directoryBytes = DiskMemoryStore.bytesOnDisk(bankURL)

        // The counters must add up: every filled generation holds all N, every trained sample read K.
        let n = config.sampleCount, k = config.window
        guard fill.entriesWritten == n * k else {
            throw ScaleBenchError.countersDisagree("fill wrote \(fill.entriesWritten) entries, N·K = \(n * k)")
        }
        guard epoch.entriesRead == epoch.samplesTrained * k, epoch.entriesWritten == epoch.samplesTrained else {
            throw ScaleBenchError.countersDisagree("epoch read \(epoch.entriesRead) and wrote \(epoch.entriesWritten) entries "
                                                   + "for \(epoch.samplesTrained) samples trained with K = \(k)")
        }
        let float32Bytes = n * k * config.shape.pixelCount * 4
        return ScaleBenchReport(
            config: config, dataset: datasetPart, fill: fill, epoch: epoch,
            memory: .init(peakRSSFill: peakFill, peakRSSEpoch: peakEpoch, peakRSS: max(peakFill, peakEpoch), peakReset: peakReset,
                          peakRSSDatasetWrite: writePeak, rssAtStart: rssAtStart,
                          rssAnonMaxSampled: anonMax, rssFileMaxSampled: fileMax, rssAnonAtEnd: status["RssAnon"] ?? 0,
                          rssFileAtEnd: status["RssFile"] ?? 0, pageCacheAtStart: pageCacheAtStart,
                          pageCacheMax: max(pageCacheMax, pageCacheAtEnd), pageCacheAtEnd: pageCacheAtEnd),
            bank: .init(windowBytes: windowBytes, bytesPerEntry: Double(windowBytes) / Double(max(n * k, 1)),
                        float32Bytes: float32Bytes, fractionOfFloat32: Double(windowBytes) / Double(max(float32Bytes, 1)),
                        directoryBytesAtEnd: directoryBytes, generationsAtEnd: generationsAtEnd),
            entriesWrittenTotal: fill.entriesWritten + epoch.entriesWritten)
    }

    static func validate(_ c: ScaleBenchConfig) throws {
        guard c.sampleCount >= 1, c.window >= 1, c.batchSize >= 1, c.steps >= 1, c.attackSteps >= 1, c.fillSteps >= 1 else {
            throw ScaleBenchError.invalid("N, K, batch, steps, attack steps and fill steps must be ≥ 1")
        }
        guard c.epsilon > 0, c.epsilon.isFinite else { throw ScaleBenchError.invalid("ε must be > 0") }
        guard c.method == "trades" || c.method == "pgd-at" else {
            throw ScaleBenchError.invalid("method '\(c.method)': expected trades or pgd-at")
        }
    }

    // MARK: - Dataset

    /// Opens `config.dataPath` if its header matches, else writes it (to a temporary name, then renamed,
    /// so an interrupted write is never reused). Returns the dataset, its report part and the write's VmHWM.
    static func prepareDataset(_ c: ScaleBenchConfig, progress: Progress) throws -> (Dataset, ScaleBenchReport.DatasetPart, Int) {
        let spec = SyntheticSpec(count: c.sampleCount, shape: c.shape, classCount: c.classCount, seed: c.dataSeed)
        let expected = "\(spec.count) × \(spec.shape), \(spec.classCount) classes, synthetic-v1 seed \(spec.seed)"
        var reused = true, seconds = 0.0, peak = 0
        if !FileManager.default.fileExists(atPath: c.dataPath) {
            reused = false
            progress("writing \(expected) to \(c.dataPath) (\(spec.fileSize) bytes)")
            try FileManager.default.createDirectory(atPath: (c.dataPath as NSString).deletingLastPathComponent,
                                                    withIntermediateDirectories: true)
            let reset = SystemStats.resetPeakRSS()
            let t0 = SystemStats.now
            let temporary = c.dataPath + ".tmp"
            try? FileManager.default.removeItem(atPath: temporary)
            try SyntheticGenerator(spec).write(to: temporary)
            try FileManager.default.moveItem(atPath: temporary, toPath: c.dataPath)
            seconds = SystemStats.now - t0
            peak = reset ? SystemStats.peakRSSBytes : 0
        }
        let dataset = try Dataset.openMLDS(file: c.dataPath)
        let found = "\(dataset.count) × \(dataset.shape), \(dataset.classCount) classes, "
            + (dataset.syntheticSeed.map { "synthetic-v1 seed \($0)" } ?? "not synthetic-v1")
        guard found == expected, dataset.byteCount == spec.fileSize else {
            throw ScaleBenchError.datasetMismatch(path: c.dataPath, found: found, expected: expected)
        }
        return (dataset, .init(path: c.dataPath, bytes: dataset.byteCount, reused: reused, writeSeconds: seconds), peak)
    }

    // MARK: - Fill

    /// Salt of the fill's per-(generation, batch) threshold streams.
    static let fillSalt: UInt64 = 0x6669_6C6C_7363_616C  // "fillscal"

    /// Writes generations 0…K−1: for each, every sample once, in that epoch's order, its δ made by
    /// SurrogatePGD on the view the trainer would draw for it in that epoch, appended through the Bank
    /// writer (bounded queue, background encoder) and sealed (index, fsync, rename, manifest).
    static func fillGenerations(_ c: ScaleBenchConfig, bank: Bank, loader: BatchLoader, progress: Progress,
                                sample: () -> Void) throws -> ScaleBenchReport.FillPart {
        let attack = SurrogatePGD(shape: c.shape.dimensions, epsilon: c.epsilon, stepSize: c.epsilon / 2, steps: c.fillSteps, seed: c.seed)
        let neutral = 1 / Float(c.classCount)
        var sizes: [Int] = [], records = 0, recordBytes = 0
        let blockedBefore = bank.statistics.appendBlockedSeconds
        let t0 = SystemStats.now
        for g in 0..<c.window {
            let tg = SystemStats.now
            let plan = EpochPlan(count: c.sampleCount, seed: c.seed, epoch: g, batchSize: c.batchSize)
            try bank.beginGeneration(g)
            // Views are read and rendered on the data prefetcher's thread, as in training.
            let data = Prefetcher(loader: loader, plan: plan, depth: c.prefetchDepth)
            defer { data.cancel() }
            while let batch = try data.next() {
                let b = batch.index
                var rng = SplitMix64.derived(seed: c.seed ^ fillSalt, stream: UInt64(g) << 40 | UInt64(b))
                let delta = attack.perturb(batch.images, rng: &rng)
                // The fill's entries carry neutral metadata (p_y = 1/classes): the scorer is not the model.
                let metadata = batch.labels.map { EntryMetadata(label: $0, pY: neutral, margin: 0, loss: 0) }
                try bank.append(ids: batch.ids, deltas: delta, views: batch.views, metadata: metadata)
                sample()
            }
            let s = try bank.sealGeneration()
            sizes.append(s.fileBytes)
            records += s.records
            recordBytes += s.recordBytes + 8 * s.records
            progress(String(format: "filled generation %d/%d: %d entries, %.0f B/entry, %.1f s",
                            g + 1, c.window, s.records, s.bytesPerEntry, SystemStats.now - tg))
        }
        let stats = bank.statistics
        return .init(method: attack.description, generations: c.window, entriesWritten: records, seconds: SystemStats.now - t0,
                     generationBytes: sizes, bytesPerEntry: Double(recordBytes) / Double(max(records, 1)),
                     writerBlockedSeconds: stats.appendBlockedSeconds - blockedBefore, peakQueuedEntries: stats.peakQueued)
    }

    // MARK: - Measured epoch

    /// Epoch K: S real MemLoss training steps through the data prefetcher and DiskMemoryStore, each
    /// required to find all B·K memory entries.
    static func measuredEpoch(_ c: ScaleBenchConfig, store: DiskMemoryStore, loader: BatchLoader, progress: Progress,
                              sample: () -> Void) throws -> ScaleBenchReport.EpochPart {
        let spec = try ModelSpec(parsing: c.model, classes: c.classCount, width: c.width)
        guard spec.inputShape == c.shape.dimensions else {
            throw ScaleBenchError.invalid("\(spec.name) takes \(spec.inputShape) images, the data is \(c.shape)")
        }
        let net = spec.build(seed: c.seed)
        let method: MethodConfig
        if c.method == "trades" {
            let attack = PGDConfig(epsilon: c.epsilon, stepSize: c.epsilon / 4, steps: c.attackSteps, norm: .linf,
                                   randomStart: .gaussian(std: 0.001))
            method = .trades(TRADESConfig(attack: attack, beta: TRADESConfig.defaultBeta))
        } else {
            let attack = PGDConfig(epsilon: c.epsilon, stepSize: c.epsilon / 4, steps: c.attackSteps, norm: .linf, randomStart: .uniform)
            method = .pgdAT(PGDATConfig(attack: attack))
        }
        let trainer = try makeMethod(method, helper: nil)
        let optimizer = SGD(parameters: net.namedParameters, config: SGDConfig(learningRate: c.learningRate, momentum: 0.9, weightDecay: 0))
        let k = c.window, epoch = c.window
        let plan = EpochPlan(count: c.sampleCount, seed: c.seed, epoch: epoch, batchSize: c.batchSize)
        let steps = min(c.steps, plan.batchCount)
        let data = Prefetcher(loader: loader, plan: plan, depth: c.prefetchDepth)
        defer { data.cancel() }
        try store.beginEpoch(epoch, plan: plan)
        var times: [Double] = [], bankWait = 0.0, trained = 0
        let trainingStep = TrainingStep(model: net, method: trainer, optimizer: optimizer, memory: store, seed: c.seed)
        for step in 0..<steps {
            let t0 = SystemStats.now
            guard let batch = try data.next() else { break }
            let outcome = try trainingStep.run(batch, globalStep: step, learningRate: c.learningRate)
            bankWait += outcome.seconds.memoryFetch
            let present = outcome.memory?.entriesPresent ?? 0, corrupt = outcome.memory?.problems.count ?? 0
            guard present == batch.count * k else {
                throw ScaleBenchError.incompleteWindow(step: step, present: present, expected: batch.count * k,
                                                       absent: batch.count * k - present - corrupt, corrupt: corrupt)
            }
            guard outcome.adversarial != nil else {
                throw ScaleBenchError.invalid("the method returned no adversarial examples to record")
            }
            times.append(SystemStats.now - t0)
            trained += batch.count
            sample()
            if (step + 1) % 10 == 0 || step + 1 == steps {
                progress(String(format: "step %d/%d: %.3f s, loss %.3f, mem %.4f", step + 1, steps, times.last!, outcome.loss,
                                outcome.terms["mem"] ?? 0))
            }
        }
        let dataWait = data.statistics.consumerWaitSeconds
        data.cancel()
        let report = try store.endEpoch()
        let measured = times.count > 1 ? Array(times.dropFirst()) : times
        let median = measured.sorted()[measured.count / 2]
        let count = Double(max(times.count, 1))
        return .init(epoch: epoch, method: "\(method.name) (\(c.attackSteps)-step attack, α = ε/4) + MemLoss K = \(k)",
                     model: spec.name, parameters: net.parameterCount, steps: times.count, samplesTrained: trained,
                     entriesRead: report.entriesPresent, entriesAbsent: report.entriesAbsent, entriesCorrupt: report.entriesCorrupt,
                     entriesWritten: report.entriesWritten,
                     // The segment's dense index has a slot per sample ID; the S·B entries written use S·B of them.
                     bytesPerEntry: Double(report.generationBytes - 8 * (c.sampleCount - report.entriesWritten))
                         / Double(max(report.entriesWritten, 1)),
                     dataWaitSeconds: dataWait / count, bankWaitSeconds: bankWait / count,
                     meanStepSeconds: times.reduce(0, +) / count, medianStepSeconds: median,
                     imagesPerSecond: Double(c.batchSize) / median, writerBlockedSeconds: report.writerBlockedSeconds)
    }
}
