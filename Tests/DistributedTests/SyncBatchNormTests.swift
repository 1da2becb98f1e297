// SyncBatchNormTests.swift: the synchronised batch-norm pass (Layers/BatchNorm2DLayer+Sync.swift)
// against the kernel pass: with one replica (an identity reducer) both compute the same forward,
// running statistics and gradients, with and without the fused residual + ReLU; and two replicas in
// two threads (a reducer that sums across them) equal one layer over the concatenated batch. The
// mpirun equivalence of whole runs is in MPITrainingTests.

import Foundation
import Layers
import Tensors
import XCTest
import _TestSupport

final class SyncBatchNormTests: XCTestCase {
    private func layer(_ c: Int, seed: UInt64) -> BatchNorm2DLayer {
        var rng = SplitMix64(seed: seed)
        let bn = BatchNorm2DLayer(c)
        bn.weight.value = Tensor.randomUniform(shape: [c], low: 0.5, high: 1.5, rng: &rng)
        bn.bias.value = Tensor.randomNormal(shape: [c], std: 0.3, rng: &rng)
        return bn
    }

    func test_oneReplica_syncPass_equalsTheKernelPass_forwardRunningStatisticsAndGradients() {
        for (residual, relu) in [(false, false), (true, true), (false, true)] {
            var rng = SplitMix64(seed: 7)
            let x = Tensor.randomNormal(shape: [4, 3, 5, 6], mean: 0.7, std: 2, rng: &rng)
            let r = residual ? Tensor.randomNormal(shape: [4, 3, 5, 6], std: 1, rng: &rng) : nil
            let dy = Tensor.randomNormal(shape: [4, 3, 5, 6], std: 1, rng: &rng)
            let plain = layer(3, seed: 1), synced = layer(3, seed: 1)
            synced.statisticsReducer = { _ in }
            plain.weight.gradient = Tensor(zeros: [3]); plain.bias.gradient = Tensor(zeros: [3])
            synced.weight.gradient = Tensor(zeros: [3]); synced.bias.gradient = Tensor(zeros: [3])
            let (y0, c0) = plain.forward(x, mode: .training, residual: r, relu: relu)
            let (y1, c1) = synced.forward(x, mode: .training, residual: r, relu: relu)
            let label = "residual \(residual), relu \(relu)"
            assertClose(y1, y0, atol: 1e-5, rtol: 1e-5, label)
            assertClose(synced.runningMean.value, plain.runningMean.value, atol: 1e-6, rtol: 1e-6, label)
            assertClose(synced.runningVar.value, plain.runningVar.value, atol: 1e-6, rtol: 1e-5, label)
            XCTAssertEqual(synced.batchesTracked.value, plain.batchesTracked.value)
            let g0 = plain.backward(dy, cache: c0, targets: [.input, .parameters], wantPreActivation: true)
            let g1 = synced.backward(dy, cache: c1, targets: [.input, .parameters], wantPreActivation: true)
            assertClose(g1.dInput!, g0.dInput!, atol: 1e-5, rtol: 1e-4, label)
            assertClose(g1.dPreActivation!, g0.dPreActivation!, atol: 1e-6, rtol: 1e-6, label)
            assertClose(synced.weight.gradient, plain.weight.gradient, atol: 1e-4, rtol: 1e-5, label)
            assertClose(synced.bias.gradient, plain.bias.gradient, atol: 1e-4, rtol: 1e-5, label)
        }
    }

    /// Sums the buffers of two threads: each thread's call returns once both have contributed.
    private final class TwoThreadSum: @unchecked Sendable {
        private let condition = NSCondition()
        private var pending: [Double]? = nil
        private var result: [Double]? = nil
        private var round = 0

        func reduce(_ values: inout [Double]) {
            condition.lock(); defer { condition.unlock() }
            if let other = pending {
                let sum = zip(other, values).map { $0 + $1 }
                pending = nil
                result = sum
                round += 1
                values = sum
                condition.broadcast()
            } else {
                pending = values
                let mine = round
                while round == mine { condition.wait() }
                values = result!
            }
        }
    }

    func test_twoReplicas_ofHalfTheBatch_equalOneLayerOverTheWholeBatch() {
        var rng = SplitMix64(seed: 11)
        let n = 6, c = 4, h = 3, w = 5
        let x = Tensor.randomNormal(shape: [n, c, h, w], mean: -0.4, std: 1.5, rng: &rng)
        let dy = Tensor.randomNormal(shape: [n, c, h, w], std: 1, rng: &rng)
        let whole = layer(c, seed: 3)
        whole.weight.gradient = Tensor(zeros: [c]); whole.bias.gradient = Tensor(zeros: [c])
        let (y, cache) = whole.forward(x, mode: .training, residual: nil, relu: true)
        let dx = whole.backward(dy, cache: cache, targets: [.input, .parameters], wantPreActivation: false).dInput!

        let half = n / 2 * c * h * w
        let xs = x.scalars, dys = dy.scalars
        let sum = TwoThreadSum()
        var outputs = [[Float]](repeating: [], count: 2), inputGradients = [[Float]](repeating: [], count: 2)
        var replicas: [BatchNorm2DLayer] = []
        for _ in 0..<2 {
            let bn = layer(c, seed: 3)
            bn.weight.gradient = Tensor(zeros: [c]); bn.bias.gradient = Tensor(zeros: [c])
            bn.statisticsReducer = { sum.reduce(&$0) }
            replicas.append(bn)
        }
        let lock = NSLock()
        DispatchQueue.concurrentPerform(iterations: 2) { r in
            let xr = Tensor(shape: [n / 2, c, h, w], values: Array(xs[(r * half)..<((r + 1) * half)]))
            // Each replica's loss is the mean over its half: its output gradient is twice the whole one's.
            let dyr = Tensor(shape: [n / 2, c, h, w], values: dys[(r * half)..<((r + 1) * half)].map { $0 * 2 })
            let (yr, cr) = replicas[r].forward(xr, mode: .training, residual: nil, relu: true)
            let dxr = replicas[r].backward(dyr, cache: cr, targets: [.input, .parameters], wantPreActivation: false).dInput!
            lock.lock(); outputs[r] = yr.scalars; inputGradients[r] = dxr.scalars.map { $0 / 2 }; lock.unlock()
        }
        assertClose(outputs[0] + outputs[1], y.scalars, atol: 1e-5, rtol: 1e-5, "forward")
        assertClose(inputGradients[0] + inputGradients[1], dx.scalars, atol: 1e-5, rtol: 1e-4, "input gradient")
        // The replicas' parameter gradients, summed and averaged (what the gradient all-reduce does).
        let dGamma = zip(replicas[0].weight.gradient.scalars, replicas[1].weight.gradient.scalars).map { ($0 + $1) / 2 }
        let dBeta = zip(replicas[0].bias.gradient.scalars, replicas[1].bias.gradient.scalars).map { ($0 + $1) / 2 }
        assertClose(dGamma, whole.weight.gradient.scalars, atol: 1e-4, rtol: 1e-4, "dγ")
        assertClose(dBeta, whole.bias.gradient.scalars, atol: 1e-4, rtol: 1e-4, "dβ")
        assertClose(replicas[0].runningMean.value, whole.runningMean.value, atol: 1e-6, rtol: 1e-5, "running mean")
        assertClose(replicas[1].runningVar.value, whole.runningVar.value, atol: 1e-6, rtol: 1e-5, "running var")
    }
}
