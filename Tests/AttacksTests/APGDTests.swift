// APGDTests.swift: APGD's pure parts (the checkpoint schedule, the two halving conditions, the
// per-sample step-size controller on scripted loss sequences), the DLR losses on a hand-computed
// case and against finite differences, and APGD on a model: inside the ball and box, seeded.

import Attacks
import Kernels
import Layers
import Models
import Tensors
import XCTest
import _TestSupport

final class APGDTests: XCTestCase {
    // MARK: - Schedule

    func test_checkpoints_forHundredIterations_start22_thenShrinkBy3_downTo6() {
        // Intervals 22, 19, 16, 13, 10, 7, 6, 6 (the next, 6 more, would pass 100).
        XCTAssertEqual(APGD.checkpoints(iterations: 100), [0, 22, 41, 57, 70, 80, 87, 93, 99])
    }

    func test_checkpoints_otherBudgets_followTheFloorRules() {
        // N = 1000: 220, then −30 each down to 60.
        let c = APGD.checkpoints(iterations: 1000)
        let intervals = zip(c.dropFirst(), c).map { $0 - $1 }
        XCTAssertEqual(Array(intervals.prefix(6)), [220, 190, 160, 130, 100, 70])
        XCTAssertTrue(intervals.dropFirst(6).allSatisfy { $0 == 60 })
        XCTAssertLessThanOrEqual(c.last!, 1000)
        // Tiny budgets: every constant is at least 1.
        XCTAssertEqual(APGD.checkpoints(iterations: 5), [0, 1, 2, 3, 4, 5])
    }

    // MARK: - Halving rule

    /// k + 1 losses with exactly `increases` rises among the k steps (rises first, then falls).
    private func losses(k: Int, increases: Int) -> [Float] {
        var v: [Float] = [0]
        for i in 0..<k { v.append(i < increases ? v.last! + 1 : v.last! - 0.5) }
        return v
    }

    func test_shouldHalve_conditionOne_fires_exactlyWhenRisesAreAtMostRhoK() {
        // k = 22, ρ = 0.75: ρk = 16.5, so 16 rises halve and 17 do not.
        for (rises, expected) in [(0, true), (16, true), (17, false), (22, false)] {
            XCTAssertEqual(APGD.shouldHalve(losses: losses(k: 22, increases: rises), rho: 0.75, halvedAtLastCheck: true,
                                            bestAtLastCheck: -100, bestNow: 100), expected, "\(rises) rises")
        }
        // Equal consecutive losses are not rises.
        XCTAssertTrue(APGD.shouldHalve(losses: [Float](repeating: 1, count: 7), rho: 0.75, halvedAtLastCheck: true,
                                       bestAtLastCheck: 1, bestNow: 1))
    }

    func test_shouldHalve_conditionTwo_firesOnlyWhenNotHalvedLastTime_andBestDidNotImprove() {
        let rising = losses(k: 10, increases: 10)  // condition (i) is false
        XCTAssertTrue(APGD.shouldHalve(losses: rising, rho: 0.75, halvedAtLastCheck: false, bestAtLastCheck: 5, bestNow: 5))
        XCTAssertTrue(APGD.shouldHalve(losses: rising, rho: 0.75, halvedAtLastCheck: false, bestAtLastCheck: 5, bestNow: 4))
        XCTAssertFalse(APGD.shouldHalve(losses: rising, rho: 0.75, halvedAtLastCheck: false, bestAtLastCheck: 5, bestNow: 5.5))
        XCTAssertFalse(APGD.shouldHalve(losses: rising, rho: 0.75, halvedAtLastCheck: true, bestAtLastCheck: 5, bestNow: 5))
    }

    func test_stepSizeController_onScriptedLosses_checksAtTheSchedule_andHalvesByBothRules() {
        // A loss that rises every step until iteration 41, then stays flat.
        var c = APGD.StepSizeController(initialStepSize: 0.6, initialLoss: 0, iterations: 100, rho: 0.75)
        var halvedAt: [Int] = []
        for i in 1...100 {
            if c.record(loss: Float(min(i, 41))) { halvedAt.append(i) }
        }
        XCTAssertEqual(c.checks.map(\.iteration), [22, 41, 57, 70, 80, 87, 93, 99])
        // 22: 22 rises of 22 → keep. 41: 19 rises of 19 → keep. 57: flat, 0 rises ≤ 12 → halve (i).
        // Later intervals are flat too, so (i) halves at every remaining check.
        XCTAssertEqual(halvedAt, [57, 70, 80, 87, 93, 99])
        XCTAssertEqual(c.stepSize, 0.6 / 64, accuracy: 1e-7)

        // Condition (ii) alone: a loss that zig-zags (rises in 2 of 3 steps, so (i) never fires)
        // around a level it never beats after the first interval.
        var z = APGD.StepSizeController(initialStepSize: 1, initialLoss: 0, iterations: 100, rho: 0.5)
        var zigHalved: [Int] = []
        for i in 1...100 {
            let v: Float = i <= 22 ? Float(i) : [Float(19), 20, 21][i % 3]
            if z.record(loss: v) { zigHalved.append(i) }
        }
        // 22: improved (best 22 > 0) → keep. 41: best still 22, not halved at 22 → halve (ii).
        // 57: halved at 41, so (ii) is off → keep. 70: not halved at 57, no improvement → halve. …
        XCTAssertEqual(zigHalved, [41, 70, 87, 99])
    }

    // MARK: - DLR

    func test_dlr_untargeted_matchesAHandComputedCase() {
        // z = [1, 4, 2, 3]: sorted 4 (1), 3 (3), 2 (2), 1 (0).
        let z = Tensor(shape: [3, 4], values: [1, 4, 2, 3,  1, 4, 2, 3,  1, 4, 2, 3])
        let r = DLR.untargeted(logits: z, labels: [1, 0, 3])
        // y = 1 (the top): −(4 − 3)/(4 − 2) = −0.5; y = 0: −(1 − 4)/2 = 1.5; y = 3: −(3 − 4)/2 = 0.5.
        XCTAssertEqual(r.values[0], -0.5, accuracy: 1e-6)
        XCTAssertEqual(r.values[1], 1.5, accuracy: 1e-6)
        XCTAssertEqual(r.values[2], 0.5, accuracy: 1e-6)
        // Gradient of row 0 (y = π1 = 1, other = π2 = 3, π3 = 2; N = 1, D = 2):
        // ∂/∂z1 = −1/D + N/D² = −0.25; ∂/∂z3 = +1/D = 0.5; ∂/∂z2 = −N/D² = −0.25; ∂/∂z0 = 0.
        let d = r.dLogits.scalars
        XCTAssertEqual(Array(d[0..<4]), [0, -0.25, -0.25, 0.5])
    }

    func test_dlr_targeted_matchesAHandComputedCase() {
        // z = [1, 4, 2, 3, 0]: π1 = 1 (4), π3 = 2 (2), π4 = 0 (1); D = 4 − (2 + 1)/2 = 2.5.
        let z = Tensor(shape: [1, 5], values: [1, 4, 2, 3, 0])
        let r = DLR.targeted(logits: z, labels: [3], targets: [4])
        // −(z_3 − z_4)/D = −(3 − 0)/2.5 = −1.2
        XCTAssertEqual(r.values[0], -1.2, accuracy: 1e-6)
        // N = 3: ∂/∂z3 = −1/D = −0.4; ∂/∂z4 = 0.4; ∂/∂z1 = N/D² = 0.48; ∂/∂z2 = ∂/∂z0 = −0.24.
        let d = r.dLogits.scalars
        for (got, want) in zip(d, [Float(-0.24), 0.48, -0.24, -0.4, 0.4]) { XCTAssertEqual(got, want, accuracy: 1e-6) }
    }

    func test_dlrGradients_matchFiniteDifferences() {
        var g = SplitMix64(seed: 9)
        let z = Tensor.randomNormal(shape: [6, 10], std: 2, rng: &g)
        let labels: [Int32] = [0, 3, 9, 5, 5, 1], targets: [Int32] = [2, 4, 0, 9, 1, 7]
        let cases: [(String, (Tensor) -> (values: [Float], dLogits: Tensor))] = [
            ("dlr", { DLR.untargeted(logits: $0, labels: labels) }),
            ("dlr-targeted", { DLR.targeted(logits: $0, labels: labels, targets: targets) }),
        ]
        for (name, f) in cases {
            let analytic = f(z).dLogits.scalars
            let h: Float = 1e-3
            for i in 0..<z.count {
                var plus = z, minus = z
                plus[flat: i] += h; minus[flat: i] -= h
                let numeric = (f(plus).values.reduce(0, +) - f(minus).values.reduce(0, +)) / (2 * h)
                XCTAssertEqual(analytic[i], numeric, accuracy: 2e-3, "\(name) logit \(i)")
            }
        }
    }

    func test_targetClasses_areTheRankedCleanLogits() {
        let z = Tensor(shape: [2, 4], values: [0.1, 0.9, 0.5, 0.7,  3, 1, 2, 0])
        XCTAssertEqual(APGD.targetClasses(z, rank: 1), [1, 0])
        XCTAssertEqual(APGD.targetClasses(z, rank: 2), [3, 2])
        XCTAssertEqual(APGD.targetClasses(z, rank: 4), [0, 3])
    }

    // MARK: - On a model

    func test_apgd_everyLossAndNorm_staysInsideTheBallAndBox_andIsSeeded() {
        let m = AttackFixtures.smallCNN()
        let x = AttackFixtures.images(n: 5, shape: [1, 28, 28], seed: 1), y = AttackFixtures.labels(n: 5, seed: 2)
        for norm in PerturbationNorm.allCases {
            let e: Float = norm == .linf ? 0.1 : 1
            for loss in [APGDLoss.crossEntropy, .dlr, .targetedDLR] {
                let c = APGDConfig(epsilon: e, norm: norm, loss: loss, iterations: 8, targetCount: 2)
                var r1 = SplitMix64(seed: 4), r2 = SplitMix64(seed: 4)
                let a = APGD.attack(m, images: x, labels: y, config: c, rng: &r1)
                let b = APGD.attack(m, images: x, labels: y, config: c, rng: &r2)
                XCTAssertEqual(a.adversarial, b.adversarial, "\(loss) \(norm): same seed, same result")
                assertInsideBallAndBox(a.adversarial, x, epsilon: e, norm: norm, "\(loss) \(norm)")
                // `fooled` is exactly "the returned point is misclassified".
                let wrong = Predictions.correct(m.logits(a.adversarial, mode: .inference), labels: y).map { !$0 }
                XCTAssertEqual(a.fooled, wrong, "\(loss) \(norm)")
            }
        }
    }

    func test_apgdRun_iteratesStayInsideTheBall_whenStartingFromSaturatedPixels() {
        // All-0 and all-1 images: the box clips half of every step.
        let m = AttackFixtures.smallCNN()
        var x = Tensor(zeros: [4, 1, 28, 28])
        for i in (2 * 784)..<(4 * 784) { x[flat: i] = 1 }
        for norm in PerturbationNorm.allCases {
            let e: Float = norm == .linf ? 0.2 : 2
            var rng = SplitMix64(seed: 7)
            let r = APGD.attack(m, images: x, labels: [0, 1, 2, 3],
                                config: APGDConfig(epsilon: e, norm: norm, loss: .crossEntropy, iterations: 6), rng: &rng)
            assertInsideBallAndBox(r.adversarial, x, epsilon: e, norm: norm, "saturated \(norm)")
        }
    }
}

/// Shared by the attack tests: same shape, `[0, 1]`, and within ε (float rounding tolerance).
func assertInsideBallAndBox(_ adv: Tensor, _ x: Tensor, epsilon: Float, norm: PerturbationNorm, _ what: String,
                            file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(adv.shape, x.shape, what, file: file, line: line)
    XCTAssert(adv.scalars.allSatisfy { $0 >= 0 && $0 <= 1 }, "\(what) leaves [0, 1]", file: file, line: line)
    let d = AttackFixtures.distances(adv, x)
    for i in 0..<d.linf.count {
        switch norm {
        case .linf: XCTAssertLessThanOrEqual(d.linf[i], Double(epsilon) + 1e-6, "\(what), sample \(i)", file: file, line: line)
        case .l2: XCTAssertLessThanOrEqual(d.l2[i], Double(epsilon) * (1 + 1e-5), "\(what), sample \(i)", file: file, line: line)
        }
    }
}
