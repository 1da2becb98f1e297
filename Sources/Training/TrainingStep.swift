// TrainingStep.swift: the one training step every loop runs (the trainer, `bench scale`, `bench
// memory`): zero the gradients → fetch the batch's memory examples and select the entries the term
// uses (skipped for a record-only store: no term; read for `--attack-init memory`, which builds the
// warm start from the same examples) → run the method (attack + losses + backward, with the MemLoss term as an auxiliary when
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
    /// `--attack-init memory`: samples whose attack started from their memory entry (nil with the
    /// random start). WarmStart.swift.
    public var warmStarts: Int? = nil

    /// What the memory contributed to a step.
    public struct MemoryCounters: Equatable, Sendable {
        /// Entries the term used (after selection), and samples with at least one of them.
        public var entriesUsed: Int
        public var samplesWithMemory: Int
        /// Entries the store found for the batch (candidates of the selection).
        public var entriesPresent: Int
        /// One line per damaged entry skipped (file, generation, sample).
        public var problems: [String]
        /// With R > 1 ranks, on rank 0 after `DataParallel.reduce`: the rank of each of `problems`
        /// (every rank's, gathered); nil: `problems` are this process's own.
        public var problemRanks: [Int]? = nil

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
    /// Where the attack starts; `.memory` reads the memory (also a record-only store, which must then
    /// have been opened to read: `MemoryStore.readsWindow`) and warm-starts the samples with an entry
    /// from the same examples the term uses (WarmStart.swift).
    public let attackInit: AttackInit
    /// The Gaussian start's noise as a per-sample function of (noise seed, epoch, sample ID)
    /// (Tensors.StartNoise) instead of a draw from the step's random stream: what the bank's `q8rcn`
    /// codec regenerates. nil (the default): the draw. Only attacks with a Gaussian start use it.
    public var startNoise: StartNoise? = nil
    /// Data parallel (DataParallel.gradientSynchronizer): averages the gradients across ranks before
    /// the optimizer and returns whether every rank's loss was finite. nil: one process.
    public var synchronizeGradients: ((_ localFinite: Bool) throws -> Bool)? = nil

    public init(model: AnyClassifier, method: any TrainingMethod, optimizer: SGD, memory: (any MemoryStore)? = nil,
                term: MemLossTermConfig = MemLossTermConfig(), seed: UInt64, attackInit: AttackInit = .random) {
        self.model = model; self.method = method; self.optimizer = optimizer
        self.memory = memory; self.term = term; self.seed = seed; self.attackInit = attackInit
    }

    /// Runs the step on `batch` (the memory store must be in the batch's epoch, at this batch of
    /// its plan).
    /// - Parameters:
    ///   - globalStep: 0-based step index across the run (selects the attack's random stream).
    ///   - learningRate, momentum: this step's SGD settings (nil momentum: the optimizer's own).
    ///   - update: false leaves the parameters and the optimizer state untouched (gradients are
    ///     still computed): a frozen-model measurement.
    /// - Throws: `TrainingError.memory` when the store fails, or when `attackInit` is `.memory` and
    ///   there is no store or it does not read its window (`readsWindow` false).
    public func run(_ batch: Batch, globalStep: Int, learningRate: Float, momentum: Float? = nil,
                    update: Bool = true) throws -> StepOutcome {
        model.zeroGradients()
        var seconds = StepOutcome.PhaseSeconds()
        var t = SystemStats.now
        func lap() -> Double { let now = SystemStats.now; defer { t = now }; return now - t }

        var examples: MemoryExamples?
        let warm = attackInit == .memory
        if warm, memory?.readsWindow != true {
            throw TrainingError.memory(
                "attackInit = memory (--attack-init memory) but the step's memory store "
                + (memory == nil ? "is missing" : "is record-only and opened without readsWindow")
                + ": the warm start would read nothing\nhint: open the store with "
                + "DiskMemoryStore(…, readsWindow: true) (the trainer does so via WarmStart.bankConfig), or use attackInit = random")
        }
        if let memory, !memory.config.recordOnly || warm {  // a record-only store is read only for the warm start
            do { examples = try memory.next(ids: batch.ids) } catch { throw TrainingError.memory("\(error)") }
        }
        seconds.memoryFetch = lap()

        var auxiliary: [any AuxiliaryLoss] = []
        var counters: StepOutcome.MemoryCounters?
        if let examples, let memory {
            // A record-only store read for the warm start has no term: nothing selected, problems still named.
            let selected = memory.config.recordOnly ? [] : term.selectEntries(examples)
            counters = .init(entriesUsed: selected.count, samplesWithMemory: Set(selected.map(\.position)).count,
                             entriesPresent: examples.presentCount, problems: examples.problems)
            if !selected.isEmpty { auxiliary.append(MemLossTerm(config: term, examples: examples, selected: selected)) }
        }
        var start = AttackStart.none
        if warm, let examples { start = WarmStart.start(examples: examples, clean: batch.images, views: batch.views) }
        if let startNoise {
            start.noise = startNoise.unitTensor(epoch: batch.epoch, ids: batch.ids, sampleShape: Array(batch.images.shape.dropFirst()))
        }
        var rng = SplitMix64.derived(seed: seed ^ TrainingStep.attackSalt, stream: UInt64(globalStep))
        let result = method.step(model: model, images: batch.images, labels: batch.labels, auxiliary: auxiliary,
                                 attackStart: start, rng: &rng)
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

        var outcome = StepOutcome(loss: result.loss, terms: result.terms, batchSize: batch.count,
                                  cleanCorrect: TrainingStep.correctCount(result.cleanLogits, batch.labels),
                                  adversarialCorrect: result.adversarialLogits.map { TrainingStep.correctCount($0, batch.labels) },
                                  memory: counters, seconds: seconds, isFinite: finite, updated: apply,
                                  adversarial: result.adversarial)
        if warm { outcome.warmStarts = start.rows.count }
        return outcome
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
