// FABTests.swift: FAB-T's projection onto a hyperplane inside the box (hand-computed L∞ and L2
// cases, box-limited, either side, unreachable), and FAB-T on models: inside the ε-ball and box,
// deterministic, and strong on an undefended model.

import Attacks
import Kernels
import Layers
import Models
import Tensors
import XCTest
import _TestSupport

final class FABTests: XCTestCase {
    private func assertClose(_ a: [Float], _ b: [Float], _ what: String, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, what, line: line)
        for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: 1e-6, what, line: line) }
    }

    func test_projection_linf_handCases() {
        // Free: w = (1, 1), c = 0.5 → δ = 0.25 on both.
        assertClose(FAB.projectOntoHyperplane(point: [0.5, 0.5], normal: [1, 1], offset: 1.5, norm: .linf), [0.25, 0.25], "free")
        // Box-limited: the first coordinate can rise by 0.1 only, so the second takes 0.3.
        assertClose(FAB.projectOntoHyperplane(point: [0.9, 0.5], normal: [1, 1], offset: 1.8, norm: .linf), [0.1, 0.3], "box")
        // The other side of the plane: move down.
        assertClose(FAB.projectOntoHyperplane(point: [0.5, 0.5], normal: [1, 1], offset: 0.5, norm: .linf), [-0.25, -0.25], "below")
        // Negative weights move the other way; zero weights stay.
        assertClose(FAB.projectOntoHyperplane(point: [0.5, 0.5, 0.5], normal: [-2, 0, 2], offset: 0.4, norm: .linf),
                    [-0.1, 0, 0.1], "signs")
        // Unreachable inside the box: every coordinate moves by its full room.
        assertClose(FAB.projectOntoHyperplane(point: [0.9, 0.8], normal: [1, 1], offset: 10, norm: .linf), [0.1, 0.2], "unreachable")
        // Already on the plane.
        assertClose(FAB.projectOntoHyperplane(point: [0.2, 0.3], normal: [1, 1], offset: 0.5, norm: .linf), [0, 0], "on plane")
    }

    func test_projection_l2_handCases() {
        // Free: d = c·w/‖w‖² = 0.5·(1, 2)/5.
        assertClose(FAB.projectOntoHyperplane(point: [0.5, 0.5], normal: [1, 2], offset: 2, norm: .l2), [0.1, 0.2], "free")
        // Box-limited: the second coordinate saturates at 0.05, then λ = 0.4 for the first.
        assertClose(FAB.projectOntoHyperplane(point: [0.5, 0.95], normal: [1, 2], offset: 2.9, norm: .l2), [0.4, 0.05], "box")
        assertClose(FAB.projectOntoHyperplane(point: [0.5, 0.5], normal: [1, 2], offset: 1, norm: .l2), [-0.1, -0.2], "below")
    }

    func test_projection_randomCases_landOnThePlane_insideTheBox_andBeatOtherFeasiblePoints() {
        var g = SplitMix64(seed: 12)
        for trial in 0..<200 {
            let d = 1 + g.nextInt(below: 12)
            let p = (0..<d).map { _ in g.nextFloat() }, w = (0..<d).map { _ in g.nextNormal() }
            let target = Double(g.nextNormal())
            for norm in PerturbationNorm.allCases {
                let delta = FAB.projectOntoHyperplane(point: p, normal: w, offset: target, norm: norm)
                let moved = zip(p, delta).map { $0 + $1 }
                XCTAssert(moved.allSatisfy { $0 >= -1e-6 && $0 <= 1 + 1e-6 }, "trial \(trial) \(norm): box")
                let reach = zip(w, moved).map { Double($0) * Double($1) }.reduce(0, +)
                // Reachable iff the plane meets the box: min/max of w·v over the box.
                let lo = zip(w, p).map { min(0, Double($0.0)) }.reduce(0, +), hi = w.map { max(0, Double($0)) }.reduce(0, +)
                guard target >= lo + 1e-6 && target <= hi - 1e-6 else { continue }
                XCTAssertEqual(reach, target, accuracy: 1e-4, "trial \(trial) \(norm): on the plane")
                // No other feasible point is shorter: move along random directions inside the plane
                // (orthogonal to w) as far as the box allows, and compare norms.
                let size = norm == .linf ? delta.map { abs($0) }.max()! : delta.map { $0 * $0 }.reduce(0, +).squareRoot()
                let ww = w.map { Double($0) * Double($0) }.reduce(0, +)
                for _ in 0..<20 {
                    var r = (0..<d).map { _ in Double(g.nextNormal()) }
                    let wr = zip(w, r).map { Double($0) * $1 }.reduce(0, +)
                    r = zip(r, w).map { $0 - wr / ww * Double($1) }
                    var t = 1.0
                    for j in 0..<d where r[j] != 0 {
                        let room = r[j] > 0 ? (1 - Double(moved[j])) / r[j] : -Double(moved[j]) / r[j]
                        t = min(t, max(room, 0))
                    }
                    let other = (0..<d).map { Float(Double(moved[$0]) + t * r[$0]) - p[$0] }
                    let otherSize = norm == .linf ? other.map { abs($0) }.max()! : other.map { $0 * $0 }.reduce(0, +).squareRoot()
                    XCTAssertLessThanOrEqual(size, otherSize + 1e-4, "trial \(trial) \(norm): not minimal")
                }
            }
        }
    }

    func test_fab_staysInsideTheBallAndBox_isDeterministic_andFooledMeansMisclassified() {
        let m = AttackFixtures.smallCNN()
        let x = AttackFixtures.images(n: 5, shape: [1, 28, 28], seed: 1), y = AttackFixtures.labels(n: 5, seed: 2)
        for norm in PerturbationNorm.allCases {
            let e: Float = norm == .linf ? 0.3 : 3
            let c = FABConfig(epsilon: e, norm: norm, iterations: 10, targetCount: 3)
            let a = FAB.attack(m, images: x, labels: y, config: c), b = FAB.attack(m, images: x, labels: y, config: c)
            XCTAssertEqual(a.adversarial, b.adversarial, "\(norm): deterministic")
            assertInsideBallAndBox(a.adversarial, x, epsilon: e, norm: norm, "fab \(norm)")
            let wrong = Predictions.correct(m.logits(a.adversarial, mode: .inference), labels: y).map { !$0 }
            XCTAssertEqual(a.fooled, wrong, "fab \(norm)")
        }
    }

    func test_fabT_breaksMostOfAnUndefendedModel() {
        let (m, x, y) = UndefendedModel.shared
        let r = FAB.attack(m, images: x, labels: y, config: FABConfig(epsilon: 0.3, iterations: 30, targetCount: 3))
        assertInsideBallAndBox(r.adversarial, x, epsilon: 0.3, norm: .linf, "fab-t undefended")
        let rate = Double(r.fooled.filter { $0 }.count) / Double(y.count)
        XCTAssertGreaterThanOrEqual(rate, 0.9, "FAB-T fooled \(rate)")
    }
}
