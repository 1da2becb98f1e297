// MethodFixtures.swift: what the method tests are built from: a tiny affine classifier whose every
// loss can be recomputed by hand in Double, Double re-implementations of the TRADES, MART and HAT
// outer losses, auxiliary losses with known outputs, and narrow real models.

import Attacks
import Foundation
import Kernels
import Layers
import Models
import Tensors
import Training

// MARK: - A classifier simple enough to compute by hand

/// `logits[i, c] = b[c] + Σ_j W[c, j] · x[i, j]` for 2-pixel inputs `[N, 1, 1, 2]` and 3 classes.
/// Counts its training-mode forward passes in a `num_batches_tracked` counter, as BatchNorm does.
final class AffineClassifier: Classifier {
    let inputShape = [1, 1, 2]
    let classCount = 3
    let weight: Parameter, bias: Parameter
    let trainingPasses = Counter()

    struct Cache { let input: [Float]; let n: Int }

    init(weight: [Float], bias: [Float]) {
        self.weight = Parameter(Tensor(shape: [3, 2], values: weight))
        self.bias = Parameter(Tensor(shape: [3], values: bias))
    }

    func forward(_ input: Tensor, mode: ForwardMode) -> (logits: Tensor, cache: Cache) {
        if mode == .training { trainingPasses.value += 1 }
        let n = input.shape[0], x = input.scalars, w = weight.value.scalars, b = bias.value.scalars
        var z = [Float](repeating: 0, count: n * 3)
        for i in 0..<n {
            for c in 0..<3 { z[i * 3 + c] = b[c] + w[c * 2] * x[i * 2] + w[c * 2 + 1] * x[i * 2 + 1] }
        }
        return (Tensor(shape: [n, 3], values: z), Cache(input: x, n: n))
    }

    func backward(_ dLogits: Tensor, cache: Cache, targets: GradientTargets) -> Tensor? {
        let d = dLogits.scalars, x = cache.input, n = cache.n
        if targets.contains(.parameters) {
            var gw = weight.gradient.scalars, gb = bias.gradient.scalars
            for i in 0..<n {
                for c in 0..<3 {
                    gb[c] += d[i * 3 + c]
                    for j in 0..<2 { gw[c * 2 + j] += d[i * 3 + c] * x[i * 2 + j] }
                }
            }
            weight.gradient = Tensor(shape: [3, 2], values: gw)
            bias.gradient = Tensor(shape: [3], values: gb)
        }
        guard targets.contains(.input) else { return nil }
        let w = weight.value.scalars
        var dx = [Float](repeating: 0, count: n * 2)
        for i in 0..<n { for j in 0..<2 { for c in 0..<3 { dx[i * 2 + j] += d[i * 3 + c] * w[c * 2 + j] } } }
        return Tensor(shape: [n, 1, 1, 2], values: dx)
    }

    func stateEntries(prefix: String) -> [StateEntry] {
        [StateEntry(prefix + "weight", .parameter(weight)), StateEntry(prefix + "bias", .parameter(bias)),
         StateEntry(prefix + "num_batches_tracked", .counter(trainingPasses))]
    }
}

// MARK: - Double references of the outer losses

/// The affine model's parameters in Double: `theta[0..<6]` = W row-major, `theta[6..<9]` = b.
enum HandComputed {
    static func logits(_ theta: [Double], _ x: [Double]) -> [[Double]] {
        var z: [[Double]] = []
        for i in 0..<(x.count / 2) {
            var row: [Double] = []
            for c in 0..<3 {
                let bias: Double = theta[6 + c]
                let first: Double = theta[c * 2] * x[i * 2]
                let second: Double = theta[c * 2 + 1] * x[i * 2 + 1]
                row.append(bias + first + second)
            }
            z.append(row)
        }
        return z
    }

    static func softmax(_ z: [Double]) -> [Double] {
        let m = z.max()!
        let e = z.map { exp($0 - m) }
        let s = e.reduce(0, +)
        return e.map { $0 / s }
    }

    static func crossEntropy(_ z: [Double], _ y: Int) -> Double { -log(softmax(z)[y]) }

    /// KL(softmax(zp) ‖ softmax(zq)), with `floor` added inside log q (MART's 1e-12; 0 for TRADES).
    static func kl(_ zp: [Double], _ zq: [Double], floor: Double = 0) -> Double {
        let p = softmax(zp), q = softmax(zq)
        return (0..<p.count).reduce(0) { $0 + p[$1] * (log(p[$1]) - log(q[$1] + floor)) }
    }

    static func trades(_ theta: [Double], x: [Double], adv: [Double], y: [Int], beta: Double) -> Double {
        let zc = logits(theta, x), za = logits(theta, adv), b = Double(y.count)
        var l = 0.0
        for i in 0..<y.count { l += crossEntropy(zc[i], y[i]) / b + beta * kl(zc[i], za[i]) / b }
        return l
    }

    /// MART exactly as `mart.py` writes it (algorithms.md §3), guards included.
    static func mart(_ theta: [Double], x: [Double], adv: [Double], y: [Int], beta: Double) -> Double {
        let zc = logits(theta, x), za = logits(theta, adv), b = Double(y.count)
        var l = 0.0
        for i in 0..<y.count {
            let pa = softmax(za[i]), pc = softmax(zc[i])
            let other = (0..<3).filter { $0 != y[i] }.max { pa[$0] < pa[$1] }!
            l += crossEntropy(za[i], y[i]) / b - log(1.0001 - pa[other] + 1e-12) / b
            l += beta * kl(zc[i], za[i], floor: 1e-12) * (1.0000001 - pc[y[i]]) / b
        }
        return l
    }

    static func hat(_ theta: [Double], x: [Double], adv: [Double], y: [Int], helperY: [Int], beta: Double,
                    gamma: Double, h: Double) -> Double {
        let xh = (0..<x.count).map { x[$0] + h * (adv[$0] - x[$0]) }
        let zc = logits(theta, x), za = logits(theta, adv), zh = logits(theta, xh), b = Double(y.count)
        var l = 0.0
        for i in 0..<y.count {
            l += crossEntropy(zc[i], y[i]) / b + beta * kl(zc[i], za[i]) / b + gamma * crossEntropy(zh[i], helperY[i]) / b
        }
        return l
    }

    /// Central differences of `f` at `theta` in Double (step 1e-6: truncation ~1e-12, rounding ~1e-10).
    static func gradient(_ theta: [Double], _ f: ([Double]) -> Double) -> [Double] {
        (0..<theta.count).map { k in
            var a = theta, b = theta
            a[k] += 1e-6; b[k] -= 1e-6
            return (f(a) - f(b)) / 2e-6
        }
    }
}

// MARK: - Auxiliary losses with known outputs

/// Returns fixed terms and a gradient computed from the clean logits; records what it was given.
final class RecordingAuxiliary: AuxiliaryLoss {
    let terms: [String: Float]
    let gradient: (Tensor) -> Tensor
    private(set) var receivedLogits: Tensor?

    init(terms: [String: Float], gradient: @escaping (Tensor) -> Tensor) {
        self.terms = terms
        self.gradient = gradient
    }

    func apply(model: AnyClassifier, cleanLogits: Tensor, labels: [Int32]) -> (terms: [String: Float], dCleanLogits: Tensor) {
        receivedLogits = cleanLogits
        return (terms, gradient(cleanLogits))
    }
}

// MARK: - Real models

enum MethodFixtures {
    /// SmallCNN ×0.25 with fc3 drawn from N(0, 0.5²) (its reference init is zero, which would make
    /// every input gradient zero).
    static func smallCNN(seed: UInt64 = 3, dropout: Float = 0.5) -> SmallCNN {
        let m = SmallCNN(classes: 10, width: 0.25, dropout: dropout, seed: seed)
        var g = SplitMix64(seed: seed &+ 100)
        m.fc3.weight.value = Tensor.randomNormal(shape: m.fc3.weight.value.shape, std: 0.5, rng: &g)
        m.fc3.bias!.value = Tensor.randomNormal(shape: m.fc3.bias!.value.shape, std: 0.1, rng: &g)
        return m
    }

    static func images(n: Int, shape: [Int], seed: UInt64) -> Tensor {
        var g = SplitMix64(seed: seed)
        return Tensor.randomUniform(shape: [n] + shape, low: 0, high: 1, rng: &g)
    }

    static func labels(n: Int, classes: Int = 10, seed: UInt64) -> [Int32] {
        var g = SplitMix64(seed: seed)
        return (0..<n).map { _ in Int32(g.nextInt(below: classes)) }
    }

    /// A short attack for tests: `steps` L∞ steps at ε = 0.1 with the given start.
    static func attack(_ start: RandomStart, steps: Int = 2) -> PGDConfig {
        PGDConfig(epsilon: 0.1, stepSize: 0.04, steps: steps, norm: .linf, randomStart: start)
    }

    /// Parameter gradients, flattened per parameter.
    static func gradients(_ m: AnyClassifier) -> [[Float]] { m.parameters.map { $0.gradient.scalars } }

    /// Every `num_batches_tracked` counter of a model.
    static func counters(_ m: AnyClassifier) -> [Int64] {
        m.stateEntries(prefix: "").compactMap { if case .counter(let c) = $0.reference { return c.value } else { return nil } }
    }
}
