// SquareTests.swift: Square's p schedule at the iteration thresholds (AutoAttack's, not rescaled), the
// window side, and the attack on models: inside the ε-ball and box (pixels at exactly 0 and 1
// included), seeded, and effective without gradients on an undefended model.

import Attacks
import Kernels
import Layers
import Models
import Tensors
import XCTest
import _TestSupport

final class SquareTests: XCTestCase {
    func test_pSchedule_halvesAfterEachThreshold_ofTheIterationIndexAsIs() {
        // AutoAttack's Square runs with `resc_schedule=False`: the thresholds apply to the iteration.
        let thresholds = [10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000]
        XCTAssertEqual(Square.scheduleThresholds, thresholds)
        XCTAssertEqual(Square.p(iteration: 0, pInit: 0.8), 0.8)
        for (k, t) in thresholds.enumerated() {
            let before: Float = 0.8 / Float(1 << k), after: Float = 0.8 / Float(1 << (k + 1))
            XCTAssertEqual(Square.p(iteration: t, pInit: 0.8), before, "at \(t)")
            XCTAssertEqual(Square.p(iteration: t + 1, pInit: 0.8), after, "after \(t)")
        }
        XCTAssertEqual(Square.p(iteration: 9999, pInit: 0.8), 0.8 / 512)
    }

    func test_fiveThousandQueryRun_neverShrinksTheWindowBelowThreeOnCIFAR() {
        // The standard budget: the last iteration is 4999, past 4000 only, so p ends at p_init/128
        // and a 32×32 window never gets smaller than 3×3 (a rescaled schedule reached 2×2 and 1×1).
        XCTAssertEqual(Square.p(iteration: 4999, pInit: 0.8), 0.8 / 128)
        XCTAssertEqual(Square.p(iteration: 26, pInit: 0.8), 0.4)   // rescaled: 52 > 50 gave 0.2
        let sides = Set((0..<5000).map { Square.windowSide(p: Square.p(iteration: $0, pInit: 0.8), height: 32, width: 32) })
        XCTAssertEqual(sides, [29, 20, 14, 10, 7, 5, 4, 3])
        let mnistSides = Set((0..<5000).map { Square.windowSide(p: Square.p(iteration: $0, pInit: 0.8), height: 28, width: 28) })
        XCTAssertEqual(mnistSides.min(), 2)
        XCTAssertFalse(mnistSides.contains(1))
    }

    func test_windowSide_isTheRoundedSquareRootOfTheArea_clamped() {
        XCTAssertEqual(Square.windowSide(p: 0.8, height: 28, width: 28), 25)   // √627.2 = 25.04
        XCTAssertEqual(Square.windowSide(p: 0.8, height: 32, width: 32), 29)   // √819.2 = 28.6
        XCTAssertEqual(Square.windowSide(p: 0.0015625, height: 28, width: 28), 1)  // √1.225 = 1.1
        XCTAssertEqual(Square.windowSide(p: 1e-6, height: 28, width: 28), 1)
        XCTAssertEqual(Square.windowSide(p: 1, height: 4, width: 3), 3)
    }

    func test_square_staysInsideTheBallAndBox_andIsSeeded() {
        let m = AttackFixtures.smallCNN()
        let x = AttackFixtures.images(n: 6, shape: [1, 28, 28], seed: 1), y = AttackFixtures.labels(n: 6, seed: 2)
        let c = SquareConfig(epsilon: 0.1, queries: 40)
        var r1 = SplitMix64(seed: 3), r2 = SplitMix64(seed: 3)
        let a = Square.attack(m, images: x, labels: y, config: c, rng: &r1)
        let b = Square.attack(m, images: x, labels: y, config: c, rng: &r2)
        XCTAssertEqual(a.adversarial, b.adversarial)
        assertInsideBallAndBox(a.adversarial, x, epsilon: 0.1, norm: .linf, "square")
        let wrong = Predictions.correct(m.logits(a.adversarial, mode: .inference), labels: y).map { !$0 }
        XCTAssertEqual(a.fooled, wrong)
        // Three channels (ResNet input) too.
        let r = AttackFixtures.resNet()
        let x3 = AttackFixtures.images(n: 3, shape: [3, 32, 32], seed: 5)
        var r3 = SplitMix64(seed: 4)
        let c3 = Square.attack(r, images: x3, labels: [1, 2, 3], config: SquareConfig(epsilon: 8 / 255, queries: 10), rng: &r3)
        assertInsideBallAndBox(c3.adversarial, x3, epsilon: 8 / 255, norm: .linf, "square resnet")
    }

    func test_square_withoutGradients_breaksMostOfAnUndefendedModel() {
        let (m, x, y) = UndefendedModel.shared
        var rng = SplitMix64(seed: 1)
        let r = Square.attack(m, images: x, labels: y, config: SquareConfig(epsilon: 0.3, queries: 300), rng: &rng)
        assertInsideBallAndBox(r.adversarial, x, epsilon: 0.3, norm: .linf, "square undefended")
        let rate = Double(r.fooled.filter { $0 }.count) / Double(y.count)
        XCTAssertGreaterThanOrEqual(rate, 0.8, "Square fooled \(rate)")
    }
}
