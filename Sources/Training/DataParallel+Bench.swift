// DataParallel+Bench.swift: `memloss bench allreduce`: the time of the per-step gradient all-reduce of
// a model (the packed buffer training sends: every parameter gradient plus the non-finite flag),
// per call, as the slowest rank sees it, with the bytes sent. Measurement only; the lead runs it on an
// idle machine (docs/distributed.md §8). Nothing here changes training.

import Foundation
import Models
import Tensors

/// What `measureGradientAllReduce` found.
public struct AllReduceMeasurement: Codable, Sendable {
    public var ranks: Int
    public var model: String
    public var parameters: Int
    /// Bytes of the packed float32 buffer each rank contributes per step: 4·(parameters + 1).
    public var bytesPerStep: Int
    public var steps: Int
    /// Per all-reduce call, the slowest rank's wall time (ms).
    public var medianMilliseconds: Double
    public var meanMilliseconds: Double
    public var maxMilliseconds: Double

    public var text: String {
        String(format: "all-reduce of %@ gradients (%d parameters, %d bytes per step) over %d ranks, %d calls: "
               + "median %.3f ms, mean %.3f ms, max %.3f ms", model, parameters, bytesPerStep, ranks, steps,
               medianMilliseconds, meanMilliseconds, maxMilliseconds)
    }
}

extension DataParallel {
    /// Times the gradient all-reduce of `spec`'s model `steps` times after `warmup` untimed calls.
    /// - Precondition: `steps ≥ 1`, `warmup ≥ 0`.
    /// - Throws: `.communication` when a call fails. With one rank there is no all-reduce: the times are 0.
    public func measureGradientAllReduce(spec: ModelSpec, steps: Int, warmup: Int) throws -> AllReduceMeasurement {
        let model = spec.build(seed: 0)
        let sync = gradientSynchronizer(for: model)
        var times: [Double] = []
        for i in 0..<(warmup + steps) {
            try barrier()
            let t0 = Date()
            if let sync { _ = try sync(true) }
            let dt = Date().timeIntervalSince(t0)
            if i >= warmup { times.append(dt) }
        }
        // The slowest rank's time per call: each rank fills its own slots, one sum gathers them.
        var all = [Double](repeating: 0, count: steps * size)
        for (k, t) in times.enumerated() { all[k * size + rank] = t }
        if isDistributed { try collective { try communicator.allReduceSum(&all) } }
        var slowest: [Double] = []
        for k in 0..<steps {
            var worst = 0.0
            for r in 0..<size { worst = max(worst, all[k * size + r]) }
            slowest.append(worst * 1000)
        }
        let sorted = slowest.sorted()
        let median = sorted[sorted.count / 2], mean = slowest.reduce(0, +) / Double(slowest.count)
        return AllReduceMeasurement(ranks: size, model: spec.name, parameters: model.parameterCount,
                                    bytesPerStep: 4 * (model.parameterCount + 1), steps: steps,
                                    medianMilliseconds: median, meanMilliseconds: mean, maxMilliseconds: sorted.last ?? 0)
    }
}
