// AttackStartTests.swift: the per-row start override of PGD (AttackStart.swift, the warm start of
// docs/warm-start.md): with no rows the attack is the random-start attack bit for bit, checked
// against a straight-line scalar PGD/TRADES written out in this file; overridden
// rows start inside the ε-ball and the [0, 1] box, whatever they were given; the other rows, and
// the random stream, are those of the attack without an override.

import Attacks
import Foundation
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

    /// A given start noise (Tensors.StartNoise, the per-sample start the q8rcn codec regenerates)
    /// replaces the Gaussian draw: with 0 steps the attack is Π(x + σ·z) exactly, nothing is drawn
    /// from the random stream, and a row's start depends on its sample, not on the batch around it.
    func test_givenNoise_replacesTheGaussianDraw_perSample() {
        let c0 = PGDConfig(epsilon: 0.1, stepSize: 0.03, steps: 0, norm: .linf, randomStart: .tradesGaussian)
        let noise = StartNoise(seed: 5)
        let z = noise.unitTensor(epoch: 2, ids: [10, 11, 12, 13, 14, 15], sampleShape: [1, 28, 28])
        var r1 = SplitMix64(seed: 40), r2 = SplitMix64(seed: 40)
        let start = PGD.attack(model, images: x, labels: y, config: c0, objective: .crossEntropy,
                               start: AttackStart(rows: [], images: Tensor(zeros: [0]), noise: z), rng: &r1)
        XCTAssertEqual(r1.next(), r2.next(), "no draw from the random stream")
        let xs = x.scalars, zs = z.scalars
        for i in xs.indices {
            // |σ·z| ≤ 0.006 < ε: only the box clips (the ball's rounding is PGD.project's own).
            let expected = min(max(xs[i] + 0.001 * zs[i], 0), 1)
            XCTAssertEqual(start.scalars[i], expected, accuracy: 1e-7, "element \(i)")
        }
        // Row 2 of this batch is sample 12: the same start as sample 12 alone in a batch of one.
        let one = noise.unitTensor(epoch: 2, ids: [12], sampleShape: [1, 28, 28])
        XCTAssertEqual(Array(zs[(2 * 784)..<(3 * 784)]), one.scalars)
        // A uniform start ignores the noise: the draw as without it.
        let u = PGDConfig(epsilon: 0.1, stepSize: 0.03, steps: 1, norm: .linf, randomStart: .uniform)
        var u1 = SplitMix64(seed: 7), u2 = SplitMix64(seed: 7)
        let a = PGD.attack(model, images: x, labels: y, config: u, objective: .crossEntropy, rng: &u1)
        let b = PGD.attack(model, images: x, labels: y, config: u, objective: .crossEntropy,
                           start: AttackStart(rows: [], images: Tensor(zeros: [0]), noise: z), rng: &u2)
        XCTAssertEqual(a.scalars, b.scalars)
    }

    /// `Σ_i v[r·m + i]²`, square-rooted: the L2 norm of row r (scalar, in Double).
    private func rowNorm(_ v: [Float], _ r: Int, _ m: Int) -> Float {
        var s = 0.0
        for i in 0..<m { s += Double(v[r * m + i]) * Double(v[r * m + i]) }
        return Float(s.squareRoot())
    }

    /// Box, then ball ‖x − c‖₂ ≤ ε per row, then box (the L2 order of algorithms.md §2.1), scalar.
    private func projectL2(_ x: inout [Float], center c: [Float], epsilon e: Float, rows n: Int) {
        let m = x.count / n
        for i in x.indices { x[i] = min(max(x[i], 0), 1) }
        for r in 0..<n {
            let norm = rowNorm(zip(x[(r * m)..<((r + 1) * m)], c[(r * m)..<((r + 1) * m)]).map { $0 - $1 }, 0, m)
            guard norm > e else { continue }
            for i in (r * m)..<((r + 1) * m) { x[i] = c[i] + (x[i] - c[i]) * (e / norm) }
        }
        for i in x.indices { x[i] = min(max(x[i], 0), 1) }
    }

    /// The random-start PGD written out independently of `PGD.run`: the start drawn with the same
    /// SplitMix64 calls as `PGD.start` (Gaussian: x + N(0, σ²), unclamped; uniform L∞: clamp(x + U(−ε, ε));
    /// uniform L2: a Gaussian direction per row scaled to ε·u^(1/d), projected), then `steps` ascent
    /// steps on the objective (L∞: x + α·sign(g), ball then box; L2: x + α·g/‖g‖₂, box, ball, box).
    /// Only the input gradient comes from the library: the model's backward of the public
    /// `AttackObjective.evaluate`.
    private func straightLinePGD(_ images: Tensor, labels: [Int32], config c: PGDConfig, objective: AttackObjective,
                                 rng: inout SplitMix64) -> [Float] {
        let n = images.shape[0], m = images.count / n, x0 = images.scalars
        var x = x0
        switch (c.randomStart, c.norm) {
        case (.none, _):
            break
        case (.gaussian(let std), _):
            let noise = Tensor.randomNormal(shape: images.shape, std: std, rng: &rng).scalars
            for i in x.indices { x[i] = x0[i] + noise[i] }
        case (.uniform, .linf):
            let noise = Tensor.randomUniform(shape: images.shape, low: -c.epsilon, high: c.epsilon, rng: &rng).scalars
            for i in x.indices { x[i] = min(max(x0[i] + noise[i], 0), 1) }
        case (.uniform, .l2):
            let direction = Tensor.randomNormal(shape: images.shape, std: 1, rng: &rng).scalars
            for r in 0..<n {
                let f = Float(Double(c.epsilon) * pow(Double(rng.nextFloat()), 1 / Double(m))) / rowNorm(direction, r, m)
                for i in (r * m)..<((r + 1) * m) { x[i] += f * direction[i] }
            }
            projectL2(&x, center: x0, epsilon: c.epsilon, rows: n)
        }
        func project() {
            switch c.norm {
            case .linf:
                for i in x.indices { x[i] = min(max(min(max(x[i], x0[i] - c.epsilon), x0[i] + c.epsilon), 0), 1) }
            case .l2:
                projectL2(&x, center: x0, epsilon: c.epsilon, rows: n)
            }
        }
        for _ in 0..<c.steps {
            let (logits, cache) = model.forward(Tensor(shape: images.shape, values: x), mode: .inference)
            let g = model.backward(objective.evaluate(logits: logits, labels: labels).dLogits, cache: cache, targets: .input)!.scalars
            switch c.norm {
            case .linf:
                for i in x.indices where g[i] != 0 { x[i] += g[i] > 0 ? c.stepSize : -c.stepSize }
            case .l2:
                for r in 0..<n {
                    let f = c.stepSize / rowNorm(g, r, m)
                    for i in (r * m)..<((r + 1) * m) { x[i] += f * g[i] }
                }
            }
            project()
        }
        if c.steps == 0 { project() }
        return x
    }

    /// The attack without rows against the straight-line version above: bit for bit for L∞ (the same
    /// float operations in the same order), within 1e-5 for L2 (the library sums norms in another
    /// order). A change to the random start or the step of the random-start attack fails here.
    func test_noRows_equalsAStraightLineRandomStartPGD_andTRADES() {
        for c in configs(steps: 3) {
            for trades in [false, true] {
                let clean = model.logits(x, mode: .inference)
                let labels = trades ? Predictions.argmax(clean) : y
                let objective: AttackObjective = trades ? .kl(clean: clean) : .crossEntropy
                var r1 = SplitMix64(seed: 50), r2 = SplitMix64(seed: 50)
                let attack = trades ? TRADESAttack.attack(model, images: x, config: c, start: .none, rng: &r1)
                    : PGD.attack(model, images: x, labels: y, config: c, objective: .crossEntropy, start: .none, rng: &r1)
                let expected = straightLinePGD(x, labels: labels, config: c, objective: objective, rng: &r2)
                XCTAssertNotEqual(expected, x.scalars, "\(c): the reference did not move")
                switch c.norm {
                case .linf:
                    XCTAssertEqual(attack.scalars, expected, "\(trades ? "TRADES" : "PGD") \(c)")
                case .l2:
                    let worst = zip(attack.scalars, expected).map { abs($0 - $1) }.max() ?? 0
                    XCTAssertLessThanOrEqual(worst, 1e-5, "\(trades ? "TRADES" : "PGD") \(c)")
                }
                XCTAssertEqual(r1.next(), r2.next(), "\(c): the random streams diverged")
            }
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
