// AttackStartTests.swift: the per-row start override of PGD (AttackStart.swift, the warm start of
// docs/warm-start.md): with no rows the attack is the random-start attack bit for bit; overridden
// rows start inside the ε-ball and the [0, 1] box, whatever they were given; the other rows, and
// the random stream, are those of the attack without an override.

import Attacks
import Kernels
import Layers
import Models
import Tensors
import XCTest
import _TestSupport

final class AttackStartTests: XCTestCase {
    let model = AttackFixtures.smallCNN(seed: 3, dropout: 0)
    let x = AttackFixtures.images(n: 6, shape: [1, 28, 28], seed: 8)
    let y = AttackFixtures.labels(n: 6, seed: 2)

    private func configs(steps: Int) -> [PGDConfig] {
        [PGDConfig(epsilon: 0.1, stepSize: 0.03, steps: steps, norm: .linf, randomStart: .tradesGaussian),
         PGDConfig(epsilon: 0.1, stepSize: 0.03, steps: steps, norm: .linf, randomStart: .uniform),
         PGDConfig(epsilon: 1, stepSize: 0.3, steps: steps, norm: .l2, randomStart: .uniform)]
    }

    /// Starting images far outside any ball: x + 0.5·noise in [−0.5, 1.5].
    private func wild(rows: [Int], seed: UInt64) -> Tensor {
        var g = SplitMix64(seed: seed)
        return Elementwise.add(x.gatherRows(rows), Tensor.randomUniform(shape: [rows.count, 1, 28, 28], low: -0.5, high: 0.5, rng: &g))
    }

    func test_noRows_equalsTheRandomStartAttack_bitForBit() {
        for c in configs(steps: 2) {
            var r1 = SplitMix64(seed: 40), r2 = SplitMix64(seed: 40)
            let plain = PGD.attack(model, images: x, labels: y, config: c, objective: .crossEntropy, rng: &r1)
            let none = PGD.attack(model, images: x, labels: y, config: c, objective: .crossEntropy, start: .none, rng: &r2)
            XCTAssertEqual(plain.scalars, none.scalars, "\(c)")
            XCTAssertEqual(r1.next(), r2.next(), "\(c): the random stream moved differently")
            var t1 = SplitMix64(seed: 41), t2 = SplitMix64(seed: 41)
            let k1 = TRADESAttack.attack(model, images: x, config: c, rng: &t1)
            let k2 = TRADESAttack.attack(model, images: x, config: c, start: AttackStart(rows: [], images: Tensor(zeros: [0])), rng: &t2)
            XCTAssertEqual(k1.scalars, k2.scalars, "TRADES \(c)")
        }
    }

    func test_overriddenRows_startInsideTheBallAndTheBox_otherRowsUntouched() {
        let rows = [1, 4]
        for c in configs(steps: 0) {
            var r1 = SplitMix64(seed: 7), r2 = SplitMix64(seed: 7)
            let random = PGD.attack(model, images: x, labels: y, config: c, objective: .crossEntropy, rng: &r1)
            let warm = PGD.attack(model, images: x, labels: y, config: c, objective: .crossEntropy,
                                  start: AttackStart(rows: rows, images: wild(rows: rows, seed: 3)), rng: &r2)
            XCTAssertEqual(r1.next(), r2.next(), "\(c): the override drew random numbers")
            let n = 28 * 28
            let (linf, l2) = AttackFixtures.distances(warm, x)
            for i in 0..<6 {
                let w = Array(warm.scalars[(i * n)..<((i + 1) * n)]), r = Array(random.scalars[(i * n)..<((i + 1) * n)])
                XCTAssert(w.allSatisfy { $0 >= 0 && $0 <= 1 }, "\(c) row \(i) leaves [0, 1]")
                switch c.norm {
                case .linf: XCTAssertLessThanOrEqual(linf[i], Double(c.epsilon) + 1e-6, "\(c) row \(i)")
                case .l2: XCTAssertLessThanOrEqual(l2[i], Double(c.epsilon) * (1 + 1e-5), "\(c) row \(i)")
                }
                if rows.contains(i) { XCTAssertNotEqual(w, r, "\(c) row \(i) kept the random start") } else {
                    XCTAssertEqual(w, r, "\(c) row \(i) is not the random-start row")
                }
            }
        }
    }

    func test_aStartInsideTheBall_isTheStartExactly() {
        // δ of ±ε/2 on a mid-grey image: projection leaves it alone, so 0 steps return it unchanged.
        let grey = Tensor(shape: [2, 1, 28, 28], repeating: 0.5)
        var g = SplitMix64(seed: 1)
        let delta = Tensor.randomUniform(shape: [1, 1, 28, 28], low: -0.05, high: 0.05, rng: &g)
        let start = Elementwise.add(grey.gatherRows([1]), delta)
        let c = PGDConfig(epsilon: 0.1, stepSize: 0.03, steps: 0, norm: .linf, randomStart: .tradesGaussian)
        var rng = SplitMix64(seed: 2)
        let out = PGD.attack(model, images: grey, labels: [0, 1], config: c, objective: .crossEntropy,
                             start: AttackStart(rows: [1], images: start), rng: &rng)
        XCTAssertEqual(Array(out.scalars[784...]), start.scalars)
    }
}
