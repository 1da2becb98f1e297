// BatchNorm2D+Tensor.swift: Tensor-level entry points of the `BatchNorm2D` kernels: training and
// inference forward and backward (optionally fused with a residual add and a ReLU), the statistics a
// training forward saves for its backward, and the inference affine folded into a conv. So
// that Layers, Attacks and Training never touch raw pointers, each function checks shapes,
// allocates its output (unless it writes `into:` one), opens the pointers once and calls the
// pointer kernel of BatchNorm2D.swift. Gradient accumulators are passed `inout` (`+=` semantics).

import Tensors

extension BatchNorm2D {
    /// Per-channel statistics saved by a training-mode forward pass: mean and 1/sqrt(var + eps), `[C]`.
    public struct Saved {
        public var mean: Tensor
        public var inverseStd: Tensor
    }

    /// Training mode: normalise with batch statistics and update the running statistics in place
    /// (PyTorch semantics, unbiased variance in the running estimate); optionally fused
    /// `output = act(bn(input) + residual)` with `residual` `[N, C, H, W]` and ReLU when `relu`.
    public static func forwardTraining(_ input: Tensor, gamma: Tensor, beta: Tensor,
                                       runningMean: inout Tensor, runningVar: inout Tensor,
                                       momentum: Float, eps: Float, residual: Tensor? = nil,
                                       relu: Bool = false) -> (output: Tensor, saved: Saved) {
        let (n, c, hw) = dims(input)
        checkResidual(residual, input)
        var output = Tensor(uninitialized: input.shape)
        var mean = Tensor(uninitialized: [c]), invStd = Tensor(uninitialized: [c])
        output.withUnsafeMutablePointer { y in
            mean.withUnsafeMutablePointer { m in
                invStd.withUnsafeMutablePointer { s in
                    runningMean.withUnsafeMutablePointer { rm in
                        runningVar.withUnsafeMutablePointer { rv in
                            input.withUnsafePointer { x in
                                gamma.withUnsafePointer { g in
                                    beta.withUnsafePointer { b in
                                        withOptionalPointer(residual) { r in
                                            forwardTraining(output: y, input: x, gamma: g, beta: b, saveMean: m,
                                                            saveInverseStd: s, runningMean: rm, runningVar: rv,
                                                            momentum: momentum, eps: eps, n: n, c: c, hw: hw,
                                                            residual: r, relu: relu)
                                        }
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

    /// Inference mode: normalise with the running statistics; optionally fused
    /// `output = act(bn(input) + residual)` as in `forwardTraining`.
    public static func forwardInference(_ input: Tensor, gamma: Tensor, beta: Tensor,
                                        runningMean: Tensor, runningVar: Tensor, eps: Float,
                                        residual: Tensor? = nil, relu: Bool = false) -> Tensor {
        let (n, c, hw) = dims(input)
        checkResidual(residual, input)
        var output = Tensor(uninitialized: input.shape)
        output.withUnsafeMutablePointer { y in
            input.withUnsafePointer { x in
                gamma.withUnsafePointer { g in
                    beta.withUnsafePointer { b in
                        runningMean.withUnsafePointer { rm in
                            runningVar.withUnsafePointer { rv in
                                withOptionalPointer(residual) { r in
                                    forwardInference(output: y, input: x, gamma: g, beta: b, runningMean: rm,
                                                     runningVar: rv, eps: eps, n: n, c: c, hw: hw,
                                                     residual: r, relu: relu)
                                }
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
        backwardTraining(dOutput, input: input, gamma: gamma, saved: saved, reluOutput: nil, wantInput: wantInput,
                         wantPreActivation: false, dGamma: &dGamma, dBeta: &dBeta).dInput
    }

    /// Backward of the fused training-mode forward `y = act(bn(x) + residual)`: `reluOutput` is that
    /// forward's output (nil without a ReLU). Returns dInput when `wantInput` and the masked gradient
    /// `dz = dOutput · [y > 0]` (the residual's gradient) when `wantPreActivation`; accumulates into
    /// `dGamma`/`dBeta` when given. Bitwise equal to `Activation.reluBackward` then the unfused backward.
    public static func backwardTraining(_ dOutput: Tensor, input: Tensor, gamma: Tensor, saved: Saved,
                                        reluOutput: Tensor?, wantInput: Bool, wantPreActivation: Bool,
                                        dGamma: inout Tensor?, dBeta: inout Tensor?)
        -> (dInput: Tensor?, dPreActivation: Tensor?) {
        let (n, c, hw) = dims(input)
        checkResidual(reluOutput, input)
        var dInput: Tensor? = wantInput ? Tensor(uninitialized: input.shape) : nil
        // dz needs a home when there is a ReLU; without dInput it is the returned dPreActivation.
        let needsPreActivation = wantPreActivation || (reluOutput != nil && !wantInput)
        var dPre: Tensor? = needsPreActivation ? Tensor(uninitialized: input.shape) : nil
        withOptionalMutablePointer(&dInput) { dx in
            withOptionalMutablePointer(&dPre) { dz in
                withOptionalMutablePointer(&dGamma) { dg in
                    withOptionalMutablePointer(&dBeta) { db in
                        dOutput.withUnsafePointer { dy in
                            input.withUnsafePointer { x in
                                gamma.withUnsafePointer { g in
                                    saved.mean.withUnsafePointer { m in
                                        saved.inverseStd.withUnsafePointer { s in
                                            withOptionalPointer(reluOutput) { y in
                                                backwardTraining(dInput: dx, dGamma: dg, dBeta: db, dOutput: dy,
                                                                 input: x, gamma: g, saveMean: m, saveInverseStd: s,
                                                                 n: n, c: c, hw: hw, reluOutput: y,
                                                                 dPreActivation: dz)
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        if reluOutput == nil && wantPreActivation { dPre = dOutput }  // no mask: dz is dOutput itself
        return (dInput, wantPreActivation ? dPre : nil)
    }

    /// Backward of the inference-mode forward (running statistics are constants).
    public static func backwardInference(_ dOutput: Tensor, input: Tensor, gamma: Tensor,
                                         runningMean: Tensor, runningVar: Tensor, eps: Float,
                                         wantInput: Bool, dGamma: inout Tensor?, dBeta: inout Tensor?) -> Tensor? {
        backwardInference(dOutput, input: input, gamma: gamma, runningMean: runningMean, runningVar: runningVar,
                          eps: eps, reluOutput: nil, wantInput: wantInput, wantPreActivation: false,
                          dGamma: &dGamma, dBeta: &dBeta).dInput
    }

    /// Backward of the fused inference-mode forward; `reluOutput`, `wantPreActivation` and the
    /// result as in the fused `backwardTraining`.
    public static func backwardInference(_ dOutput: Tensor, input: Tensor, gamma: Tensor,
                                         runningMean: Tensor, runningVar: Tensor, eps: Float,
                                         reluOutput: Tensor?, wantInput: Bool, wantPreActivation: Bool,
                                         dGamma: inout Tensor?, dBeta: inout Tensor?)
        -> (dInput: Tensor?, dPreActivation: Tensor?) {
        let (n, c, hw) = dims(input)
        checkResidual(reluOutput, input)
        var dInput: Tensor? = wantInput ? Tensor(uninitialized: input.shape) : nil
        let needsPreActivation = wantPreActivation || (reluOutput != nil && !wantInput)
        var dPre: Tensor? = needsPreActivation ? Tensor(uninitialized: input.shape) : nil
        withOptionalMutablePointer(&dInput) { dx in
            withOptionalMutablePointer(&dPre) { dz in
                withOptionalMutablePointer(&dGamma) { dg in
                    withOptionalMutablePointer(&dBeta) { db in
                        dOutput.withUnsafePointer { dy in
                            input.withUnsafePointer { x in
                                gamma.withUnsafePointer { g in
                                    runningMean.withUnsafePointer { rm in
                                        runningVar.withUnsafePointer { rv in
                                            withOptionalPointer(reluOutput) { y in
                                                backwardInference(dInput: dx, dGamma: dg, dBeta: db, dOutput: dy,
                                                                  input: x, gamma: g, runningMean: rm, runningVar: rv,
                                                                  eps: eps, n: n, c: c, hw: hw, reluOutput: y,
                                                                  dPreActivation: dz)
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        if reluOutput == nil && wantPreActivation { dPre = dOutput }
        return (dInput, wantPreActivation ? dPre : nil)
    }

    /// The inference-mode batch norm after a convolution with bias `bias`, folded into the conv's
    /// epilogue (`Conv2D.Epilogue`): `bn(acc + b) = scale · acc + shift` with
    /// ```
    /// scale_k = γ_k / √(runningVar_k + eps)
    /// shift_k = β_k + (b_k − runningMean_k) · scale_k        (b = 0 without a bias)
    /// ```
    /// computed in Double and rounded once. Shapes: all `[K]`.
    /// - Note: this equals `forwardInference` only up to rounding (the unfused pass rounds
    ///   `(x − μ)·scale + β`; the folded one `scale·x + shift`), about 1 ulp of the larger term.
    public static func inferenceAffine(gamma: Tensor, beta: Tensor, runningMean: Tensor, runningVar: Tensor,
                                       eps: Float, bias: Tensor? = nil) -> (scale: Tensor, shift: Tensor) {
        let k = gamma.count
        precondition(beta.count == k && runningMean.count == k && runningVar.count == k && (bias?.count ?? k) == k,
                     "BatchNorm2D.inferenceAffine: γ \(gamma.shape), β \(beta.shape), running mean "
                     + "\(runningMean.shape), running var \(runningVar.shape) and bias \(bias?.shape ?? []) must all be [\(k)]")
        let g = gamma.scalars, b = beta.scalars, m = runningMean.scalars, v = runningVar.scalars
        let convBias = bias?.scalars ?? [Float](repeating: 0, count: k)
        var scale = [Float](repeating: 0, count: k), shift = scale
        for i in 0..<k {
            let s = Double(g[i]) / (Double(v[i]) + Double(eps)).squareRoot()
            scale[i] = Float(s)
            shift[i] = Float(Double(b[i]) + (Double(convBias[i]) - Double(m[i])) * s)
        }
        return (Tensor(shape: [k], values: scale), Tensor(shape: [k], values: shift))
    }

    /// Checks that an optional residual (or ReLU output) has the input's shape.
    private static func checkResidual(_ t: Tensor?, _ input: Tensor) {
        guard let t else { return }
        precondition(t.shape == input.shape,
                     "BatchNorm2D: residual / ReLU output \(t.shape) must have the input's shape \(input.shape)")
    }

    private static func dims(_ t: Tensor) -> (Int, Int, Int) {
        precondition(t.rank == 4, "BatchNorm2D: input must be [N, C, H, W], got \(t.shape)")
        return (t.shape[0], t.shape[1], t.shape[2] * t.shape[3])
    }
}

/// Calls `body` with the tensor's pointer, or nil when the tensor is absent.
@inline(__always)
func withOptionalPointer<R>(_ t: Tensor?, _ body: (UnsafePointer<Float>?) -> R) -> R {
    if let t { return t.withUnsafePointer { body($0) } }
    return body(nil)
}

/// Calls `body` with the tensor's mutable pointer, or nil when the tensor is absent.
@inline(__always)
func withOptionalMutablePointer<R>(_ t: inout Tensor?, _ body: (UnsafeMutablePointer<Float>?) -> R) -> R {
    if t == nil { return body(nil) }
    return t!.withUnsafeMutablePointer { body($0) }
}
