// AttackObjective.swift: the losses an attack maximises (cross-entropy, the CW margin, TRADES' KL
// to a fixed clean prediction), their values and logit gradients, and the one forward/backward
// pass that turns a logit gradient into an input gradient. Also small prediction helpers.
// No stepping or projection here (PGD.swift), and never a parameter gradient.

import Kernels
import Layers
import Tensors

/// What an attack maximises, summed over the batch (the sum keeps each sample's gradient
/// independent of the batch size; the step normalises it anyway).
public enum AttackObjective: Sendable {
    /// `Σ_i CE(f(x̃_i), y_i)` (Madry PGD, MART's attack, PGD-k evaluation).
    case crossEntropy
    /// CW∞ margin `Σ_i −max(z_y − max_{j≠y} z_j + κ, 0)` with κ = 0 (HAT `CWLoss`, algorithms.md
    /// §5.3). Its gradient is zero for samples already misclassified, so they stop moving.
    case margin
    /// TRADES: `Σ_i KL(p(x_i) ‖ p(x̃_i))` with `p(x)` = softmax of the given clean logits `[B, classes]`,
    /// a constant (computed once, in inference mode, before the attack; algorithms.md §2.1).
    case kl(clean: Tensor)

    /// The margin κ of the CW loss (0 in HAT and the CW∞ literature).
    public static let cwMargin: Float = 0

    /// The summed objective and its gradient with respect to `logits [B, classes]`.
    public func evaluate(logits: Tensor, labels: [Int32]) -> (value: Float, dLogits: Tensor) {
        let b = logits.shape[0]
        switch self {
        case .crossEntropy:
            let r = Loss.crossEntropy(logits, labels: labels, scale: Float(b))
            return (r.loss * Float(b), r.dLogits)
        case .margin:
            return AttackObjective.marginLoss(logits, labels: labels)
        case .kl(let clean):
            precondition(clean.shape == logits.shape, "AttackObjective.kl: clean logits \(clean.shape) vs \(logits.shape)")
            let r = Loss.kl(clean, logits, scale: Float(b))
            return (r.loss * Float(b), r.dLogitsQ)
        }
    }

    /// The same objective restricted to the samples `rows` (for restarts on a sub-batch).
    func selecting(rows: [Int]) -> AttackObjective {
        switch self {
        case .crossEntropy, .margin: return self
        case .kl(let clean): return .kl(clean: gatherRows(clean, rows))
        }
    }

    /// `∂(objective)/∂input` at `input`: one forward pass in `mode`, one backward pass with
    /// `targets: .input` (parameter gradients are never touched).
    func inputGradient<M: Classifier>(model: M, input: Tensor, labels: [Int32], mode: ForwardMode) -> Tensor {
        let (logits, cache) = model.forward(input, mode: mode)
        let d = evaluate(logits: logits, labels: labels).dLogits
        guard let g = model.backward(d, cache: cache, targets: .input) else {
            preconditionFailure("AttackObjective: the model returned no input gradient for targets .input")
        }
        return g
    }

    /// `ℓ_i = −max(z_y − max_{j≠y} z_j + κ, 0)`; where the clamp is active, `∂ℓ_i/∂z_y = −1` and
    /// `∂ℓ_i/∂z_j* = +1` for the largest other logit `j*` (first on ties), else 0.
    private static func marginLoss(_ logits: Tensor, labels: [Int32]) -> (value: Float, dLogits: Tensor) {
        let (b, k) = (logits.shape[0], logits.shape[1])
        precondition(labels.count == b && k >= 2, "AttackObjective.margin: \(labels.count) labels, logits \(logits.shape)")
        let z = logits.scalars
        var d = [Float](repeating: 0, count: z.count)
        var total = 0.0
        for i in 0..<b {
            let y = Int(labels[i])
            precondition(y >= 0 && y < k, "AttackObjective.margin: label \(y) outside 0..<\(k)")
            var other = -1
            for j in 0..<k where j != y && (other < 0 || z[i * k + j] > z[i * k + other]) { other = j }
            let m = z[i * k + y] - z[i * k + other] + cwMargin
            if m > 0 {
                total -= Double(m)
                d[i * k + y] = -1
                d[i * k + other] = 1
            }
        }
        return (Float(total), Tensor(shape: logits.shape, values: d))
    }
}

// MARK: - Predictions

/// Class predictions from logits.
public enum Predictions {
    /// Row-wise argmax of `logits [B, classes]` (the first maximum on ties).
    public static func argmax(_ logits: Tensor) -> [Int32] {
        let (b, k) = (logits.shape[0], logits.shape[1])
        let z = logits.scalars
        return (0..<b).map { i in
            var best = 0
            for j in 1..<max(k, 1) where z[i * k + j] > z[i * k + best] { best = j }
            return Int32(best)
        }
    }

    /// Per sample: does the argmax equal the label?
    public static func correct(_ logits: Tensor, labels: [Int32]) -> [Bool] {
        precondition(labels.count == logits.shape[0], "Predictions.correct: \(labels.count) labels for \(logits.shape)")
        return zip(argmax(logits), labels).map { $0 == $1 }
    }
}

// MARK: - Row selection (sub-batches for restarts)

/// Rows `rows` of an `[N, …]` tensor, in that order (a copy).
func gatherRows(_ t: Tensor, _ rows: [Int]) -> Tensor {
    let rowLength = t.shape[0] == 0 ? 0 : t.count / t.shape[0]
    let s = t.scalars
    var out = [Float]()
    out.reserveCapacity(rows.count * rowLength)
    for r in rows { out += s[(r * rowLength)..<((r + 1) * rowLength)] }
    return Tensor(shape: [rows.count] + t.shape.dropFirst(), values: out)
}

/// Writes the rows of `source` into rows `rows` of `target` (same trailing shape).
func scatterRows(_ target: inout Tensor, _ source: Tensor, _ rows: [Int]) {
    precondition(source.shape[0] == rows.count && Array(source.shape.dropFirst()) == Array(target.shape.dropFirst()),
                 "scatterRows: \(source.shape) into \(target.shape) at \(rows.count) rows")
    let rowLength = target.shape[0] == 0 ? 0 : target.count / target.shape[0]
    var t = target.scalars
    let s = source.scalars
    for (k, r) in rows.enumerated() {
        t.replaceSubrange((r * rowLength)..<((r + 1) * rowLength), with: s[(k * rowLength)..<((k + 1) * rowLength)])
    }
    target = Tensor(shape: target.shape, values: t)
}
