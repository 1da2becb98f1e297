// Pooling+Reference.swift: naive twins of the Pooling kernels: loops over every (n, c, p, q, r, s),
// window sums in Double, gradients gathered per input element (the opposite loop order to the fast
// scatter) so the two implementations do not share a mistake. Tests only; no threads.

extension Reference {
    /// Twin of `Pooling.maxPoolForward` (first maximum wins; NaN propagates).
    public static func maxPoolForward(output: UnsafeMutablePointer<Float>, argmax: UnsafeMutablePointer<Int32>,
                                      input: UnsafePointer<Float>,
                                      n: Int, c: Int, h: Int, w: Int, kernel: Int, stride: Int) {
        let p = (h - kernel) / stride + 1, q = (w - kernel) / stride + 1
        for plane in 0..<(n * c) {
            for op in 0..<p {
                for oq in 0..<q {
                    var best = -Float.infinity
                    var bestH = op * stride, bestW = oq * stride
                    for r in 0..<kernel {
                        for s in 0..<kernel {
                            let ih = op * stride + r, iw = oq * stride + s
                            let value = input[(plane * h + ih) * w + iw]
                            if value > best || value.isNaN {
                                best = value
                                bestH = ih
                                bestW = iw
                            }
                        }
                    }
                    output[(plane * p + op) * q + oq] = best
                    argmax[(plane * p + op) * q + oq] = Int32(bestH * w + bestW)
                }
            }
        }
    }

    /// Twin of `Pooling.maxPoolBackward`: each input element gathers the gradients of the outputs whose
    /// recorded argmax is that element.
    public static func maxPoolBackward(dInput: UnsafeMutablePointer<Float>, dOutput: UnsafePointer<Float>,
                                       argmax: UnsafePointer<Int32>,
                                       n: Int, c: Int, h: Int, w: Int, kernel: Int, stride: Int) {
        let p = (h - kernel) / stride + 1, q = (w - kernel) / stride + 1
        for plane in 0..<(n * c) {
            for ih in 0..<h {
                for iw in 0..<w {
                    var total = 0.0
                    for op in 0..<p {
                        for oq in 0..<q where Int(argmax[(plane * p + op) * q + oq]) == ih * w + iw {
                            total += Double(dOutput[(plane * p + op) * q + oq])
                        }
                    }
                    dInput[(plane * h + ih) * w + iw] = Float(total)
                }
            }
        }
    }

    /// Twin of `Pooling.avgPoolForward`.
    public static func avgPoolForward(output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
                                      n: Int, c: Int, h: Int, w: Int, kernel: Int, stride: Int) {
        let p = (h - kernel) / stride + 1, q = (w - kernel) / stride + 1
        for plane in 0..<(n * c) {
            for op in 0..<p {
                for oq in 0..<q {
                    var total = 0.0
                    for r in 0..<kernel {
                        for s in 0..<kernel {
                            total += Double(input[(plane * h + op * stride + r) * w + oq * stride + s])
                        }
                    }
                    output[(plane * p + op) * q + oq] = Float(total / Double(kernel * kernel))
                }
            }
        }
    }

    /// Twin of `Pooling.avgPoolBackward`: each input element gathers `dOutput/kernel²` from every window
    /// that contains it.
    public static func avgPoolBackward(dInput: UnsafeMutablePointer<Float>, dOutput: UnsafePointer<Float>,
                                       n: Int, c: Int, h: Int, w: Int, kernel: Int, stride: Int) {
        let p = (h - kernel) / stride + 1, q = (w - kernel) / stride + 1
        for plane in 0..<(n * c) {
            for ih in 0..<h {
                for iw in 0..<w {
                    var total = 0.0
                    for op in 0..<p where op * stride <= ih && ih < op * stride + kernel {
                        for oq in 0..<q where oq * stride <= iw && iw < oq * stride + kernel {
                            total += Double(dOutput[(plane * p + op) * q + oq])
                        }
                    }
                    dInput[(plane * h + ih) * w + iw] = Float(total / Double(kernel * kernel))
                }
            }
        }
    }

    /// Twin of `Pooling.globalAvgPoolForward`.
    public static func globalAvgPoolForward(output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
                                            n: Int, c: Int, hw: Int) {
        for plane in 0..<(n * c) {
            var total = 0.0
            for j in 0..<hw { total += Double(input[plane * hw + j]) }
            output[plane] = Float(total / Double(hw))
        }
    }

    /// Twin of `Pooling.globalAvgPoolBackward`.
    public static func globalAvgPoolBackward(dInput: UnsafeMutablePointer<Float>, dOutput: UnsafePointer<Float>,
                                             n: Int, c: Int, hw: Int) {
        for plane in 0..<(n * c) {
            for j in 0..<hw { dInput[plane * hw + j] = Float(Double(dOutput[plane]) / Double(hw)) }
        }
    }
}
