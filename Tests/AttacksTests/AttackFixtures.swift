// AttackFixtures.swift: small models and image batches shared by the attack tests: a narrow SmallCNN
// whose zero-initialised last layer is given random values (so input gradients are non-zero), a
// narrow ResNet-18 with non-trivial BatchNorm running statistics, and images with exact 0 and 1 pixels.

import Layers
import Models
import Tensors

enum AttackFixtures {
    /// SmallCNN ×0.25 (8/16 channels, 50 hidden) for 28×28×1, fc3 drawn from N(0, 0.5²).
    static func smallCNN(seed: UInt64 = 3, dropout: Float = 0.5) -> SmallCNN {
        let m = SmallCNN(classes: 10, width: 0.25, dropout: dropout, seed: seed)
        var g = SplitMix64(seed: seed &+ 100)
        m.fc3.weight.value = Tensor.randomNormal(shape: m.fc3.weight.value.shape, std: 0.5, rng: &g)
        m.fc3.bias!.value = Tensor.randomNormal(shape: m.fc3.bias!.value.shape, std: 0.1, rng: &g)
        return m
    }

    /// ResNet-18 ×1/16 (4…32 channels) for 32×32×3, with running statistics moved away from their
    /// initial values by a few training-mode passes.
    static func resNet(seed: UInt64 = 4) -> ResNet18 {
        let m = ResNet18(classes: 10, width: 0.0625, seed: seed)
        for k in 0..<3 { _ = m.forward(images(n: 4, shape: [3, 32, 32], seed: 50 + UInt64(k)), mode: .training) }
        return m
    }

    /// `[n, shape…]` uniform in [0, 1] with every 7th pixel exactly 0 and every 11th exactly 1.
    static func images(n: Int, shape: [Int], seed: UInt64) -> Tensor {
        var g = SplitMix64(seed: seed)
        var t = Tensor.randomUniform(shape: [n] + shape, low: 0, high: 1, rng: &g)
        for i in stride(from: 0, to: t.count, by: 7) { t[flat: i] = 0 }
        for i in stride(from: 3, to: t.count, by: 11) { t[flat: i] = 1 }
        return t
    }

    static func labels(n: Int, classes: Int = 10, seed: UInt64) -> [Int32] {
        var g = SplitMix64(seed: seed)
        return (0..<n).map { _ in Int32(g.nextInt(below: classes)) }
    }

    /// Every BatchNorm buffer and counter of a model, flattened (for bitwise before/after checks).
    static func runningState<M: Classifier>(_ m: M) -> (buffers: [[Float]], counters: [Int64]) {
        var b: [[Float]] = [], c: [Int64] = []
        for e in m.stateEntries(prefix: "") {
            switch e.reference {
            case .buffer(let x): b.append(x.value.scalars)
            case .counter(let x): c.append(x.value)
            case .parameter: break
            }
        }
        return (b, c)
    }

    /// Max |a − b| per sample (L∞) and ‖a − b‖₂ per sample, in Double.
    static func distances(_ a: Tensor, _ b: Tensor) -> (linf: [Double], l2: [Double]) {
        let n = a.shape[0], len = a.count / n
        let x = a.scalars, y = b.scalars
        var linf = [Double](repeating: 0, count: n), l2 = [Double](repeating: 0, count: n)
        for i in 0..<n {
            var s = 0.0
            for j in 0..<len {
                let d = Double(x[i * len + j]) - Double(y[i * len + j])
                linf[i] = max(linf[i], abs(d))
                s += d * d
            }
            l2[i] = s.squareRoot()
        }
        return (linf, l2)
    }
}
