// EvalCommand.swift: `memloss eval`: clean and robust accuracy of a checkpoint under named
// attacks, with the per-sample worst case; JSON or a table. `--attack autoattack` runs the
// AutoAttack cascade with PGD-20 and the sanity checks (Training/AutoAttackReport.swift) and
// writes JSON and Markdown. `--replay BANK` evaluates the bank's stored generations instead
// (Training/Replay.swift). The model and data come from the checkpoint's metadata unless given
// (Training.RestoredModel holds the fallback order); `memloss export` rebuilds the model the same way.

import ArgumentParser
import Attacks
import Datasets
import Distributed
import Foundation
import Layers
import MemoryBank
import Models
import Tensors
import Training

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval", abstract: "Evaluate a checkpoint: clean accuracy, robust accuracy per attack, worst case.")

    @Option(help: "A .safetensors checkpoint written by memloss.")
    var checkpoint: String
    @Option(name: .customLong("attack"),
            help: "Comma-separated attacks: natural, fgsm, pgd20, pgdN, cw, cwN; or autoattack (alone). Default: pgd20.")
    var attackList: String?
    @Option(help: ArgumentHelp(
        "Replay a memory bank: accuracy on the x′ of every stored generation, and forgetting events (docs/membank.md, Replay).",
        discussion: "The x′ are rebuilt from the training data the bank was made on (its createdBy's data; --data overrides). "
            + "Replaces the attack evaluation: --attack and --n do not apply."))
    var replay: String?
    @Option(help: "AutoAttack version: standard (APGD-CE, APGD-T, FAB-T, Square) or fast (APGD-CE, APGD-T).")
    var version: AutoAttack.Preset = .standard
    @Option(help: "AutoAttack threat model: linf or l2.")
    var norm: PerturbationNorm = .linf
    @Option(help: "AutoAttack: resumable state file (continued if it exists and matches this run).")
    var state: String?
    @Option(help: "AutoAttack: write the Markdown report here (default: next to --output, as .md).")
    var markdown: String?
    @Option(help: "AutoAttack: points per attack batch.")
    var batchSize: Int = AutoAttack.Config.defaultBatchSize
    @Option(help: "AutoAttack: ε of the large-ε sanity check (default 0.5 for linf, 0.5·√d for l2).")
    var largeEpsilon: String?
    @Option(help: "Number of test samples (0 = all).")
    var n: Int = 0
    @Option(help: "ε (fraction or decimal); default: the one recorded in the checkpoint.")
    var epsilon: String?
    @Option(help: "Data source; default: the one recorded in the checkpoint (its test split); with --replay, the bank's (its training split).")
    var data: String?
    @Option(help: "Model name; default: the one recorded in the checkpoint.")
    var model: String?
    @Option(help: "Width multiplier; default: the one recorded in the checkpoint.")
    var width: Double?
    @Option(help: "Number of classes; default: the one recorded in the checkpoint, else the data's.")
    var classes: Int?
    @Option(help: "Seed of the attacks' random starts.")
    var seed: UInt64 = 0
    @Flag(help: "Print JSON.")
    var json = false
    @Option(help: "Also write the JSON result to this file.")
    var output: String?

    /// The attacks asked for (pgd20 unless --attack is given).
    var attack: String { attackList ?? "pgd20" }

    func run() throws {
        // Under mpirun: the attack evaluation, AutoAttack and the replay shard their points across
        // the ranks and rank 0 gathers the results (docs/distributed.md §5); without a launcher,
        // one process and no MPI call.
        let communicator: any Communicator
        do { communicator = try makeCommunicator() } catch { throw ValidationError("\(error)") }
        defer { communicator.finalize() }
        guard communicator.size > 1 else { return try evaluate(DataParallel()) }
        do { try evaluate(DataParallel(communicator: communicator)) } catch {
            // Errors every rank meets together (the same flags and files, or a failure the ranks
            // agreed on) end every rank normally; rank 0 or the failing rank says why.
            if case DataParallelError.stoppedByAgreement? = error as? DataParallelError { throw ExitCode(1) }
            if DataParallelError.isAgreed(error) || (communicator.rank == 0 && error is ValidationError) {
                throw communicator.rank == 0 ? printedBeforeFinalize(error) : error
            }
            communicator.abort(code: 1, message: "memloss eval (rank \(communicator.rank)): \(error)")
        }
    }

    /// The evaluation as rank `parallel.rank` of `parallel.size` (rank 0 alone prints and writes).
    private func evaluate(_ parallel: DataParallel) throws {
        if let replay {
            try runReplay(bank: replay, parallel: parallel)
            return
        }
        // Flags and files are read on every rank and agreed on: a bad flag or a file one rank cannot
        // read stops every rank with a normal exit, said once by rank 0.
        let p = try parallel.agreeing("reading the flags and files") { try prepare(parallel) }
        let net = p.restored.model, spec = p.restored.spec, testSet = p.testSet, source = p.source
        let (dataSpec, epsText, eps, count, attacks) = (p.dataSpec, p.epsText, p.eps, p.count, p.attacks)
        if let options = p.autoAttack {
            let context = ["checkpoint": checkpoint, "model": spec.name, "data": dataSpec]
            try runAutoAttack(net, testSet, count: count, split: source.hasTestSet ? "test" : "train", epsText: epsText,
                              eps: eps, options: options, context: context, parallel: parallel)
            return
        }
        let r = try parallel.reduce(Evaluation.run(model: net, dataset: testSet, ids: parallel.shard(Array(0..<count)),
                                                   attacks: attacks, epsilonText: epsText, epsilon: eps, seed: seed))
        guard parallel.isRoot else { return }
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try enc.encode(r)
        if let output { try writeResult(Data(data), to: output) }
        if json {
            print(String(decoding: data, as: UTF8.self))
            return
        }
        print("checkpoint \(checkpoint): \(spec.name) on \(dataSpec) (\(source.hasTestSet ? "test" : "train") split), "
              + "n = \(r.n), ε = \(r.epsilonText) = \(r.epsilon), BN \(r.bnMode), seed \(r.seed)")
        print(String(format: "  natural     %.2f%%", r.cleanAccuracy * 100))
        for a in r.attacks { print(String(format: "  %-10@  %.2f%%", a.attack, a.accuracy * 100)) }
        print(String(format: "  worst case  %.2f%%", r.worstCaseAccuracy * 100))
    }
}

extension EvalCommand {
    /// `--attack autoattack`: the cascade, PGD-20 and the sanity checks; JSON and Markdown.
    /// Under mpirun each rank attacks its share of the points (its state file is `--state` with
    /// `.rank-<r>` appended) and rank 0 alone prints and writes.
    func runAutoAttack(_ net: AnyClassifier, _ testSet: Dataset, count: Int, split: String, epsText: String, eps: Float,
                       options: AutoAttackOptions, context: [String: String], parallel: DataParallel) throws {
        let interactive = isatty(fileno(stderr)) != 0
        let report: AutoAttackReport?
        let who = parallel.isDistributed ? "rank 0's share: " : ""
        do {
            report = try AutoAttackEvaluation.run(model: net, dataset: testSet, ids: Array(0..<count), split: split,
                                                  epsilonText: epsText, epsilon: eps, options: options, parallel: parallel) { p in
                guard parallel.isRoot else { return true }
                let line = "autoattack: \(who)\(p.attack.rawValue) batch \(p.batchesDone)/\(p.batchCount), robust \(p.robustCount)"
                FileHandle.standardError.write(Data(((interactive ? "\r" : "") + line + (interactive ? "" : "\n")).utf8))
                return true
            }
        } catch let e as AutoAttackError { throw ValidationError(e.description) }
        guard parallel.isRoot else { return }
        if interactive { FileHandle.standardError.write(Data("\n".utf8)) }
        guard var r = report else { throw ValidationError("AutoAttack stopped before finishing") }
        r.source = context
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try enc.encode(r)
        if let output { try writeResult(data, to: output) }
        let markdownPath = markdown ?? output.map { URL(fileURLWithPath: $0).deletingPathExtension().path + ".md" }
        if let markdownPath { try writeResult(Data(r.markdown().utf8), to: markdownPath) }
        print(json ? String(decoding: data, as: UTF8.self) : r.markdown())
    }
}

extension EvalCommand {
    /// AutoAttack's options from the flags; under mpirun the state file is `--state` with
    /// `.rank-<r>` appended (each rank resumes its own shard; docs/distributed.md §5).
    func autoAttackOptions(_ parallel: DataParallel) throws -> AutoAttackOptions {
        guard attack.lowercased() == "autoattack" else {
            throw ValidationError("--attack autoattack runs alone (it runs PGD-20 itself for its sanity check); got '\(attack)'")
        }
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be ≥ 1, got \(batchSize)") }
        let statePath = state.map { parallel.isDistributed ? "\($0).rank-\(parallel.rank)" : $0 }
        var options = AutoAttackOptions(preset: version, norm: norm, seed: seed, batchSize: batchSize,
                                        stateFile: statePath.map { URL(fileURLWithPath: $0) })
        if let largeEpsilon {
            guard let e = parseEpsilon(largeEpsilon), e > 0 else {
                throw ValidationError("--large-epsilon '\(largeEpsilon)' must be a positive number or fraction")
            }
            options.largeEpsilon = e
        }
        return options
    }
}

extension EvalCommand {
    /// `--replay BANK`: Training.Replay over every live generation; a table, or JSON.
    /// Under mpirun each rank replays its share of every generation's entries; rank 0 prints and writes.
    func runReplay(bank path: String, parallel: DataParallel) throws {
        try parallel.agreeing("reading the flags") {
            if attackList != nil { throw ValidationError("--replay evaluates the bank's stored examples; drop --attack") }
            if n != 0 { throw ValidationError("--replay evaluates every entry of the bank; drop --n") }
        }
        let url = URL(fileURLWithPath: checkpoint)
        let result: ReplayReport?
        do {
            // Opening is agreed too: a bank or data one rank cannot read stops every rank together.
            let opened = try parallel.agreeing("opening the replay") { try openReplay(bank: path, checkpoint: url) }
            result = try Replay.run(model: opened.model, bank: opened.reader, dataset: opened.dataset, dataSpec: opened.dataSpec,
                                    parallel: parallel)
        } catch let e as DataParallelError { throw e } catch let e as ValidationError { throw e } catch {
            throw ValidationError("\(error)")
        }
        guard let report = result else { return }
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try enc.encode(report)
        if let output { try writeResult(data, to: output) }
        print(json ? String(decoding: data, as: UTF8.self) : "checkpoint \(checkpoint)\n" + report.table())
    }
}

/// What an attack evaluation reads before its first collective call (EvalCommand.prepare).
struct PreparedEvaluation {
    var restored: RestoredModel
    var source: DataSource
    var testSet: Dataset
    var dataSpec: String
    var epsText: String
    var eps: Float
    /// Test points evaluated: positions 0..<count of the split.
    var count: Int
    /// The named attacks (empty for AutoAttack).
    var attacks: [(name: String, spec: AttackSpec)]
    /// AutoAttack's options, when `--attack autoattack`.
    var autoAttack: AutoAttackOptions?
}

extension EvalCommand {
    /// The checkpoint, data and attacks the flags name, checked (every error a ValidationError).
    func prepare(_ parallel: DataParallel) throws -> PreparedEvaluation {
        let url = URL(fileURLWithPath: checkpoint)
        let meta: [String: String]
        do { meta = try RestoredModel.metadata(of: url) } catch { throw ValidationError("\(error)") }
        let dataSpec = data ?? meta[CheckpointMetadataKey.data] ?? "demo"
        let epsText = epsilon ?? meta[CheckpointMetadataKey.epsilon] ?? "8/255"
        guard let eps = parseEpsilon(epsText) else { throw ValidationError("--epsilon '\(epsText)' is not a number or fraction") }
        let source: DataSource
        let testSet: Dataset
        do {
            source = try DataSource(parsing: dataSpec)
            testSet = try source.open(source.hasTestSet ? .test : .train)
        } catch { throw ValidationError("\(error)") }
        let restored: RestoredModel
        do {
            restored = try RestoredModel.load(checkpoint: url, metadata: meta,
                                              overrides: ModelOverrides(model: model, width: width, classes: classes),
                                              datasetClassCount: testSet.classCount)
        } catch { throw ValidationError("\(error)") }
        let count = n > 0 ? min(n, testSet.count) : testSet.count
        var p = PreparedEvaluation(restored: restored, source: source, testSet: testSet, dataSpec: dataSpec, epsText: epsText,
                                   eps: eps, count: count, attacks: [], autoAttack: nil)
        if attack.lowercased().split(separator: ",").contains("autoattack") {
            p.autoAttack = try autoAttackOptions(parallel)
            return p
        }
        for name in attack.split(separator: ",").map(String.init) {
            do { p.attacks.append((name, try AttackSpec(parsing: name, epsilon: eps))) } catch {
                throw ValidationError("--attack \(name): \(error)")
            }
        }
        return p
    }
}

/// What a replay evaluates: the restored model, the bank, the data it was made on.
struct OpenedReplay {
    var model: AnyClassifier
    var reader: BankReader
    var dataset: Dataset
    var dataSpec: String
}

extension EvalCommand {
    /// Opens the checkpoint, the bank and its data for `--replay`, checked against each other.
    func openReplay(bank path: String, checkpoint url: URL) throws -> OpenedReplay {
        do {
            let meta = try RestoredModel.metadata(of: url)
            let reader = try Replay.openBank(at: URL(fileURLWithPath: path))
            guard let dataSpec = data ?? Replay.dataSource(ofBank: reader) ?? meta[CheckpointMetadataKey.data] else {
                throw ReplayError.noDataSource(bank: path)
            }
            let dataset = try Replay.openData(dataSpec)
            let restored = try RestoredModel.load(checkpoint: url, metadata: meta,
                                                  overrides: ModelOverrides(model: model, width: width, classes: classes),
                                                  datasetClassCount: dataset.classCount)
            try Replay.checkModel(name: restored.spec.name, inputShape: restored.spec.inputShape, bank: reader)
            return OpenedReplay(model: restored.model, reader: reader, dataset: dataset, dataSpec: dataSpec)
        } catch { throw ValidationError("\(error)") }
    }
}

extension AutoAttack.Preset: ExpressibleByArgument {}
extension PerturbationNorm: ExpressibleByArgument {}

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write a checkpoint's weights as a plain safetensors file with PyTorch state_dict names.")

    @Option(help: "A .safetensors checkpoint written by memloss.")
    var checkpoint: String
    @Option(help: "Output .safetensors file.")
    var out: String

    func run() throws {
        // Rebuild the model and load through the checked path, so an exported file always has
        // exactly the architecture's names, shapes and dtypes.
        let restored: RestoredModel
        do { restored = try RestoredModel.load(checkpoint: URL(fileURLWithPath: checkpoint)) } catch {
            throw ValidationError("\(error)")
        }
        let spec = restored.spec, net = restored.model
        do {
            try Checkpoint.save(model: net.stateEntries(prefix: ""), to: URL(fileURLWithPath: out),
                                metadata: ["format": "pt", CheckpointMetadataKey.model: restored.modelName,
                                           CheckpointMetadataKey.width: "\(spec.width)",
                                           CheckpointMetadataKey.classes: "\(spec.classes)"])
        } catch { throw ValidationError("\(error)") }
        print("wrote \(out): \(net.stateEntries(prefix: "").count) tensors (\(spec.name)); "
              + "load in PyTorch with safetensors.torch.load_file + model.load_state_dict")
    }
}

/// Writes an evaluation result file atomically; a failure is one line naming the path and the cause
/// with a hint (SystemIOError), never Foundation's raw error.
func writeResult(_ data: Data, to path: String) throws {
    do { try ResultFile.write(data, toPath: path) } catch { throw ValidationError("\(error)") }
}
