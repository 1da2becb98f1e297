// TrainCommand.swift: `memloss train`: parses flags (over an optional --config JSON, over the demo
// defaults) into a TrainConfig and runs the Trainer, rendering progress on a terminal or as plain
// lines. No defaults live here: an absent flag leaves the config's value. With --resume it collects
// which flags were given; TrainConfig.resumeChanges (ResumeOverrides.swift) decides what may change.

import ArgumentParser
import Attacks
import Distributed
import Foundation
import Layers
import MemoryBank
import Training

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a model (with no arguments: TRADES on the embedded MNIST subset, then evaluate and write the report).")

    @Option(help: "JSON file with TrainConfig keys; flags given here override its values.")
    var config: String?
    @Option(help: "Run directory to write (default: runs/<method>-<model>-<time>); an existing run there is refused unless --overwrite.")
    var out: String?
    @Flag(help: "With --out: remove the run already in that directory (config.json, metrics.jsonl, checkpoints/, eval/, report.md, charts, bank/) first.")
    var overwrite = false
    @Option(help: ArgumentHelp(
        "Continue the run in this directory from its last checkpoint, with its stored config.json.",
        discussion: "Only --epochs (at least the epochs completed; the LR schedule then uses the new total), "
            + "--test-attacks, --test-samples, --log-every and --print-config may differ from the stored config; "
            + "any other flag (or --config key, or --out) with another value than the stored one is refused, naming it."))
    var resume: String?
    @Flag(help: "Print the resolved configuration as JSON (stdout) and its training and validation attacks (stderr), and exit.")
    var printConfig = false

    @Option(help: "Data: demo | mnist:DIR | cifar10:DIR | cifar100:DIR[:coarse] | svhn:DIR | npy:IMAGES,LABELS | synthetic:FILE.")
    var data: String?
    @Option(help: "Model: smallcnn | resnet18 | preactresnet18 | wrn-DEPTH-WIDEN.")
    var model: String?
    @Option(help: "Channel width multiplier.")
    var width: Double?
    @Option(help: ArgumentHelp(
        "Method: standard | pgd-at | trades | mart | hat.",
        discussion: "Applies the method's preset (attack steps, random start, β; γ and h for HAT) at the run's ε, with "
            + "α = ε/4 for pgd-at and hat and α = ε·0.007/0.031 ≈ ε/4.4 for trades and mart (the references' ratios), "
            + "unless --step-size is given."))
    var method: String?
    @Option(help: ArgumentHelp(
        "Attack radius ε, as a fraction (8/255) or decimal (0.031); used for training and evaluation.",
        discussion: "Without --step-size the training α follows ε at the method's α/ε ratio (the preset's with --method, "
            + "else the configured one: the demo's 0.05/0.3); the validation attack takes this ε with step ε/4 "
            + "unless --val-step-size is given."))
    var epsilon: String?
    @Option(help: "Training attack step size α (decimal or fraction); default: follows ε (see --epsilon).")
    var stepSize: String?
    @Option(help: "Attack steps of the inner maximisation (default: the method's).")
    var attackSteps: Int?
    @Option(help: "Validation attack (PGD-k) step size (decimal or fraction); default: ε/4 when ε is given, else the demo's 0.05.")
    var valStepSize: String?
    @Option(help: "Validation attack (PGD-k) steps k.")
    var valSteps: Int?
    @Option(help: "Loss weight β (TRADES, MART, HAT).")
    var beta: Float?
    @Option(help: "HAT helper-loss weight γ.")
    var gamma: Float?
    @Option(help: "HAT: standard-trained checkpoint of the same architecture.")
    var helperCheckpoint: String?
    @Option(help: "Epochs (with --resume: may grow; cosine and one-cycle schedules then stretch to the new total).")
    var epochs: Int?
    @Option(help: "Batch size.")
    var batchSize: Int?
    @Option(help: "Base learning rate.")
    var lr: Float?
    @Option(help: "SGD momentum.")
    var momentum: Float?
    @Option(help: "Weight decay.")
    var weightDecay: Float?
    @Option(help: "Nesterov momentum (true/false).")
    var nesterov: Bool?
    @Option(help: "LR schedule: constant | piecewise:E1,E2,... (×0.1 from epoch E1 on, ×0.01 from E2 on, …; epochs count from 1, so piecewise:75,90 is TRADES' recipe) | cosine | onecycle.")
    var schedule: String?
    @Option(help: "Seed (model init, data order, views, split, attack starts).")
    var seed: UInt64?
    @Option(help: "Training samples held out for validation.")
    var validationSize: Int?
    @Option(help: "Validate every N epochs.")
    var evalEvery: Int?
    @Option(help: "Validation samples attacked.")
    var validationSamples: Int?
    @Option(help: "Comma-separated test attacks (e.g. pgd20,cw).")
    var testAttacks: String?
    @Option(help: "Test samples evaluated (0 = all).")
    var testSamples: Int?
    @Option(help: "Augmentation (true/false; default: the dataset's convention).")
    var augment: Bool?
    @Option(help: "Write a step line to metrics.jsonl every N steps.")
    var logEvery: Int?
    @Option(help: "Use only the first N training samples (0 = all).")
    var trainSamples: Int?
    @Flag(inversion: .prefixedNo,
          help: "The MemLoss term over remembered adversarial examples (on in the demo; --no-memloss for the base method).")
    var memloss: Bool?
    @Option(help: "MemLoss weight β′ (implies --memloss).")
    var memBeta: Float?
    @Option(help: "MemLoss weighting: difficulty | difficulty-detached | uniform (implies --memloss).")
    var memWeight: String?
    @Option(help: "MemLoss window K: remembered generations per sample (implies --memloss).")
    var memK: Int?
    @Option(help: "MemLoss stride s: epoch e reads generations e−s, …, e−K·s (implies --memloss).")
    var memStride: Int?
    @Option(help: "MemLoss reduction over a sample's entries: mean | sum (implies --memloss).")
    var memReduce: String?
    @Option(help: "MemLoss entries used: all | hardest:F | misclassified (implies --memloss).")
    var memSelect: String?
    @Option(help: "Bank codec: q8 | q4 | f16 | f32 | levels | q8rc | q8rcn (implies --memloss; q8rcn makes the attack's Gaussian start per sample).")
    var memCodec: String?
    @Option(help: "Where the memory lives: disk (the bank) | ram (float32 reference) (implies --memloss).")
    var memStore: String?
    @Option(help: "Bank directory (default: RUN/bank) (implies --memloss).")
    var memDir: String?
    @Option(help: "Bank generations kept: window (the K·s+1 the window needs) | all (every epoch's, for `memloss eval --replay`) (implies --memloss).")
    var memKeep: String?
    @Flag(help: ArgumentHelp(
        "Write the run's adversarial examples to a bank without the MemLoss term (no memory is read).",
        discussion: "For the base method (with --no-memloss or alone) and any method with an attack: the weights equal the "
            + "run without a bank bit for bit (except with --attack-init memory, which reads the bank for the warm start); combine with --mem-keep all to replay every generation. Takes the bank "
            + "options (--mem-keep, --mem-codec, --mem-dir, --mem-k, --mem-stride), not the term's."))
    var recordMemory = false
    @Option(help: ArgumentHelp(
        "Where the training attack starts: random (the method's random start; default) | memory.",
        discussion: "memory: a sample with an entry in the memory bank starts from its newest stored δ, mapped into the "
            + "batch's crop/flip view (0 where the views do not overlap) and projected into the ε-ball and [0, 1]; "
            + "samples without one keep the random start. Uses the MemLoss bank (one read serves both), or opens a "
            + "K = 1 bank when MemLoss is off. --attack-steps stays yours (docs/warm-start.md)."))
    var attackInit: String?
    @Option(help: ArgumentHelp(
        "Mid-epoch checkpoint interval: N (steps), 30s, 10m, 2h, or off (default: 10m).",
        discussion: "Every epoch end commits a checkpoint too. A killed run resumed with --resume repeats at most this much work; "
            + "the interval does not change the results (resume is exact), so it may differ on --resume."))
    var checkpointEvery: String?
    @Flag(help: ArgumentHelp(
        "Under mpirun: synchronised batch norm (batch statistics all-reduced per layer), so R ranks compute what one process computes with the global batch.",
        discussion: "Without it each rank normalises with its own batch's statistics and the running statistics are averaged "
            + "across ranks at every checkpoint (docs/distributed.md §5). No effect on one process. A resume keeps the run's setting."))
    var syncBatchnorm = false

    /// Rejects non-finite and out-of-range numbers when the flags are parsed, naming the flag (the
    /// ranges are `NumericSetting`'s, which `TrainConfig.validate` applies to config files too).
    func validate() throws {
        let numbers: [(String, NumericSetting, Double?)] = [
            ("--lr", .learningRate, lr.map(Double.init)), ("--momentum", .momentum, momentum.map(Double.init)),
            ("--weight-decay", .weightDecay, weightDecay.map(Double.init)), ("--beta", .beta, beta.map(Double.init)),
            ("--gamma", .gamma, gamma.map(Double.init)), ("--mem-beta", .beta, memBeta.map(Double.init)),
            ("--width", .width, width),
        ]
        for case let (flag, setting, value?) in numbers where !setting.accepts(value) {
            throw ValidationError("\(flag) \(value): expected \(setting.expected)")
        }
        if overwrite && resume != nil {
            throw ValidationError("--overwrite replaces a run and --resume continues one; give only one of them")
        }
    }

    func run() throws {
        // Under mpirun (or srun) one rank of a data-parallel job; otherwise one process, no MPI call.
        let communicator: any Communicator
        do { communicator = try makeCommunicator() } catch {
            FileHandle.standardError.write(Data("memloss train: \(error)\n".utf8))
            throw ExitCode(1)
        }
        defer { communicator.finalize() }
        do {
            try runTraining(communicator)
        } catch let e as ValidationError {
            throw communicator.size > 1 && communicator.rank == 0 ? printedBeforeFinalize(e) : e
        } catch DataParallelError.stoppedByAgreement {
            throw ExitCode(1)  // every rank stops together; rank 0 prints the cause
        } catch {
            let text = ResultFile.describeFoundationError(error) ?? "\(error)"
            let who = communicator.size > 1 && communicator.rank != 0 ? " (rank \(communicator.rank))" : ""
            FileHandle.standardError.write(Data("memloss train\(who): \(text)\n".utf8))
            if communicator.size > 1, !DataParallelError.isAgreed(error) {
                // The other ranks may wait in a collective: stop the whole job (no hang).
                communicator.abort(code: 1, message: "memloss train\(who): stopping every rank of the job")
            }
            throw ExitCode(1)
        }
    }

    /// What the flags ask for, resolved before any collective call (so every rank can agree on a
    /// failure): the printed config, a new run, or a resume.
    private enum Plan {
        case printed
        case start(TrainConfig, directory: URL, interval: CheckpointInterval?)
        case resume(TrainConfig, directory: URL, overrides: ResumeOverrides, interval: CheckpointInterval?)
    }

    private func runTraining(_ communicator: any Communicator) throws {
        let parallel = parallel(communicator)
        // Flags, config files and the run directory are read on every rank and agreed on: a bad flag
        // or a missing file (on any rank) stops every rank with a normal exit, said once by rank 0.
        let plan = try parallel.agreeing("reading the flags") { try resolvePlan(isRoot: communicator.rank == 0) }
        let trainer: Trainer
        switch plan {
        case .printed: return
        case .start(let cfg, let dir, let interval):
            trainer = try Trainer(config: cfg, runDirectory: dir, parallel: parallel)
            if let interval { trainer.checkpointEvery = interval }
        case .resume(let cfg, let dir, let overrides, let interval):
            trainer = try Trainer(config: cfg, runDirectory: dir, resume: true, resumeOverrides: overrides, parallel: parallel)
            if let interval { trainer.checkpointEvery = interval }
        }
        try execute(trainer)
    }

    /// The flags laid over `--config` (or over the stored config with `--resume`), validated; with
    /// `--print-config`, printed (by rank 0). Rank 0 prepares a new run's directory.
    private func resolvePlan(isRoot: Bool) throws -> Plan {
        var interval: CheckpointInterval?
        if let checkpointEvery {
            guard let i = CheckpointInterval(parsing: checkpointEvery) else {
                throw ValidationError("--checkpoint-every \(checkpointEvery): expected a step count (500), a duration (30s, 10m, 2h) or off")
            }
            interval = i
        }
        if let resume { return try resumePlan(resume, isRoot: isRoot, interval: interval) }
        var cfg = TrainConfig.demo
        if let config { cfg = try TrainConfig.load(file: config, over: cfg) }
        try applyFlags(&cfg)
        try cfg.validate()
        if printConfig {
            if isRoot { try printResolved(cfg) }
            return .printed
        }
        let stamp = ISO8601DateFormatter().string(from: Date()).replacingOccurrences(of: ":", with: "")
        let dir = out ?? "runs/\(cfg.method.name)-\(cfg.model)-\(stamp)"
        // Rank 0 prepares the directory; the agreement on this plan holds the other ranks until it has.
        if isRoot { try RunDirectory(URL(fileURLWithPath: dir)).prepareNewRun(overwrite: overwrite) }
        return .start(cfg, directory: URL(fileURLWithPath: dir), interval: interval)
    }

    private func printResolved(_ cfg: TrainConfig) throws {
        try printJSON(cfg)
        FileHandle.standardError.write(Data((cfg.attackSummary + "\n").utf8))
    }

    /// `--resume DIR`: the stored config with the given flags laid over it must differ only where
    /// `ResumeOverrides` allows; every conflict is named (flag, field, stored and given value).
    private func resumePlan(_ resume: String, isRoot: Bool, interval: CheckpointInterval?) throws -> Plan {
        let directory = URL(fileURLWithPath: resume)
        let stored = try TrainConfig.stored(inRun: directory)
        var requested = stored
        if let config { requested = try TrainConfig.load(file: config, over: stored) }
        try applyFlags(&requested)
        var conflicts: [ResumeConflict] = []
        if let out, URL(fileURLWithPath: out).standardizedFileURL.path != directory.standardizedFileURL.path {
            conflicts.append(ResumeConflict(source: "--out", field: "run directory", stored: resume, given: out))
        }
        var overrides = ResumeOverrides.none
        switch TrainConfig.resumeChanges(stored: stored, requested: requested, explicit: givenFields()) {
        case .success(let o): overrides = o
        case .failure(let list): conflicts += list.conflicts
        }
        if !conflicts.isEmpty { throw ResumeConflictError.conflicts(runDirectory: resume, conflicts) }
        var resolved = stored
        overrides.apply(to: &resolved)
        try resolved.validate()
        if printConfig {
            if isRoot { try printResolved(resolved) }
            return .printed
        }
        return .resume(resolved, directory: directory, overrides: overrides, interval: interval)
    }

    /// The given flags (and `--config`), each with the TrainConfig fields it sets (JSON paths), for
    /// naming resume conflicts.
    private func givenFields() -> [String: [String]] {
        let attack = ["method.attack", "validationAttack", "epsilonText"]
        let table: [(String, Bool, [String])] = [
            ("--config", config != nil, [""]), ("--data", data != nil, ["data"]), ("--model", model != nil, ["model"]),
            ("--width", width != nil, ["width"]), ("--method", method != nil, ["method", "memLoss"] + attack),
            ("--epsilon", epsilon != nil, attack), ("--step-size", stepSize != nil, ["method.attack.stepSize"]),
            ("--attack-steps", attackSteps != nil, ["method.attack.steps"]),
            ("--val-step-size", valStepSize != nil, ["validationAttack.stepSize"]),
            ("--val-steps", valSteps != nil, ["validationAttack.steps"]), ("--beta", beta != nil, ["method.beta"]),
            ("--gamma", gamma != nil, ["method.gamma"]), ("--helper-checkpoint", helperCheckpoint != nil, ["helperCheckpoint"]),
            ("--epochs", epochs != nil, ["epochs"]), ("--batch-size", batchSize != nil, ["batchSize"]),
            ("--lr", lr != nil, ["optimizer.learningRate"]), ("--momentum", momentum != nil, ["optimizer.momentum"]),
            ("--weight-decay", weightDecay != nil, ["optimizer.weightDecay"]),
            ("--nesterov", nesterov != nil, ["optimizer.nesterov"]), ("--schedule", schedule != nil, ["schedule"]),
            ("--seed", seed != nil, ["seed"]), ("--validation-size", validationSize != nil, ["validationSize"]),
            ("--eval-every", evalEvery != nil, ["evalEvery"]),
            ("--validation-samples", validationSamples != nil, ["validationSamples"]),
            ("--test-attacks", testAttacks != nil, ["testAttacks"]), ("--test-samples", testSamples != nil, ["testSamples"]),
            ("--augment", augment != nil, ["augment"]), ("--log-every", logEvery != nil, ["logEvery"]),
            ("--train-samples", trainSamples != nil, ["trainSamples"]),
            (memloss == false ? "--no-memloss" : "--memloss", memloss != nil, ["memLoss"]),
            ("--mem-beta", memBeta != nil, ["memLoss.beta"]), ("--mem-weight", memWeight != nil, ["memLoss.weighting"]),
            ("--mem-k", memK != nil, ["memLoss.window"]), ("--mem-stride", memStride != nil, ["memLoss.stride"]),
            ("--mem-reduce", memReduce != nil, ["memLoss.reduce"]), ("--mem-select", memSelect != nil, ["memLoss.select"]),
            ("--mem-codec", memCodec != nil, ["memLoss.codec"]), ("--mem-store", memStore != nil, ["memLoss.store"]),
            ("--mem-dir", memDir != nil, ["memLoss.directory"]), ("--mem-keep", memKeep != nil, ["memLoss.keep"]),
            ("--record-memory", recordMemory, ["memLoss"]), ("--attack-init", attackInit != nil, ["attackInit"]),
        ]
        var out: [String: [String]] = [:]
        for (flag, given, fields) in table where given { out[flag] = fields }
        return out
    }

    /// The data-parallel side of this process (one rank without a launcher).
    private func parallel(_ communicator: any Communicator) -> DataParallel {
        DataParallel(communicator: communicator, syncBatchNorm: syncBatchnorm ? true : nil)
    }

    private func execute(_ trainer: Trainer) throws {
        if trainer.parallel.isRoot {
            for note in trainer.notes { FileHandle.standardError.write(Data("memloss train: \(note)\n".utf8)) }
        }
        let progress = ProgressRenderer()
        try trainer.train { progress.handle($0, runDirectory: trainer.run.url.path) }
    }

    /// Lays the given flags over `cfg`.
    private func applyFlags(_ cfg: inout TrainConfig) throws {
        if let data { cfg.data = data }
        if let model { cfg.model = model }
        if let width { cfg.width = width }
        try applyAttackFlags(&cfg)
        if let beta { cfg.method.beta = beta }
        if let gamma {
            guard case .hat(var h) = cfg.method else { throw ValidationError("--gamma applies to --method hat only") }
            h.gamma = gamma
            cfg.method = .hat(h)
        }
        if let helperCheckpoint { cfg.helperCheckpoint = helperCheckpoint }
        if let epochs { cfg.epochs = epochs }
        if let batchSize { cfg.batchSize = batchSize }
        if let lr { cfg.optimizer.learningRate = lr }
        if let momentum { cfg.optimizer.momentum = momentum }
        if let weightDecay { cfg.optimizer.weightDecay = weightDecay }
        if let nesterov { cfg.optimizer.nesterov = nesterov }
        if let schedule { cfg.schedule = try parseSchedule(schedule, maxLR: cfg.optimizer.learningRate) }
        if let seed { cfg.seed = seed }
        if let validationSize { cfg.validationSize = validationSize }
        if let evalEvery { cfg.evalEvery = evalEvery }
        if let validationSamples { cfg.validationSamples = validationSamples }
        if let testAttacks { cfg.testAttacks = testAttacks.split(separator: ",").map { String($0) } }
        if let testSamples { cfg.testSamples = testSamples }
        if let augment { cfg.augment = augment }
        if let logEvery { cfg.logEvery = logEvery }
        if let trainSamples { cfg.trainSamples = trainSamples }
        if let attackInit {
            guard let a = AttackInit(rawValue: attackInit) else {
                throw ValidationError("--attack-init '\(attackInit)': expected random or memory")
            }
            cfg.attackInit = a
        }
        let termOptions: [(String, Any?)] = [("--mem-beta", memBeta), ("--mem-weight", memWeight), ("--mem-reduce", memReduce),
                                              ("--mem-select", memSelect)]
        let storeOptions: [Any?] = [memK, memStride, memCodec, memStore, memDir, memKeep]
        let givenTerm = termOptions.filter { $0.1 != nil }.map(\.0)
        let anyMemOption = !givenTerm.isEmpty || storeOptions.contains { $0 != nil }
        if recordMemory {
            if memloss == true { throw ValidationError("--record-memory records without the MemLoss term; drop --memloss") }
            if let flag = givenTerm.first {
                throw ValidationError("\(flag) sets the MemLoss term, which --record-memory leaves out; drop one of them")
            }
        }
        if memloss == false && !recordMemory {
            if anyMemOption { throw ValidationError("--no-memloss cannot be combined with --mem-* options (add --record-memory to keep a bank)") }
            cfg.memLoss = nil
        } else if memloss == true || anyMemOption || recordMemory {
            var m = cfg.memLoss ?? MemLossConfig()
            if recordMemory { m.store.recordOnly = true } else if memloss == true || !givenTerm.isEmpty { m.store.recordOnly = false }
            if let memBeta { m.term.beta = memBeta }
            if let memWeight {
                guard let w = MemoryWeighting(rawValue: memWeight) else {
                    throw ValidationError("--mem-weight '\(memWeight)': expected difficulty, difficulty-detached or uniform")
                }
                m.term.weighting = w
            }
            if let memK { m.store.window = memK }
            if let memStride { m.store.stride = memStride }
            if let memReduce {
                guard let r = MemoryReduction(rawValue: memReduce) else {
                    throw ValidationError("--mem-reduce '\(memReduce)': expected mean or sum")
                }
                m.term.reduce = r
            }
            if let memSelect {
                guard let s = MemorySelection(parsing: memSelect) else {
                    throw ValidationError("--mem-select '\(memSelect)': expected all, hardest:F with 0 < F ≤ 1, or misclassified")
                }
                m.term.select = s
            }
            if let memCodec {
                guard let c = BankCodec(rawValue: memCodec) else {
                    throw ValidationError("--mem-codec '\(memCodec)': expected "
                                          + BankCodec.allCases.map(\.rawValue).joined(separator: ", "))
                }
                m.store.codec = c
            }
            if let memStore {
                guard let k = MemoryStoreKind(rawValue: memStore) else {
                    throw ValidationError("--mem-store '\(memStore)': expected disk or ram")
                }
                m.store.kind = k
            }
            if let memDir { m.store.directory = memDir }
            if let memKeep {
                guard let k = BankRetention(rawValue: memKeep) else {
                    throw ValidationError("--mem-keep '\(memKeep)': expected window or all")
                }
                m.store.keep = k
            }
            cfg.memLoss = m
        } else if method != nil && cfg.method.attack == nil {
            // `--method standard` without a MemLoss flag: the demo's memory term has nothing to
            // remember, so it is dropped (asking for both is an error from TrainConfig.validate).
            cfg.memLoss = nil
        }
    }

    /// `--method`, `--epsilon`, `--step-size`, `--attack-steps`, `--val-step-size`, `--val-steps`, resolved
    /// by `TrainConfig.applyAttackSettings` (the rules are in its doc comment and in `--help`).
    private func applyAttackFlags(_ cfg: inout TrainConfig) throws {
        var s = AttackSettings(steps: attackSteps, validationSteps: valSteps)
        if let method {
            guard MethodConfig.defaultConfig(named: method) != nil else {
                throw ValidationError("unknown method '\(method)'; expected standard, pgd-at, trades, mart or hat")
            }
            s.method = method
        }
        if let epsilon {
            guard let e = parseEpsilon(epsilon), NumericSetting.epsilon.accepts(Double(e)) else {
                throw ValidationError("--epsilon '\(epsilon)': expected a number in [0, 1] or a fraction like 8/255")
            }
            s.epsilon = e
            s.epsilonText = epsilon
        }
        if let stepSize {
            guard let a = parseEpsilon(stepSize), a > 0, a.isFinite else {
                throw ValidationError("--step-size '\(stepSize)': expected a finite positive number or fraction")
            }
            s.stepSize = a
        }
        if let valStepSize {
            guard let a = parseEpsilon(valStepSize), a > 0, a.isFinite else {
                throw ValidationError("--val-step-size '\(valStepSize)': expected a finite positive number or fraction")
            }
            s.validationStepSize = a
        }
        if let valSteps, valSteps < 0 { throw ValidationError("--val-steps \(valSteps): expected an integer ≥ 0") }
        if let attackSteps, attackSteps < 0 { throw ValidationError("--attack-steps \(attackSteps): expected an integer ≥ 0") }
        try cfg.applyAttackSettings(s)
    }

    private func parseSchedule(_ s: String, maxLR: Float) throws -> LearningRateSchedule {
        switch s {
        case "constant": return .constant
        case "cosine": return .cosine
        case "onecycle": return .oneCycle(maxLearningRate: maxLR)
        default:
            if s.hasPrefix("piecewise:") {
                let ms = s.dropFirst("piecewise:".count).split(separator: ",").compactMap { Int($0) }
                guard !ms.isEmpty else { throw ValidationError("--schedule \(s): expected piecewise:E1,E2,...") }
                return .piecewise(milestones: ms, factors: ms.indices.map { Float(pow(0.1, Double($0 + 1))) })
            }
            throw ValidationError("--schedule '\(s)': expected constant, piecewise:E1,E2,..., cosine or onecycle")
        }
    }
}

/// Renders training events: a one-line progress bar on a terminal, plain lines otherwise.
final class ProgressRenderer {
    let isTerminal = isatty(STDOUT_FILENO) == 1
    private var lastPlain = 0.0

    func handle(_ event: TrainingEvent, runDirectory: String) {
        switch event {
        case let .started(total, steps, startEpoch, samples, model, params):
            print("memloss: training \(model) (\(params) parameters) on \(samples) samples, "
                  + "\(total) epochs × \(steps) steps\(startEpoch > 0 ? ", resuming after epoch \(startEpoch)" : "")")
            print("run directory: \(runDirectory)")
        case let .step(epoch, step, steps, loss, ips, eta):
            if isTerminal {
                let width = 24, filled = Int(Double(width) * Double(step) / Double(max(steps, 1)))
                let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
                let line = String(format: "\repoch %d [%@] %d/%d  loss %.4f  %.0f img/s  ETA %@   ",
                                  epoch, bar, step, steps, loss, ips, formatDuration(eta))
                FileHandle.standardOutput.write(Data(line.utf8))
            } else if SystemStats.now - lastPlain >= 10 || step == steps {
                lastPlain = SystemStats.now
                print(String(format: "epoch %d step %d/%d loss %.4f %.0f img/s ETA %@", epoch, step, steps, loss, ips,
                             formatDuration(eta)))
            }
        case let .epoch(r):
            if isTerminal { print("") }
            var parts = ["epoch \(r.epoch)", String(format: "loss %.4f", r.trainLoss),
                         String(format: "train clean %.1f%%", r.trainCleanAccuracy * 100)]
            if let a = r.valCleanAccuracy { parts.append(String(format: "val clean %.1f%%", a * 100)) }
            if let a = r.valRobustAccuracy { parts.append(String(format: "val robust %.1f%%", a * 100)) }
            if let m = r.trainTerms["mem"] { parts.append(String(format: "mem %.4f", m)) }
            if let m = r.memory, m.totalBytes > 0 {
                parts.append(String(format: "bank %.1f MiB (%.0f B/entry)", Double(m.totalBytes) / 1_048_576, m.bytesPerEntry))
            }
            parts.append(String(format: "%.1f s", r.epochSeconds))
            print(parts.joined(separator: "  "))
            if let c = r.memory?.entriesCorrupt, c > 0 {
                print("warning: \(c) damaged memory-bank entries were skipped this epoch (their memory term was not used); "
                      + "see the bank_problem lines in \(runDirectory)/metrics.jsonl")
            }
        case let .evaluated(split, r) where split == "test":
            var line = String(format: "test (n=%d, ε=%@): natural %.2f%%", r.n, r.epsilonText, r.cleanAccuracy * 100)
            for a in r.attacks { line += String(format: ", %@ %.2f%%", a.attack, a.accuracy * 100) }
            print(line)
        case .evaluated:
            break
        case let .finished(summary):
            print(String(format: "done in %.1f s; report: %@/report.md", summary.wallSeconds, runDirectory))
        }
    }
}

func formatDuration(_ s: Double) -> String {
    guard s.isFinite, s >= 0 else { return "?" }
    let t = Int(s.rounded())
    return t >= 3600 ? "\(t / 3600)h\(t % 3600 / 60)m" : t >= 60 ? "\(t / 60)m\(t % 60)s" : "\(t)s"
}
