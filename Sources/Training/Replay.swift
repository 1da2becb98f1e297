// Replay.swift: does a model forget earlier adversarial examples? Evaluates a model on the x′ of
// every live generation of a memory bank (x′ = clamp(view(x) + δ, 0, 1), rebuilt from the dataset the
// bank was made on, exactly as the trainer rebuilds a memory entry) and compares with what the bank
// recorded when each example was made: accuracy now, resisted then, forgetting events (definitions:
// docs/membank.md, "Replay"). `memloss eval --replay` parses and prints; nothing here prints.

import Attacks
import Datasets
import Foundation
import Layers
import MemoryBank
import Tensors

/// One generation of a replay: counts, and the per-sample outcomes they are computed from.
///
/// Rules (docs/membank.md, *Replay*):
/// ```
/// correct now(s)   ⇔ argmax f(x′_g(s)) = y_s          (evaluated model, BN in inference mode)
/// resisted then(s) ⇔ margin_g(s) > 0                   (recorded: z_y − max_{j≠y} z_j at x̃, by the model of epoch g+1)
/// forgotten(s)     ⇔ resisted then(s) ∧ ¬correct now(s)
/// learned(s)       ⇔ margin_g(s) ≤ 0 ∧ correct now(s)
/// ```
/// Entries with a non-finite recorded margin count in `entries` and `correct`, never as resisted,
/// forgotten or learned (`nonFiniteMargin`).
public struct ReplayGeneration: Codable, Sendable, Equatable {
    /// The generation g (0-based epoch that made it) and that epoch's 1-based number, g + 1.
    public var generation: Int
    public var epoch: Int
    /// Entries evaluated (decoded), and records skipped because they are damaged.
    public var entries: Int
    public var damaged: Int
    /// Entries the evaluated model classifies correctly at x′, and that share of `entries`.
    public var correct: Int
    public var accuracy: Double
    /// Entries the generating model resisted (recorded margin > 0), and that share of `entries`.
    public var resistedThen: Int
    public var resistedFraction: Double
    /// Resisted then, misclassified now; and that share of `resistedThen` (0 when none).
    public var forgettingEvents: Int
    public var forgettingRate: Double
    /// Not resisted then (margin ≤ 0), correct now.
    public var learnedEvents: Int
    /// Entries whose recorded margin is NaN or ±∞.
    public var nonFiniteMargin: Int
    /// Sample IDs of the forgetting events, ascending.
    public var forgottenIDs: [Int]

    /// Per evaluated entry, ascending ID (not in the JSON): the sample, correct now, recorded margin.
    public var ids: [Int] = []
    public var correctNow: [Bool] = []
    public var recordedMargin: [Float] = []

    enum CodingKeys: String, CodingKey {
        case generation, epoch, entries, damaged, correct, accuracy, resistedThen, resistedFraction
        case forgettingEvents, forgettingRate, learnedEvents, nonFiniteMargin, forgottenIDs
    }
}

/// The result of `Replay.run`: the bank's description, one row per live generation, and totals.
public struct ReplayReport: Codable, Sendable, Equatable {
    /// Bank directory, the data source the x′ were rebuilt from, and the bank's configuration.
    public var bank: String
    public var data: String
    public var sampleCount: Int
    public var shape: [Int]
    public var epsilon: Float
    public var norm: String
    public var codec: String
    public var window: Int
    public var stride: Int
    /// The rules the counts use, in words (as in `ReplayGeneration`'s doc comment).
    public var rules: [String: String]
    public var generations: [ReplayGeneration]
    /// Listed generations that could not be read (segment missing or damaged), with the reason.
    public var quarantined: [QuarantinedNote]
    /// The first `Replay.problemLimit` damaged-record messages (file, generation, sample).
    public var problems: [String]
    /// Sums over the generations, and samples with a forgetting event in at least one of them.
    public var totalEntries: Int
    public var totalDamaged: Int
    public var totalCorrect: Int
    public var totalForgettingEvents: Int
    public var samplesForgotten: Int

    public struct QuarantinedNote: Codable, Sendable, Equatable {
        public var generation: Int
        public var reason: String
    }

    /// A plain-text table, one row per generation, then totals and the rules.
    public func table() -> String {
        var lines = ["replay of \(bank): \(generations.count) generation\(generations.count == 1 ? "" : "s"), data \(data), "
                     + "\(codec), ε = \(epsilon) (\(norm)), K = \(window), s = \(stride)"]
        lines.append(String(format: "%5@ %6@ %8@ %8@ %9@ %14@ %10@ %9@ %8@", "gen", "epoch", "entries", "damaged", "acc now",
                            "resisted then", "forgotten", "of resis.", "learned"))
        func pct(_ x: Double) -> String { String(format: "%.2f%%", x * 100) }
        for g in generations {
            lines.append(String(format: "%5d %6d %8d %8d %9@ %14@ %10d %9@ %8d", g.generation, g.epoch, g.entries, g.damaged,
                                pct(g.accuracy), pct(g.resistedFraction), g.forgettingEvents, pct(g.forgettingRate),
                                g.learnedEvents))
        }
        let acc = totalEntries == 0 ? 0 : Double(totalCorrect) / Double(totalEntries)
        lines.append("total: \(totalEntries) entries, accuracy \(pct(acc)), \(totalForgettingEvents) forgetting events "
                     + "in \(samplesForgotten) samples, \(totalDamaged) damaged records skipped")
        for q in quarantined { lines.append("generation \(q.generation) not read (quarantined): \(q.reason)") }
        for p in problems { lines.append("skipped: \(p)") }
        for key in rules.keys.sorted() { lines.append("\(key): \(rules[key] ?? "")") }
        return lines.joined(separator: "\n")
    }
}

/// Why a replay cannot run. Each message names the bank or data and ends with a `hint:` line.
public enum ReplayError: Error, CustomStringConvertible, Equatable {
    case bank(path: String, error: MemoryBankError)
    /// The dataset is not the one the bank was made on (field: count, shape or a sample's label).
    case dataMismatch(bank: String, data: String, field: String, inBank: String, inData: String)
    /// The bank's `createdBy` names no data source and none was given.
    case noDataSource(bank: String)
    case data(spec: String, problem: String)
    /// The model's input shape is not the bank's.
    case modelMismatch(model: String, inputShape: [Int], bankShape: [Int])

    public var description: String {
        switch self {
        case .bank(let p, let e): return "replay: bank \(p): \(e)"
        case .dataMismatch(let b, let d, let field, let inBank, let inData):
            return "replay: data '\(d)' does not match the bank \(b): \(field) is \(inBank) in the bank, \(inData) in the data\n"
                + "hint: pass the training data the bank was made on with --data (its createdBy names it: membank info \(b))"
        case .noDataSource(let b):
            return "replay: bank \(b) does not name its data source (no 'data' key in createdBy)\n"
                + "hint: pass the training data the bank was made on with --data"
        case .data(let spec, let problem):
            return "replay: data '\(spec)': \(problem)\nhint: check the data spec (`memloss data info SPEC` shows what it holds)"
        case .modelMismatch(let m, let s, let b):
            return "replay: model \(m) takes \(s.map(String.init).joined(separator: "×")) images, the bank holds "
                + "\(b.map(String.init).joined(separator: "×"))\nhint: pass a checkpoint trained on the bank's data"
        }
    }
}

public enum Replay {
    /// Damaged-record messages kept in a report (the count is always complete).
    public static let problemLimit = 20

    /// The rules the report states (docs/membank.md, *Replay*).
    public static let rules: [String: String] = [
        "correct now": "argmax of the evaluated model's logits at x′ = clamp(view(x) + δ, 0, 1) equals the label (BN inference mode)",
        "resisted then": "the margin z_y − max_{j≠y} z_j recorded with the entry is > 0: the model of epoch g+1 classified "
            + "its final attack iterate x̃ correctly (training-mode logits, before that step's update)",
        "forgetting event": "resisted then, not correct now",
        "learned": "recorded margin ≤ 0, correct now",
    ]

    /// The data source recorded in a bank's `createdBy` (the trainer writes its resolved TrainConfig
    /// there as JSON; its `data` key), or nil.
    public static func dataSource(ofBank reader: BankReader) -> String? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(reader.config.createdBy.utf8)) as? [String: Any] else {
            return nil
        }
        return object["data"] as? String
    }

    /// Opens a bank for replay (damaged generations quarantined, never fatal).
    public static func openBank(at url: URL) throws(ReplayError) -> BankReader {
        do { return try BankReader.open(at: url) } catch { throw .bank(path: url.path, error: error) }
    }

    /// Opens the training split of `spec` (the split sample IDs index).
    public static func openData(_ spec: String) throws(ReplayError) -> Dataset {
        do { return try DataSource(parsing: spec).open(.train) } catch { throw .data(spec: spec, problem: "\(error)") }
    }

    /// Throws `modelMismatch` unless a model of input `inputShape` ([C, H, W]) fits the bank.
    public static func checkModel(name: String, inputShape: [Int], bank: BankReader) throws(ReplayError) {
        if inputShape != bank.config.shape {
            throw .modelMismatch(model: name, inputShape: inputShape, bankShape: bank.config.shape)
        }
    }

    /// Evaluates `model` on the x′ of every live generation of `bank`, rebuilt from `dataset`.
    ///
    /// For generation g, every sample with an entry is decoded (ascending ID); its x′ is
    /// `clamp(view(x) + δ, 0, 1)` with the recorded view (`Dataset.addView`, the trainer's rebuild),
    /// evaluated in batches of `batchSize` with BN in inference mode.
    /// - Parameters:
    ///   - dataSpec: the name of `dataset` for the report and error messages.
    ///   - batchSize: rows per forward pass (memory only; results do not depend on it), ≥ 1.
    /// - Throws: `dataMismatch` when the dataset's count, shape or a sample's label differs from the
    ///   bank's. A damaged record is skipped and counted, never thrown.
    public static func run<M: Classifier>(model: M, bank: BankReader, dataset: Dataset, dataSpec: String,
                                          batchSize: Int = 200) throws(ReplayError) -> ReplayReport {
        let part = try runShard(model: model, bank: bank, dataset: dataset, dataSpec: dataSpec, rank: 0, size: 1,
                                batchSize: batchSize)
        return report(merging: [part], bank: bank, dataSpec: dataSpec)
    }

    /// The replay as one of `parallel.size` ranks (docs/distributed.md §5): in every generation,
    /// the entries at positions k ≡ rank (mod R) of its ascending ID list are this rank's; rank 0
    /// gathers the per-entry outcomes and counts them as one process does, so the report equals one
    /// process's. A failure on any rank stops every rank together.
    /// - Returns: the report on rank 0, nil on the others.
    public static func run<M: Classifier>(model: M, bank: BankReader, dataset: Dataset, dataSpec: String,
                                          parallel: DataParallel, batchSize: Int = 200) throws -> ReplayReport? {
        guard parallel.isDistributed else {
            return try run(model: model, bank: bank, dataset: dataset, dataSpec: dataSpec, batchSize: batchSize)
        }
        let part = try parallel.agreeing("replay") {
            try runShard(model: model, bank: bank, dataset: dataset, dataSpec: dataSpec, rank: parallel.rank, size: parallel.size,
                         batchSize: batchSize)
        }
        guard let parts = try parallel.gatherToRoot(part) else { return nil }
        return report(merging: parts, bank: bank, dataSpec: dataSpec)
    }

    /// One rank's per-entry outcomes, per live generation (what rank 0 gathers).
    public struct Shard: Codable, Sendable, Equatable {
        public struct Generation: Codable, Sendable, Equatable {
            public var generation: Int
            public var ids: [Int]
            public var correctNow: [Bool]
            /// The recorded margins' bit patterns (JSON has no NaN or ±∞).
            public var marginBits: [UInt32]
            /// Damaged records met: sample ID and the first line of the error.
            public var damaged: [Int]
            public var problems: [String]
        }
        public var generations: [Generation]
    }

    /// The entries at positions `rank, rank + size, …` of every live generation, evaluated.
    public static func runShard<M: Classifier>(model: M, bank: BankReader, dataset: Dataset, dataSpec: String, rank: Int,
                                               size: Int, batchSize: Int = 200) throws(ReplayError) -> Shard {
        precondition(batchSize >= 1, "Replay.run: batchSize must be ≥ 1")
        let config = bank.config, path = bank.directory.path
        if dataset.count != config.sampleCount {
            throw .dataMismatch(bank: path, data: dataSpec, field: "sample count", inBank: "\(config.sampleCount)",
                                inData: "\(dataset.count)")
        }
        if dataset.shape.dimensions != config.shape {
            throw .dataMismatch(bank: path, data: dataSpec, field: "image shape", inBank: "\(config.shape)",
                                inData: "\(dataset.shape.dimensions)")
        }
        var out = Shard(generations: [])
        for g in bank.generations {
            out.generations.append(try replayGeneration(g, model: model, bank: bank, dataset: dataset, dataSpec: dataSpec,
                                                        rank: rank, size: size, batchSize: batchSize))
        }
        return out
    }

    /// The report from every rank's shard (together covering each generation's entries once).
    public static func report(merging shards: [Shard], bank: BankReader, dataSpec: String) -> ReplayReport {
        let config = bank.config
        var problems: [String] = []
        var rows: [ReplayGeneration] = []
        var forgotten = Set<Int>()
        for (i, g) in bank.generations.enumerated() {
            let parts = shards.map { $0.generations[i] }
            var row = ReplayGeneration(generation: g, epoch: g + 1, entries: 0, damaged: 0, correct: 0, accuracy: 0,
                                       resistedThen: 0, resistedFraction: 0, forgettingEvents: 0, forgettingRate: 0,
                                       learnedEvents: 0, nonFiniteMargin: 0, forgottenIDs: [])
            var entries: [(id: Int, now: Bool, margin: Float)] = []
            var damaged: [(id: Int, problem: String)] = []
            for p in parts {
                for k in p.ids.indices { entries.append((p.ids[k], p.correctNow[k], Float(bitPattern: p.marginBits[k]))) }
                for k in p.damaged.indices { damaged.append((p.damaged[k], p.problems[k])) }
            }
            entries.sort { $0.id < $1.id }
            row.ids = entries.map(\.id); row.correctNow = entries.map(\.now); row.recordedMargin = entries.map(\.margin)
            row.damaged = damaged.count
            problems += damaged.sorted { $0.id < $1.id }.map(\.problem)
            tally(&row)
            forgotten.formUnion(row.forgottenIDs)
            rows.append(row)
        }
        return ReplayReport(
            bank: bank.directory.path, data: dataSpec, sampleCount: config.sampleCount, shape: config.shape,
            epsilon: config.epsilon, norm: config.norm.rawValue, codec: config.codec.rawValue, window: config.window,
            stride: config.stride, rules: rules, generations: rows,
            quarantined: bank.quarantined.map { .init(generation: $0.generation, reason: $0.reason) },
            problems: Array(problems.prefix(problemLimit)),
            totalEntries: rows.reduce(0) { $0 + $1.entries }, totalDamaged: rows.reduce(0) { $0 + $1.damaged },
            totalCorrect: rows.reduce(0) { $0 + $1.correct }, totalForgettingEvents: rows.reduce(0) { $0 + $1.forgettingEvents },
            samplesForgotten: forgotten.count)
    }

    /// One generation's entries at positions `rank, rank + size, …` (ascending ID): decode, rebuild,
    /// evaluate.
    private static func replayGeneration<M: Classifier>(_ g: Int, model: M, bank: BankReader, dataset: Dataset,
                                                        dataSpec: String, rank: Int, size: Int,
                                                        batchSize: Int) throws(ReplayError) -> Shard.Generation {
        let config = bank.config, n = config.elementCount
        var row = Shard.Generation(generation: g, ids: [], correctNow: [], marginBits: [], damaged: [], problems: [])
        var delta = [Float](repeating: 0, count: n)
        var pending: [(id: Int, info: EntryInfo, delta: [Float])] = []
        func flush() {
            guard !pending.isEmpty else { return }
            var images = Tensor(shape: [pending.count] + config.shape, values: pending.flatMap(\.delta))
            for (r, e) in pending.enumerated() { dataset.addView(id: e.id, view: e.info.view, to: &images, row: r) }
            let labels = pending.map { $0.info.metadata.label }
            let correct = Predictions.correct(model.logits(images, mode: .inference), labels: labels)
            for (r, e) in pending.enumerated() {
                row.ids.append(e.id)
                row.correctNow.append(correct[r])
                row.marginBits.append(e.info.metadata.margin.bitPattern)
            }
            pending.removeAll(keepingCapacity: true)
        }
        var position = -1
        for id in 0..<config.sampleCount where bank.contains(id: id, generation: g) {
            position += 1
            guard position % size == rank else { continue }
            let info: EntryInfo?
            do { info = try bank.read(id: id, generation: g, into: &delta) } catch {
                row.damaged.append(id)
                row.problems.append("\(error)".split(separator: "\n").first.map(String.init) ?? "\(error)")
                continue
            }
            guard let info else { continue }
            let label = dataset.label(at: id)
            if Int(info.metadata.label) != label {
                throw .dataMismatch(bank: bank.directory.path, data: dataSpec, field: "the label of sample \(id) (generation \(g))",
                                    inBank: "\(info.metadata.label)", inData: "\(label)")
            }
            pending.append((id, info, delta))
            if pending.count == batchSize { flush() }
        }
        flush()
        return row
    }

    /// Fills the counts of `row` from its per-entry outcomes (the rules of `ReplayGeneration`).
    static func tally(_ row: inout ReplayGeneration) {
        row.entries = row.ids.count
        for (i, id) in row.ids.enumerated() {
            let now = row.correctNow[i], margin = row.recordedMargin[i]
            if now { row.correct += 1 }
            guard margin.isFinite else { row.nonFiniteMargin += 1; continue }
            if margin > 0 {
                row.resistedThen += 1
                if !now { row.forgettingEvents += 1; row.forgottenIDs.append(id) }
            } else if now {
                row.learnedEvents += 1
            }
        }
        func share(_ a: Int, _ b: Int) -> Double { b == 0 ? 0 : Double(a) / Double(b) }
        row.accuracy = share(row.correct, row.entries)
        row.resistedFraction = share(row.resistedThen, row.entries)
        row.forgettingRate = share(row.forgettingEvents, row.resistedThen)
    }
}
