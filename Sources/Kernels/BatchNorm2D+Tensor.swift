// BatchNorm2D+Tensor.swift: Tensor-level entry points of the `BatchNorm2D` kernels: training and
// inference forward and backward, with the statistics a training forward saves for its backward. So
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
