// Loss.swift: row-wise softmax / log-softmax and the two losses every training method is built from:
// softmax cross-entropy and the KL divergence between two softmaxes (TRADES/MART/MemLoss), with their
// logit gradients. Everything is derived from max-subtracted log-softmaxes, so no probability is ever
// logged. Rows are short (10–100 classes) and exp/log are scalar libm calls, so these loops are scalar
// and single-threaded. Weighted combinations of losses are the caller's job. Twins: Loss+Reference.swift.

import Foundation

/// Classification losses over logits `[B, classes]` (row-major, one row per sample).
///
/// Notation (algorithms.md): `z` logits, `p = softmax(z)`, `log p_c = z_c − m − log Σ_k exp(z_k − m)`
/// with `m = max_k z_k`. All logits must be finite. Per-sample math is Float; batch sums are Double.
/// No epsilon guards are needed: after max subtraction `Σ_k exp(z_k − m) ≥ 1`, so its log is finite,
/// and an underflowed `p_c = 0` only ever multiplies a finite log-ratio.
public enum Loss {
    // MARK: - Softmax

    /// Row-wise softmax: `output[b, c] = exp(z_c − m) / Σ_k exp(z_k − m)`.
    ///
    /// Shapes: `logits`, `output` `[B, classes]`. `output` may be exactly `logits`.
    public static func softmax(output: UnsafeMutablePointer<Float>, logits: UnsafePointer<Float>,
                               batch: Int, classes: Int) {
        let profile = KernelProfile.begin(.loss); defer { KernelProfile.end(profile) }
        precondition(batch >= 0 && classes >= 1, "Loss.softmax: batch \(batch), classes \(classes)")
        for b in 0..<batch {
            let z = logits + b * classes, y = output + b * classes
            let m = rowMaximum(z, classes: classes)
            var total: Float = 0
            for c in 0..<classes {
                let e = exp(z[c] - m)
                y[c] = e
                total += e
            }
            let inverse = 1 / total
            for c in 0..<classes { y[c] *= inverse }
        }
    }

    /// Row-wise log-softmax: `output[b, c] = (z_c − m) − log Σ_k exp(z_k − m)`.
    ///
    /// Shapes: `logits`, `output` `[B, classes]`. `output` may be exactly `logits`.
    public static func logSoftmax(output: UnsafeMutablePointer<Float>, logits: UnsafePointer<Float>,
                                  batch: Int, classes: Int) {
        let profile = KernelProfile.begin(.loss); defer { KernelProfile.end(profile) }
        precondition(batch >= 0 && classes >= 1, "Loss.logSoftmax: batch \(batch), classes \(classes)")
        for b in 0..<batch { logSoftmaxRow(output: output + b * classes, logits: logits + b * classes, classes: classes) }
    }

    // MARK: - Cross-entropy

    /// Mean softmax cross-entropy (PyTorch `F.cross_entropy`, reduction "mean"), with its logit gradient.
    ///
    /// ```
    /// ℓ_i      = −log p_{y_i}(z_i) = m_i + log Σ_k exp(z_ik − m_i) − z_{i,y_i}
    /// returns    (1/B) Σ_i ℓ_i
    /// dLogits  = scale · (softmax(z_i) − onehot(y_i)) / B        (overwritten)
    /// ```
    /// Shapes: `logits`, `dLogits` `[B, classes]`; `labels`, `perSample` `[B]`.
    ///
    /// - Parameters:
    ///   - labels: class indices in `0..<classes` (checked; a bad label stops the program).
    ///   - dLogits: gradient of `scale ×` the returned mean, or nil to skip. May not alias `logits`.
    ///   - perSample: receives each `ℓ_i` (unscaled), or nil.
    ///   - scale: loss weight folded into the gradient (e.g. a β); the returned value is unscaled.
    /// - Returns: the batch mean, accumulated in Double; 0 for an empty batch.
    public static func softmaxCrossEntropy(logits: UnsafePointer<Float>, labels: UnsafePointer<Int32>,
                                           batch: Int, classes: Int,
                                           dLogits: UnsafeMutablePointer<Float>? = nil,
                                           perSample: UnsafeMutablePointer<Float>? = nil,
                                           scale: Float = 1) -> Float {
        let profile = KernelProfile.begin(.loss); defer { KernelProfile.end(profile) }
        precondition(batch >= 0 && classes >= 1, "Loss.softmaxCrossEntropy: batch \(batch), classes \(classes)")
        if batch == 0 { return 0 }
        let gradientScale = scale / Float(batch)
        var total = 0.0
        for b in 0..<batch {
            let label = Int(labels[b])
            if label < 0 || label >= classes {
                fatalError("Loss.softmaxCrossEntropy: label \(label) of sample \(b) is outside 0..<\(classes)")
            }
            let z = logits + b * classes
            let m = rowMaximum(z, classes: classes)
            var sumExp: Float = 0
            if let dLogits {
                // Keep exp(z − m) in the gradient row; it becomes the softmax below.
                let g = dLogits + b * classes
                for c in 0..<classes {
                    let e = exp(z[c] - m)
                    g[c] = e
                    sumExp += e
                }
            } else {
                for c in 0..<classes { sumExp += exp(z[c] - m) }
            }
            let loss = (m - z[label]) + log(sumExp)
            perSample?[b] = loss
            total += Double(loss)
            if let dLogits {
                let g = dLogits + b * classes
                let factor = gradientScale / sumExp
                for c in 0..<classes { g[c] *= factor }
                g[label] -= gradientScale
            }
        }
        return Float(total / Double(batch))
    }

    // MARK: - KL divergence

    /// Batchmean KL divergence `KL(P‖Q)` between the softmaxes of two logit sets, with gradients with
    /// respect to *both* arguments (TRADES does not detach the clean target, algorithms.md §2.2).
    ///
    /// ```
    /// p = softmax(logitsP_i),  q = softmax(logitsQ_i),  ℓ_c = log p_c − log q_c   (from log-softmaxes)
    /// KL_i      = Σ_c p_c · ℓ_c
    /// returns     (1/B) Σ_i w_i · KL_i                    ("batchmean": not divided by classes)
    /// dLogitsQ  = scale · w_i · (q − p) / B                (overwritten)
    /// dLogitsP  = scale · w_i · p ⊙ (ℓ − KL_i) / B         (overwritten)
    /// ```
    /// `w_i = sampleWeights[i]`, or 1 when `sampleWeights` is nil. The weights are constants here: a
    /// gradient through a weight (MART, MemLoss's `1 − p_y`) is the caller's, using `perSample`.
    ///
    /// Shapes: `logitsP`, `logitsQ`, `dLogitsP`, `dLogitsQ` `[B, classes]`; `perSample`, `sampleWeights` `[B]`.
    ///
    /// - Parameters:
    ///   - dLogitsP, dLogitsQ: gradients of `scale ×` the returned value, or nil to skip; may not alias
    ///     the logits. `logitsP` and `logitsQ` may be the same buffer.
    ///   - perSample: receives the unweighted `KL_i`, or nil.
    ///   - scale: loss weight folded into the gradients (e.g. β); the returned value is unscaled.
    /// - Returns: the weighted batch mean, accumulated in Double; 0 for an empty batch.
    /// - Note: `KL_i` is a Float sum of terms of either sign, so for nearly equal distributions it can
    ///   come out a few ulps below 0; it is not clamped (clamping would bias the gradient check).
    ///   Identical logit rows give exactly 0.
    public static func klDivergence(logitsP: UnsafePointer<Float>, logitsQ: UnsafePointer<Float>,
                                    batch: Int, classes: Int,
                                    dLogitsP: UnsafeMutablePointer<Float>? = nil,
                                    dLogitsQ: UnsafeMutablePointer<Float>? = nil,
                                    perSample: UnsafeMutablePointer<Float>? = nil,
                                    sampleWeights: UnsafePointer<Float>? = nil,
                                    scale: Float = 1) -> Float {
        let profile = KernelProfile.begin(.loss); defer { KernelProfile.end(profile) }
        precondition(batch >= 0 && classes >= 1, "Loss.klDivergence: batch \(batch), classes \(classes)")
        if batch == 0 { return 0 }
        let gradientScale = scale / Float(batch)
        var total = 0.0
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 3 * classes) { scratch in
            let logP = scratch.baseAddress!        // [classes]
            let logQ = logP + classes              // [classes]
            let probP = logQ + classes             // [classes]
            for b in 0..<batch {
                logSoftmaxRow(output: logP, logits: logitsP + b * classes, classes: classes)
                logSoftmaxRow(output: logQ, logits: logitsQ + b * classes, classes: classes)
                var kl: Float = 0
                for c in 0..<classes {
                    let p = exp(logP[c])
                    probP[c] = p
                    kl += p * (logP[c] - logQ[c])
                }
                let weight = sampleWeights?[b] ?? 1
                perSample?[b] = kl
                total += Double(weight) * Double(kl)
                let g = gradientScale * weight
                if let dLogitsQ {
                    let dq = dLogitsQ + b * classes
                    for c in 0..<classes { dq[c] = g * (exp(logQ[c]) - probP[c]) }
                }
                if let dLogitsP {
                    let dp = dLogitsP + b * classes
                    for c in 0..<classes { dp[c] = g * probP[c] * ((logP[c] - logQ[c]) - kl) }
                }
            }
        }
        return Float(total / Double(batch))
    }

    // MARK: - Helpers

    /// `max_c z[c]` of one row (scalar: rows are short).
    @inline(__always)
    static func rowMaximum(_ z: UnsafePointer<Float>, classes: Int) -> Float {
        var m = z[0]
        for c in 1..<max(classes, 1) where z[c] > m { m = z[c] }
        return m
    }

    /// One row of log-softmax: `output[c] = (z[c] − m) − log Σ_k exp(z[k] − m)`. `output` may equal `z`.
    @inline(__always)
    static func logSoftmaxRow(output: UnsafeMutablePointer<Float>, logits z: UnsafePointer<Float>, classes: Int) {
        let m = rowMaximum(z, classes: classes)
        var sumExp: Float = 0
        for c in 0..<classes { sumExp += exp(z[c] - m) }
        let logSum = log(sumExp)
        for c in 0..<classes { output[c] = (z[c] - m) - logSum }
    }
}
