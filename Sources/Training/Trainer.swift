// Trainer.swift: the training loop: data order from (seed, epoch), a prefetch thread ahead of the
// compute, one TrainingStep per batch, the epoch's metrics (EpochMetrics), validation on a held-out
// split, last/best checkpoints, exact resume, and the final test evaluation.
// It reports progress through a callback and never prints (the CLI renders).

import Attacks
import Datasets
import Foundation
import Kernels
import Layers
import MemoryBank
import Models
import SystemIO
import Tensors

/// What the trainer tells its caller while it runs.
public enum TrainingEvent {
    case started(totalEpochs: Int, stepsPerEpoch: Int, startEpoch: Int, trainSamples: Int, model: String, parameters: Int)
    case step(epoch: Int, step: Int, stepsPerEpoch: Int, loss: Float, imagesPerSecond: Double, etaSeconds: Double)
    case epoch(EpochRecord)
    case evaluated(split: String, result: EvaluationResult)
    case finished(TrainingSummary)
}

/// The outcome of a run.
public struct TrainingSummary: Codable, Sendable {
    public var epochs: Int
    public var steps: Int
    public var wallSeconds: Double
    public var bestEpoch: Int
    public var bestValidationRobust: Double
    public var test: EvaluationResult?
    public var peakRSSBytes: Int
}

public enum TrainingError: Error, CustomStringConvertible {
    case data(String)
    case modelMismatch(String)
    case nonFinite(epoch: Int, step: Int, terms: [String: Float], checkpoint: String)
    case resume(String)
    case memory(String)
    case checkpoint(String)

    public var description: String {
        switch self {
        case .data(let m): return "data: \(m)"
        case .modelMismatch(let m): return "model: \(m)\nhint: pick a model for the dataset's image shape (smallcnn: 1×28×28; resnet18/preactresnet18/wrn: 3×32×32)"
        case .nonFinite(let e, let s, let t, let c):
            let terms = t.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ")
            return "the loss became NaN or infinite at epoch \(e), step \(s) (\(terms)); training stopped.\n"
                + "The last good checkpoint is kept: \(c)\nhint: lower the learning rate or check the data"
        case .resume(let m): return "resume: \(m)"
        case .memory(let m): return "memory: \(m)"
        case .checkpoint(let m): return m
        }
    }
}

public final class Trainer {
    public let config: TrainConfig
    public let run: RunDirectory
    public let model: AnyClassifier
    public let spec: ModelSpec
    let trainSet: Dataset
    let testSet: Dataset?
    let split: ValidationSplit
    let trainIDs: [Int]
    let method: any TrainingMethod
    let optimizer: SGD
    let augmentation: AugmentationConfig
    var startEpoch = 0
    /// Batches of `startEpoch` already done (a mid-epoch resume), and that epoch's partial sums.
    var startEpochStep = 0
    var startProgress: EpochProgress?
    var startMemory: MemoryCheckpoint?
    var globalStep = 0
    var bestRobust = -1.0
    var bestEpoch = 0
    /// The run's checkpoints (atomic commits, docs/checkpoints.md).
    public let checkpoints: CheckpointStore
    /// The commit resumed from (nil for a fresh run or a resume of a pre-commit-layout run).
    public private(set) var resumedCommit: CommitRecord?
    /// A resume of a run written before checkpoint commits existed (`last.safetensors` pair only):
    /// epoch-boundary resume, metrics reconciled by epoch.
    private var legacyResume = false
    /// How often a mid-epoch checkpoint is committed (the epoch end always commits).
    public var checkpointEvery: CheckpointInterval = .defaultInterval
    /// When the run's wall clock started (this session's start minus earlier sessions' time).
    private var runStart = SystemStats.now
    /// Notes for the run's log (what recovery did: fallbacks, quarantined bank generations).
    public private(set) var notes: [String] = []
    /// The bank's part of `notes`, also written to metrics.jsonl as `bank_problem` lines.
    private var bankNotes: [String] = []
    /// The MemLoss memory (nil when the term is off): the on-disk bank (resumable: its sealed
    /// generations up to the checkpoint's epoch are kept) or the in-RAM reference (not saved: a
    /// resumed run starts with an empty memory).
    public private(set) var memory: (any MemoryStore)?
    /// Where the disk bank lives (nil for RAM or no MemLoss).
    public private(set) var bankDirectory: URL?
    /// This process's rank of a data-parallel job (DataParallel.swift; one rank without mpirun).
    public let parallel: DataParallel
    /// The step every batch runs (built once the memory exists); per-rank attack seed and the
    /// gradient all-reduce under data parallelism.
    private lazy var step: TrainingStep = {
        var s = TrainingStep(model: model, method: method, optimizer: optimizer, memory: memory,
                             term: config.memLoss?.term ?? MemLossTermConfig(),
                             seed: DataParallel.rankSeed(config.seed, rank: parallel.rank),
                             attackInit: config.attackInit)
        // The q8rcn bank codec regenerates the attack's start noise: the start becomes per sample.
        if config.memLoss?.store.codec == .q8rcn { s.startNoise = StartNoise(runSeed: s.seed) }
        s.synchronizeGradients = parallel.gradientSynchronizer(for: model)
        return s
    }()

    /// Prepares a run in `runDirectory`. With `resume`, continues from its `last` checkpoint with
    /// the configuration stored there (the `config` argument is then ignored) and `resumeOverrides`
    /// laid over it (ResumeOverrides.swift: more epochs, the test evaluation, logging); a resume
    /// with overrides rewrites config.json so the next resume continues with them.
    /// Under data parallelism (`parallel.size > 1`, under mpirun) every rank constructs its Trainer
    /// with the same arguments; rank 0 alone writes the run's files (docs/distributed.md).
    public init(config: TrainConfig, runDirectory: URL, resume: Bool = false,
                resumeOverrides: ResumeOverrides = .none, parallel: DataParallel = DataParallel()) throws {
        let run = RunDirectory(runDirectory)
        self.run = run
        self.parallel = parallel
        // Each step that reads files or flags is agreed between the ranks (`agreeing`): a failure on
        // any rank stops every rank together with a normal exit, said once by rank 0.
        let cfg = try parallel.agreeing("reading the configuration") { () throws -> TrainConfig in
            if resume { try parallel.checkWorldSize(ofRun: runDirectory) }
            var cfg = config
            if resume {
                guard let data = FileManager.default.contents(atPath: run.config.path) else {
                    throw TrainingError.resume("\(run.config.path) is missing; is \(runDirectory.path) a run directory?")
                }
                do { cfg = try JSONDecoder().decode(TrainConfig.self, from: data) } catch {
                    throw TrainingError.resume("\(run.config.path) is not a valid config: \(error)")
                }
                resumeOverrides.apply(to: &cfg)
            }
            try cfg.validate()
            return cfg
        }
        self.config = cfg
        try parallel.checkSameConfig(cfg)
        _ = try parallel.localBatchSize(global: cfg.batchSize)

        let inputs = try parallel.agreeing("opening the data") { try Trainer.openInputs(cfg) }
        (trainSet, testSet, augmentation, spec) = (inputs.trainSet, inputs.testSet, inputs.augmentation, inputs.spec)
        model = spec.build(seed: cfg.seed)
        split = ValidationSplit(dataset: trainSet, validationCount: min(cfg.validationSize, trainSet.count / 2), seed: cfg.seed)
        if cfg.validationSize > trainSet.count / 2 {
            notes.append("validationSize \(cfg.validationSize) is more than half of the \(trainSet.count) training images: "
                         + "\(split.validation.count) are held out for validation")
        }
        if cfg.validationSamples > split.validation.count, !split.validation.isEmpty {
            notes.append("validationSamples \(cfg.validationSamples) exceeds the \(split.validation.count) held-out images: "
                         + "validation attacks all \(split.validation.count)")
        }
        trainIDs = cfg.trainSamples > 0 ? Array(split.train.prefix(cfg.trainSamples)) : split.train

        method = try makeMethod(cfg.method, helper: inputs.helper)
        optimizer = SGD(parameters: model.namedParameters, config: cfg.optimizer)

        try parallel.agreeing("creating the run directory") { try run.create() }
        checkpoints = CheckpointStore(directory: run.checkpoints)
        if resume {
            // Rank 0 recovers the checkpoint store first (it may repair it); then the others read it.
            try parallel.agreeing("restoring the checkpoint") { if parallel.isRoot { try restore() } }
            try parallel.agreeing("restoring the checkpoint") { if !parallel.isRoot { try restore() } }
        } else {
            try parallel.agreeing("writing the run's config") {
                guard parallel.isRoot else { return }
                try run.writeJSON(cfg, to: run.config)
                try parallel.recordWorldSize(in: runDirectory)
            }
        }
        try parallel.broadcastState(of: model, keepDropoutStreams: resumedCommit != nil)
        parallel.enableSyncBatchNorm(on: model)
        if resume, resumeOverrides != .none {
            try resumeOverrides.check(completedEpochs: startEpoch, runDirectory: runDirectory.path)
            if parallel.isRoot { try run.writeJSON(cfg, to: run.config) }
        }
        if let mc = cfg.memLoss ?? WarmStart.bankConfig(cfg) {
            memory = try parallel.agreeing("opening the memory bank") {
                try makeMemoryStore(mc, resumeEpoch: resume ? startEpoch : nil, openGeneration: startMemory)
            }
        }
    }

    /// What a run reads besides its config: the data, the model spec checked against the data's
    /// image shape, and HAT's helper model (one rank's files; `init` agrees on failures).
    private struct Inputs {
        var trainSet: Dataset
        var testSet: Dataset?
        var augmentation: AugmentationConfig
        var spec: ModelSpec
        var helper: AnyClassifier?
    }

    private static func openInputs(_ cfg: TrainConfig) throws -> Inputs {
        let source: DataSource
        do { source = try DataSource(parsing: cfg.data) } catch { throw TrainingError.data("\(error)") }
        let trainSet: Dataset, testSet: Dataset?
        do {
            trainSet = try source.open(.train)
            testSet = source.hasTestSet ? try source.open(.test) : nil
        } catch { throw TrainingError.data("\(error)") }
        try cfg.checkData(trainCount: trainSet.count, testCount: testSet?.count, classCount: trainSet.classCount,
                          dataName: trainSet.name)
        let spec = try ModelSpec(parsing: cfg.model, classes: trainSet.classCount, width: cfg.width)
        guard spec.inputShape == trainSet.shape.dimensions else {
            throw TrainingError.modelMismatch("\(spec.name) takes \(spec.inputShape.map(String.init).joined(separator: "×")) images "
                                              + "but \(cfg.data) has \(trainSet.shape)")
        }
        var helper: AnyClassifier? = nil
        if case .hat = cfg.method {
            guard let path = cfg.helperCheckpoint else {
                throw TrainingError.data("HAT needs --helper-checkpoint (a standard-trained checkpoint of \(spec.name))")
            }
            let h = spec.build(seed: cfg.seed)
            do { _ = try Checkpoint.load(into: h.stateEntries(prefix: ""), from: URL(fileURLWithPath: path)) } catch {
                throw TrainingError.data("helper checkpoint: \(error)")
            }
            helper = h
        }
        return Inputs(trainSet: trainSet, testSet: testSet,
                      augmentation: cfg.augment.map { $0 ? source.standardAugmentation : .none } ?? source.standardAugmentation,
                      spec: spec, helper: helper)
    }

    /// Loads the committed checkpoint (or a pre-commit-layout `last` pair) into the model, the
    /// optimizer and the loop's position.
    private func restore() throws {
        let commit: CommitRecord?
        do { commit = try checkpoints.recover() } catch { throw TrainingError.resume("\(error)") }
        notes += checkpoints.notes
        let modelURL: URL
        if let commit {
            modelURL = checkpoints.modelURL(commit)
        } else if FileManager.default.fileExists(atPath: run.lastCheckpoint.path),
                  !FileManager.default.fileExists(atPath: checkpoints.pointerURL.path) {
            modelURL = run.lastCheckpoint
            legacyResume = true
        } else {
            // Stopped before its first commit: the stored config is all there is; start over.
            notes.append("\(run.checkpoints.path) holds no committed checkpoint (the run stopped before its first one): "
                         + "starting the run from its beginning with its stored config")
            return
        }
        let state: TrainingState
        do {
            state = try Checkpoint.loadResumable(into: model.stateEntries(prefix: ""), optimizer: optimizer, from: modelURL)
        } catch { throw TrainingError.resume("\(error)") }
        let rankState = try commit.flatMap { try parallel.rankState(globalStep: $0.globalStep, run: run.url) }
        let rngStates = rankState?.rngStates ?? state.rngStates
        for (i, layer) in model.stochasticLayers.enumerated() {
            if let s = rngStates["dropout.\(i)"] { layer.randomState = SplitMix64(seed: s) }
        }
        if let commit {
            guard commit.globalStep == state.step else {
                throw TrainingError.resume("\(modelURL.path): training state at step \(state.step) but commit.json at step \(commit.globalStep)")
            }
            resumedCommit = commit
            startEpoch = commit.epoch
            startEpochStep = commit.epochStep
            startProgress = commit.progress
            startMemory = rankState.map(\.memory) ?? commit.memory
            globalStep = commit.globalStep
            bestRobust = commit.bestValidationRobust
            bestEpoch = commit.bestEpoch
        } else {
            startEpoch = state.epoch
            globalStep = state.step
            bestRobust = Double(state.extra["bestValidationRobust"] ?? "") ?? -1
            bestEpoch = Int(state.extra["bestEpoch"] ?? "") ?? 0
        }
    }

    deinit { memory?.close() }

    /// Creates the MemLoss store. On resume the bank keeps the generations the checkpoint's epochs
    /// made (0…resumeEpoch−1) and drops newer ones (an epoch sealed after the checkpoint, or an
    /// unsealed generation left by a crash, which `Bank.open` deletes).
    private func makeMemoryStore(_ mc: MemLossConfig, resumeEpoch: Int?, openGeneration: MemoryCheckpoint?) throws -> any MemoryStore {
        guard let attack = config.method.attack else { throw TrainingError.memory("MemLoss needs a method with an attack") }
        switch mc.store.kind {
        case .ram:
            return RAMMemoryStore(config: mc.store, sampleCount: trainSet.count, shape: trainSet.shape.dimensions)
        case .disk:
            let dir = parallel.bankDirectory(mc.store.directory.map { URL(fileURLWithPath: $0) } ?? run.url.appendingPathComponent("bank"))
            bankDirectory = dir
            let enc = JSONEncoder()
            enc.outputFormatting = [.sortedKeys]
            var createdBy = (try? enc.encode(config)).map { String(decoding: $0, as: UTF8.self) } ?? ""
            if openGeneration?.bank != nil, let existing = try? BankReader.open(at: dir) {
                // The open segment's header carries the run's original config text (the mark is tied
                // to it); a resume that extended --epochs keeps it.
                createdBy = existing.config.createdBy
            }
            var startNoise: BankStartNoise?
            if mc.store.codec == .q8rcn {
                guard case .gaussian(let sigma) = attack.randomStart else {
                    throw TrainingError.memory("--mem-codec q8rcn regenerates a Gaussian attack start, the method's attack starts \(attack.randomStart)"
                                               + "\nhint: use --mem-codec q8rc")
                }
                let seed = StartNoise(runSeed: DataParallel.rankSeed(config.seed, rank: parallel.rank)).seed
                startNoise = BankStartNoise(seed: seed, sigma: sigma)
            }
            do {
                let store = try DiskMemoryStore(config: mc.store, directory: dir, dataset: trainSet, epsilon: attack.epsilon,
                                                norm: attack.norm, createdBy: createdBy,
                                                keepThrough: resumeEpoch.map { $0 - 1 }, resuming: openGeneration?.bank,
                                                readsWindow: config.attackInit == .memory, startNoise: startNoise)
                notes += store.openNotes
                bankNotes = store.openNotes
                return store
            } catch { throw TrainingError.memory("\(error)") }
        }
    }

    public var stepsPerEpoch: Int {
        (try? parallel.plan(population: trainIDs, seed: config.seed, epoch: 0, globalBatch: config.batchSize))?.batchCount ?? 0
    }

    /// Runs the remaining epochs, the final test evaluation and the report.
    @discardableResult
    public func train(events rootEvents: (TrainingEvent) -> Void = { _ in }) throws -> TrainingSummary {
        let isRoot = parallel.isRoot
        func events(_ event: TrainingEvent) { if isRoot { rootEvents(event) } }  // rank 0 alone reports progress
        let log: MetricsLog
        if !parallel.isRoot {
            log = try MetricsLog(url: URL(fileURLWithPath: "/dev/null"))  // rank 0 alone writes metrics.jsonl
        } else if let commit = resumedCommit {
            log = try MetricsLog(url: run.metrics, truncatingTo: commit.metricsBytes)
        } else {
            log = try MetricsLog(url: run.metrics, keepEpochsThrough: legacyResume ? startEpoch : 0)
        }
        // Every rank's notes (a shard's quarantined generations), tagged with the rank when R > 1.
        for note in parallel.isDistributed ? try parallel.gatherProblems(bankNotes) : bankNotes.map({ (rank: 0, problem: $0) }) {
            try log.append(.bankProblem(BankProblemRecord(epoch: startEpoch + 1, step: globalStep, problem: note.problem,
                                                          rank: parallel.isDistributed ? note.rank : nil)))
        }
        // Wall time counts every session of the run: a resume continues from the commit's.
        let start = SystemStats.now - (resumedCommit?.wallSeconds ?? 0)
        runStart = start
        let perEpoch = stepsPerEpoch
        events(.started(totalEpochs: config.epochs, stepsPerEpoch: perEpoch, startEpoch: startEpoch,
                        trainSamples: trainIDs.count, model: spec.name, parameters: model.parameterCount))
        var stepTimes = StepTimeWindow()
        var lastCheckpoint = (time: SystemStats.now, step: globalStep)
        for epoch in startEpoch..<config.epochs {
            let resuming = epoch == startEpoch && startEpochStep > 0
            try runEpoch(epoch, firstBatch: resuming ? startEpochStep : 0, progress: resuming ? startProgress : nil,
                         memoryCheckpoint: resuming ? startMemory : nil, log: log, events: events,
                         stepTimes: &stepTimes, runStart: start, lastCheckpoint: &lastCheckpoint)
        }
        // Release the bank (writer lock, threads) before the evaluation; its files stay.
        memory?.close()
        // Final evaluation on the test split with the best (validation-selected) weights.
        var test: EvaluationResult? = nil
        if let testSet {
            let evalModel = spec.build(seed: config.seed)
            if parallel.isRoot {
                let source = checkpoints.current.map(checkpoints.evaluationURL) ?? run.lastCheckpoint
                _ = try Checkpoint.load(into: evalModel.stateEntries(prefix: ""), from: source)
            }
            try parallel.broadcastState(of: evalModel, keepDropoutStreams: true)
            let n = config.testSamples > 0 ? min(config.testSamples, testSet.count) : testSet.count
            let attacks = try config.testAttacks.map { (name: $0, spec: try AttackSpec(parsing: $0, epsilon: config.validationAttack.epsilon)) }
            let r = try parallel.reduce(Evaluation.run(model: evalModel, dataset: testSet, ids: parallel.shard(Array(0..<n)),
                                                       attacks: attacks, epsilonText: config.epsilonText,
                                                       epsilon: config.validationAttack.epsilon, seed: config.seed &+ 7))
            if parallel.isRoot { try run.writeJSON(r, to: run.eval.appendingPathComponent("test.json")) }
            events(.evaluated(split: "test", result: r))
            test = r
        }
        let summary = TrainingSummary(epochs: config.epochs, steps: globalStep, wallSeconds: SystemStats.now - start,
                                      bestEpoch: bestEpoch, bestValidationRobust: bestRobust, test: test,
                                      peakRSSBytes: SystemStats.peakRSSBytes)
        if parallel.isRoot {
            try run.writeJSON(summary, to: run.eval.appendingPathComponent("summary.json"))
            try Report.write(run: run, config: config, summary: summary)
        }
        events(.finished(summary))
        return summary
    }

    /// One epoch from batch `firstBatch` (0, or a mid-epoch resume's position with `progress`):
    /// the step loop with its mid-epoch checkpoints, then the epoch end.
    private func runEpoch(_ epoch: Int, firstBatch: Int, progress: EpochProgress?, memoryCheckpoint: MemoryCheckpoint?,
                          log: MetricsLog, events: (TrainingEvent) -> Void, stepTimes: inout StepTimeWindow,
                          runStart: Double, lastCheckpoint: inout (time: Double, step: Int)) throws {
        let plan = try parallel.plan(population: trainIDs, seed: config.seed, epoch: epoch, globalBatch: config.batchSize)
        let loader = BatchLoader(dataset: trainSet, augmentation: augmentation, seed: config.seed)
        let prefetcher = Prefetcher(loader: loader, plan: plan, depth: config.prefetchDepth, firstBatch: firstBatch)
        defer { prefetcher.cancel() }
        let epochStart = SystemStats.now - (progress?.elapsedSeconds ?? 0)
        let dataWaitBefore = progress?.dataWaitSeconds ?? 0
        do { try memory?.beginEpoch(epoch, plan: plan, resuming: memoryCheckpoint) } catch { throw TrainingError.memory("\(error)") }
        var metrics = progress?.metrics ?? EpochMetrics()
        var checkpoints = progress?.checkpoints ?? 0
        var checkpointSeconds = progress?.checkpointSeconds ?? 0
        var lr: Float = config.optimizer.learningRate
        while let batch = try prefetcher.next() {
            let t0 = SystemStats.now
            lr = config.schedule.learningRate(base: config.optimizer.learningRate, iteration: globalStep,
                                              stepsPerEpoch: plan.batchCount, totalEpochs: config.epochs)
            let momentum = config.schedule.momentum(base: config.optimizer.momentum, iteration: globalStep,
                                                    stepsPerEpoch: plan.batchCount, totalEpochs: config.epochs)
            let outcome = try parallel.reduce(try step.run(batch, globalStep: globalStep, learningRate: lr, momentum: momentum))
            // At most 20 per rank and step; with R > 1 rank 0 holds every rank's, tagged (DataParallel.reduce).
            if let m = outcome.memory {
                for (i, p) in m.problems.prefix(m.problemRanks == nil ? 20 : m.problems.count).enumerated() {
                    try log.append(.bankProblem(BankProblemRecord(epoch: epoch + 1, step: globalStep, problem: p,
                                                                  rank: m.problemRanks?[i])))
                }
            }
            guard outcome.isFinite else {
                try log.append(.error(ErrorRecord(epoch: epoch + 1, step: globalStep, error: "non-finite loss", terms: outcome.terms)))
                throw TrainingError.nonFinite(epoch: epoch + 1, step: globalStep, terms: outcome.terms,
                                              checkpoint: FileManager.default.fileExists(atPath: run.lastCheckpoint.path)
                                                  ? run.lastCheckpoint.path : "(none yet: no epoch had finished)")
            }
            metrics.add(outcome)
            globalStep += 1
            let dt = SystemStats.now - t0
            stepTimes.add(dt)
            let remaining = (config.epochs - epoch - 1) * plan.batchCount + (plan.batchCount - metrics.steps)
            events(.step(epoch: epoch + 1, step: metrics.steps, stepsPerEpoch: plan.batchCount, loss: outcome.loss,
                         imagesPerSecond: Double(outcome.batchSize) / dt, etaSeconds: stepTimes.eta(remainingSteps: remaining)))
            if globalStep % config.logEvery == 0 {
                try log.append(.step(StepRecord(epoch: epoch + 1, step: globalStep, learningRate: Double(lr),
                                                loss: Double(outcome.loss), terms: outcome.terms.mapValues(Double.init),
                                                imagesPerSecond: Double(outcome.batchSize) / dt,
                                                dataWaitSeconds: dataWaitBefore + prefetcher.statistics.consumerWaitSeconds,
                                                wallSeconds: SystemStats.now - runStart, peakRSSBytes: SystemStats.peakRSSBytes)))
            }
            let done = metrics.steps
            // Every rank commits together (a time-based interval may fall due on one rank first).
            if done < plan.batchCount,
               try parallel.anyRank(checkpointEvery.isDue(steps: globalStep - lastCheckpoint.step,
                                                          seconds: SystemStats.now - lastCheckpoint.time)) {
                let started = SystemStats.now
                checkpoints += 1
                let p = EpochProgress(metrics: metrics, elapsedSeconds: started - epochStart,
                                      dataWaitSeconds: dataWaitBefore + prefetcher.statistics.consumerWaitSeconds,
                                      checkpoints: checkpoints, checkpointSeconds: checkpointSeconds)
                try commitMidEpoch(epoch, epochStep: done, progress: p, log: log)
                checkpointSeconds += SystemStats.now - started
                lastCheckpoint = (SystemStats.now, globalStep)
            }
            FaultPoint.hit("train.afterStep")
        }
        lastCheckpoint = (SystemStats.now, globalStep)
        let epochSeconds = SystemStats.now - epochStart
        var memoryReport: MemoryEpochReport?
        do { memoryReport = try memory?.endEpoch() } catch { throw TrainingError.memory("\(error)") }
        memoryReport = try parallel.reduce(memoryReport)  // every rank's bank shard
        var record = metrics.record(epoch: epoch + 1, step: globalStep, learningRate: lr, epochSeconds: epochSeconds,
                                    dataWaitSeconds: dataWaitBefore + prefetcher.statistics.consumerWaitSeconds,
                                    wallSeconds: SystemStats.now - runStart, peakRSSBytes: SystemStats.peakRSSBytes,
                                    memory: memoryReport)
        record.checkpoints = checkpoints
        record.checkpointSeconds = checkpointSeconds
        try endEpoch(epoch, record: record, log: log, events: events)
    }

    /// The epoch end: validation (every `evalEvery` epochs and after the last), the best-model
    /// choice on validation robust accuracy, the `last` (resumable) and `best` checkpoints, and the
    /// epoch line.
    private func endEpoch(_ epoch: Int, record: EpochRecord, log: MetricsLog, events: (TrainingEvent) -> Void) throws {
        var record = record
        var isBest = false
        try parallel.averageRunningStatistics(of: model)
        try parallel.checkReplicasAgree(model, epoch: epoch + 1)
        if (epoch + 1) % config.evalEvery == 0 || epoch + 1 == config.epochs, !split.validation.isEmpty {
            let ids = parallel.shard(Array(split.validation.prefix(config.validationSamples)))
            let name = "pgd\(config.validationAttack.steps)"
            let r = try parallel.reduce(Evaluation.run(model: model, dataset: trainSet, ids: ids,
                                                       attacks: [(name, .pgd(config.validationAttack))],
                                                       epsilonText: config.epsilonText, epsilon: config.validationAttack.epsilon,
                                                       seed: config.seed &+ 3))
            record.valCleanAccuracy = r.cleanAccuracy
            record.valRobustAccuracy = r.worstCaseAccuracy
            record.valAttack = name
            events(.evaluated(split: "validation", result: r))
            if r.worstCaseAccuracy > bestRobust {
                bestRobust = r.worstCaseAccuracy
                bestEpoch = epoch + 1
                isBest = true
            }
        }
        // The epoch's line, durable, then one commit: model, optimizer, best decision and the line
        // become visible together (the commit records the metrics length).
        record.bestEpoch = bestEpoch
        try log.append(.epoch(record))
        if parallel.isRoot { try log.sync() }
        FaultPoint.hit("train.afterEpochLine")
        try commit(epoch: epoch + 1, epochStep: 0, progress: nil, memory: nil, isBest: isBest, log: log)
        events(.epoch(record))
    }

    /// A mid-epoch checkpoint after `epochStep` batches of `epoch`: the memory's records so far are
    /// made durable first, then the commit.
    private func commitMidEpoch(_ epoch: Int, epochStep: Int, progress: EpochProgress, log: MetricsLog) throws {
        let mem: MemoryCheckpoint?
        do { mem = try memory?.checkpoint(batch: epochStep) } catch { throw TrainingError.memory("\(error)") }
        if parallel.isRoot { try log.sync() }
        try commit(epoch: epoch, epochStep: epochStep, progress: progress, memory: mem, isBest: false, log: log)
    }

    /// Commits the run's state at the current global step (CheckpointStore.commit).
    private func commit(epoch: Int, epochStep: Int, progress: EpochProgress?, memory mem: MemoryCheckpoint?,
                        isBest: Bool, log: MetricsLog) throws {
        var rngStates: [String: UInt64] = [:]
        for (i, layer) in model.stochasticLayers.enumerated() { rngStates["dropout.\(i)"] = layer.randomState.state }
        // Data parallel: every rank's bank records are durable (its checkpoint/endEpoch returned)
        // and its resume state is gathered before rank 0 alone commits.
        try parallel.averageRunningStatistics(of: model)
        try parallel.recordRankStates(.init(rngStates: rngStates, memory: mem), globalStep: globalStep, run: run.url)
        try parallel.barrier()
        guard parallel.isRoot else { return }
        let state = TrainingState(epoch: epoch, step: globalStep, rngStates: rngStates,
                                  checkpointID: Checkpoint.newCheckpointID(),
                                  extra: ["bestValidationRobust": "\(bestRobust)", "bestEpoch": "\(bestEpoch)",
                                          "epochStep": "\(epochStep)"])
        let meta = checkpointMetadata(epoch: epoch)
        var record = CommitRecord(epoch: epoch, epochStep: epochStep, globalStep: globalStep, metricsBytes: try log.byteCount(),
                                  bestEpoch: bestEpoch, bestValidationRobust: bestRobust, hasBest: false,
                                  progress: progress, memory: mem)
        record.wallSeconds = SystemStats.now - runStart
        do {
            try checkpoints.commit(model: model.stateEntries(prefix: ""), optimizer: optimizer, state: state, metadata: meta,
                                   bestMetadata: meta.merging(["memloss.selected_on": "validation robust accuracy"]) { a, _ in a },
                                   isBest: isBest, record: record)
        } catch { throw TrainingError.checkpoint("\(error)") }
    }

    /// Metadata stored in every checkpoint, enough for `memloss eval` to rebuild the model and
    /// find the data without the run directory.
    func checkpointMetadata(epoch: Int) -> [String: String] {
        typealias Key = CheckpointMetadataKey
        return [Key.model: config.model, Key.width: "\(config.width)", Key.classes: "\(spec.classes)",
                Key.data: config.data, Key.epsilon: config.epsilonText, Key.method: config.method.name,
                Key.epoch: "\(epoch)"]
    }
}
