// MetricsLine.swift: the schema of metrics.jsonl as types: one `MetricsLine` per line, told apart by
// its `type` key (`step`, `epoch`, `bank_problem`, `error`), each kind a Codable record with
// snake_case keys. docs/metrics.md documents every field; MetricsLog writes and reads these values.

import Foundation

/// A `step` line: written every `logEvery` steps.
public struct StepRecord: Codable, Sendable, Equatable {
    /// 1-based epoch; `step` is the global step count after this step (1-based, across epochs).
    public var epoch: Int
    public var step: Int
    /// Learning rate of this step's update.
    public var learningRate: Double
    /// The step's total loss and its named terms (TrainingMethod's `terms`, `total` included).
    public var loss: Double
    public var terms: [String: Double]
    /// Batch size / step seconds.
    public var imagesPerSecond: Double
    /// Seconds the trainer has waited for the data prefetcher since the epoch began.
    public var dataWaitSeconds: Double
    /// Seconds since the run (this process) started.
    public var wallSeconds: Double
    /// Peak resident memory of the process so far.
    public var peakRSSBytes: Int

    public init(epoch: Int, step: Int, learningRate: Double, loss: Double, terms: [String: Double], imagesPerSecond: Double,
                dataWaitSeconds: Double, wallSeconds: Double, peakRSSBytes: Int) {
        self.epoch = epoch; self.step = step; self.learningRate = learningRate; self.loss = loss; self.terms = terms
        self.imagesPerSecond = imagesPerSecond; self.dataWaitSeconds = dataWaitSeconds; self.wallSeconds = wallSeconds
        self.peakRSSBytes = peakRSSBytes
    }

    enum CodingKeys: String, CodingKey {
        case epoch, step, learningRate = "lr", loss, terms, imagesPerSecond = "images_per_second"
        case dataWaitSeconds = "data_wait_seconds", wallSeconds = "wall_seconds", peakRSSBytes = "peak_rss_bytes"
    }
}

/// An `epoch` line: one per finished epoch, written after its checkpoints.
public struct EpochRecord: Codable, Sendable, Equatable {
    /// 1-based epoch; `step` is the global step count at its end.
    public var epoch: Int
    public var step: Int
    /// Learning rate of the epoch's last step.
    public var learningRate: Double
    /// Batch-size-weighted means over the epoch's steps of the total loss and of each named term.
    public var trainLoss: Double
    public var trainTerms: [String: Double]
    /// Fraction of the epoch's samples the model classified correctly, clean and adversarial (at the
    /// step's parameters, before its update); the adversarial one is absent for standard training.
    public var trainCleanAccuracy: Double
    public var trainAdversarialAccuracy: Double?
    /// Samples trained / epoch seconds, the epoch's seconds, and the seconds it waited for data.
    public var imagesPerSecond: Double
    public var epochSeconds: Double
    public var dataWaitSeconds: Double
    public var wallSeconds: Double
    public var peakRSSBytes: Int
    /// MemLoss only: entries the term used (after selection) and samples with at least one of them.
    public var memEntriesUsed: Int?
    public var memSamplesWithMemory: Int?
    /// MemLoss only: what the memory store did this epoch.
    public var memory: MemoryEpochReport?
    /// Validation epochs only: clean and robust accuracy on the held-out split, and the attack name.
    public var valCleanAccuracy: Double?
    public var valRobustAccuracy: Double?
    public var valAttack: String?
    /// The epoch of the `best` checkpoint so far (0 before any validation).
    public var bestEpoch: Int
    /// Mid-epoch checkpoint commits during the epoch (`--checkpoint-every`) and the seconds they
    /// took (the epoch-end commit follows this line and is not counted). Absent in older files.
    public var checkpoints: Int?
    public var checkpointSeconds: Double?
    /// `--attack-init memory` only: samples of the epoch whose training attack started from their
    /// memory entry (docs/warm-start.md); absent with the random start.
    public var warmStarts: Int?

    public init(epoch: Int, step: Int, learningRate: Double, trainLoss: Double, trainTerms: [String: Double],
                trainCleanAccuracy: Double, trainAdversarialAccuracy: Double?, imagesPerSecond: Double, epochSeconds: Double,
                dataWaitSeconds: Double, wallSeconds: Double, peakRSSBytes: Int, memEntriesUsed: Int? = nil,
                memSamplesWithMemory: Int? = nil, memory: MemoryEpochReport? = nil, valCleanAccuracy: Double? = nil,
                valRobustAccuracy: Double? = nil, valAttack: String? = nil, bestEpoch: Int = 0) {
        self.epoch = epoch; self.step = step; self.learningRate = learningRate; self.trainLoss = trainLoss
        self.trainTerms = trainTerms; self.trainCleanAccuracy = trainCleanAccuracy
        self.trainAdversarialAccuracy = trainAdversarialAccuracy; self.imagesPerSecond = imagesPerSecond
        self.epochSeconds = epochSeconds; self.dataWaitSeconds = dataWaitSeconds; self.wallSeconds = wallSeconds
        self.peakRSSBytes = peakRSSBytes; self.memEntriesUsed = memEntriesUsed; self.memSamplesWithMemory = memSamplesWithMemory
        self.memory = memory; self.valCleanAccuracy = valCleanAccuracy; self.valRobustAccuracy = valRobustAccuracy
        self.valAttack = valAttack; self.bestEpoch = bestEpoch
    }

    enum CodingKeys: String, CodingKey {
        case epoch, step, learningRate = "lr", trainLoss = "train_loss", trainTerms = "train_terms"
        case trainCleanAccuracy = "train_clean_accuracy", trainAdversarialAccuracy = "train_adversarial_accuracy"
        case imagesPerSecond = "images_per_second", epochSeconds = "epoch_seconds", dataWaitSeconds = "data_wait_seconds"
        case wallSeconds = "wall_seconds", peakRSSBytes = "peak_rss_bytes", memEntriesUsed = "mem_entries_used"
        case memSamplesWithMemory = "mem_samples_with_memory", memory
        case valCleanAccuracy = "val_clean_accuracy", valRobustAccuracy = "val_robust_accuracy", valAttack = "val_attack"
        case bestEpoch = "best_epoch", checkpoints, checkpointSeconds = "checkpoint_seconds"
        case warmStarts = "warm_starts"
    }
}

/// A `bank_problem` line: a damaged memory entry the step skipped (at most 20 per step).
public struct BankProblemRecord: Codable, Sendable, Equatable {
    public var epoch: Int
    /// The global step count before the step that met the problem (0-based step index).
    public var step: Int
    /// Names the segment file, the generation and the sample.
    public var problem: String
    /// The rank whose bank shard met the problem (multi-rank runs; absent in a one-rank run).
    public var rank: Int?

    public init(epoch: Int, step: Int, problem: String, rank: Int? = nil) {
        self.epoch = epoch; self.step = step; self.problem = problem; self.rank = rank
    }
}

/// An `error` line: the step whose loss was not finite; training stopped there without its update.
public struct ErrorRecord: Codable, Sendable, Equatable {
    public var epoch: Int
    /// 0-based index of the failed step (the global step count before it).
    public var step: Int
    public var error: String
    /// The step's finite terms, and the names of the others (NaN or ±∞, which JSON cannot hold).
    public var terms: [String: Double]
    public var nonFiniteTerms: [String]

    public init(epoch: Int, step: Int, error: String, terms: [String: Float]) {
        self.epoch = epoch; self.step = step; self.error = error
        self.terms = terms.filter { $0.value.isFinite }.mapValues(Double.init)
        nonFiniteTerms = terms.filter { !$0.value.isFinite }.keys.sorted()
    }

    enum CodingKeys: String, CodingKey { case epoch, step, error, terms, nonFiniteTerms = "non_finite_terms" }
}

/// One line of metrics.jsonl: a JSON object whose `type` key says which record the other keys form.
public enum MetricsLine: Codable, Sendable, Equatable {
    case step(StepRecord)
    case epoch(EpochRecord)
    case bankProblem(BankProblemRecord)
    case error(ErrorRecord)

    /// The `type` key's values.
    public enum Kind: String, Codable, Sendable, CaseIterable {
        case step, epoch, bankProblem = "bank_problem", error
    }

    public var kind: Kind {
        switch self {
        case .step: return .step
        case .epoch: return .epoch
        case .bankProblem: return .bankProblem
        case .error: return .error
        }
    }

    /// The 1-based epoch the line belongs to.
    public var epoch: Int {
        switch self {
        case .step(let r): return r.epoch
        case .epoch(let r): return r.epoch
        case .bankProblem(let r): return r.epoch
        case .error(let r): return r.epoch
        }
    }

    enum TypeKey: String, CodingKey { case type }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: TypeKey.self)
        let text = try c.decode(String.self, forKey: .type)
        guard let kind = Kind(rawValue: text) else {
            throw DecodingError.dataCorruptedError(forKey: .type, in: c, debugDescription: "unknown line type '\(text)'; expected "
                                                   + Kind.allCases.map(\.rawValue).joined(separator: ", "))
        }
        switch kind {
        case .step: self = .step(try StepRecord(from: decoder))
        case .epoch: self = .epoch(try EpochRecord(from: decoder))
        case .bankProblem: self = .bankProblem(try BankProblemRecord(from: decoder))
        case .error: self = .error(try ErrorRecord(from: decoder))
        }
    }

    /// The record's keys and `type` in one object.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: TypeKey.self)
        try c.encode(kind.rawValue, forKey: .type)
        switch self {
        case .step(let r): try r.encode(to: encoder)
        case .epoch(let r): try r.encode(to: encoder)
        case .bankProblem(let r): try r.encode(to: encoder)
        case .error(let r): try r.encode(to: encoder)
        }
    }
}
