// LearningTests.swift: the numeric core learns: a narrow SmallCNN trained with SGD (momentum) for
// 300 seeded steps on a learnable synthetic 10-class task reaches ≥ 95% held-out accuracy.
// Everything (data, init, dropout, order) is seeded, so the run is the same every time.

import Kernels
import Layers
import Models
import Tensors
import XCTest
import _TestSupport

final class LearningTests: XCTestCase {
    /// 28×28 images: class c has a bright 6×6 square at one of 10 fixed positions plus uniform noise
    /// in [0, 0.5) everywhere, so the class is only readable from the spatial structure.
    private func synthetic(count: Int, seed: UInt64) -> (Tensor, [Int32]) {
        var g = SplitMix64(seed: seed)
        var pixels = [Float](repeating: 0, count: count * 28 * 28)
        var labels: [Int32] = []
        let corners = (0..<10).map { c in (2 + (c % 5) * 5, 3 + (c / 5) * 13) }
        for n in 0..<count {
            let c = g.nextInt(below: 10)
            labels.append(Int32(c))
            for i in 0..<(28 * 28) { pixels[n * 784 + i] = 0.5 * g.nextFloat() }
            let (r0, c0) = corners[c]
            let jr = g.nextInt(below: 3) - 1, jc = g.nextInt(below: 3) - 1
            for r in 0..<6 { for col in 0..<6 { pixels[n * 784 + (r0 + jr + r) * 28 + (c0 + jc + col)] = 1 } }
        }
        return (Tensor(shape: [count, 1, 28, 28], values: pixels), labels)
    }

    func test_smallCNN_learnsASyntheticTask_toAtLeast95PercentHeldOutAccuracy() {
        let model = SmallCNN(width: 0.25, seed: 11)
        let sgd = SGD(parameters: model.namedParameters,
                      config: SGDConfig(learningRate: 0.05, momentum: 0.9, weightDecay: 5e-4))
        let (trainX, trainY) = synthetic(count: 2048, seed: 1)
        let (testX, testY) = synthetic(count: 500, seed: 2)
        let batch = 32, steps = 300
        var order = SplitMix64(seed: 3)
        var firstLoss: Float = 0, lastLosses: [Float] = []
        for step in 0..<steps {
            let start = order.nextInt(below: 2048 - batch)
            let x = trainX.rows(start..<(start + batch))
            let y = Array(trainY[start..<(start + batch)])
            model.zeroGradients()
            let (logits, cache) = model.forward(x, mode: .training)
            let ce = Loss.crossEntropy(logits, labels: y)
            _ = model.backward(ce.dLogits, cache: cache, targets: .parameters)
            sgd.step(learningRate: 0.05)
            if step == 0 { firstLoss = ce.loss }
            if step >= steps - 20 { lastLosses.append(ce.loss) }
        }
        let logits = model.forward(testX, mode: .inference).logits.scalars
        var correct = 0
        for n in 0..<500 {
            let row = logits[(n * 10)..<(n * 10 + 10)]
            if Int32(row.firstIndex(of: row.max()!)! - n * 10) == testY[n] { correct += 1 }
        }
        let accuracy = Double(correct) / 500
        XCTAssertEqual(firstLoss, Float(log(10.0)), accuracy: 1e-4, "fc3 starts at zero, so the first loss is ln 10")
        XCTAssertLessThan(lastLosses.reduce(0, +) / Float(lastLosses.count), 0.3)
        XCTAssertGreaterThanOrEqual(accuracy, 0.95, "held-out accuracy \(accuracy)")
    }
}
