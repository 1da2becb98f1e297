// UndefendedModel.swift: a narrow SmallCNN trained without any defence for 750 seeded SGD steps on
// the embedded MNIST subset (real data), shared by the AutoAttack tests: high clean accuracy, and no
// robustness at ε = 0.3, so every honest attack should break nearly all of it. 375 steps left the
// clean accuracy on the 100 test images at 0.89–0.92 depending on the conv kernels' rounding (AVX2
// vs AVX-512 builds train different trajectories), on the edge of the tests' 0.9.

import Attacks
import Datasets
import Kernels
import Layers
import Models
import Tensors
import XCTest

enum UndefendedModel {
    /// The model and the first 100 test images (`[100, 1, 28, 28]`) with their labels. Trained once
    /// per test process (about two seconds of compute).
    static let shared: (model: SmallCNN, images: Tensor, labels: [Int32]) = train()

    private static func train() -> (SmallCNN, Tensor, [Int32]) {
        let source = try! DataSource(parsing: "demo")
        let trainSet = try! source.open(.train), testSet = try! source.open(.test)
        let train = BatchLoader(dataset: trainSet, augmentation: .none, seed: 1)
        let model = SmallCNN(classes: 10, width: 0.25, dropout: 0, seed: 21)
        let sgd = SGD(parameters: model.namedParameters, config: SGDConfig(learningRate: 0.05, momentum: 0.9, weightDecay: 0))
        var order = SplitMix64(seed: 5)
        let batch = 32
        for _ in 0..<750 {
            let ids = (0..<batch).map { _ in order.nextInt(below: trainSet.count) }
            let b = train.load(ids: ids, epoch: 0)
            model.zeroGradients()
            let (logits, cache) = model.forward(b.images, mode: .training)
            _ = model.backward(Loss.crossEntropy(logits, labels: b.labels).dLogits, cache: cache, targets: .parameters)
            sgd.step(learningRate: 0.05)
        }
        let test = BatchLoader(dataset: testSet, augmentation: .none, seed: 1).load(ids: 0..<100, epoch: 0)
        return (model, test.images, test.labels)
    }

    static func accuracy(_ m: SmallCNN, _ x: Tensor, _ y: [Int32]) -> Double {
        let c = zip(Predictions.argmax(m.logits(x, mode: .inference)), y).filter { $0 == $1 }.count
        return Double(c) / Double(y.count)
    }
}
