// MembankFixture.swift: a bank written from real adversarial perturbations, for the membank tests: a
// narrow SmallCNN trained briefly (clean, then PGD adversarial steps between generations) on the
// embedded demo set, PGD L∞ on random crop/flip views, δ = x̃ − view(x) with label, p_y, margin and
// loss appended over 4 generations. One function, so it can later be swapped for a real Trainer run.

import Attacks
import Datasets
import Foundation
import Kernels
import Layers
import MemoryBank
import Models
import Tensors
import XCTest
import _TestSupport

enum MembankFixture {
    static let epsilon: Float = 0.3
    /// Samples with entries (IDs 0..<trainedSamples); the bank covers the whole demo train split.
    static let trainedSamples = 96
    static let generations = [0, 1, 2, 3]
    /// Views as the CIFAR recipe draws them, with 2-pixel padding (MNIST itself is not augmented by
    /// default; crop and flip here exercise the view handling of show and diff).
    static let augmentation = AugmentationConfig(padding: 2, flip: true)
    static let seed: UInt64 = 7

    /// IDs generation `g` holds: all trained samples, except that generation 2 skips every 10th
    /// (an epoch that did not visit them), so presence differs between generations.
    static func ids(generation g: Int) -> [Int] {
        (0..<trainedSamples).filter { g != 2 || $0 % 10 != 0 }
    }

    /// The settings recorded in `createdBy` (the trainer writes its resolved TrainConfig there).
    static let createdBy = """
        {"data": "demo", "model": "smallcnn", "width": 0.25, "method": "pgd-at", "epsilon": 0.3, \
        "fixture": "MembankFixture (tests)", "seed": 7}
        """

    /// Writes the bank into `directory` (created) and returns its configuration. About 2–4 s.
    /// Generation g: train the model 4 adversarial SGD steps further, then attack every sample of
    /// `ids(generation: g)` with PGD (10 + 2g steps of 0.05, uniform start seeded by g) on its view of
    /// epoch g, and append δ = x̃ − view(x) with the model's p_y, margin and CE loss at x̃.
    @discardableResult
    static func makeBank(at directory: URL, codec: BankCodec = .q8) throws -> BankConfig {
        let data = try DataSource.demo.open(.train)
        let model = SmallCNN(classes: 10, width: 0.25, dropout: 0, seed: seed)
        let sgd = SGD(parameters: model.namedParameters, config: SGDConfig(learningRate: 0.05, momentum: 0.9, weightDecay: 0))
        let config = BankConfig(sampleCount: data.count, shape: data.shape.dimensions, epsilon: epsilon, norm: .linf,
                                codec: codec, window: 4, stride: 1, createdBy: createdBy)
        let bank = try Bank.create(at: directory, config: config, options: Bank.Options(queueCapacity: 64, sync: false))
        defer { bank.close() }
        var rng = SplitMix64(seed: seed)
        // Warm-up: 40 clean steps so the model's gradients (and hence the attack) are meaningful.
        for step in 0..<40 {
            let ids = (0..<32).map { (step * 32 + $0) % 1024 }
            trainStep(model, sgd, images: batch(data, ids: ids, epoch: -1), labels: ids.map { Int32(data.label(at: $0)) })
        }
        for g in generations {
            for step in 0..<4 {
                let ids = (0..<32).map { (1024 + (g * 4 + step) * 32 + $0) % data.count }
                let x = batch(data, ids: ids, epoch: -1), y = ids.map { Int32(data.label(at: $0)) }
                let attack = PGDConfig(epsilon: epsilon, stepSize: 0.05, steps: 5, norm: .linf, randomStart: .uniform)
                trainStep(model, sgd, images: PGD.attack(model, images: x, labels: y, config: attack, objective: .crossEntropy, rng: &rng),
                          labels: y)
            }
            try bank.beginGeneration(g)
            let ids = ids(generation: g)
            let x = batch(data, ids: ids, epoch: g), y = ids.map { Int32(data.label(at: $0)) }
            var attackRNG = SplitMix64(seed: seed &+ UInt64(g) &* 1000)
            let attack = PGDConfig(epsilon: epsilon, stepSize: 0.05, steps: 10 + 2 * g, norm: .linf, randomStart: .uniform)
            let adversarial = PGD.attack(model, images: x, labels: y, config: attack, objective: .crossEntropy, rng: &attackRNG)
            let logits = model.logits(adversarial, mode: .inference).scalars
            let n = config.elementCount, xs = x.scalars, advs = adversarial.scalars
            for (row, id) in ids.enumerated() {
                let delta = (0..<n).map { advs[row * n + $0] - xs[row * n + $0] }
                let v = augmentation.view(seed: seed, epoch: g, id: id)
                try bank.append(id: id, delta: delta, view: v,
                                metadata: metadata(logits: Array(logits[(row * 10)..<(row * 10 + 10)]), label: y[row]))
            }
            try bank.sealGeneration()
        }
        return config
    }

    /// The views of `ids` for epoch `epoch` (epoch −1: identity views) as `[B, C, H, W]`.
    static func batch(_ data: Dataset, ids: [Int], epoch: Int) -> Tensor {
        Tensor.concatenateRows(ids.map { id in
            let v = epoch < 0 ? ViewParameters.identity : augmentation.view(seed: seed, epoch: epoch, id: id)
            return data.renderView(id: id, view: v).reshaped([1] + data.shape.dimensions)
        })
    }

    static func trainStep(_ model: SmallCNN, _ sgd: SGD, images: Tensor, labels: [Int32]) {
        model.zeroGradients()
        let (logits, cache) = model.forward(images, mode: .training)
        let ce = Loss.crossEntropy(logits, labels: labels)
        _ = model.backward(ce.dLogits, cache: cache, targets: .parameters)
        sgd.step(learningRate: 0.05)
    }

    /// p_y = softmax(z)_y, margin = z_y − max_{j≠y} z_j, loss = −log p_y (computed in Double).
    static func metadata(logits z: [Float], label y: Int32) -> EntryMetadata {
        let m = Double(z.max()!)
        let sum = z.reduce(0.0) { $0 + exp(Double($1) - m) }
        let pY = exp(Double(z[Int(y)]) - m) / sum
        let other = z.enumerated().filter { $0.offset != Int(y) }.map(\.element).max()!
        return EntryMetadata(label: y, pY: Float(pY), margin: z[Int(y)] - other, loss: Float(-log(max(pY, 1e-30))))
    }

    /// One bank per test process, written on first use (tests that damage it work on a copy).
    static let shared: (directory: TempDirectory, bank: URL) = {
        let dir = TempDirectory("membank-fixture")
        let url = dir.path("bank")
        do { try makeBank(at: url) } catch { fatalError("MembankFixture: \(error)") }
        return (dir, url)
    }()

    /// A private copy of the shared bank.
    static func copy(into dir: TempDirectory, name: String = "bank") throws -> URL {
        let target = dir.path(name)
        try FileManager.default.copyItem(at: shared.bank, to: target)
        return target
    }
}
