// TrainingStep.swift: the one training step every loop runs (the trainer, `bench scale`, `bench
// memory`): zero the gradients → fetch the batch's memory examples and select the entries the term
// uses (skipped for a record-only store: no term) → run the method (attack + losses + backward, with the MemLoss term as an auxiliary when
// entries were selected) → record the adversarial examples into the memory store → non-finite guard
// → optimizer step. Returns a typed `StepOutcome` with per-phase times; it never logs or prints.

import Attacks
import Datasets
import Foundation
import Kernels
import Layers
import MemoryBank
import Models
import Tensors

/// What one step did.
public struct StepOutcome {
    /// The total loss and its named terms (the method's `terms`, `total` included).
    public var loss: Float
    public var terms: [String: Float]
    /// B, and how many of the B samples were classified correctly on the clean logits and on the
    /// adversarial logits (nil when the method makes no adversarial examples); both from the
    /// step's training-mode passes, before the update.
    public var batchSize: Int
    public var cleanCorrect: Int
    public var adversarialCorrect: Int?
    /// The memory's part (nil without a memory store).
    public var memory: MemoryCounters?
    /// Seconds of each phase.
    public var seconds: PhaseSeconds
    /// False when the loss or a term is NaN or ±∞: the optimizer step was then not applied.
    public var isFinite: Bool
    /// Whether the optimizer step was applied (`update` asked for and the loss finite).
    public var updated: Bool
    /// The adversarial images `[B, C, H, W]` the method made (nil for standard training).
    public var adversarial: Tensor?

    /// What the memory contributed to a step.
    public struct MemoryCounters: Equatable, Sendable {
        /// Entries the term used (after selection), and samples with at least one of them.
        public var entriesUsed: Int
        public var samplesWithMemory: Int
        /// Entries the store found for the batch (candidates of the selection).
        public var entriesPresent: Int
        /// One line per damaged entry skipped (file, generation, sample).
        public var problems: [String]

        public init(entriesUsed: Int, samplesWithMemory: Int, entriesPresent: Int, problems: [String]) {
            self.entriesUsed = entriesUsed; self.samplesWithMemory = samplesWithMemory
            self.entriesPresent = entriesPresent; self.problems = problems
        }
    }

    /// Wall seconds of the step's phases.
    public struct PhaseSeconds: Equatable, Sendable {
        /// Fetching the memory examples (the wait for the bank prefetcher). Zeroing the gradients,
        /// before it, is not timed.
        public var memoryFetch = 0.0
        /// Selection, attack, losses and backward passes.
        public var method = 0.0
        /// Recording the adversarial examples into the memory store.
        public var record = 0.0
        /// The optimizer step (0 when it was skipped).
        public var optimizer = 0.0

        public var total: Double { memoryFetch + method + record + optimizer }
    }
}

/// One training step of `method` on `model`, with an optional MemLoss memory.
///
/// The attack's random stream is `SplitMix64.derived(seed: seed ^ attackSalt, stream: globalStep)`,
/// so a step is a pure function of (model state, batch, seed, global step) and a resumed run
/// repeats a straight one bit for bit.
public struct TrainingStep {
    /// XORed into the run seed for the attack's random stream.
    public static let attackSalt: UInt64 = 0x5EED_A77A_C0DE

    public let model: AnyClassifier
    public let method: any TrainingMethod
    public let optimizer: SGD
    /// The MemLoss memory (nil: the base method alone) and the term's options.
    public let memory: (any MemoryStore)?
    public let term: MemLossTermConfig
    public let seed: UInt64
    /// Data parallel (DataParallel.gradientSynchronizer): averages the gradients across ranks before
    /// the optimizer and returns whether every rank's loss was finite. nil: one process.
    public var synchronizeGradients: ((_ localFinite: Bool) throws -> Bool)? = nil

    public init(model: AnyClassifier, method: any TrainingMethod, optimizer: SGD, memory: (any MemoryStore)? = nil,
                term: MemLossTermConfig = MemLossTermConfig(), seed: UInt64) {
        self.model = model; self.method = method; self.optimizer = optimizer
        self.memory = memory; self.term = term; self.seed = seed
    }

    /// Runs the step on `batch` (the memory store must be in the batch's epoch, at this batch of
    /// its plan).
    /// - Parameters:
    ///   - globalStep: 0-based step index across the run (selects the attack's random stream).
    ///   - learningRate, momentum: this step's SGD settings (nil momentum: the optimizer's own).
    ///   - update: false leaves the parameters and the optimizer state untouched (gradients are
    ///     still computed): a frozen-model measurement.
    /// - Throws: `TrainingError.memory` when the store fails.
    public func run(_ batch: Batch, globalStep: Int, learningRate: Float, momentum: Float? = nil,
                    update: Bool = true) throws -> StepOutcome {
        model.zeroGradients()
        var seconds = StepOutcome.PhaseSeconds()
        var t = SystemStats.now
        func lap() -> Double { let now = SystemStats.now; defer { t = now }; return now - t }

        var examples: MemoryExamples?
        if let memory, !memory.config.recordOnly {  // a record-only store is never read
            do { examples = try memory.next(ids: batch.ids) } catch { throw TrainingError.memory("\(error)") }
        }
        seconds.memoryFetch = lap()

        var auxiliary: [any AuxiliaryLoss] = []
        var counters: StepOutcome.MemoryCounters?
        if let examples {
            let selected = term.selectEntries(examples)
            counters = .init(entriesUsed: selected.count, samplesWithMemory: Set(selected.map(\.position)).count,
                             entriesPresent: examples.presentCount, problems: examples.problems)
            if !selected.isEmpty { auxiliary.append(MemLossTerm(config: term, examples: examples, selected: selected)) }
        }
        var rng = SplitMix64.derived(seed: seed ^ TrainingStep.attackSalt, stream: UInt64(globalStep))
        let result = method.step(model: model, images: batch.images, labels: batch.labels, auxiliary: auxiliary, rng: &rng)
        seconds.method = lap()

        if let memory, let adversarial = result.adversarial, let logits = result.adversarialLogits {
            do {
                try memory.record(ids: batch.ids, views: batch.views, clean: batch.images, adversarial: adversarial,
                                  metadata: memoryMetadata(adversarialLogits: logits, labels: batch.labels))
            } catch { throw TrainingError.memory("\(error)") }
        }
        seconds.record = lap()

        var finite = result.loss.isFinite && result.terms.values.allSatisfy(\.isFinite)
        if let synchronizeGradients { finite = try synchronizeGradients(finite) }
        let apply = update && finite
        if apply { optimizer.step(learningRate: learningRate, momentum: momentum) }
        seconds.optimizer = lap()

        return StepOutcome(loss: result.loss, terms: result.terms, batchSize: batch.count,
                           cleanCorrect: TrainingStep.correctCount(result.cleanLogits, batch.labels),
                           adversarialCorrect: result.adversarialLogits.map { TrainingStep.correctCount($0, batch.labels) },
                           memory: counters, seconds: seconds, isFinite: finite, updated: apply,
                           adversarial: result.adversarial)
    }

    /// Rows of `logits [B, classes]` whose argmax (first maximum) is the label.
    static func correctCount(_ logits: Tensor, _ labels: [Int32]) -> Int {
        let k = logits.shape[1]
        let z = logits.scalars
        var c = 0
        for (i, y) in labels.enumerated() {
            var best = 0
            for j in 1..<k where z[i * k + j] > z[i * k + best] { best = j }
            if best == Int(y) { c += 1 }
        }
        return c
    }
}
