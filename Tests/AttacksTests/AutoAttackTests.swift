// AutoAttackTests.swift: the cascade on an undefended MNIST model: robust accuracy falls to about
// 0 while clean accuracy is high; no broken point is ever attacked again and the result is the
// per-sample worst case; a resumed run equals an uninterrupted one; a state file from another run
// or a corrupt one is a clear error naming the file and the field.

import Attacks
import Foundation
import Kernels
import Layers
import Models
import Tensors
import XCTest
import _TestSupport

final class AutoAttackTests: XCTestCase {
    /// The standard cascade with small budgets (the tests check the cascade, not the budgets).
    private func config(epsilon: Float, seed: UInt64 = 0, batchSize: Int = 250) -> AutoAttack.Config {
        AutoAttack.Config(epsilon: epsilon, norm: .linf, preset: .standard, seed: seed, batchSize: batchSize,
                          apgdIterations: 20, fabIterations: 20, targetCount: 3, squareQueries: 150)
    }

    private func temporaryFile(_ name: String) -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("aa-tests-\(getpid())")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let url = dir.appendingPathComponent(name)
        try? FileManager.default.removeItem(at: url)
        return url
    }

    func test_autoAttack_onAnUndefendedModel_drivesRobustAccuracyToAboutZero() throws {
        let (m, x, y) = UndefendedModel.shared
        let clean = UndefendedModel.accuracy(m, x, y)
        XCTAssertGreaterThanOrEqual(clean, 0.9, "the undefended model should classify well")
        let out = try AutoAttack.run(model: m, images: x, labels: y, config: config(epsilon: 0.3))
        XCTAssertEqual(out.cleanAccuracy, clean, accuracy: 1e-12)
        XCTAssertLessThanOrEqual(out.robustAccuracy, 0.02, "AutoAttack robust accuracy \(out.robustAccuracy) at ε = 0.3")
        XCTAssertTrue(out.finished)
        // PGD-20 is no stronger than AutoAttack here either.
        var rng = SplitMix64(seed: 1)
        let pgd = AttackSpec.pgd(.pgd20Eval(epsilon: 0.3)).correctness(model: m, images: x, labels: y, rng: &rng)
        XCTAssertLessThanOrEqual(out.robustAccuracy, Double(pgd.filter { $0 }.count) / Double(y.count))
    }

    func test_cascade_neverReattacksABrokenPoint_andRobustIsThePerSampleWorstCase() throws {
        let (m, x, y) = UndefendedModel.shared
        // A small ε leaves points for every attack of the cascade.
        let out = try AutoAttack.run(model: m, images: x, labels: y, config: config(epsilon: 0.06, batchSize: 32))
        XCTAssertEqual(out.records.map(\.attack), [.apgdCE, .apgdT, .fabT, .square])
        var stillRobust = Set(out.clean.indices.filter { out.clean[$0] })
        for r in out.records {
            XCTAssertEqual(Set(r.attacked), stillRobust, "\(r.attack) ran on exactly the points still robust")
            XCTAssertEqual(r.attacked.count, Set(r.attacked).count)
            XCTAssertTrue(Set(r.broken).isSubset(of: Set(r.attacked)), "\(r.attack) broke only points it attacked")
            XCTAssertTrue(r.complete)
            stillRobust.subtract(r.broken)
        }
        XCTAssertEqual(Set(out.robust.indices.filter { out.robust[$0] }), stillRobust)
        // Each attack did something at this ε, and something survived APGD-CE.
        XCTAssertGreaterThan(out.records[0].broken.count, 0)
        XCTAssertGreaterThan(out.records[1].attacked.count, 0)
        // Worst case, from the adversarials: broken points are misclassified inside the ball; robust
        // points are correct clean.
        let adv = try XCTUnwrap(out.adversarial)
        assertInsideBallAndBox(adv, x, epsilon: 0.06, norm: .linf, "cascade adversarials")
        let correctAtAdv = Predictions.correct(m.logits(adv, mode: .inference), labels: y)
        for i in 0..<y.count {
            XCTAssertEqual(out.robust[i], out.clean[i] && correctAtAdv[i], "point \(i)")
        }
    }

    /// With per-point streams (`pointKeys`: each point's position in the whole set), a point's
    /// outcome does not depend on its batch: the whole set in batches of 32 and its even and odd
    /// positions run apart (as two MPI ranks do) give the same clean, robust and per-attack
    /// broken sets; with per-batch streams the random starts of the same point differ.
    func test_pointKeyedStreams_makeAPointsResultIndependentOfItsBatch() throws {
        let (m, x, y) = UndefendedModel.shared
        let c = config(epsilon: 0.06, batchSize: 32)
        let n = y.count
        let whole = try AutoAttack.run(model: m, images: x, labels: y, config: c, pointKeys: (0..<n).map { UInt64($0) })
        XCTAssertEqual(whole.records.map(\.attack), [.apgdCE, .apgdT, .fabT, .square])
        XCTAssertGreaterThan(whole.records[3].attacked.count, 0, "Square must have points to attack for the test to mean something")
        var robust = [Bool](repeating: false, count: n), clean = robust
        var broken: [AutoAttack.Component: Set<Int>] = [:]
        for r in 0..<2 {
            let positions = Array(stride(from: r, to: n, by: 2))
            let part = try AutoAttack.run(model: m, images: x.gatherRows(positions), labels: positions.map { y[$0] }, config: c,
                                          pointKeys: positions.map { UInt64($0) })
            for (k, p) in positions.enumerated() { robust[p] = part.robust[k]; clean[p] = part.clean[k] }
            for rec in part.records { broken[rec.attack, default: []].formUnion(rec.broken.map { positions[$0] }) }
        }
        XCTAssertEqual(clean, whole.clean)
        XCTAssertEqual(robust, whole.robust)
        for rec in whole.records { XCTAssertEqual(broken[rec.attack] ?? [], Set(rec.broken), "\(rec.attack)") }
        // The keys are what makes the difference: APGD's iterate for a point it breaks (at a large ε)
        // alone equals the point's in a keyed batch, and differs from the one in a shared-stream batch.
        let big = config(epsilon: 0.3).apgdCE
        var keyed = RowRandom(perRow: (0..<8).map { SplitMix64(seed: UInt64($0)) })
        let a = APGD.attack(m, images: x.rows(0..<8), labels: Array(y[0..<8]), config: big, random: &keyed)
        let cleanCorrect = Predictions.correct(m.logits(x.rows(0..<8), mode: .inference), labels: Array(y[0..<8]))
        let j = try XCTUnwrap((0..<8).first { a.fooled[$0] && cleanCorrect[$0] }, "a point APGD breaks")
        var alone = RowRandom(perRow: [SplitMix64(seed: UInt64(j))])
        let b = APGD.attack(m, images: x.rows(j..<(j + 1)), labels: [y[j]], config: big, random: &alone)
        XCTAssertEqual(a.adversarial.rows(j..<(j + 1)).scalars, b.adversarial.scalars, "a keyed point's iterate is its own")
        var shared = RowRandom(shared: SplitMix64(seed: 5))
        let inBatch = APGD.attack(m, images: x.rows(0..<8), labels: Array(y[0..<8]), config: big, random: &shared)
        XCTAssertNotEqual(inBatch.adversarial.rows(j..<(j + 1)).scalars, b.adversarial.scalars)
        XCTAssertThrowsError(try AutoAttack.run(model: m, images: x, labels: y, config: c, pointKeys: [0])) { e in
            XCTAssert("\(e)".contains("pointKeys"), "\(e)")
        }
    }

    func test_resumeFromStateFile_givesTheUninterruptedResult() throws {
        let (m, x, y) = UndefendedModel.shared
        let c = config(epsilon: 0.06, seed: 7, batchSize: 24)
        let reference = try AutoAttack.run(model: m, images: x, labels: y, config: c)
        let file = temporaryFile("resume.json")
        var calls = 0
        let first = try AutoAttack.run(model: m, images: x, labels: y, config: c, stateFile: file) { _ in
            calls += 1
            return calls < 3  // stop inside APGD-CE's batches
        }
        XCTAssertFalse(first.finished)
        XCTAssertTrue(FileManager.default.fileExists(atPath: file.path))
        // Stop again inside a later attack, then finish.
        var more = 0
        let second = try AutoAttack.run(model: m, images: x, labels: y, config: c, stateFile: file) { p in
            more += 1
            return !(p.attack == .apgdT && p.batchesDone == 1)
        }
        XCTAssertFalse(second.finished)
        XCTAssertTrue(second.resumed)
        let final = try AutoAttack.run(model: m, images: x, labels: y, config: c, stateFile: file)
        XCTAssertTrue(final.finished)
        XCTAssertNil(final.adversarial, "adversarials are not kept across sessions")
        XCTAssertEqual(final.robust, reference.robust)
        XCTAssertEqual(final.clean, reference.clean)
        XCTAssertEqual(final.records.map(\.attacked), reference.records.map(\.attacked))
        XCTAssertEqual(final.records.map(\.broken), reference.records.map(\.broken))
        // A finished state file is a finished run: nothing is attacked again.
        var again = 0
        let done = try AutoAttack.run(model: m, images: x, labels: y, config: c, stateFile: file) { _ in again += 1; return true }
        XCTAssertEqual(again, 0)
        XCTAssertEqual(done.robust, reference.robust)
    }

    func test_mismatchingOrCorruptStateFile_isAClearErrorNamingTheFileAndField() throws {
        let (m, x, y) = UndefendedModel.shared
        let file = temporaryFile("mismatch.json")
        let c = config(epsilon: 0.06, seed: 1, batchSize: 50)
        _ = try AutoAttack.run(model: m, images: x, labels: y, config: c, stateFile: file) { _ in false }

        func expectError(_ c: AutoAttack.Config, images: Tensor, field: String, line: UInt = #line) {
            XCTAssertThrowsError(try AutoAttack.run(model: m, images: images, labels: y, config: c, stateFile: file),
                                 line: line) { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains(file.path), "names the file: \(text)", line: line)
                XCTAssertTrue(text.contains(field), "names \(field): \(text)", line: line)
            }
        }
        var other = c
        other.seed = 2
        expectError(other, images: x, field: "identity.seed")
        other = c
        other.epsilon = 0.1
        expectError(other, images: x, field: "identity.epsilon")
        var shifted = x
        shifted[flat: 5] = 0.5 * shifted[flat: 5] + 0.25
        expectError(c, images: shifted, field: "identity.dataFingerprint")
        // Another model (same architecture, other weights).
        let otherModel = SmallCNN(classes: 10, width: 0.25, dropout: 0, seed: 99)
        XCTAssertThrowsError(try AutoAttack.run(model: otherModel, images: x, labels: y, config: c, stateFile: file)) {
            XCTAssertTrue("\($0)".contains("identity.modelFingerprint"), "\($0)")
        }
        // Not JSON at all; a foreign JSON file; an inconsistent one.
        try Data("not json".utf8).write(to: file)
        expectError(c, images: x, field: "cannot read")
        try Data(#"{"format": "something-else", "version": 1}"#.utf8).write(to: file)
        expectError(c, images: x, field: "'format'")
        _ = try? FileManager.default.removeItem(at: file)
        _ = try AutoAttack.run(model: m, images: x, labels: y, config: c, stateFile: file) { _ in false }
        var text = try String(contentsOf: file, encoding: .utf8)
        let flags = try XCTUnwrap(text.range(of: #""robustFlags":""#))
        text.replaceSubrange(flags.upperBound..<text.index(flags.upperBound, offsetBy: 2), with: "2")
        try Data(text.utf8).write(to: file)
        expectError(c, images: x, field: "robustFlags")
        // A state of the previous version (Square's old schedule) is refused, naming the version.
        _ = try? FileManager.default.removeItem(at: file)
        _ = try AutoAttack.run(model: m, images: x, labels: y, config: c, stateFile: file) { _ in false }
        let current = try String(contentsOf: file, encoding: .utf8)
        XCTAssertTrue(current.contains(#""version":2"#), current)
        try Data(current.replacingOccurrences(of: #""version":2"#, with: #""version":1"#).utf8).write(to: file)
        expectError(c, images: x, field: "version")
    }

    func test_invalidConfiguration_isAnErrorNamingTheField() {
        let (m, x, y) = UndefendedModel.shared
        var c = config(epsilon: 0.1)
        c.batchSize = 0
        XCTAssertThrowsError(try AutoAttack.run(model: m, images: x, labels: y, config: c)) {
            XCTAssertEqual($0 as? AutoAttackError, .invalidConfig(field: "batchSize", problem: "must be ≥ 1, got 0"))
        }
        c = config(epsilon: 0.1)
        c.targetCount = 10
        XCTAssertThrowsError(try AutoAttack.run(model: m, images: x, labels: y, config: c)) {
            XCTAssertTrue("\($0)".contains("targetCount"), "\($0)")
        }
    }

    func test_presets_runTheirAttacksInOrder_squareIsLinfOnly() {
        XCTAssertEqual(AutoAttack.Config(epsilon: 0.3, preset: .standard).components, [.apgdCE, .apgdT, .fabT, .square])
        XCTAssertEqual(AutoAttack.Config(epsilon: 0.3, preset: .fast).components, [.apgdCE, .apgdT])
        let l2 = AutoAttack.Config(epsilon: 2, norm: .l2, preset: .standard)
        XCTAssertEqual(l2.components, [.apgdCE, .apgdT, .fabT])
        XCTAssertEqual(l2.skipped.map(\.component), [.square])
        // Standard defaults (algorithms.md §5.4).
        let d = AutoAttack.Config(epsilon: 8 / 255)
        XCTAssertEqual([d.apgdIterations, d.fabIterations, d.targetCount, d.squareQueries, d.batchSize], [100, 100, 9, 5000, 250])
        XCTAssertEqual(d.fabT.alphaMax, 0.1); XCTAssertEqual(d.fabT.eta, 1.05); XCTAssertEqual(d.fabT.beta, 0.9)
        XCTAssertEqual(d.square.pInit, 0.8); XCTAssertEqual(d.apgdCE.rho, 0.75); XCTAssertEqual(d.apgdCE.momentum, 0.75)
    }
}
