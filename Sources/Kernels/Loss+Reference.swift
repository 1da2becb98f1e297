// Loss+Reference.swift: naive twins of the Loss kernels, every row computed in Double with the textbook
// log-sum-exp formulas. Tests only.

import Foundation

extension Reference {
    /// Twin of `Loss.softmax`.
    public static func softmax(output: UnsafeMutablePointer<Float>, logits: UnsafePointer<Float>,
                               batch: Int, classes: Int) {
        for b in 0..<batch {
            let logP = referenceLogSoftmaxRow(logits + b * classes, classes: classes)
            for c in 0..<classes { output[b * classes + c] = Float(exp(logP[c])) }
        }
    }

    /// Twin of `Loss.logSoftmax`.
    public static func logSoftmax(output: UnsafeMutablePointer<Float>, logits: UnsafePointer<Float>,
                                  batch: Int, classes: Int) {
        for b in 0..<batch {
            let logP = referenceLogSoftmaxRow(logits + b * classes, classes: classes)
            for c in 0..<classes { output[b * classes + c] = Float(logP[c]) }
        }
    }

    /// Twin of `Loss.softmaxCrossEntropy`: `(1/B) Σ_i −log p_{y_i}`, gradient `scale·(p − onehot)/B`.
    public static func softmaxCrossEntropy(logits: UnsafePointer<Float>, labels: UnsafePointer<Int32>,
                                           batch: Int, classes: Int,
                                           dLogits: UnsafeMutablePointer<Float>? = nil,
                                           perSample: UnsafeMutablePointer<Float>? = nil,
                                           scale: Float = 1) -> Float {
        if batch == 0 { return 0 }
        var total = 0.0
        for b in 0..<batch {
            let label = Int(labels[b])
            let logP = referenceLogSoftmaxRow(logits + b * classes, classes: classes)
            total += -logP[label]
            perSample?[b] = Float(-logP[label])
            if let dLogits {
                for c in 0..<classes {
                    let target = c == label ? 1.0 : 0.0
                    dLogits[b * classes + c] = Float(Double(scale) * (exp(logP[c]) - target) / Double(batch))
                }
            }
        }
        return Float(total / Double(batch))
    }

    /// Twin of `Loss.klDivergence`: `(1/B) Σ_i w_i Σ_c p_c (log p_c − log q_c)` and both logit gradients.
    public static func klDivergence(logitsP: UnsafePointer<Float>, logitsQ: UnsafePointer<Float>,
                                    batch: Int, classes: Int,
                                    dLogitsP: UnsafeMutablePointer<Float>? = nil,
                                    dLogitsQ: UnsafeMutablePointer<Float>? = nil,
                                    perSample: UnsafeMutablePointer<Float>? = nil,
                                    sampleWeights: UnsafePointer<Float>? = nil,
                                    scale: Float = 1) -> Float {
        if batch == 0 { return 0 }
        var total = 0.0
        for b in 0..<batch {
            let logP = referenceLogSoftmaxRow(logitsP + b * classes, classes: classes)
            let logQ = referenceLogSoftmaxRow(logitsQ + b * classes, classes: classes)
            var kl = 0.0
            for c in 0..<classes { kl += exp(logP[c]) * (logP[c] - logQ[c]) }
            let weight = Double(sampleWeights?[b] ?? 1)
            perSample?[b] = Float(kl)
            total += weight * kl
            let g = Double(scale) * weight / Double(batch)
            for c in 0..<classes {
                let p = exp(logP[c]), q = exp(logQ[c])
                dLogitsQ?[b * classes + c] = Float(g * (q - p))
                dLogitsP?[b * classes + c] = Float(g * p * ((logP[c] - logQ[c]) - kl))
            }
        }
        return Float(total / Double(batch))
    }

    /// Log-softmax of one row in Double.
    static func referenceLogSoftmaxRow(_ z: UnsafePointer<Float>, classes: Int) -> [Double] {
        var m = -Double.infinity
        for c in 0..<classes { m = max(m, Double(z[c])) }
        var sumExp = 0.0
        for c in 0..<classes { sumExp += exp(Double(z[c]) - m) }
        let logSum = log(sumExp)
        return (0..<classes).map { Double(z[$0]) - m - logSum }
    }
}
