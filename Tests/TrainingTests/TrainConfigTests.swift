// TrainConfigTests.swift: how TrainConfig.applyAttackSettings resolves the training and validation
// attacks (issue 12's bug: `--method trades --epsilon 8/255` trained with the MNIST demo's α = 0.05 and
// validated with α = 0.05 whatever ε was): a method's preset applies at the run's ε with its own α/ε
// ratio, explicit values win, the validation attack follows ε with step ε/4, and the demo is unchanged.

import Attacks
import Foundation
import Training
import XCTest

final class TrainConfigTests: XCTestCase {
    private let eps: Float = 8 / 255

    private func resolved(_ s: AttackSettings, over base: TrainConfig = .demo) throws -> TrainConfig {
        var c = base
        try c.applyAttackSettings(s)
        try c.validate()
        return c
    }

    func test_noSettings_leaveTheDemoExactlyAsItIs() throws {
        XCTAssertEqual(try resolved(AttackSettings()), TrainConfig.demo)
        XCTAssertEqual(TrainConfig.demo.method.attack?.stepSize, 0.05)
        XCTAssertEqual(TrainConfig.demo.validationAttack.stepSize, 0.05)
    }

    func test_methodPreset_appliesAtTheGivenEpsilon_withItsOwnStepRatio() throws {
        let trades = try resolved(AttackSettings(method: "trades", epsilon: eps, epsilonText: "8/255"))
        let a = try XCTUnwrap(trades.method.attack)
        XCTAssertEqual(a.epsilon, eps)
        XCTAssertEqual(a.stepSize, eps * 0.007 / 0.031, accuracy: 1e-7, "TRADES CIFAR: α/ε = 0.007/0.031")
        XCTAssertEqual(a.steps, 10)
        XCTAssertEqual(a.randomStart, .tradesGaussian)
        XCTAssertEqual(trades.method.beta, TRADESConfig.defaultBeta, "the preset's β, not the demo's 1")
        XCTAssertEqual(trades.validationAttack.epsilon, eps)
        XCTAssertEqual(trades.validationAttack.stepSize, eps / 4, "validation PGD-k: step ε/4")
        XCTAssertEqual(trades.validationAttack.randomStart, .uniform)
        XCTAssertEqual(trades.epsilonText, "8/255")

        let ratios: [(String, Float)] = [("pgd-at", 1 / 4), ("hat", 1 / 4), ("mart", 0.007 / 0.031)]
        for (name, ratio) in ratios {
            let c = try resolved(AttackSettings(method: name, epsilon: eps))
            XCTAssertEqual(c.method.attack?.stepSize ?? -1, eps * ratio, accuracy: 1e-7, name)
            XCTAssertEqual(c.method.name, name)
        }
        // Without ε the preset applies at the configured ε (the demo's 0.3), not at the preset's 0.031.
        let atDemoEpsilon = try resolved(AttackSettings(method: "trades"))
        XCTAssertEqual(atDemoEpsilon.method.attack?.epsilon, 0.3)
        XCTAssertEqual(atDemoEpsilon.method.attack?.stepSize ?? -1, 0.3 * 0.007 / 0.031, accuracy: 1e-7)
        XCTAssertEqual(atDemoEpsilon.validationAttack, TrainConfig.demo.validationAttack, "ε unchanged: validation unchanged")
    }

    func test_explicitValues_win() throws {
        let c = try resolved(AttackSettings(method: "trades", epsilon: eps, stepSize: 0.01, steps: 3,
                                            validationStepSize: 0.003, validationSteps: 20))
        XCTAssertEqual(c.method.attack?.stepSize, 0.01)
        XCTAssertEqual(c.method.attack?.steps, 3)
        XCTAssertEqual(c.validationAttack.stepSize, 0.003)
        XCTAssertEqual(c.validationAttack.steps, 20)
        XCTAssertEqual(c.validationAttack.epsilon, eps)
    }

    func test_epsilonAlone_keepsTheConfiguredRatio_andAMethodWithoutAttackStillMovesValidation() throws {
        let c = try resolved(AttackSettings(epsilon: 0.15))
        XCTAssertEqual(c.method.attack?.stepSize ?? -1, 0.025, accuracy: 1e-7, "the demo's α/ε = 1/6")
        XCTAssertEqual(c.method.beta, 1, "no --method: the demo's β stays")
        XCTAssertEqual(c.validationAttack.stepSize, 0.0375, accuracy: 1e-7)
        var standard = TrainConfig.demo
        standard.memLoss = nil
        let s = try resolved(AttackSettings(method: "standard", epsilon: eps), over: standard)
        XCTAssertNil(s.method.attack)
        XCTAssertEqual(s.validationAttack.epsilon, eps)
        XCTAssertEqual(s.validationAttack.stepSize, eps / 4)
    }

    func test_aConfiguredTrainingEpsilon_pullsTheValidationAttackAlong() throws {
        // A config file that sets the method's attack but not the validation attack (which keeps the demo's 0.3).
        var base = TrainConfig.demo
        base.method = .trades(TRADESConfig(attack: .tradesTrainCIFAR, beta: 6))
        let c = try resolved(AttackSettings(), over: base)
        XCTAssertEqual(c.validationAttack.epsilon, 0.031)
        XCTAssertEqual(c.validationAttack.stepSize, 0.031 / 4, accuracy: 1e-9)
        XCTAssertEqual(c.epsilonText, "0.031", "reports and checkpoint metadata name the ε used, not the demo's 0.3")
        XCTAssert(c.attackSummary.contains("validation attack: PGD-10 linf ε 0.031 α \(Float(0.031) * 0.25)"), c.attackSummary)
        XCTAssert(c.attackSummary.contains("training attack (trades): PGD-10 linf ε 0.031 α 0.007"), c.attackSummary)
    }
}
