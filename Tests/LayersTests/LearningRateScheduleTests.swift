// LearningRateScheduleTests.swift: each schedule against values computed independently in Double
// (with algebraically rearranged formulas), at boundaries: piecewise milestones, cosine endpoints,
// OneCycle start / peak / end and its inverse momentum.

import Foundation
import Layers
import XCTest

final class LearningRateScheduleTests: XCTestCase {
    private func lr(_ s: LearningRateSchedule, base: Float = 0.1, iteration: Int, stepsPerEpoch: Int = 10,
                    totalEpochs: Int = 100) -> Float {
        s.learningRate(base: base, iteration: iteration, stepsPerEpoch: stepsPerEpoch, totalEpochs: totalEpochs)
    }

    // MARK: - Constant and piecewise

    func test_constant_returnsTheBase_andLeavesMomentumAlone() {
        XCTAssertEqual(lr(.constant, iteration: 0), 0.1)
        XCTAssertEqual(lr(.constant, iteration: 999), 0.1)
        XCTAssertNil(LearningRateSchedule.constant.momentum(base: 0.9, iteration: 5, stepsPerEpoch: 10, totalEpochs: 100))
    }

    func test_piecewise_switchesAtTheFirstIterationOfEachMilestoneEpoch_countingFromOne() {
        // Milestones 75 / 90 / 100 are 1-based epochs: 0-based indices 74 / 89 / 99 decay.
        let s = LearningRateSchedule.piecewise(milestones: [75, 90, 100], factors: [0.1, 0.01, 0.001])
        let spe = 391
        let cases: [(index: Int, factor: Float)] = [(0, 1), (73, 1), (74, 0.1), (88, 0.1), (89, 0.01), (98, 0.01),
                                                    (99, 0.001), (110, 0.001)]
        for (index, factor) in cases {
            XCTAssertEqual(lr(s, iteration: index * spe, stepsPerEpoch: spe), 0.1 * factor, "first step of epoch index \(index)")
            XCTAssertEqual(lr(s, iteration: index * spe + spe - 1, stepsPerEpoch: spe), 0.1 * factor,
                           "last step of epoch index \(index)")
        }
        // The step before the 75th epoch is still at the previous rate.
        XCTAssertEqual(lr(s, iteration: 74 * spe - 1, stepsPerEpoch: spe), 0.1)
        XCTAssertEqual(s.momentum(base: 0.9, iteration: 0, stepsPerEpoch: spe, totalEpochs: 120), nil)
    }

    func test_piecewise_milestoneOne_decaysFromTheFirstEpoch() {
        let s = LearningRateSchedule.piecewise(milestones: [1, 3], factors: [0.5, 0.25])
        XCTAssertEqual(lr(s, iteration: 0, stepsPerEpoch: 1), 0.05)
        XCTAssertEqual(lr(s, iteration: 1, stepsPerEpoch: 1), 0.05)
        XCTAssertEqual(lr(s, iteration: 2, stepsPerEpoch: 1), 0.025)
    }

    func test_tradesPreset_decaysAtTheSeventyFifthOneBasedEpoch() {
        // TRADES: `for epoch in range(1, epochs + 1): adjust_learning_rate(optimizer, epoch)` with
        // `if epoch >= 75: lr = 0.1 · base`, so the 75th epoch (0-based 74) already runs at ×0.1.
        let s = LearningRateSchedule.tradesCIFAR10
        XCTAssertEqual(s, .piecewise(milestones: [75, 90, 100], factors: [0.1, 0.01, 0.001]), "the recipe's numbers")
        XCTAssertEqual(lr(s, iteration: 73, stepsPerEpoch: 1), 0.1)
        XCTAssertEqual(lr(s, iteration: 74, stepsPerEpoch: 1), 0.1 * 0.1)
        XCTAssertEqual(lr(s, iteration: 88, stepsPerEpoch: 1), 0.1 * 0.1)
        XCTAssertEqual(lr(s, iteration: 89, stepsPerEpoch: 1), 0.1 * 0.01)
        XCTAssertEqual(lr(s, iteration: 99, stepsPerEpoch: 1), 0.1 * 0.001)
        let m = LearningRateSchedule.tradesMNIST
        XCTAssertEqual(lr(m, iteration: 53, stepsPerEpoch: 1), 0.1)
        XCTAssertEqual(lr(m, iteration: 54, stepsPerEpoch: 1), 0.1 * 0.1)
    }

    // MARK: - Cosine

    func test_cosine_startsAtTheBase_halvesMidway_andApproachesZero() {
        let total = 100, spe = 7
        XCTAssertEqual(lr(.cosine, iteration: 0, stepsPerEpoch: spe, totalEpochs: total), 0.1)
        XCTAssertEqual(lr(.cosine, iteration: spe - 1, stepsPerEpoch: spe, totalEpochs: total), 0.1, "constant within epoch 0")
        XCTAssertEqual(lr(.cosine, iteration: 50 * spe, stepsPerEpoch: spe, totalEpochs: total), 0.05, accuracy: 1e-8)
        // Last epoch 99: 0.1 · (1 + cos(0.99π)) / 2 = 0.1 · cos²(0.99π / 2) ≈ 2.467e-5.
        let last = 0.1 * pow(cos(0.99 * Double.pi / 2), 2)
        XCTAssertEqual(Double(lr(.cosine, iteration: 99 * spe, stepsPerEpoch: spe, totalEpochs: total)), last, accuracy: 1e-9)
        XCTAssertEqual(Double(lr(.cosine, iteration: 100 * spe, stepsPerEpoch: spe, totalEpochs: total)), 0, accuracy: 1e-9)
        for e in 0..<total {
            // cos form vs the sin² rearrangement, per epoch.
            let expected = 0.1 * (1 - pow(sin(Double.pi * Double(e) / Double(total) / 2), 2))
            XCTAssertEqual(Double(lr(.cosine, iteration: e * spe, stepsPerEpoch: spe, totalEpochs: total)), expected,
                           accuracy: 1e-8, "epoch \(e)")
        }
    }

    // MARK: - OneCycle

    /// 10 epochs × 100 steps = 1000 steps; phase 1 ends at 0.25·1000 − 1 = 249.
    private let cycle = LearningRateSchedule.oneCycle(maxLearningRate: 0.21)

    private func cycleLR(_ i: Int) -> Double {
        Double(cycle.learningRate(base: 123, iteration: i, stepsPerEpoch: 100, totalEpochs: 10))
    }
    private func cycleMomentum(_ i: Int) -> Double {
        Double(cycle.momentum(base: 0.9, iteration: i, stepsPerEpoch: 100, totalEpochs: 10)!)
    }

    func test_oneCycle_startsAtMaxOver25_peaksAtPctStartTimesTotalMinusOne_andEndsAtInitialOver1e4() {
        let initial = 0.21 / 25, minimum = initial / 1e4
        XCTAssertEqual(cycleLR(0), initial, accuracy: 1e-9)
        XCTAssertEqual(cycleLR(249), 0.21, accuracy: 1e-8)
        XCTAssertLessThan(cycleLR(248), 0.21)
        XCTAssertLessThan(cycleLR(250), 0.21)
        XCTAssertEqual(cycleLR(999), minimum, accuracy: 1e-10)
        XCTAssertEqual(cycleLR(5000), minimum, accuracy: 1e-10, "clamped past the end")
    }

    func test_oneCycle_matchesTheTwoPhaseCosineInDouble_atEveryStep() {
        let peak = 0.21, initial = peak / 25, minimum = initial / 1e4
        for i in 0..<1000 {
            // Rearranged: a + (b − a)·sin²(π t / 2) equals b + (a − b)(1 + cos π t)/2.
            let expected: Double
            if Double(i) <= 249 {
                expected = initial + (peak - initial) * pow(sin(Double.pi * Double(i) / 249 / 2), 2)
            } else {
                expected = peak + (minimum - peak) * pow(sin(Double.pi * Double(i - 249) / 750 / 2), 2)
            }
            XCTAssertEqual(cycleLR(i), expected, accuracy: 1e-8 * max(1, expected / 0.01), "step \(i)")
        }
    }

    func test_oneCycle_momentumMovesInverselyToTheLearningRate() {
        let peak = 0.21, initial = peak / 25, minimum = initial / 1e4
        XCTAssertEqual(cycleMomentum(0), 0.95, accuracy: 1e-7)
        XCTAssertEqual(cycleMomentum(249), 0.85, accuracy: 1e-7)
        XCTAssertEqual(cycleMomentum(999), 0.95, accuracy: 1e-7)
        for i in stride(from: 0, to: 1000, by: 7) {
            // Both follow the same cosine fraction, in opposite directions.
            let fraction = i <= 249 ? (cycleLR(i) - initial) / (peak - initial) : (peak - cycleLR(i)) / (peak - minimum)
            let expected = i <= 249 ? 0.95 - 0.10 * fraction : 0.85 + 0.10 * fraction
            XCTAssertEqual(cycleMomentum(i), expected, accuracy: 1e-6, "step \(i)")
        }
        let flat = LearningRateSchedule.oneCycle(maxLearningRate: 0.21, cycleMomentum: false)
        XCTAssertNil(flat.momentum(base: 0.9, iteration: 3, stepsPerEpoch: 100, totalEpochs: 10))
    }

    func test_oneCycle_withHATsFractionalPhaseBoundary() {
        // HAT CIFAR-10: steps_per_epoch = ⌊50000/128⌋ + 1 = 391, 50 epochs → T = 19550, s₁ = 4886.5.
        let s = LearningRateSchedule.oneCycle(maxLearningRate: 0.21)
        let at = { (i: Int) in Double(s.learningRate(base: 0, iteration: i, stepsPerEpoch: 391, totalEpochs: 50)) }
        let initial = 0.21 / 25, minimum = initial / 1e4
        let p1 = initial + (0.21 - initial) * pow(sin(Double.pi * 4886 / 4886.5 / 2), 2)
        let p2 = 0.21 + (minimum - 0.21) * pow(sin(Double.pi * 0.5 / (19549 - 4886.5) / 2), 2)
        XCTAssertEqual(at(4886), p1, accuracy: 1e-8)
        XCTAssertEqual(at(4887), p2, accuracy: 1e-8)
        XCTAssertEqual(at(19549), minimum, accuracy: 1e-10)
    }

    func test_schedules_areCodable() throws {
        for s: LearningRateSchedule in [.constant, .cosine, .tradesCIFAR10, .oneCycle(maxLearningRate: 0.2, pctStart: 0.3)] {
            let data = try JSONEncoder().encode(s)
            XCTAssertEqual(try JSONDecoder().decode(LearningRateSchedule.self, from: data), s)
        }
    }
}
