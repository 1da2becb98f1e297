// BenchModel.swift: whole-model throughput for `memloss bench conv`: a full training step of a
// model (train-mode forward, cross-entropy, backward to parameters and input) at a given batch,
// reported in images/s and in GFLOP/s of convolution + linear arithmetic (3 × forward MACs × 2).

import Foundation
import Kernels
import Layers
import Models
import Tensors

struct WholeModelResult: Codable {
    var model: String
    var batch: Int
    var steps: Int
    var secondsPerStep: Double
    var imagesPerSecond: Double
    /// (forward + backward-input + backward-weight) MACs × 2 / time.
    var gflops: Double
    var forwardOnlyImagesPerSecond: Double
}

/// Times `steps` training steps of `spec` at `batch` (after one warm-up step) and `steps`
/// inference-mode forward passes.
func benchWholeModel(_ spec: ModelSpec, batch: Int, steps: Int) -> WholeModelResult {
    let model = spec.build(seed: 1)
    var rng = SplitMix64(seed: 2)
    let x = Tensor.randomUniform(shape: [batch] + spec.inputShape, low: 0, high: 1, rng: &rng)
    let labels = (0..<batch).map { Int32($0 % spec.classes) }

    func step() {
        model.zeroGradients()
        let (logits, cache) = model.forward(x, mode: .training)
        let ce = Loss.crossEntropy(logits, labels: labels)
        _ = model.backward(ce.dLogits, cache: cache, targets: .all)
    }
    step()  // warm-up: allocations, BLAS shapes
    var best = Double.infinity, total = 0.0
    for _ in 0..<steps {
        let t0 = DispatchTime.now().uptimeNanoseconds
        step()
        let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        best = min(best, dt); total += dt
    }
    var bestForward = Double.infinity
    for _ in 0..<max(1, steps) {
        let t0 = DispatchTime.now().uptimeNanoseconds
        _ = model.forward(x, mode: .inference)
        bestForward = min(bestForward, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
    }
    let macs = Double(ModelSpec.forwardMACs(of: model)) * Double(batch)
    return WholeModelResult(model: spec.name, batch: batch, steps: steps, secondsPerStep: best,
                            imagesPerSecond: Double(batch) / best, gflops: 3 * macs * 2 / best / 1e9,
                            forwardOnlyImagesPerSecond: Double(batch) / bestForward)
}
