// StepBench.swift: `memloss bench step` as a library: times the real `TrainingStep` of one method on
// one model, fed by the real data path (Datasets' Prefetcher over a temporary synthetic `.mlds` set of
// the model's shape), warm-up steps excluded, and splits each step into phases (PassProfiler on the
// model, StepOutcome's own times, the data wait) and the time of each kernel family (KernelProfile).
// With MemLoss, a temporary disk bank is first filled with K generations by real steps. Measurement
// only: the step, the method, the data path and the bank are the library's own.

import Attacks
import Datasets
import Foundation
import Kernels
import Layers
import MemoryBank
import Models
import Tensors
import Training

/// What `StepBench.run` measures. Defaults: TRADES on SmallCNN ×1, batch 128, a 10-step attack, 5
/// timed steps after 1 warm-up step, no MemLoss.
public struct StepBenchConfig: Codable, Sendable, Equatable {
    /// `trades`, `pgd-at`, `mart` or `standard` (`StepBench.methods`), with the method's default ε,
    /// step size, β and random start (MethodConfig.defaultConfig).
    public var method = "trades"
    /// A `ModelSpec` name (`smallcnn`, `resnet18`, `preactresnet18`, `wrn-D-K`) and width multiplier;
    /// the data take the model's input shape (SmallCNN 1×28×28, the ResNets 3×32×32), 10 classes.
    public var model = "smallcnn"
    public var width = 1.0
    /// B, images per step (≥ 1).
    public var batch = 128
    /// Steps of the training attack (≥ 1; unused by `standard`).
    public var attackSteps = 10
    /// Adds the MemLoss term over a disk bank of `memoryWindow` = K generations (filled first).
    public var memLoss = false
    public var memoryWindow = 1
    /// Timed steps (≥ 1) and untimed warm-up steps before them (≥ 0).
    public var steps = 5
    public var warmup = 1
    /// Times the steps with the pass and kernel profilers attached (false: only the data wait, bank
    /// wait, bank record and optimizer phases are split out; the rest is "other").
    public var profile = true
    /// Seed of the synthetic data, the orders, the model and the attack.
    public var seed: UInt64 = 1
    /// Directory for the temporary dataset and bank (both deleted after).
    public var scratch = NSTemporaryDirectory()

    public init() {}

    /// Throws `StepBenchError.invalid` naming the first bad field and what it must be.
    public func validate() throws {
        func check(_ ok: Bool, _ field: String, _ found: Any, _ expected: String) throws {
            if !ok { throw StepBenchError.invalid(field: field, found: "\(found)", expected: expected) }
        }
        try check(StepBench.methods.contains(method), "method", method, StepBench.methods.joined(separator: ", "))
        do { _ = try ModelSpec(parsing: model, classes: StepBench.classCount, width: width) } catch {
            throw StepBenchError.model(error)
        }
        try check(batch >= 1, "batch", batch, "an integer ≥ 1")
        try check(attackSteps >= 1, "attack-steps", attackSteps, "an integer ≥ 1")
        try check(steps >= 1, "steps", steps, "an integer ≥ 1")
        try check(warmup >= 0, "warmup", warmup, "an integer ≥ 0")
        try check(!memLoss || memoryWindow >= 1, "mem-k", memoryWindow, "an integer ≥ 1")
    }
}

public enum StepBenchError: Error, CustomStringConvertible, Equatable {
    /// A flag's value is out of range: the flag, what was given, what it must be.
    case invalid(field: String, found: String, expected: String)
    /// `--model` / `--width` name no model (ModelSpec's own message says which and why).
    case model(ModelSpecError)
    /// The run itself failed (scratch directory, data, bank).
    case failed(String)

    public var description: String {
        switch self {
        case .invalid(let f, let found, let e): return "bench step: --\(f) '\(found)': expected \(e)"
        case .model(let e): return "bench step: --model/--width: \(e)"
        case .failed(let m): return "bench step: \(m)"
        }
    }
}

/// What `StepBench.run` measured (its JSON is `memloss bench step --json`). Seconds throughout.
public struct StepBenchReport: Codable, Sendable {
    /// Median, fastest and slowest of the timed steps (data wait included), and each one.
    public var medianStepSeconds: Double
    public var minStepSeconds: Double
    public var maxStepSeconds: Double
    public var steps: Int
    public var stepSeconds: [Double]
    /// batch / median step.
    public var imagesPerSecond: Double
    public var settings: Settings
    /// Phase name (`StepBench.phaseNames`) → median seconds over the timed steps; `other` is the
    /// median step minus the others, so the phases sum to `medianStepSeconds`.
    public var phases: [String: Double]
    /// Kernel family (`KernelFamily.description`) → per-step mean figures (empty when not profiled).
    public var kernels: [String: KernelFigures]
    public var cpu: CPUInfo
    /// `Parallel.workerCount`.
    public var workers: Int
    /// `BLAS.configurationDescription`.
    public var blas: String
    /// ISO 8601, UTC, when the run started.
    public var date: String
    /// Mean per timed step: memory entries the MemLoss term used and the bank found (nil without MemLoss).
    public var memory: MemoryFigures?
    /// Total loss of the last timed step.
    public var lastLoss: Float
    /// Large tensor buffers per timed step (`Tensors.StoragePool`): taken from the pool (`hits`) or
    /// newly allocated (`misses`: after the warm-up a step should need none), and the bytes the pool
    /// held unused after the last step.
    public var tensorPool: TensorPoolFigures

    public struct TensorPoolFigures: Codable, Sendable, Equatable {
        public var hitsPerStep: Double
        public var missesPerStep: Double
        public var retainedBytes: Int
    }

    public struct Settings: Codable, Sendable, Equatable {
        public var config: StepBenchConfig
        /// The resolved model name, its `[C, H, W]`, parameter count and forward MACs per image.
        public var model: String
        public var inputShape: [Int]
        public var parameters: Int
        public var forwardMACsPerImage: Int
        /// The method's attack ε and step size (nil for standard training).
        public var epsilon: Float?
        public var stepSize: Float?
    }

    public struct KernelFigures: Codable, Sendable, Equatable {
        /// Seconds and calls per timed step (means), and 2·MACs/seconds in 10⁹/s (nil for the families
        /// that count no MACs; JSON null).
        public var seconds: Double
        public var calls: Double
        public var gflops: Double?

        enum CodingKeys: String, CodingKey { case seconds, calls, gflops }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(seconds, forKey: .seconds)
            try c.encode(calls, forKey: .calls)
            if let gflops { try c.encode(gflops, forKey: .gflops) } else { try c.encodeNil(forKey: .gflops) }
        }
    }

    public struct CPUInfo: Codable, Sendable, Equatable {
        /// /proc/cpuinfo `model name` and `cpu family` of the first processor ("unknown" elsewhere).
        public var model: String
        public var family: String
        /// The vector width the conv kernels were built for (`Kernels.VectorISA`), e.g. "AVX-512
        /// (16-lane conv kernels)"; nil in reports written before it was recorded.
        public var kernels: String?
    }

    public struct MemoryFigures: Codable, Sendable, Equatable {
        public var entriesUsedPerStep: Double
        public var entriesPresentPerStep: Double
    }
}

/// Runs the step bench (see the file banner). One at a time per process (KernelProfile is global).
public enum StepBench {
    public static let methods = ["trades", "pgd-at", "mart", "standard"]
    public static let classCount = 10
    /// Report order of the phases; they partition the step.
    public static let phaseNames = ["attackForward", "attackBackward", "outerForward", "outerBackward", "memLoss",
                                    "optimizer", "dataWait", "bankWait", "bankRecord", "other"]
    /// SGD of the timed steps (the trainer's CIFAR defaults; the figures do not depend on them).
    static let sgd = SGDConfig(learningRate: 0.02, momentum: 0.9, weightDecay: 5e-4)
    /// Data prefetcher ring slots (the trainer's default).
    static let prefetchDepth = 3

    public static func run(_ c: StepBenchConfig) throws -> StepBenchReport {
        try c.validate()
        let date = ISO8601DateFormatter().string(from: Date())
        let spec = try ModelSpec(parsing: c.model, classes: classCount, width: c.width)
        guard var methodConfig = MethodConfig.defaultConfig(named: c.method) else {
            throw StepBenchError.invalid(field: "method", found: c.method, expected: methods.joined(separator: ", "))
        }
        if var attack = methodConfig.attack {
            attack.steps = c.attackSteps
            methodConfig.attack = attack
        }
        let method = try makeMethod(methodConfig, helper: nil)
        let net = spec.build(seed: c.seed)
        let optimizer = SGD(parameters: net.namedParameters, config: sgd)

        // The data: a temporary synthetic set of the model's shape, one batch per step of an epoch.
        let shape = ImageShape(channels: spec.inputShape[0], height: spec.inputShape[1], width: spec.inputShape[2])
        let stepsPerEpoch = c.warmup + c.steps
        let directory = URL(fileURLWithPath: c.scratch).appendingPathComponent("memloss-bench-step-\(getpid())")
        try? FileManager.default.removeItem(at: directory)
        defer { try? FileManager.default.removeItem(at: directory) }
        let dataset: Dataset
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            dataset = try Dataset.makeSynthetic(SyntheticSpec(count: c.batch * stepsPerEpoch, shape: shape, classCount: classCount,
                                                              seed: c.seed),
                                                path: directory.appendingPathComponent("data.mlds").path)
        } catch { throw StepBenchError.failed("cannot write the synthetic data under \(c.scratch): \(error)") }
        let loader = BatchLoader(dataset: dataset, augmentation: shape.channels == 3 ? .cifar : .none, seed: c.seed)

        var store: DiskMemoryStore?
        if c.memLoss {
            store = try DiskMemoryStore(config: MemoryStoreConfig(window: c.memoryWindow, kind: .disk),
                                        directory: directory.appendingPathComponent("bank"), dataset: dataset,
                                        epsilon: methodConfig.attack?.epsilon ?? 8 / 255, norm: .linf,
                                        createdBy: "{\"bench\": \"step\"}", keepThrough: nil)
        }
        defer { store?.close() }
        let step = TrainingStep(model: net, method: method, optimizer: optimizer, memory: store, seed: c.seed)
        var globalStep = 0

        // MemLoss: epochs 0…K−1 fill the bank with real steps; epoch K is the measured one and reads all K.
        let measuredEpoch = c.memLoss ? c.memoryWindow : 0
        for epoch in 0..<measuredEpoch {
            try runEpoch(epoch, c: c, loader: loader, store: store) { batch in
                _ = try step.run(try batch.wait(), globalStep: globalStep, learningRate: sgd.learningRate)
                globalStep += 1
            }
        }

        let profiler = PassProfiler()
        var samples: [StepSample] = []
        var kernelTotals: [KernelFamily: KernelCounters] = [:]
        var lastLoss: Float = 0
        var poolHits = 0, poolMisses = 0
        try runEpoch(measuredEpoch, c: c, loader: loader, store: store) { batch in
            let timed = globalStep >= measuredEpoch * stepsPerEpoch + c.warmup
            let profiled = timed && c.profile
            if profiled {
                profiler.reset()
                net.profiler = profiler
                KernelProfile.start()
            }
            defer { net.profiler = nil; KernelProfile.stop() }
            let waited = try batch.wait()
            let pool0 = StoragePool.statistics
            let t0 = SystemStats.now
            let outcome = try step.run(waited, globalStep: globalStep, learningRate: sgd.learningRate)
            let runSeconds = SystemStats.now - t0
            let pool1 = StoragePool.statistics
            globalStep += 1
            guard timed else { return }
            poolHits += pool1.hits - pool0.hits; poolMisses += pool1.misses - pool0.misses
            if profiled {
                net.profiler = nil
                KernelProfile.stop()
                for (f, k) in KernelProfile.snapshot() {
                    var t = kernelTotals[f] ?? KernelCounters()
                    t.nanoseconds += k.nanoseconds; t.calls += k.calls; t.macs += k.macs
                    kernelTotals[f] = t
                }
            }
            var kept = outcome
            kept.adversarial = nil   // the figures only: holding every step's batch would allocate anew each step
            samples.append(StepSample(dataWait: batch.waitSeconds, runSeconds: runSeconds, outcome: kept,
                                      profiler: profiled ? profiler : nil))
            lastLoss = outcome.loss
        }
        guard !samples.isEmpty else { throw StepBenchError.failed("no step was timed") }

        let totals = samples.map(\.total), sortedTotals = totals.sorted()
        let medianStep = median(totals)
        var phases: [String: Double] = [:]
        for name in phaseNames where name != "other" { phases[name] = median(samples.map { $0.phases[name] ?? 0 }) }
        phases["other"] = medianStep - phases.values.reduce(0, +)
        let n = Double(samples.count)
        var kernels: [String: StepBenchReport.KernelFigures] = [:]
        for (f, k) in kernelTotals {
            kernels[f.description] = .init(seconds: k.seconds / n, calls: Double(k.calls) / n, gflops: f.countsMACs ? k.gflops : nil)
        }
        let memory: StepBenchReport.MemoryFigures? = c.memLoss
            ? .init(entriesUsedPerStep: Double(samples.reduce(0) { $0 + ($1.outcome.memory?.entriesUsed ?? 0) }) / n,
                    entriesPresentPerStep: Double(samples.reduce(0) { $0 + ($1.outcome.memory?.entriesPresent ?? 0) }) / n)
            : nil
        let settings = StepBenchReport.Settings(
            config: c, model: spec.name, inputShape: spec.inputShape, parameters: net.parameterCount,
            forwardMACsPerImage: ModelSpec.forwardMACs(of: net), epsilon: methodConfig.attack?.epsilon,
            stepSize: methodConfig.attack?.stepSize)
        return StepBenchReport(
            medianStepSeconds: medianStep, minStepSeconds: sortedTotals.first!, maxStepSeconds: sortedTotals.last!,
            steps: samples.count, stepSeconds: totals, imagesPerSecond: Double(c.batch) / medianStep, settings: settings,
            phases: phases, kernels: kernels, cpu: cpuInfo(), workers: Parallel.workerCount,
            blas: BLAS.configurationDescription, date: date, memory: memory, lastLoss: lastLoss,
            tensorPool: .init(hitsPerStep: Double(poolHits) / n, missesPerStep: Double(poolMisses) / n,
                              retainedBytes: StoragePool.statistics.retainedBytes))
    }

    /// The median (mean of the two middle values for an even count); 0 for none.
    static func median(_ values: [Double]) -> Double {
        guard !values.isEmpty else { return 0 }
        let s = values.sorted(), m = s.count / 2
        return s.count % 2 == 1 ? s[m] : (s[m - 1] + s[m]) / 2
    }

    /// /proc/cpuinfo's first `model name` and `cpu family`.
    static func cpuInfo() -> StepBenchReport.CPUInfo {
        var info = StepBenchReport.CPUInfo(model: "unknown", family: "unknown", kernels: VectorISA.description)
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return info }
        var model: String?, family: String?
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2 else { continue }
            let key = parts[0].trimmingCharacters(in: .whitespaces), value = parts[1].trimmingCharacters(in: .whitespaces)
            if key == "model name", model == nil { model = value }
            if key == "cpu family", family == nil { family = value }
            if model != nil, family != nil { break }
        }
        info.model = model ?? info.model
        info.family = family ?? info.family
        return info
    }

    // MARK: - Steps

    /// A batch the step has not waited for yet: `wait()` takes it from the prefetcher (timed).
    final class PendingBatch {
        let prefetcher: Prefetcher
        private(set) var waitSeconds = 0.0
        init(_ prefetcher: Prefetcher) { self.prefetcher = prefetcher }

        func wait() throws -> Batch {
            let t0 = SystemStats.now
            guard let b = try prefetcher.next() else { throw StepBenchError.failed("the data prefetcher ended early") }
            waitSeconds = SystemStats.now - t0
            return b
        }
    }

    /// One epoch of `warmup + steps` batches through a Prefetcher (and the store's epoch, if any);
    /// `body` takes each batch from the pending handle itself, so its wait can be inside a timed step.
    static func runEpoch(_ epoch: Int, c: StepBenchConfig, loader: BatchLoader, store: DiskMemoryStore?,
                         _ body: (PendingBatch) throws -> Void) throws {
        let plan = EpochPlan(count: loader.dataset.count, seed: c.seed, epoch: epoch, batchSize: c.batch)
        let data = Prefetcher(loader: loader, plan: plan, depth: prefetchDepth)
        defer { data.cancel() }
        try store?.beginEpoch(epoch, plan: plan)
        for _ in 0..<plan.batchCount {
            let pending = PendingBatch(data)
            try body(pending)
        }
        data.cancel()
        _ = try store?.endEpoch()
    }

    /// One timed step's phases.
    struct StepSample {
        let outcome: StepOutcome
        let total: Double
        let phases: [String: Double]

        /// Without a memory (`outcome.memory` nil) the bank phases are 0: the step's empty laps around
        /// them are a few nanoseconds of "other".
        init(dataWait: Double, runSeconds: Double, outcome: StepOutcome, profiler: PassProfiler?) {
            self.outcome = outcome
            total = dataWait + runSeconds
            let bank = outcome.memory != nil
            var p: [String: Double] = ["dataWait": dataWait, "bankWait": bank ? outcome.seconds.memoryFetch : 0,
                                       "bankRecord": bank ? outcome.seconds.record : 0, "optimizer": outcome.seconds.optimizer]
            if let profiler {
                for pass in ModelPass.allCases { p[pass.description] = profiler.seconds(pass) }
            }
            phases = p
        }
    }
}
