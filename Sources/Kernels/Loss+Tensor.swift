// Loss+Tensor.swift: Tensor-level entry points of the `Loss` kernels: softmax, cross-entropy and KL
// divergence with their logit gradients. So that Layers, Attacks and Training never touch raw
// pointers, each function checks shapes, allocates its output (unless it writes `into:` one), opens
// the pointers once and calls the pointer kernel of Loss.swift. Gradient accumulators are passed
// `inout` (`+=` semantics).

import Tensors

extension Loss {
    /// Softmax of logits `[B, classes]`, row by row.
    public static func softmax(_ logits: Tensor) -> Tensor {
        let (b, k) = (logits.shape[0], logits.shape[1])
        var out = Tensor(zeros: logits.shape)
        out.withUnsafeMutablePointer { y in logits.withUnsafePointer { z in softmax(output: y, logits: z, batch: b, classes: k) } }
        return out
    }

    /// Mean softmax cross-entropy, its gradient `scale·(softmax − onehot)/B` and per-sample losses.
    public static func crossEntropy(_ logits: Tensor, labels: [Int32], scale: Float = 1)
        -> (loss: Float, dLogits: Tensor, perSample: [Float]) {
        let (b, k) = (logits.shape[0], logits.shape[1])
        precondition(labels.count == b, "Loss.crossEntropy: \(labels.count) labels for batch \(b)")
        var d = Tensor(zeros: logits.shape)
        var per = [Float](repeating: 0, count: b)
        let loss = d.withUnsafeMutablePointer { dz in
            per.withUnsafeMutableBufferPointer { ps in
                labels.withUnsafeBufferPointer { y in
                    logits.withUnsafePointer { z in
                        softmaxCrossEntropy(logits: z, labels: y.baseAddress!, batch: b, classes: k, dLogits: dz,
                                            perSample: ps.baseAddress, scale: scale)
                    }
                }
            }
        }
        return (loss, d, per)
    }

    /// Batch-mean KL(softmax(logitsP) ‖ softmax(logitsQ)) with optional per-sample weights, and its
    /// gradients with respect to both logits.
    public static func kl(_ logitsP: Tensor, _ logitsQ: Tensor, sampleWeights: [Float]? = nil, scale: Float = 1)
        -> (loss: Float, dLogitsP: Tensor, dLogitsQ: Tensor, perSample: [Float]) {
        precondition(logitsP.shape == logitsQ.shape, "Loss.kl: \(logitsP.shape) vs \(logitsQ.shape)")
        let (b, k) = (logitsP.shape[0], logitsP.shape[1])
        var dp = Tensor(zeros: logitsP.shape), dq = Tensor(zeros: logitsQ.shape)
        var per = [Float](repeating: 0, count: b)
        let loss = dp.withUnsafeMutablePointer { dpp in
            dq.withUnsafeMutablePointer { dqp in
                per.withUnsafeMutableBufferPointer { ps in
                    logitsP.withUnsafePointer { zp in
                        logitsQ.withUnsafePointer { zq in
                            if let sampleWeights {
                                precondition(sampleWeights.count == b, "Loss.kl: \(sampleWeights.count) weights for batch \(b)")
                                return sampleWeights.withUnsafeBufferPointer { w in
                                    klDivergence(logitsP: zp, logitsQ: zq, batch: b, classes: k, dLogitsP: dpp,
                                                 dLogitsQ: dqp, perSample: ps.baseAddress, sampleWeights: w.baseAddress,
                                                 scale: scale)
                                }
                            }
                            return klDivergence(logitsP: zp, logitsQ: zq, batch: b, classes: k, dLogitsP: dpp,
                                                dLogitsQ: dqp, perSample: ps.baseAddress, sampleWeights: nil, scale: scale)
                        }
                    }
                }
            }
        }
        return (loss, dp, dq, per)
    }
}
