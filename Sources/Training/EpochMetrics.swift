// EpochMetrics.swift: what the trainer folds from an epoch's StepOutcomes into its EpochRecord
// (batch-size-weighted loss means, clean/adversarial accuracy, memory counters), and the sliding
// window of step times behind the progress ETA.

import Foundation

/// Accumulates an epoch's steps. Loss values are summed as `Σ_steps value · B` in Double and
/// divided by the samples seen, so the means are batch-size weighted.
struct EpochMetrics: Codable, Sendable, Equatable {
    private(set) var samples = 0
    private(set) var steps = 0
    private var cleanCorrect = 0
    private var adversarialCorrect = 0
    private var adversarialSamples = 0
    private var lossSum = 0.0
    private var termSums: [String: Double] = [:]
    private var entriesUsed = 0
    private var samplesWithMemory = 0
    /// `--attack-init memory` only (optional, so older checkpoints' progress still decodes).
    private var warmStarts: Int?

    mutating func add(_ o: StepOutcome) {
        let b = o.batchSize
        samples += b
        steps += 1
        cleanCorrect += o.cleanCorrect
        if let a = o.adversarialCorrect { adversarialCorrect += a; adversarialSamples += b }
        lossSum += Double(o.loss) * Double(b)
        for (k, v) in o.terms { termSums[k, default: 0] += Double(v) * Double(b) }
        if let w = o.warmStarts { warmStarts = (warmStarts ?? 0) + w }
        if let m = o.memory {
            entriesUsed += m.entriesUsed
            samplesWithMemory += m.samplesWithMemory
        }
    }

    /// The epoch's training fields; validation and `best_epoch` are the epoch end's to fill.
    /// `memory` is the store's report (nil without MemLoss); `warmStarts` is nil unless a step
    /// reported one (`--attack-init memory`).
    func record(epoch: Int, step: Int, learningRate: Float, epochSeconds: Double, dataWaitSeconds: Double,
                wallSeconds: Double, peakRSSBytes: Int, memory: MemoryEpochReport?) -> EpochRecord {
        let n = Double(max(samples, 1))
        var r = EpochRecord(
            epoch: epoch, step: step, learningRate: Double(learningRate), trainLoss: lossSum / n,
            trainTerms: termSums.mapValues { $0 / n },
            trainCleanAccuracy: samples > 0 ? Double(cleanCorrect) / Double(samples) : 0,
            trainAdversarialAccuracy: adversarialSamples > 0 ? Double(adversarialCorrect) / Double(adversarialSamples) : nil,
            imagesPerSecond: Double(samples) / epochSeconds, epochSeconds: epochSeconds, dataWaitSeconds: dataWaitSeconds,
            wallSeconds: wallSeconds, peakRSSBytes: peakRSSBytes,
            memEntriesUsed: memory != nil ? entriesUsed : nil, memSamplesWithMemory: memory != nil ? samplesWithMemory : nil,
            memory: memory)
        r.warmStarts = warmStarts
        return r
    }
}

/// The mean of the last `capacity` step times (carried across epochs) and the ETA from it.
struct StepTimeWindow {
    let capacity: Int
    private var times: [Double] = []

    init(capacity: Int = 20) { self.capacity = capacity }

    mutating func add(_ seconds: Double) {
        times.append(seconds)
        if times.count > capacity { times.removeFirst() }
    }

    var meanSeconds: Double { times.isEmpty ? 0 : times.reduce(0, +) / Double(times.count) }

    /// Seconds for `remainingSteps` more steps at the window's mean.
    func eta(remainingSteps: Int) -> Double { meanSeconds * Double(remainingSteps) }
}
