// Tensor+Kernels.swift: Tensor-level entry points to the pointer kernels, so that Layers, Attacks
// and Training never touch raw pointers. Each function checks shapes, allocates its output, opens
// the pointers once and calls the kernel. Gradient *accumulators* are passed `inout` (`+=` semantics).

import Tensors

// MARK: - Conv2D

extension Conv2D {
    /// Geometry of a convolution of `input [N, C, H, W]` with `weight [K, C, R, S]`.
    public static func geometry(input: [Int], weight: [Int], stride: Int, padding: Int) -> ConvGeometry {
        precondition(input.count == 4 && weight.count == 4 && input[1] == weight[1],
                     "Conv2D: input \(input) and weight \(weight) do not match (need [N,C,H,W] and [K,C,R,S])")
        return ConvGeometry(n: input[0], c: input[1], h: input[2], w: input[3], k: weight[0], r: weight[2],
                            s: weight[3], strideH: stride, strideW: stride, padH: padding, padW: padding)
    }

    /// `output [N, K, P, Q] = input ⋆ weight + bias`.
    public static func forward(_ input: Tensor, weight: Tensor, bias: Tensor?, geometry g: ConvGeometry) -> Tensor {
        var output = Tensor(zeros: [g.n, g.k, g.p, g.q])
        forward(input, weight: weight, bias: bias, geometry: g, into: &output)
        return output
    }

    /// `dInput [N, C, H, W]` from `dOutput [N, K, P, Q]`.
    public static func backwardInput(_ dOutput: Tensor, weight: Tensor, geometry g: ConvGeometry) -> Tensor {
        var dInput = Tensor(zeros: [g.n, g.c, g.h, g.w])
        backwardInput(dOutput, weight: weight, geometry: g, into: &dInput)
        return dInput
    }

    /// `dWeight += ∂L/∂W`, and `dBias += ∂L/∂b` when given.
    public static func backwardWeight(_ dOutput: Tensor, input: Tensor, geometry g: ConvGeometry,
                                      dWeight: inout Tensor, dBias: inout Tensor) {
        dWeight.withUnsafeMutablePointer { dw in
            dBias.withUnsafeMutablePointer { db in
                dOutput.withUnsafePointer { dy in
                    input.withUnsafePointer { x in
                        backwardWeight(dWeight: dw, dBias: db, dOutput: dy, input: x, geometry: g)
                    }
                }
            }
        }
    }

    /// `dWeight += ∂L/∂W` (no bias).
    public static func backwardWeight(_ dOutput: Tensor, input: Tensor, geometry g: ConvGeometry,
                                      dWeight: inout Tensor) {
        dWeight.withUnsafeMutablePointer { dw in
            dOutput.withUnsafePointer { dy in
                input.withUnsafePointer { x in
                    backwardWeight(dWeight: dw, dBias: nil, dOutput: dy, input: x, geometry: g)
                }
            }
        }
    }
}

// MARK: - BatchNorm2D

extension BatchNorm2D {
    /// Per-channel statistics saved by a training-mode forward pass: mean and 1/sqrt(var + eps), `[C]`.
    public struct Saved {
        public var mean: Tensor
        public var inverseStd: Tensor
    }

    /// Training mode: normalise with batch statistics and update the running statistics in place
    /// (PyTorch semantics, unbiased variance in the running estimate).
    public static func forwardTraining(_ input: Tensor, gamma: Tensor, beta: Tensor,
                                       runningMean: inout Tensor, runningVar: inout Tensor,
                                       momentum: Float, eps: Float) -> (output: Tensor, saved: Saved) {
        let (n, c, hw) = dims(input)
        var output = Tensor(zeros: input.shape)
        var mean = Tensor(zeros: [c]), invStd = Tensor(zeros: [c])
        output.withUnsafeMutablePointer { y in
            mean.withUnsafeMutablePointer { m in
                invStd.withUnsafeMutablePointer { s in
                    runningMean.withUnsafeMutablePointer { rm in
                        runningVar.withUnsafeMutablePointer { rv in
                            input.withUnsafePointer { x in
                                gamma.withUnsafePointer { g in
                                    beta.withUnsafePointer { b in
                                        forwardTraining(output: y, input: x, gamma: g, beta: b, saveMean: m,
                                                        saveInverseStd: s, runningMean: rm, runningVar: rv,
                                                        momentum: momentum, eps: eps, n: n, c: c, hw: hw)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return (output, Saved(mean: mean, inverseStd: invStd))
    }

    /// Inference mode: normalise with the running statistics.
    public static func forwardInference(_ input: Tensor, gamma: Tensor, beta: Tensor,
                                        runningMean: Tensor, runningVar: Tensor, eps: Float) -> Tensor {
        let (n, c, hw) = dims(input)
        var output = Tensor(zeros: input.shape)
        output.withUnsafeMutablePointer { y in
            input.withUnsafePointer { x in
                gamma.withUnsafePointer { g in
                    beta.withUnsafePointer { b in
                        runningMean.withUnsafePointer { rm in
                            runningVar.withUnsafePointer { rv in
                                forwardInference(output: y, input: x, gamma: g, beta: b, runningMean: rm,
                                                 runningVar: rv, eps: eps, n: n, c: c, hw: hw)
                            }
                        }
                    }
                }
            }
        }
        return output
    }

    /// Backward of the training-mode forward. Returns dInput when `wantInput`; accumulates into
    /// `dGamma`/`dBeta` when given.
    public static func backwardTraining(_ dOutput: Tensor, input: Tensor, gamma: Tensor, saved: Saved,
                                        wantInput: Bool, dGamma: inout Tensor?, dBeta: inout Tensor?) -> Tensor? {
        let (n, c, hw) = dims(input)
        var dInput: Tensor? = wantInput ? Tensor(zeros: input.shape) : nil
        withOptionalMutablePointer(&dInput) { dx in
            withOptionalMutablePointer(&dGamma) { dg in
                withOptionalMutablePointer(&dBeta) { db in
                    dOutput.withUnsafePointer { dy in
                        input.withUnsafePointer { x in
                            gamma.withUnsafePointer { g in
                                saved.mean.withUnsafePointer { m in
                                    saved.inverseStd.withUnsafePointer { s in
                                        backwardTraining(dInput: dx, dGamma: dg, dBeta: db, dOutput: dy, input: x,
                                                         gamma: g, saveMean: m, saveInverseStd: s, n: n, c: c, hw: hw)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return dInput
    }

    /// Backward of the inference-mode forward (running statistics are constants).
    public static func backwardInference(_ dOutput: Tensor, input: Tensor, gamma: Tensor,
                                         runningMean: Tensor, runningVar: Tensor, eps: Float,
                                         wantInput: Bool, dGamma: inout Tensor?, dBeta: inout Tensor?) -> Tensor? {
        let (n, c, hw) = dims(input)
        var dInput: Tensor? = wantInput ? Tensor(zeros: input.shape) : nil
        withOptionalMutablePointer(&dInput) { dx in
            withOptionalMutablePointer(&dGamma) { dg in
                withOptionalMutablePointer(&dBeta) { db in
                    dOutput.withUnsafePointer { dy in
                        input.withUnsafePointer { x in
                            gamma.withUnsafePointer { g in
                                runningMean.withUnsafePointer { rm in
                                    runningVar.withUnsafePointer { rv in
                                        backwardInference(dInput: dx, dGamma: dg, dBeta: db, dOutput: dy, input: x,
                                                          gamma: g, runningMean: rm, runningVar: rv, eps: eps,
                                                          n: n, c: c, hw: hw)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return dInput
    }

    private static func dims(_ t: Tensor) -> (Int, Int, Int) {
        precondition(t.rank == 4, "BatchNorm2D: input must be [N, C, H, W], got \(t.shape)")
        return (t.shape[0], t.shape[1], t.shape[2] * t.shape[3])
    }
}

/// Calls `body` with the tensor's mutable pointer, or nil when the tensor is absent.
@inline(__always)
func withOptionalMutablePointer<R>(_ t: inout Tensor?, _ body: (UnsafeMutablePointer<Float>?) -> R) -> R {
    if t == nil { return body(nil) }
    return t!.withUnsafeMutablePointer { body($0) }
}

// MARK: - Activation

extension Activation {
    /// `max(x, 0)` elementwise.
    public static func relu(_ input: Tensor) -> Tensor {
        var out = Tensor(zeros: input.shape)
        out.withUnsafeMutablePointer { y in input.withUnsafePointer { x in reluForward(output: y, input: x, count: input.count) } }
        return out
    }

    /// `dy · [x > 0]`.
    public static func reluBackward(_ dOutput: Tensor, input: Tensor) -> Tensor {
        var dInput = Tensor(zeros: input.shape)
        dInput.withUnsafeMutablePointer { dx in
            dOutput.withUnsafePointer { dy in
                input.withUnsafePointer { x in reluBackward(dInput: dx, dOutput: dy, input: x, count: input.count) }
            }
        }
        return dInput
    }
}

// MARK: - Pooling

extension Pooling {
    /// Max-pool `[N, C, H, W]` → `[N, C, H', W']`; also returns the argmax plane indices.
    public static func maxPool(_ input: Tensor, kernel: Int, stride: Int) -> (output: Tensor, argmax: [Int32]) {
        let (n, c, h, w) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
        let p = (h - kernel) / stride + 1, q = (w - kernel) / stride + 1
        var out = Tensor(zeros: [n, c, p, q])
        var argmax = [Int32](repeating: 0, count: out.count)
        out.withUnsafeMutablePointer { y in
            argmax.withUnsafeMutableBufferPointer { a in
                input.withUnsafePointer { x in
                    maxPoolForward(output: y, argmax: a.baseAddress!, input: x, n: n, c: c, h: h, w: w,
                                   kernel: kernel, stride: stride)
                }
            }
        }
        return (out, argmax)
    }

    public static func maxPoolBackward(_ dOutput: Tensor, argmax: [Int32], inputShape: [Int], kernel: Int,
                                       stride: Int) -> Tensor {
        var dInput = Tensor(zeros: inputShape)
        dInput.withUnsafeMutablePointer { dx in
            dOutput.withUnsafePointer { dy in
                argmax.withUnsafeBufferPointer { a in
                    maxPoolBackward(dInput: dx, dOutput: dy, argmax: a.baseAddress!, n: inputShape[0],
                                    c: inputShape[1], h: inputShape[2], w: inputShape[3], kernel: kernel, stride: stride)
                }
            }
        }
        return dInput
    }

    /// Average-pool with a square window, no padding.
    public static func avgPool(_ input: Tensor, kernel: Int, stride: Int) -> Tensor {
        let (n, c, h, w) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
        let p = (h - kernel) / stride + 1, q = (w - kernel) / stride + 1
        var out = Tensor(zeros: [n, c, p, q])
        out.withUnsafeMutablePointer { y in
            input.withUnsafePointer { x in
                avgPoolForward(output: y, input: x, n: n, c: c, h: h, w: w, kernel: kernel, stride: stride)
            }
        }
        return out
    }

    public static func avgPoolBackward(_ dOutput: Tensor, inputShape: [Int], kernel: Int, stride: Int) -> Tensor {
        var dInput = Tensor(zeros: inputShape)
        dInput.withUnsafeMutablePointer { dx in
            dOutput.withUnsafePointer { dy in
                avgPoolBackward(dInput: dx, dOutput: dy, n: inputShape[0], c: inputShape[1], h: inputShape[2],
                                w: inputShape[3], kernel: kernel, stride: stride)
            }
        }
        return dInput
    }
}

// MARK: - Linear

extension Linear {
    /// `output [N, out] = input [N, in] · weightᵀ + bias`, weight `[out, in]` (PyTorch layout).
    public static func forward(_ input: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
        let n = input.shape[0], inF = weight.shape[1], outF = weight.shape[0]
        precondition(input.count == n * inF, "Linear: input \(input.shape) does not match weight \(weight.shape)")
        var out = Tensor(zeros: [n, outF])
        out.withUnsafeMutablePointer { y in
            input.withUnsafePointer { x in
                weight.withUnsafePointer { w in
                    if let bias {
                        bias.withUnsafePointer { b in
                            forward(output: y, input: x, weight: w, bias: b, n: n, inFeatures: inF, outFeatures: outF)
                        }
                    } else {
                        forward(output: y, input: x, weight: w, bias: nil, n: n, inFeatures: inF, outFeatures: outF)
                    }
                }
            }
        }
        return out
    }

    public static func backwardInput(_ dOutput: Tensor, weight: Tensor, inputShape: [Int]) -> Tensor {
        let n = dOutput.shape[0], inF = weight.shape[1], outF = weight.shape[0]
        var dInput = Tensor(zeros: inputShape)
        dInput.withUnsafeMutablePointer { dx in
            dOutput.withUnsafePointer { dy in
                weight.withUnsafePointer { w in
                    backwardInput(dInput: dx, dOutput: dy, weight: w, n: n, inFeatures: inF, outFeatures: outF)
                }
            }
        }
        return dInput
    }

    /// `dWeight += dOutputᵀ · input`, `dBias += Σ_n dOutput`.
    public static func backwardWeight(_ dOutput: Tensor, input: Tensor, dWeight: inout Tensor, dBias: inout Tensor) {
        let n = dOutput.shape[0], inF = dWeight.shape[1], outF = dWeight.shape[0]
        dWeight.withUnsafeMutablePointer { dw in
            dBias.withUnsafeMutablePointer { db in
                dOutput.withUnsafePointer { dy in
                    input.withUnsafePointer { x in
                        backwardWeight(dWeight: dw, dBias: db, dOutput: dy, input: x, n: n, inFeatures: inF,
                                       outFeatures: outF)
                    }
                }
            }
        }
    }
}

// MARK: - Dropout

extension Dropout {
    /// Inverted dropout; returns the output and the mask (0 or 1/(1−p)).
    public static func forward(_ input: Tensor, p: Float, rng: inout SplitMix64) -> (output: Tensor, mask: Tensor) {
        var out = Tensor(zeros: input.shape), mask = Tensor(zeros: input.shape)
        out.withUnsafeMutablePointer { y in
            mask.withUnsafeMutablePointer { m in
                input.withUnsafePointer { x in forward(output: y, mask: m, input: x, count: input.count, p: p, rng: &rng) }
            }
        }
        return (out, mask)
    }

    public static func backward(_ dOutput: Tensor, mask: Tensor) -> Tensor {
        var dInput = Tensor(zeros: dOutput.shape)
        dInput.withUnsafeMutablePointer { dx in
            dOutput.withUnsafePointer { dy in mask.withUnsafePointer { m in backward(dInput: dx, dOutput: dy, mask: m, count: dOutput.count) } }
        }
        return dInput
    }
}

// MARK: - Elementwise

extension Elementwise {
    /// `a + b` (same shape).
    public static func add(_ a: Tensor, _ b: Tensor) -> Tensor {
        precondition(a.shape == b.shape, "Elementwise.add: shapes \(a.shape) and \(b.shape) differ")
        var out = Tensor(zeros: a.shape)
        out.withUnsafeMutablePointer { y in
            a.withUnsafePointer { pa in b.withUnsafePointer { pb in add(output: y, a: pa, b: pb, count: a.count) } }
        }
        return out
    }

    /// `target += source` (same element count).
    public static func accumulate(_ target: inout Tensor, _ source: Tensor) {
        precondition(target.count == source.count, "Elementwise.accumulate: \(target.shape) vs \(source.shape)")
        target.withUnsafeMutablePointer { t in source.withUnsafePointer { s in accumulate(into: t, from: s, count: source.count) } }
    }

    /// `target += scale · source`.
    public static func addScaled(_ target: inout Tensor, _ source: Tensor, scale: Float) {
        precondition(target.count == source.count, "Elementwise.addScaled: \(target.shape) vs \(source.shape)")
        target.withUnsafeMutablePointer { t in source.withUnsafePointer { s in addScaled(into: t, from: s, scale: scale, count: source.count) } }
    }

    /// `scale · input`.
    public static func scaled(_ input: Tensor, by scale: Float) -> Tensor {
        var out = Tensor(zeros: input.shape)
        out.withUnsafeMutablePointer { y in input.withUnsafePointer { x in self.scale(output: y, input: x, by: scale, count: input.count) } }
        return out
    }

    /// Sum of all elements.
    public static func sum(_ t: Tensor) -> Float {
        t.withUnsafePointer { sum($0, count: t.count) }
    }
}

// MARK: - Loss

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

// MARK: - In-place variants (no allocation; for benchmarks and reused buffers)

extension Conv2D {
    /// `output [N, K, P, Q] = input ⋆ weight + bias`, written into an existing tensor.
    public static func forward(_ input: Tensor, weight: Tensor, bias: Tensor?, geometry g: ConvGeometry,
                               into output: inout Tensor) {
        precondition(output.count == g.n * g.k * g.p * g.q, "Conv2D.forward(into:): output \(output.shape) for \(g)")
        output.withUnsafeMutablePointer { out in
            input.withUnsafePointer { x in
                weight.withUnsafePointer { w in
                    if let bias {
                        bias.withUnsafePointer { b in forward(output: out, input: x, weight: w, bias: b, geometry: g) }
                    } else {
                        forward(output: out, input: x, weight: w, bias: nil, geometry: g)
                    }
                }
            }
        }
    }

    /// `dInput [N, C, H, W]` from `dOutput`, written into an existing tensor.
    public static func backwardInput(_ dOutput: Tensor, weight: Tensor, geometry g: ConvGeometry,
                                     into dInput: inout Tensor) {
        precondition(dInput.count == g.n * g.c * g.h * g.w, "Conv2D.backwardInput(into:): \(dInput.shape) for \(g)")
        dInput.withUnsafeMutablePointer { dx in
            dOutput.withUnsafePointer { dy in
                weight.withUnsafePointer { w in backwardInput(dInput: dx, dOutput: dy, weight: w, geometry: g) }
            }
        }
    }
}

extension BLAS {
    /// `c [m, n] = a [m, k] · b [k, n]` with the columns split into one contiguous block per worker
    /// (`Parallel`), each block a single-threaded sgemm: the project's threading policy applied to
    /// one GEMM (the reference figure `memloss bench conv` compares the conv kernels against).
    public static func parallelGEMM(_ a: Tensor, _ b: Tensor, into c: inout Tensor) {
        let m = a.shape[0], k = a.shape[1], n = b.shape[1]
        precondition(b.shape[0] == k && c.count == m * n, "BLAS.parallelGEMM: \(a.shape) · \(b.shape) → \(c.shape)")
        c.withUnsafeMutablePointer { cp in
            a.withUnsafePointer { ap in
                b.withUnsafePointer { bp in
                    Parallel.forEachChunk(count: n) { columns, _ in
                        gemm(m: m, n: columns.count, k: k, a: ap, lda: k,
                             b: bp + columns.lowerBound, ldb: n, c: cp + columns.lowerBound, ldc: n)
                    }
                }
            }
        }
    }
}
