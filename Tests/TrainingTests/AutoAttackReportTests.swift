// AutoAttackReportTests.swift: the AutoAttack evaluation report: the sanity checks flag each
// gradient-masking signal past its threshold (and say "not evaluated" when a check cannot run),
// and a run on the demo data records ε as written and as float, n, the IDs, the seed, the BN
// mode and a time per attack, in JSON and in Markdown.

import Attacks
import Datasets
import Foundation
import Models
import Tensors
import Training
import XCTest

final class AutoAttackReportTests: XCTestCase {
    private func entry(broken: Int) -> AutoAttackReport.AttackEntry {
        .init(attack: "square", attacked: 50, broken: broken, robustAccuracyAfter: 0.5, seconds: 1)
    }

    private func large(_ accuracy: Double) -> AutoAttackReport.LargeEpsilon {
        .init(epsilon: 0.5, n: 100, attack: "apgd-ce", accuracy: accuracy, seconds: 1)
    }

    func test_sanityChecks_passOnAHealthyEvaluation() {
        let checks = AutoAttackEvaluation.sanityChecks(robust: 0.40, pgdWorst: 0.45, square: entry(broken: 1), n: 1000,
                                                       large: large(0.0))
        XCTAssertEqual(checks.map { $0.name }, ["autoattack-below-pgd20", "square-not-stronger", "large-epsilon-to-zero"])
        XCTAssertEqual(checks.map { $0.passed }, [true, true, true])
    }

    func test_sanityChecks_flagEachViolation() {
        // AutoAttack weaker than PGD-20.
        var c = AutoAttackEvaluation.sanityChecks(robust: 0.46, pgdWorst: 0.45, square: entry(broken: 0), n: 1000, large: large(0))
        XCTAssertEqual(c[0].passed, false)
        // Square breaks 11 of 1000 points the white-box attacks left (1.1% > 1%); 10 is allowed.
        c = AutoAttackEvaluation.sanityChecks(robust: 0.40, pgdWorst: 0.45, square: entry(broken: 11), n: 1000, large: large(0))
        XCTAssertEqual(c[1].passed, false)
        c = AutoAttackEvaluation.sanityChecks(robust: 0.40, pgdWorst: 0.45, square: entry(broken: 10), n: 1000, large: large(0))
        XCTAssertEqual(c[1].passed, true)
        // Accuracy stays at 6% at the large ε.
        c = AutoAttackEvaluation.sanityChecks(robust: 0.40, pgdWorst: 0.45, square: nil, n: 1000, large: large(0.06))
        XCTAssertEqual(c[2].passed, false)
        // Without Square (fast version) its check is not evaluated, not passed.
        XCTAssertNil(c[1].passed)
        XCTAssertTrue(c[1].value.contains("not evaluated"))
    }

    func test_report_onDemoData_recordsTheSettings_timesAndChecks_inJSONAndMarkdown() throws {
        let source = try DataSource(parsing: "demo")
        let test = try source.open(.test)
        // An untrained network (fc3 random so gradients flow): nothing is robust, which is enough
        // to exercise the report; the cascade itself is tested in AttacksTests.
        let model = SmallCNN(classes: 10, width: 0.25, dropout: 0, seed: 3)
        var g = SplitMix64(seed: 4)
        model.fc3.weight.value = Tensor.randomNormal(shape: model.fc3.weight.value.shape, std: 0.5, rng: &g)
        var o = AutoAttackOptions(preset: .standard, norm: .linf, seed: 5, batchSize: 16, largeEpsilonSamples: 8)
        o.apgdIterations = 5; o.fabIterations = 5; o.targetCount = 2; o.squareQueries = 20
        let ids = Array(10..<40)
        let report = try XCTUnwrap(AutoAttackEvaluation.run(model: model, dataset: test, ids: ids, split: "test",
                                                            epsilonText: "3/10", epsilon: 0.3, options: o))
        XCTAssertEqual(report.n, 30)
        XCTAssertEqual(report.ids, ids)
        XCTAssertEqual(report.epsilonText, "3/10")
        XCTAssertEqual(report.epsilon, 0.3)
        XCTAssertEqual(report.seed, 5)
        XCTAssertEqual(report.bnMode, "inference")
        XCTAssertEqual(report.attacks.map(\.attack), ["apgd-ce", "apgd-t", "fab-t", "square"])
        XCTAssertTrue(report.attacks.allSatisfy { $0.seconds >= 0 })
        XCTAssertLessThanOrEqual(report.robustAccuracy, report.cleanAccuracy)
        XCTAssertEqual(report.attacks.last?.robustAccuracyAfter ?? -1, report.robustAccuracy, accuracy: 1e-12)
        XCTAssertEqual(report.checks.count, 3)
        XCTAssertEqual(report.violations, report.checks.filter { $0.passed == false }.map(\.name))
        XCTAssertEqual(report.largeEpsilon.n, 8)
        // JSON round trip and the Markdown's contents.
        let data = try JSONEncoder().encode(report)
        let back = try JSONDecoder().decode(AutoAttackReport.self, from: data)
        XCTAssertEqual(back.ids, ids)
        let md = report.markdown()
        for needle in ["3/10 (as written) = 0.3 (float)", "n | 30 (test IDs 10..<40)", "| seed | 5 |", "BN mode | inference",
                       "apgd-ce", "fab-t", "square", "Sanity checks", "autoattack-below-pgd20", "large-epsilon-to-zero"] {
            XCTAssertTrue(md.contains(needle), "Markdown lacks '\(needle)'")
        }
    }
}
