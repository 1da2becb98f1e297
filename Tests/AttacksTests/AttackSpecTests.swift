// AttackSpecTests.swift: evaluation attack names parse into the documented configurations, bad
// names fail with a hint listing the valid ones, canonical names and JSON round-trip, and the
// per-sample correctness of `natural` is the clean correctness.

import Attacks
import Foundation
import Layers
import Tensors
import XCTest
import _TestSupport

final class AttackSpecTests: XCTestCase {
    let e: Float = 8 / 255

    func test_parsing_validNames_giveTheDocumentedConfigurations() throws {
        XCTAssertEqual(try AttackSpec(parsing: "natural", epsilon: e), .natural)
        XCTAssertEqual(try AttackSpec(parsing: " Clean ", epsilon: e), .natural)
        XCTAssertEqual(try AttackSpec(parsing: "FGSM", epsilon: e), .fgsm(epsilon: e))
        let pgd20 = PGDConfig(epsilon: e, stepSize: e / 4, steps: 20, norm: .linf, randomStart: .uniform)
        XCTAssertEqual(try AttackSpec(parsing: "pgd20", epsilon: e), .pgd(pgd20))
        XCTAssertEqual(PGDConfig.pgd20Eval(epsilon: e), pgd20)
        XCTAssertEqual(try AttackSpec(parsing: "pgd", epsilon: e), .pgd(pgd20))
        XCTAssertEqual(try AttackSpec(parsing: "pgd7", epsilon: e),
                       .pgd(PGDConfig(epsilon: e, stepSize: e / 4, steps: 7, norm: .linf, randomStart: .uniform)))
        XCTAssertEqual(try AttackSpec(parsing: "pgd20:0.003", epsilon: 0.031),
                       .pgd(PGDConfig(epsilon: 0.031, stepSize: 0.003, steps: 20, norm: .linf, randomStart: .uniform)))
        XCTAssertEqual(try AttackSpec(parsing: "pgd40:2/255", epsilon: e),
                       .pgd(PGDConfig(epsilon: e, stepSize: 2 / 255, steps: 40, norm: .linf, randomStart: .uniform)))
        XCTAssertEqual(try AttackSpec(parsing: "cw", epsilon: e),
                       .cw(PGDConfig(epsilon: e, stepSize: e / 10, steps: 30, norm: .linf, randomStart: .uniform)))
        XCTAssertEqual(try AttackSpec(parsing: "CW50", epsilon: e),
                       .cw(PGDConfig(epsilon: e, stepSize: e / 10, steps: 50, norm: .linf, randomStart: .uniform)))
    }

    func test_parsing_badNames_failWithAHintListingTheValidNames() {
        let cases: [(String, AttackSpecError)] = [
            ("foo", .unknown("foo")), ("autoattack", .unknown("autoattack")), ("", .unknown("")),
            ("pgd0", .badSteps("pgd0")), ("pgdx", .badSteps("pgdx")), ("cw-3", .badSteps("cw-3")),
            ("pgd99999999", .badSteps("pgd99999999")),
            ("fgsm:0.1", .badStepSize("fgsm:0.1")), ("pgd20:-1", .badStepSize("pgd20:-1")),
            ("pgd20:abc", .badStepSize("pgd20:abc")), ("pgd20:1/0", .badStepSize("pgd20:1/0")),
        ]
        for (name, expected) in cases {
            XCTAssertThrowsError(try AttackSpec(parsing: name, epsilon: e), name) { error in
                XCTAssertEqual(error as? AttackSpecError, expected, name)
                XCTAssert("\(error)".contains("hint:"), "\(error)")
            }
        }
        do {
            _ = try AttackSpec(parsing: "pgd-twenty", epsilon: e)
            XCTFail("accepted pgd-twenty")
        } catch {
            XCTAssert("\(error)".contains("pgd20") && "\(error)".contains("cwN"), "\(error)")
        }
        XCTAssertThrowsError(try AttackSpec(parsing: "pgd20", epsilon: .nan))
        XCTAssertThrowsError(try AttackSpec(parsing: "pgd20", epsilon: -0.1))
    }

    func test_canonicalNames_parseBackToTheSameAttack() throws {
        for name in ["natural", "fgsm", "pgd20", "pgd7:0.003", "cw", "cw40:0.01"] {
            let spec = try AttackSpec(parsing: name, epsilon: e)
            XCTAssertEqual(try AttackSpec(parsing: spec.name, epsilon: e), spec, "\(name) → \(spec.name)")
        }
    }

    func test_codable_roundTrips_andRestartsDefaultToOne() throws {
        let specs: [AttackSpec] = [.natural, .fgsm(epsilon: 0.3), .pgd(.pgd20Eval(epsilon: e)), .cw(.cwEval(epsilon: e)),
                                   .pgd(PGDConfig(epsilon: 1, stepSize: 0.2, steps: 5, norm: .l2, randomStart: .gaussian(std: 0.01),
                                                  restarts: 3))]
        for s in specs {
            XCTAssertEqual(try JSONDecoder().decode(AttackSpec.self, from: JSONEncoder().encode(s)), s)
        }
        let json = #"{"epsilon": 0.3, "stepSize": 0.01, "steps": 40, "norm": "linf", "randomStart": {"gaussian": {"std": 0.001}}}"#
        let c = try JSONDecoder().decode(PGDConfig.self, from: Data(json.utf8))
        XCTAssertEqual(c, .tradesMNIST)
        XCTAssertEqual(c.restarts, 1)
    }

    func test_presets_matchTheReferences() {
        XCTAssertEqual(PGDConfig.tradesTrainCIFAR,
                       PGDConfig(epsilon: 0.031, stepSize: 0.007, steps: 10, norm: .linf, randomStart: .gaussian(std: 0.001)))
        XCTAssertEqual(PGDConfig.madryCIFAR, PGDConfig(epsilon: 8 / 255, stepSize: 2 / 255, steps: 10, randomStart: .uniform))
        XCTAssertEqual(PGDConfig.tradesMNIST.steps, 40)
        XCTAssertEqual(PGDConfig.fgsm(epsilon: 0.1), PGDConfig(epsilon: 0.1, stepSize: 0.1, steps: 1, randomStart: .none))
        XCTAssertNil(PGDConfig.hatTrainCIFAR.problem)
        XCTAssertNotNil(PGDConfig(epsilon: -1, stepSize: 0.1, steps: 1, randomStart: .none).problem)
        XCTAssertNotNil(PGDConfig(epsilon: 0.1, stepSize: 0.1, steps: 1, randomStart: .none, restarts: 0).problem)
    }

    func test_naturalCorrectness_isTheCleanArgmaxCorrectness() {
        let m = AttackFixtures.smallCNN()
        let x = AttackFixtures.images(n: 10, shape: [1, 28, 28], seed: 40), y = AttackFixtures.labels(n: 10, seed: 41)
        var rng = SplitMix64(seed: 1)
        let expected = zip(Predictions.argmax(m.logits(x, mode: .inference)), y).map { $0 == $1 }
        XCTAssertEqual(AttackSpec.natural.correctness(model: m, images: x, labels: y, rng: &rng), expected)
        // Labels = the clean predictions: PGD with a large ε breaks most samples; the vector has one entry per sample.
        let yp = Predictions.argmax(m.logits(x, mode: .inference))
        let robust = try! AttackSpec(parsing: "pgd10", epsilon: 0.3).correctness(model: m, images: x, labels: yp, rng: &rng)
        XCTAssertEqual(robust.count, 10)
        XCTAssertLessThan(robust.filter { $0 }.count, 10)
    }
}
