// PGDTests.swift: the contracts of every attack (FGSM, PGD L∞/L2 with each start, TRADES KL, CW,
// restarts) on a narrow SmallCNN and a narrow ResNet-18: inside the ε-ball and [0, 1]; ε = 0 gives
// the clean images; no parameter gradients; no BatchNorm update in inference mode; the loss goes
// up; same seed, same result.

import Attacks
import Kernels
import Layers
import Models
import Tensors
import XCTest
import _TestSupport

final class PGDTests: XCTestCase {
    /// One attack to run: its name, threat model, and how to run it on a batch.
    struct AttackCase {
        var name: String
        var norm: PerturbationNorm
        var epsilon: Float
        var run: (_ rng: inout SplitMix64) -> Tensor
    }

    /// Every attack family, with small step counts (the contracts do not depend on the count).
    static func cases<M: Classifier>(_ m: M, _ x: Tensor, _ y: [Int32], epsilon e: Float = 0.1, l2Epsilon e2: Float = 1,
                                     mode: ForwardMode = .inference) -> [AttackCase] {
        func pgd(_ name: String, _ c: PGDConfig, _ objective: AttackObjective = .crossEntropy) -> AttackCase {
            AttackCase(name: name, norm: c.norm, epsilon: c.epsilon) { rng in
                PGD.attack(m, images: x, labels: y, config: c, objective: objective, mode: mode, rng: &rng)
            }
        }
        let clean = m.logits(x, mode: .inference)
        return [
            AttackCase(name: "fgsm", norm: .linf, epsilon: e) { _ in FGSM.attack(m, images: x, labels: y, epsilon: e, mode: mode) },
            pgd("pgd-linf-uniform", PGDConfig(epsilon: e, stepSize: e / 3, steps: 4, norm: .linf, randomStart: .uniform)),
            pgd("pgd-linf-gaussian", PGDConfig(epsilon: e, stepSize: e / 3, steps: 4, norm: .linf, randomStart: .tradesGaussian)),
            pgd("pgd-linf-wide-gaussian-0-steps", PGDConfig(epsilon: e, stepSize: e / 3, steps: 0, norm: .linf,
                                                            randomStart: .gaussian(std: 0.5))),
            pgd("pgd-l2-uniform", PGDConfig(epsilon: e2, stepSize: e2 / 3, steps: 4, norm: .l2, randomStart: .uniform)),
            pgd("pgd-l2-gaussian", PGDConfig(epsilon: e2, stepSize: e2 / 3, steps: 4, norm: .l2, randomStart: .tradesGaussian)),
            pgd("pgd-l2-none", PGDConfig(epsilon: e2, stepSize: e2, steps: 2, norm: .l2, randomStart: .none)),
            pgd("trades-kl", PGDConfig(epsilon: e, stepSize: e / 3, steps: 4, norm: .linf, randomStart: .tradesGaussian),
                .kl(clean: clean)),
            AttackCase(name: "trades-attack", norm: .linf, epsilon: e) { rng in
                TRADESAttack.attack(m, images: x, config: PGDConfig(epsilon: e, stepSize: e / 3, steps: 3, norm: .linf,
                                                                    randomStart: .tradesGaussian), mode: mode, rng: &rng)
            },
            pgd("trades-kl-l2", PGDConfig(epsilon: e2, stepSize: e2 / 3, steps: 3, norm: .l2, randomStart: .tradesGaussian),
                .kl(clean: clean)),
            pgd("cw", PGDConfig(epsilon: e, stepSize: e / 4, steps: 4, norm: .linf, randomStart: .uniform), .margin),
            pgd("pgd-restarts", PGDConfig(epsilon: e, stepSize: e / 3, steps: 2, norm: .linf, randomStart: .uniform, restarts: 3)),
            pgd("pgd-l2-restarts", PGDConfig(epsilon: e2, stepSize: e2 / 3, steps: 2, norm: .l2, randomStart: .uniform, restarts: 3)),
        ]
    }

    private func assertInsideBallAndBox(_ adv: Tensor, _ x: Tensor, _ c: AttackCase, model: String,
                                        file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(adv.shape, x.shape, "\(c.name) on \(model)", file: file, line: line)
        XCTAssert(adv.scalars.allSatisfy { $0 >= 0 && $0 <= 1 }, "\(c.name) on \(model) leaves [0, 1]", file: file, line: line)
        let d = AttackFixtures.distances(adv, x)
        for i in 0..<d.linf.count {
            switch c.norm {
            case .linf:
                XCTAssertLessThanOrEqual(d.linf[i], Double(c.epsilon) + 1e-6, "\(c.name) on \(model), sample \(i)",
                                         file: file, line: line)
            case .l2:
                XCTAssertLessThanOrEqual(d.l2[i], Double(c.epsilon) * (1 + 1e-5), "\(c.name) on \(model), sample \(i)",
                                         file: file, line: line)
            }
        }
        // The attack did something (each case moves at least one pixel by a tenth of ε).
        XCTAssertGreaterThan(c.norm == .linf ? d.linf.max()! : d.l2.max()!, Double(c.epsilon) / 10,
                             "\(c.name) on \(model) did not move", file: file, line: line)
    }

    // MARK: - Ball and box

    func test_everyAttack_staysInsideTheEpsilonBall_andTheImageRange_smallCNN() {
        let m = AttackFixtures.smallCNN()
        let x = AttackFixtures.images(n: 6, shape: [1, 28, 28], seed: 1), y = AttackFixtures.labels(n: 6, seed: 2)
        for c in Self.cases(m, x, y) {
            var rng = SplitMix64(seed: 11)
            assertInsideBallAndBox(c.run(&rng), x, c, model: "smallcnn")
        }
    }

    func test_everyAttack_staysInsideTheEpsilonBall_andTheImageRange_resNet() {
        let m = AttackFixtures.resNet()
        let x = AttackFixtures.images(n: 3, shape: [3, 32, 32], seed: 3), y = AttackFixtures.labels(n: 3, seed: 4)
        for c in Self.cases(m, x, y, epsilon: 8 / 255, l2Epsilon: 0.5) {
            var rng = SplitMix64(seed: 12)
            assertInsideBallAndBox(c.run(&rng), x, c, model: "resnet18×1/16")
        }
    }

    func test_l2Attack_onAZeroGradientModel_movesInRandomDirections_andStaysInTheBall() {
        // SmallCNN as initialised (fc3 = 0): constant logits, so every input gradient is exactly zero.
        let m = SmallCNN(classes: 10, width: 0.25, seed: 5)
        let x = AttackFixtures.images(n: 4, shape: [1, 28, 28], seed: 6), y = AttackFixtures.labels(n: 4, seed: 7)
        var rng = SplitMix64(seed: 8)
        let c = PGDConfig(epsilon: 1, stepSize: 0.4, steps: 3, norm: .l2, randomStart: .none)
        let adv = PGD.attack(m, images: x, labels: y, config: c, objective: .crossEntropy, rng: &rng)
        let d = AttackFixtures.distances(adv, x)
        for i in 0..<4 {
            XCTAssertGreaterThan(d.l2[i], 0.1, "sample \(i) did not move despite the zero-gradient fallback")
            XCTAssertLessThanOrEqual(d.l2[i], 1 + 1e-5)
        }
        // L∞ sign steps on a zero gradient do not move at all.
        let linf = PGD.attack(m, images: x, labels: y, config: PGDConfig(epsilon: 0.1, stepSize: 0.05, steps: 3, norm: .linf,
                                                                         randomStart: .none),
                              objective: .crossEntropy, rng: &rng)
        XCTAssertEqual(linf, x)
    }

    // MARK: - ε = 0

    func test_zeroEpsilon_returnsTheCleanImagesExactly_andCleanAccuracy() {
        let m = AttackFixtures.smallCNN()
        let x = AttackFixtures.images(n: 8, shape: [1, 28, 28], seed: 9)
        let y = Predictions.argmax(m.logits(x, mode: .inference)).enumerated().map { $0.offset % 2 == 0 ? $0.element : ($0.element + 1) % 10 }
        for c in Self.cases(m, x, y, epsilon: 0, l2Epsilon: 0) {
            var rng = SplitMix64(seed: 13)
            XCTAssertEqual(c.run(&rng), x, "\(c.name) with ε = 0 changed the images")
        }
        var rng = SplitMix64(seed: 14)
        let natural = AttackSpec.natural.correctness(model: m, images: x, labels: y, rng: &rng)
        XCTAssertEqual(natural.filter { $0 }.count, 4)
        for name in ["fgsm", "pgd20", "pgd3", "cw", "cw5:0.01"] {
            let spec = try! AttackSpec(parsing: name, epsilon: 0)
            XCTAssertEqual(spec.correctness(model: m, images: x, labels: y, rng: &rng), natural, name)
        }
    }

    // MARK: - Side effects

    func test_attacks_computeNoParameterGradients() {
        let cnn = AttackFixtures.smallCNN(), res = AttackFixtures.resNet()
        cnn.zeroGradients(); res.zeroGradients()
        let x1 = AttackFixtures.images(n: 4, shape: [1, 28, 28], seed: 15), x3 = AttackFixtures.images(n: 2, shape: [3, 32, 32], seed: 16)
        var rng = SplitMix64(seed: 17)
        for c in Self.cases(cnn, x1, AttackFixtures.labels(n: 4, seed: 18)) + Self.cases(res, x3, AttackFixtures.labels(n: 2, seed: 19)) {
            _ = c.run(&rng)
        }
        for (name, p) in cnn.namedParameters + res.namedParameters {
            XCTAssert(p.gradient.scalars.allSatisfy { $0 == 0 }, "\(name) has a parameter gradient after the attacks")
        }
    }

    func test_inferenceModeAttacks_leaveBatchNormRunningStatisticsUnchanged() {
        let m = AttackFixtures.resNet()
        let x = AttackFixtures.images(n: 2, shape: [3, 32, 32], seed: 20), y = AttackFixtures.labels(n: 2, seed: 21)
        let before = AttackFixtures.runningState(m)
        var rng = SplitMix64(seed: 22)
        for c in Self.cases(m, x, y, epsilon: 8 / 255, l2Epsilon: 0.5) { _ = c.run(&rng) }
        let after = AttackFixtures.runningState(m)
        XCTAssertEqual(after.buffers, before.buffers)
        XCTAssertEqual(after.counters, before.counters)

        // The mode argument is honoured: a training-mode attack updates them once per step.
        let c = PGDConfig(epsilon: 8 / 255, stepSize: 2 / 255, steps: 3, norm: .linf, randomStart: .uniform)
        _ = PGD.attack(m, images: x, labels: y, config: c, objective: .crossEntropy, mode: .training, rng: &rng)
        let trained = AttackFixtures.runningState(m)
        XCTAssertEqual(zip(trained.counters, before.counters).map { $0 - $1 }, before.counters.map { _ in 3 })
        XCTAssertNotEqual(trained.buffers, before.buffers)
    }

    // MARK: - Effect and determinism

    func test_attacks_increaseTheirObjective_comparedWithTheCleanImages() {
        let m = AttackFixtures.smallCNN()
        let x = AttackFixtures.images(n: 16, shape: [1, 28, 28], seed: 23)
        let clean = m.logits(x, mode: .inference)
        let y = Predictions.argmax(clean)  // all correct, so the margin is positive everywhere
        let objectives: [(String, AttackObjective, PerturbationNorm, Float)] = [
            ("ce-linf", .crossEntropy, .linf, 0.1), ("ce-l2", .crossEntropy, .l2, 1.5),
            ("kl", .kl(clean: clean), .linf, 0.1), ("margin", .margin, .linf, 0.1),
        ]
        for (name, objective, norm, e) in objectives {
            var rng = SplitMix64(seed: 24)
            let c = PGDConfig(epsilon: e, stepSize: e / 4, steps: 10, norm: norm, randomStart: .tradesGaussian)
            let adv = PGD.attack(m, images: x, labels: y, config: c, objective: objective, rng: &rng)
            let before = objective.evaluate(logits: clean, labels: y).value
            let after = objective.evaluate(logits: m.logits(adv, mode: .inference), labels: y).value
            XCTAssertGreaterThan(after, before + 1e-3, "\(name): \(before) → \(after)")
        }
        // FGSM raises the mean cross-entropy too.
        let fgsm = FGSM.attack(m, images: x, labels: y, epsilon: 0.1)
        XCTAssertGreaterThan(Loss.crossEntropy(m.logits(fgsm, mode: .inference), labels: y).loss,
                             Loss.crossEntropy(clean, labels: y).loss)
    }

    func test_attacks_areDeterministic_forTheSameSeed() {
        let m = AttackFixtures.smallCNN()
        let x = AttackFixtures.images(n: 4, shape: [1, 28, 28], seed: 25), y = AttackFixtures.labels(n: 4, seed: 26)
        for c in Self.cases(m, x, y) {
            var r1 = SplitMix64(seed: 27), r2 = SplitMix64(seed: 27), r3 = SplitMix64(seed: 28)
            let a = c.run(&r1), b = c.run(&r2)
            XCTAssertEqual(a, b, "\(c.name) differs between two runs with the same seed")
            XCTAssertEqual(r1, r2)
            if c.name.contains("uniform") { XCTAssertNotEqual(c.run(&r3), a, "\(c.name) ignores the seed") }
        }
    }

    func test_tradesAttack_isPGDOnTheKLToTheInferenceModeCleanPrediction() {
        let m = AttackFixtures.smallCNN()
        let x = AttackFixtures.images(n: 4, shape: [1, 28, 28], seed: 29)
        let c = PGDConfig.tradesMNIST
        var r1 = SplitMix64(seed: 30), r2 = SplitMix64(seed: 30)
        let a = TRADESAttack.attack(m, images: x, config: PGDConfig(epsilon: c.epsilon, stepSize: c.stepSize, steps: 3,
                                                                    randomStart: c.randomStart), rng: &r1)
        let clean = m.logits(x, mode: .inference)
        let b = PGD.attack(m, images: x, labels: Predictions.argmax(clean),
                           config: PGDConfig(epsilon: c.epsilon, stepSize: c.stepSize, steps: 3, randomStart: c.randomStart),
                           objective: .kl(clean: clean), rng: &r2)
        XCTAssertEqual(a, b)
    }

    func test_restarts_keepEverySampleTheFirstRunBroke_andNeverLowerTheAttackSuccess() {
        let m = AttackFixtures.smallCNN()
        let x = AttackFixtures.images(n: 24, shape: [1, 28, 28], seed: 31)
        let y = Predictions.argmax(m.logits(x, mode: .inference))
        let one = PGDConfig(epsilon: 0.03, stepSize: 0.015, steps: 2, norm: .linf, randomStart: .uniform)
        var many = one
        many.restarts = 4
        var r1 = SplitMix64(seed: 32), r2 = SplitMix64(seed: 32)
        let single = PGD.attack(m, images: x, labels: y, config: one, objective: .crossEntropy, rng: &r1)
        let multi = PGD.attack(m, images: x, labels: y, config: many, objective: .crossEntropy, rng: &r2)
        let okSingle = Predictions.correct(m.logits(single, mode: .inference), labels: y)
        let okMulti = Predictions.correct(m.logits(multi, mode: .inference), labels: y)
        let n = 28 * 28
        for i in 0..<24 where !okSingle[i] {
            XCTAssertFalse(okMulti[i], "sample \(i) broken by the first run but not in the restart output")
            XCTAssertEqual(Array(multi.scalars[(i * n)..<((i + 1) * n)]), Array(single.scalars[(i * n)..<((i + 1) * n)]))
        }
        XCTAssertLessThanOrEqual(okMulti.filter { $0 }.count, okSingle.filter { $0 }.count)
        XCTAssert(okSingle.contains(false) && okSingle.contains(true), "pick ε so that the first run breaks some samples only")
    }

    // MARK: - Objectives

    func test_marginObjective_valueAndGradient_matchFiniteDifferences() {
        var g = SplitMix64(seed: 33)
        var z = Tensor.randomNormal(shape: [4, 5], std: 1, rng: &g)
        let y: [Int32] = [0, 2, 4, 1]
        let r = AttackObjective.margin.evaluate(logits: z, labels: y)
        _ = checkGradient("margin", count: z.count, analytic: r.dLogits.scalars, read: { z[flat: $0] },
                          write: { z[flat: $0] = $1 },
                          loss: { Double(AttackObjective.margin.evaluate(logits: z, labels: y).value) }, eps: 1e-3)
        // CE and KL are sums over the batch.
        XCTAssertEqual(AttackObjective.crossEntropy.evaluate(logits: z, labels: y).value,
                       4 * Loss.crossEntropy(z, labels: y).loss, accuracy: 1e-5)
        XCTAssertEqual(AttackObjective.kl(clean: z).evaluate(logits: z, labels: y).value, 0)
    }
}
