// DataParallel.swift: what the trainer does differently as one of R ranks (docs/distributed.md):
// the config agreement check, the broadcast of rank 0's initial state, the per-rank sample shard and
// seeds, the gradient all-reduce (one packed buffer per step, with the non-finite flag), the
// reduction of step counters and evaluation counts to every rank, the gathering of the ranks' bank
// problem lines and of evaluation shards (AutoAttack, replay) to rank 0, failures agreed between
// ranks (`agreeing`), the averaging of batch-norm running statistics, the replica-agreement check,
// the bank shard directory and the world-size rule of a resume. With one rank (`SingleProcess`) every
// function is the identity and no file changes. It never prints; the synchronised batch norm's
// layer side is Layers/BatchNorm2DLayer+Sync.swift (docs/distributed.md §4).

import Datasets
import Distributed
import Foundation
import Layers
import Models
import Tensors

/// A failure of the data-parallel machinery, as a value with a hint.
public enum DataParallelError: Error, CustomStringConvertible {
    /// Ranks resolved different configs (`differences`: one line per differing rank).
    case configMismatch(rootHash: String, differences: [String])
    /// Another rank found the problem; rank 0 reports it (this rank stops quietly).
    case stoppedByAgreement(reason: String)
    /// `--batch-size` not divisible by the world size.
    case batchNotDivisible(batchSize: Int, worldSize: Int)
    /// A resume under another world size than the run's.
    case worldSizeChanged(runDirectory: String, stored: Int, current: Int)
    /// Parameters differ between ranks after a step (a bug, or a rank that ran other data).
    case replicasDiverged(epoch: Int, checksums: [String])
    /// A collective operation failed.
    case communication(DistributedError)
    /// `--sync-batchnorm` given on a resume of a run trained with the other setting.
    case syncBatchNormChanged(runDirectory: String, stored: Bool)
    /// The run's distributed.json cannot be read or written.
    case file(path: String, problem: String)
    /// Rank 0's view of an agreed failure: every failing rank's error text (`messages`, by rank,
    /// in rank order); the other ranks stop with `.stoppedByAgreement`; every rank ends normally.
    case failedOnRanks(messages: [RankMessage], worldSize: Int)

    public var description: String {
        switch self {
        case .configMismatch(let h, let d):
            return "distributed: the ranks resolved different configs (rank 0's hash \(h)):\n  " + d.joined(separator: "\n  ")
                + "\nhint: every rank must run the same command with the same --config file and data"
        case .stoppedByAgreement(let reason):
            return "distributed: stopped with the other ranks (\(reason)); rank 0 reports the cause"
        case .batchNotDivisible(let b, let r):
            return "--batch-size \(b) is the global batch and must be divisible by the \(r) ranks (\(b) mod \(r) = \(b % r))\n"
                + "hint: pass --batch-size \(max(r, b / r * r)) (or \((b / r + 1) * r))"
        case .worldSizeChanged(let dir, let stored, let current):
            return "resume: \(dir) was trained with \(stored) rank\(stored == 1 ? "" : "s") and this launch has \(current); "
                + "a resume needs the same world size (the sample shards, the bank shards and the per-rank random streams "
                + "depend on it)\nhint: resume with `mpirun -np \(stored) memloss train --resume \(dir)`"
                + (stored == 1 ? " (or without mpirun)" : "")
        case .replicasDiverged(let epoch, let sums):
            return "distributed: the ranks' parameters differ after epoch \(epoch) (checksums by rank: "
                + sums.joined(separator: ", ") + ")\nhint: this is a bug; report it with the run's config.json"
        case .communication(let e):
            return "\(e)"
        case .syncBatchNormChanged(let dir, let stored):
            return "resume: \(dir) was trained \(stored ? "with" : "without") --sync-batchnorm; a resume keeps the run's setting\n"
                + "hint: resume without the flag (the stored setting is used)"
        case .file(let path, let problem):
            return "\(path): \(problem)\nhint: the file records the run's world size; restore it or start a new run"
        case .failedOnRanks(let messages, let size):
            return DataParallelError.describe(messages, worldSize: size)
        }
    }
}

/// One rank's error text, gathered to rank 0 by `DataParallel.agreeing`.
public struct RankMessage: Codable, Equatable, Sendable {
    public var rank: Int
    public var message: String
    public init(rank: Int, message: String) { self.rank = rank; self.message = message }
}

extension DataParallelError {
    /// The text of an agreed failure, said once: the message alone when every rank failed with
    /// the same text (the usual case: the same flags, the same files), otherwise one line per
    /// distinct message naming its ranks ("rank 1: …", "ranks 0, 2: …").
    static func describe(_ messages: [RankMessage], worldSize: Int) -> String {
        var groups: [(text: String, ranks: [Int])] = []
        for m in messages {
            if let k = groups.firstIndex(where: { $0.text == m.message }) { groups[k].ranks.append(m.rank) } else {
                groups.append((m.message, [m.rank]))
            }
        }
        if groups.count == 1, groups[0].ranks.count == worldSize { return groups[0].text }
        return groups.map { g in
            (g.ranks.count == 1 ? "rank \(g.ranks[0])" : "ranks " + g.ranks.map(String.init).joined(separator: ", ")) + ": " + g.text
        }.joined(separator: "\n")
    }

    /// True for errors every rank raises together (after a collective agreement), so the job can
    /// end with MPI_Finalize instead of MPI_Abort.
    /// A non-finite loss is one: the non-finite flag is all-reduced with the gradient, so every
    /// rank stops at the same step.
    public static func isAgreed(_ error: Error) -> Bool {
        if case .nonFinite? = error as? TrainingError { return true }
        switch error as? DataParallelError {
        case .configMismatch?, .stoppedByAgreement?, .replicasDiverged?, .batchNotDivisible?, .worldSizeChanged?,
             .syncBatchNormChanged?, .failedOnRanks?: return true
        default: return false
        }
    }
}

/// The data-parallel side of one training process (rank `rank` of `size`).
public final class DataParallel {
    public let communicator: any Communicator
    public var rank: Int { communicator.rank }
    public var size: Int { communicator.size }
    public var isRoot: Bool { communicator.rank == 0 }
    /// More than one rank.
    public var isDistributed: Bool { communicator.size > 1 }

    /// Salt of the per-rank attack and dropout seeds.
    static let rankSalt: UInt64 = 0x7261_6E6B_7365_6431  // "rankseed"
    /// The file recording a multi-rank run's world size, in the run directory.
    public static let fileName = "distributed.json"

    /// Synchronised batch norm (`--sync-batchnorm`): batch statistics all-reduced per layer in the
    /// forward and the matching sums in the backward; false: per-rank statistics, running statistics
    /// averaged at each commit. Resolved from the run's distributed.json on a resume.
    public private(set) var syncBatchNorm: Bool
    /// Whether the option was given (a resume refuses a value other than the stored one).
    private let syncBatchNormGiven: Bool
    /// The first failure of a collective made inside a layer pass (which cannot throw); the next
    /// gradient all-reduce throws it.
    private var pendingError: DistributedError?

    /// - Parameter syncBatchNorm: nil: false for a new run, the stored setting on a resume.
    public init(communicator: any Communicator = SingleProcess(), syncBatchNorm: Bool? = nil) {
        self.communicator = communicator
        self.syncBatchNorm = syncBatchNorm ?? false
        self.syncBatchNormGiven = syncBatchNorm != nil
    }

    // MARK: - Seeds and shards

    /// Rank `rank`'s seed for the attack's random stream (TrainingStep derives the per-step stream
    /// from it and the global step): the run seed itself on rank 0, so one rank equals a plain run.
    public static func rankSeed(_ seed: UInt64, rank: Int) -> UInt64 {
        rank == 0 ? seed : SplitMix64.derived(seed: seed ^ rankSalt, stream: UInt64(rank)).state
    }

    /// This rank's batch of a `global` batch: `global / size`.
    /// - Throws: `.batchNotDivisible` when `global mod size ≠ 0`.
    public func localBatchSize(global: Int) throws -> Int {
        guard global % size == 0 else { throw DataParallelError.batchNotDivisible(batchSize: global, worldSize: size) }
        return global / size
    }

    /// The epoch's plan for this rank: the plain plan for one rank; otherwise the rank's shard
    /// (sample ID i belongs to rank i mod R), in its own order, cut to the smallest shard's size
    /// and into batches of `globalBatch / R` (EpochPlan(shardOf:…)).
    public func plan(population: [Int], seed: UInt64, epoch: Int, globalBatch: Int) throws -> EpochPlan {
        guard isDistributed else { return EpochPlan(population: population, seed: seed, epoch: epoch, batchSize: globalBatch) }
        return EpochPlan(shardOf: population, rank: rank, size: size, seed: seed, epoch: epoch,
                         batchSize: try localBatchSize(global: globalBatch))
    }

    /// This rank's part of evaluation points `ids` (position k goes to rank k mod R).
    public func shard(_ ids: [Int]) -> [Int] {
        isDistributed ? stride(from: rank, to: ids.count, by: size).map { ids[$0] } : ids
    }

    /// Where this rank's bank lives: `directory` for one rank, `directory/rank-<r>` otherwise.
    public func bankDirectory(_ directory: URL) -> URL {
        isDistributed ? directory.appendingPathComponent("rank-\(rank)") : directory
    }

    // MARK: - Start

    /// Checks that every rank resolved the same config: rank 0's key-sorted JSON is broadcast and
    /// compared (hash and first differing field) on each rank; any difference stops every rank.
    /// - Throws: `.configMismatch` on rank 0 (naming each differing rank's first field and hash),
    ///   `.stoppedByAgreement` on the others.
    public func checkSameConfig(_ config: TrainConfig) throws {
        guard isDistributed else { return }
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        var mine = Array((try? enc.encode(config)) ?? Data())
        if var object = (try? JSONSerialization.jsonObject(with: Data(mine))) as? [String: Any] {
            object["distributed.syncBatchNorm"] = syncBatchNorm  // the one option outside TrainConfig that changes results
            mine = Array((try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data(mine))
        }
        let root = try collective { try communicator.broadcast(bytes: mine, root: 0) }
        var difference = ""
        if root != mine {
            let field = DataParallel.firstDifference(root, mine) ?? "(the JSON text)"
            difference = "rank \(rank): hash \(DataParallel.hash(mine)), first differing field \(field)"
        }
        var flag: [Double] = [difference.isEmpty ? 0 : 1]
        try collective { try communicator.allReduceSum(&flag) }
        guard flag[0] == 0 else {
            let lines = try collective { try communicator.gather(bytes: Array(difference.utf8), root: 0) }
            if isRoot {
                throw DataParallelError.configMismatch(rootHash: DataParallel.hash(root),
                                                       differences: lines.map { String(decoding: $0, as: UTF8.self) }.filter { !$0.isEmpty })
            }
            throw DataParallelError.stoppedByAgreement(reason: "the configs differ")
        }
    }

    /// Makes every rank's model state rank 0's: parameters and buffers broadcast as one float
    /// buffer, counters as doubles. The optimizer state needs nothing: it starts empty, or is
    /// restored from the same checkpoint on every rank, and then sees the same averaged gradients.
    /// Afterwards, ranks other than 0 give their dropout layers their own streams (from the layer's
    /// state and the rank), unless `keepDropoutStreams` (a resume restored them).
    public func broadcastState(of model: AnyClassifier, keepDropoutStreams: Bool = false) throws {
        guard isDistributed else { return }
        let entries = model.stateEntries(prefix: "")
        var floats = DataParallel.packTensors(entries)
        try collective { try communicator.broadcast(&floats, root: 0) }
        DataParallel.unpackTensors(floats, into: entries)
        var counters: [Double] = entries.compactMap { if case .counter(let c) = $0.reference { return isRoot ? Double(c.value) : 0 } else { return nil } }
        try collective { try communicator.allReduceSum(&counters) }
        var k = 0
        for e in entries { if case .counter(let c) = e.reference { c.value = Int64(counters[k]); k += 1 } }
        if !keepDropoutStreams && rank != 0 {
            for layer in model.stochasticLayers {
                layer.randomState = SplitMix64(seed: SplitMix64.derived(seed: layer.randomState.state ^ DataParallel.rankSalt,
                                                                          stream: UInt64(rank)).state)
            }
        }
    }

    // MARK: - Synchronised batch norm

    /// With `syncBatchNorm` and more than one rank, gives every batch-norm layer of `model` a
    /// reducer summing its statistics across the ranks (BatchNorm2DLayer+Sync.swift). The layers are
    /// found by walking the model's stored properties (Mirror), so no model type needs to list them.
    /// - Returns: the number of layers synchronised.
    @discardableResult
    public func enableSyncBatchNorm(on model: AnyClassifier) -> Int {
        guard isDistributed, syncBatchNorm else { return 0 }
        let layers = DataParallel.batchNormLayers(in: model.base)
        let reducer: BatchNormStatisticsReducer = { [communicator, weak self] values in
            guard self?.pendingError == nil else { return }
            do throws(DistributedError) { try communicator.allReduceSum(&values) } catch { self?.pendingError = error }
        }
        for layer in layers { layer.statisticsReducer = reducer }
        return layers.count
    }

    /// Every `BatchNorm2DLayer` reachable through stored properties (arrays and optionals included)
    /// of `root`, each once, in the order met.
    static func batchNormLayers(in root: Any) -> [BatchNorm2DLayer] {
        var seen = Set<ObjectIdentifier>(), out: [BatchNorm2DLayer] = []
        func visit(_ value: Any) {
            if let bn = value as? BatchNorm2DLayer {
                if seen.insert(ObjectIdentifier(bn)).inserted { out.append(bn) }
                return
            }
            let mirror = Mirror(reflecting: value)
            if mirror.displayStyle == .class {
                let id = ObjectIdentifier(value as AnyObject)
                guard seen.insert(id).inserted else { return }
            }
            for child in mirror.children { visit(child.value) }
            var s = mirror.superclassMirror
            while let m = s { for child in m.children { visit(child.value) }; s = m.superclassMirror }
        }
        visit(root)
        return out
    }

    // MARK: - Every step

    /// The gradient all-reduce of one step, for `TrainingStep.synchronizeGradients`: every
    /// parameter gradient and this rank's non-finite flag packed into one buffer, summed across
    /// ranks in one call, the gradients scaled by 1/R and written back. Returns whether every rank's
    /// loss was finite (then the optimizer steps on every rank; otherwise on none).
    public func gradientSynchronizer(for model: AnyClassifier) -> ((Bool) throws -> Bool)? {
        guard isDistributed else { return nil }
        let parameters = model.namedParameters.map(\.parameter)
        let scale = 1 / Float(size)
        return { [communicator, weak self] finite in
            if let e = self?.pendingError { throw DataParallelError.communication(e) }
            var buffer = [Float]()
            buffer.reserveCapacity(parameters.reduce(1) { $0 + $1.gradient.count })
            for p in parameters { buffer += p.gradient.scalars }
            buffer.append(finite ? 0 : 1)
            do { try communicator.allReduceSum(&buffer) } catch let e as DistributedError { throw DataParallelError.communication(e) }
            guard buffer[buffer.count - 1] == 0 else { return false }
            var offset = 0
            for p in parameters {
                let n = p.gradient.count
                p.gradient = Tensor(shape: p.gradient.shape, values: buffer[offset..<offset + n].map { $0 * scale })
                offset += n
            }
            return true
        }
    }

    /// The step's outcome with global figures: the loss and terms averaged over ranks (each rank's
    /// batch has the same size), the batch size and the correct counts and memory counters summed.
    /// Memory problem lines: when any rank has some (their count rides in the same all-reduce),
    /// the first `problemLimit` of each rank are gathered, and rank 0's outcome carries all of them
    /// with their ranks (`problemRanks`); the other ranks' carry none (rank 0 writes the lines).
    public func reduce(_ outcome: StepOutcome, problemLimit: Int = 20) throws -> StepOutcome {
        guard isDistributed else { return outcome }
        let keys = outcome.terms.keys.sorted()
        var v: [Double] = [Double(outcome.loss), Double(outcome.batchSize), Double(outcome.cleanCorrect),
                           Double(outcome.adversarialCorrect ?? 0), outcome.isFinite ? 0 : 1,
                           Double(outcome.memory?.entriesUsed ?? 0), Double(outcome.memory?.samplesWithMemory ?? 0),
                           Double(outcome.memory?.entriesPresent ?? 0), Double(outcome.memory?.problems.count ?? 0)]
        v += keys.map { Double(outcome.terms[$0]!) }
        try collective { try communicator.allReduceSum(&v) }
        var out = outcome
        let r = Double(size)
        out.loss = Float(v[0] / r)
        out.batchSize = Int(v[1])
        out.cleanCorrect = Int(v[2])
        if outcome.adversarialCorrect != nil { out.adversarialCorrect = Int(v[3]) }
        out.isFinite = v[4] == 0
        if var m = outcome.memory {
            m.entriesUsed = Int(v[5]); m.samplesWithMemory = Int(v[6]); m.entriesPresent = Int(v[7])
            let gathered = v[8] > 0 ? try gatherProblems(Array(m.problems.prefix(problemLimit))) : []
            m.problems = gathered.map(\.problem)
            m.problemRanks = gathered.map(\.rank)
            out.memory = m
        }
        for (i, k) in keys.enumerated() { out.terms[k] = Float(v[9 + i] / r) }
        return out
    }

    /// Every rank's problem lines at rank 0, in rank order, each with its rank; `[]` on the other
    /// ranks. Collective: every rank calls it (with its own lines, maybe none). One rank: its lines
    /// with rank 0.
    public func gatherProblems(_ mine: [String]) throws -> [(rank: Int, problem: String)] {
        guard let all = try gatherToRoot(mine) else { return [] }
        return all.enumerated().flatMap { r, lines in lines.map { (rank: r, problem: $0) } }
    }

    // MARK: - Epoch end and evaluation

    /// The epoch's bank report over every rank's shard: entry counts and bytes summed, wait times
    /// the slowest rank's (bytes per entry follows from the sums); nil stays nil.
    public func reduce(_ report: MemoryEpochReport?) throws -> MemoryEpochReport? {
        guard isDistributed, var r = report else { return report }
        var v: [Double] = [r.entriesWritten, r.entriesPresent, r.entriesAbsent, r.entriesCorrupt, r.generationBytes, r.totalBytes]
            .map(Double.init)
        try collective { try communicator.allReduceSum(&v) }
        // The slowest rank's waits: a max through the sum of one-hot slots (no max reduction needed).
        var waits = [Double](repeating: 0, count: 2 * size)
        waits[rank] = r.bankWaitSeconds
        waits[size + rank] = r.writerBlockedSeconds
        try collective { try communicator.allReduceSum(&waits) }
        r.entriesWritten = Int(v[0]); r.entriesPresent = Int(v[1]); r.entriesAbsent = Int(v[2]); r.entriesCorrupt = Int(v[3])
        r.generationBytes = Int(v[4]); r.totalBytes = Int(v[5])
        r.bankWaitSeconds = waits[0..<size].max() ?? 0
        r.writerBlockedSeconds = waits[size...].max() ?? 0
        return r
    }

    /// Averages the batch-norm running statistics (`…running_mean`, `…running_var` buffers) over
    /// the ranks. Training-mode passes only update them (never read them), and the update is affine
    /// with the same coefficients on every rank, so averaging at any commit gives the same numbers
    /// at the epoch end as averaging there alone (up to rounding).
    public func averageRunningStatistics(of model: AnyClassifier) throws {
        guard isDistributed else { return }
        let stats = model.stateEntries(prefix: "").filter { $0.name.hasSuffix("running_mean") || $0.name.hasSuffix("running_var") }
        guard !stats.isEmpty else { return }
        var floats = DataParallel.packTensors(stats)
        try collective { try communicator.allReduceSum(&floats) }
        let scale = 1 / Float(size)
        DataParallel.unpackTensors(floats.map { $0 * scale }, into: stats)
    }

    /// The result over every rank's shard: counts summed, accuracies recomputed over the total n
    /// (each rank evaluated `shard(ids)`); the seconds are the slowest rank's.
    public func reduce(_ r: EvaluationResult) throws -> EvaluationResult {
        guard isDistributed else { return r }
        let n = Double(r.n)
        var v: [Double] = [n, (r.cleanAccuracy * n).rounded(), (r.worstCaseAccuracy * n).rounded()] + r.attacks.map { Double($0.correct) }
        try collective { try communicator.allReduceSum(&v) }
        var seconds = [r.seconds]
        let all = try collective { try communicator.gather(bytes: Array(String(r.seconds).utf8), root: 0) }
        seconds += all.compactMap { Double(String(decoding: $0, as: UTF8.self)) }
        var out = r
        out.n = Int(v[0])
        func acc(_ c: Double) -> Double { v[0] == 0 ? 0 : c / v[0] }
        out.cleanAccuracy = acc(v[1])
        out.worstCaseAccuracy = acc(v[2])
        for i in out.attacks.indices {
            out.attacks[i].correct = Int(v[3 + i])
            out.attacks[i].accuracy = acc(v[3 + i])
        }
        out.seconds = seconds.max() ?? r.seconds
        return out
    }

    /// Checks that every rank holds the same parameters (a checksum per rank, gathered to rank 0).
    /// - Throws: `.replicasDiverged` on rank 0, `.stoppedByAgreement` on the others.
    public func checkReplicasAgree(_ model: AnyClassifier, epoch: Int) throws {
        guard isDistributed else { return }
        let sum = DataParallel.hash(DataParallel.packTensors(model.stateEntries(prefix: "").filter {
            if case .parameter = $0.reference { return true } else { return false }
        }).flatMap { f -> [UInt8] in let u = f.bitPattern; return [UInt8(u & 0xFF), UInt8(u >> 8 & 0xFF), UInt8(u >> 16 & 0xFF), UInt8(u >> 24)] })
        let root = String(decoding: try collective { try communicator.broadcast(bytes: Array(sum.utf8), root: 0) }, as: UTF8.self)
        var flag: [Double] = [root == sum ? 0 : 1]
        try collective { try communicator.allReduceSum(&flag) }
        guard flag[0] == 0 else {
            let sums = try collective { try communicator.gather(bytes: Array(sum.utf8), root: 0) }
            if isRoot {
                throw DataParallelError.replicasDiverged(epoch: epoch, checksums: sums.enumerated().map {
                    "\($0.offset): \(String(decoding: $0.element, as: UTF8.self))"
                })
            }
            throw DataParallelError.stoppedByAgreement(reason: "the parameters differ between ranks")
        }
    }

    /// Returns when every rank has reached it (before a checkpoint commit: every rank's bank has
    /// made its records durable).
    public func barrier() throws { try collective { try communicator.barrier() } }

    /// Every rank's `value` at rank 0, in rank order (JSON through one gather); nil on the other
    /// ranks. One rank: `[value]`.
    public func gatherToRoot<T: Codable>(_ value: T) throws -> [T]? {
        guard isDistributed else { return [value] }
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        let blob: [UInt8]
        do { blob = Array(try enc.encode(value)) } catch {
            throw DataParallelError.communication(.invalidArgument(operation: "gather", problem: "cannot encode \(T.self): \(error)"))
        }
        let blobs = try collective { try communicator.gather(bytes: blob, root: 0) }
        guard isRoot else { return nil }
        return try blobs.enumerated().map { r, b in
            do { return try JSONDecoder().decode(T.self, from: Data(b)) } catch {
                throw DataParallelError.communication(.invalidArgument(operation: "gather",
                                                                       problem: "rank \(r)'s \(T.self) did not decode: \(error)"))
            }
        }
    }

    /// Runs `body` on every rank and agrees on failure: when it throws on some rank, every rank's
    /// error text is gathered to rank 0, which throws `.failedOnRanks` (said once when every rank
    /// failed alike), and the other ranks throw `.stoppedByAgreement`, so every rank leaves
    /// together and can end normally (MPI_Finalize, no MPI_Abort). One rank: `body`'s error as is.
    /// Cost when nothing fails: one all-reduce of one double.
    /// - Precondition: `body` makes no collective call (a rank that failed early would not make it).
    public func agreeing<T>(_ what: String, _ body: () throws -> T) throws -> T {
        guard isDistributed else { return try body() }
        let result: Result<T, Error>
        do { result = .success(try body()) } catch { result = .failure(error) }
        var mine: String? { if case .failure(let e) = result { return DataParallel.text(of: e) } else { return nil } }
        guard try anyRank(mine != nil) else { return try result.get() }
        let all = try gatherToRoot(RankMessage(rank: rank, message: mine ?? ""))
        guard let all else { throw DataParallelError.stoppedByAgreement(reason: "\(what) failed on another rank") }
        let messages = all.filter { !$0.message.isEmpty }
        throw DataParallelError.failedOnRanks(messages: messages, worldSize: size)
    }

    /// An error's text as the CLI prints it (Foundation file errors reduced to path and reason).
    static func text(of error: Error) -> String {
        if let e = error as? DataParallelError, case .failedOnRanks(let m, let s) = e { return DataParallelError.describe(m, worldSize: s) }
        let text = ResultFile.describeFoundationError(error) ?? "\(error)"
        return text.isEmpty ? "\(type(of: error)) (no message)" : text
    }

    /// Whether `value` is true on any rank; every rank gets the same answer.
    public func anyRank(_ value: Bool) throws -> Bool {
        guard isDistributed else { return value }
        var v: [Double] = [value ? 1 : 0]
        try collective { try communicator.allReduceSum(&v) }
        return v[0] > 0
    }

    // MARK: - The run's distributed.json: world size and per-rank resume state

    /// What a rank other than 0 needs to resume exactly and the checkpoint does not hold: its
    /// dropout streams and its bank shard's open-generation mark (rank 0's are in the checkpoint;
    /// recorded for every rank all the same).
    public struct RankState: Codable, Equatable, Sendable {
        public var rngStates: [String: UInt64]
        public var memory: MemoryCheckpoint?
    }

    /// distributed.json: `{"worldSize": R, "commits": {"<globalStep>": [RankState by rank]}}`, the
    /// last two commits' states (the newest may belong to a commit a crash interrupted).
    struct RunRecord: Codable {
        var worldSize: Int
        var syncBatchNorm: Bool?
        var commits: [String: [RankState]]
    }

    private func recordURL(_ run: URL) -> URL { run.appendingPathComponent(DataParallel.fileName) }

    private func readRecord(_ run: URL) throws -> RunRecord? {
        let url = recordURL(run)
        guard let data = FileManager.default.contents(atPath: url.path) else { return nil }
        do { return try JSONDecoder().decode(RunRecord.self, from: data) } catch {
            throw DataParallelError.file(path: url.path, problem: "is not a valid record (\(error))")
        }
    }

    /// Records a new multi-rank run's world size (rank 0; nothing for one rank, whose runs have
    /// no distributed.json).
    public func recordWorldSize(in run: URL) throws {
        guard isDistributed, isRoot else { return }
        try writeRecord(RunRecord(worldSize: size, syncBatchNorm: syncBatchNorm, commits: [:]), run: run)
    }

    /// Refuses a resume under another world size than the run's (no distributed.json: 1 rank), and
    /// takes the run's batch-norm setting (refusing another one given explicitly).
    public func checkWorldSize(ofRun run: URL) throws {
        let record = try readRecord(run)
        let stored = record?.worldSize ?? 1
        guard stored == size else {
            throw DataParallelError.worldSizeChanged(runDirectory: run.path, stored: stored, current: size)
        }
        let storedSync = record?.syncBatchNorm ?? false
        if syncBatchNormGiven, syncBatchNorm != storedSync, isDistributed {
            throw DataParallelError.syncBatchNormChanged(runDirectory: run.path, stored: storedSync)
        }
        syncBatchNorm = storedSync || (!isDistributed && syncBatchNorm)
    }

    /// Gathers every rank's state for the commit at `globalStep` and, on rank 0, records it in
    /// distributed.json (before the commit itself, so a committed step always has its states).
    public func recordRankStates(_ mine: RankState, globalStep: Int, run: URL) throws {
        guard isDistributed else { return }
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        let blob = Array((try? enc.encode(mine)) ?? Data())
        let blobs = try collective { try communicator.gather(bytes: blob, root: 0) }
        guard isRoot else { return }
        var states: [RankState] = []
        for (r, b) in blobs.enumerated() {
            guard let s = try? JSONDecoder().decode(RankState.self, from: Data(b)) else {
                throw DataParallelError.file(path: recordURL(run).path, problem: "rank \(r)'s state did not decode")
            }
            states.append(s)
        }
        var record = try readRecord(run) ?? RunRecord(worldSize: size, syncBatchNorm: syncBatchNorm, commits: [:])
        record.commits["\(globalStep)"] = states
        let keep = record.commits.keys.compactMap(Int.init).sorted().suffix(2).map(String.init)
        record.commits = record.commits.filter { keep.contains($0.key) }
        try writeRecord(record, run: run)
    }

    /// This rank's state at the commit of `globalStep` (nil: none recorded, e.g. one rank).
    public func rankState(globalStep: Int, run: URL) throws -> RankState? {
        guard isDistributed, let record = try readRecord(run) else { return nil }
        guard let states = record.commits["\(globalStep)"], states.count == size else {
            throw DataParallelError.file(path: recordURL(run).path,
                                         problem: "holds no per-rank state for the committed step \(globalStep)")
        }
        return states[rank]
    }

    private func writeRecord(_ record: RunRecord, run: URL) throws {
        let url = recordURL(run)
        do { try RunDirectory(run).writeJSON(record, to: url) } catch {
            throw DataParallelError.file(path: url.path, problem: "cannot be written (\(error))")
        }
    }

    // MARK: - Helpers

    /// Runs a collective operation, its `DistributedError` wrapped as `.communication`.
    func collective<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let e as DistributedError { throw DataParallelError.communication(e) }
    }

    /// The float tensors of `entries` (parameters' values and buffers) end to end, in order.
    static func packTensors(_ entries: [StateEntry]) -> [Float] {
        var out = [Float]()
        for e in entries {
            switch e.reference {
            case .parameter(let p): out += p.value.scalars
            case .buffer(let b): out += b.value.scalars
            case .counter: break
            }
        }
        return out
    }

    /// Writes `floats` (laid out as `packTensors(entries)`) back into the entries' tensors.
    static func unpackTensors(_ floats: [Float], into entries: [StateEntry]) {
        var offset = 0
        for e in entries {
            switch e.reference {
            case .parameter(let p):
                let n = p.value.count
                p.value = Tensor(shape: p.value.shape, values: Array(floats[offset..<offset + n])); offset += n
            case .buffer(let b):
                let n = b.value.count
                b.value = Tensor(shape: b.value.shape, values: Array(floats[offset..<offset + n])); offset += n
            case .counter: break
            }
        }
    }

    /// FNV-1a 64 of `bytes`, as 16 hex digits (an identity check, not a cryptographic hash).
    static func hash(_ bytes: [UInt8]) -> String {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in bytes { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        return String(h, radix: 16).leftPadded(to: 16)
    }

    /// The dotted path of the first field where two JSON documents differ (nil when equal or not JSON).
    static func firstDifference(_ a: [UInt8], _ b: [UInt8]) -> String? {
        guard let x = try? JSONSerialization.jsonObject(with: Data(a)), let y = try? JSONSerialization.jsonObject(with: Data(b)) else {
            return nil
        }
        return difference(x, y, path: "")
    }

    private static func difference(_ x: Any, _ y: Any, path: String) -> String? {
        if let dx = x as? [String: Any], let dy = y as? [String: Any] {
            for key in Set(dx.keys).union(dy.keys).sorted() {
                let p = path.isEmpty ? key : "\(path).\(key)"
                guard let vx = dx[key], let vy = dy[key] else { return p }
                if let d = difference(vx, vy, path: p) { return d }
            }
            return nil
        }
        if let ax = x as? [Any], let ay = y as? [Any] {
            guard ax.count == ay.count else { return path }
            for i in ax.indices { if let d = difference(ax[i], ay[i], path: "\(path)[\(i)]") { return d } }
            return nil
        }
        return (x as? NSObject) == (y as? NSObject) ? nil : path
    }
}

private extension String {
    func leftPadded(to n: Int) -> String { count >= n ? self : String(repeating: "0", count: n - count) + self }
}
