// Evaluation.swift: clean and robust accuracy of a model on a set of samples under a list of
// attacks, with the per-sample worst case (a sample is robust only if it survives every attack).
// Used by the trainer's validation and by `memloss eval`. Attacks themselves live in Attacks.

import Attacks
import Datasets
import Foundation
import Layers
import Tensors

/// Result of one evaluation run.
public struct EvaluationResult: Codable, Sendable, Equatable {
    public struct AttackResult: Codable, Sendable, Equatable {
        public var attack: String
        public var accuracy: Double
        public var correct: Int
    }
    /// Samples evaluated.
    public var n: Int
    public var seed: UInt64
    /// Batch-norm mode of every forward pass ("inference": running statistics).
    public var bnMode: String
    /// ε as given (e.g. "8/255") and as the float used.
    public var epsilonText: String
    public var epsilon: Float
    public var cleanAccuracy: Double
    public var attacks: [AttackResult]
    /// Fraction of samples correct under the clean input and every attack.
    public var worstCaseAccuracy: Double
    public var seconds: Double

    /// Accuracy under the named attack, if it was run.
    public func accuracy(of attack: String) -> Double? { attacks.first { $0.attack == attack }?.accuracy }
}

public enum Evaluation {
    /// Evaluates `model` on the samples `ids` of `dataset` (identity views, no augmentation).
    ///
    /// - Parameters:
    ///   - attacks: named attacks (name shown in results, spec that runs); `natural` is always
    ///     computed as the clean accuracy.
    ///   - batchSize: evaluation batch (memory bound only; results do not depend on it, except
    ///     through the attacks' random starts, which are drawn per batch from `seed`).
    public static func run<M: Classifier>(model: M, dataset: Dataset, ids: [Int], attacks: [(name: String, spec: AttackSpec)],
                                          epsilonText: String, epsilon: Float, seed: UInt64,
                                          batchSize: Int = 200) -> EvaluationResult {
        let start = SystemStats.now
        let loader = BatchLoader(dataset: dataset, augmentation: .none, seed: seed)
        var clean = [Bool](), perAttack = [[Bool]](repeating: [], count: attacks.count)
        var b = 0
        while b * batchSize < ids.count {
            let slice = ids[(b * batchSize)..<min(ids.count, (b + 1) * batchSize)]
            let batch = loader.load(ids: slice, epoch: 0, index: b)
            var rng = SplitMix64.derived(seed: seed, stream: UInt64(b))
            clean += AttackSpec.natural.correctness(model: model, images: batch.images, labels: batch.labels, rng: &rng)
            for (k, a) in attacks.enumerated() {
                var r = SplitMix64.derived(seed: seed &+ UInt64(k + 1) &* 0x9E37, stream: UInt64(b))
                perAttack[k] += a.spec.correctness(model: model, images: batch.images, labels: batch.labels, rng: &r)
            }
            b += 1
        }
        let n = ids.count
        var worst = clean
        for v in perAttack { for i in 0..<n { worst[i] = worst[i] && v[i] } }
        func acc(_ v: [Bool]) -> Double { n == 0 ? 0 : Double(v.filter { $0 }.count) / Double(n) }
        return EvaluationResult(
            n: n, seed: seed, bnMode: "inference", epsilonText: epsilonText, epsilon: epsilon,
            cleanAccuracy: acc(clean),
            attacks: attacks.enumerated().map { k, a in
                EvaluationResult.AttackResult(attack: a.name, accuracy: acc(perAttack[k]),
                                              correct: perAttack[k].filter { $0 }.count)
            },
            worstCaseAccuracy: acc(worst), seconds: SystemStats.now - start)
    }
}
