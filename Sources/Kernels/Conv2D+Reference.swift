// Conv2D+Reference.swift: naive twins of Conv2D.forward / backwardInput / backwardWeight as plain
// 7-deep loops straight from the formulas, used by tests to check the fast kernels. Same signatures
// and semantics as Conv2D; no SIMD, no BLAS, no threads, no attempt at speed.

extension Reference {
    /// Naive twin of `Conv2D.forward`: input `[N, C, H, W]`, weight `[K, C, R, S]`, bias `[K]` or nil,
    /// output `[N, K, P, Q]` (overwritten).
    /// ```
    /// output[n, k, p, q] = bias[k] + Σ_{c, r, s} weight[k, c, r, s] · input[n, c, p·strideH − padH + r, q·strideW − padW + s]
    /// ```
    /// Sums are accumulated in Double, so the twin is at least as accurate as the fast kernel.
    public static func conv2DForward(output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
                                     weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                                     geometry g: ConvGeometry) {
        precondition(g.isValid, "Reference.conv2DForward: invalid geometry \(g)")
        let p = g.p, q = g.q
        for n in 0..<g.n {
            for k in 0..<g.k {
                for oh in 0..<p {
                    for ow in 0..<q {
                        var sum = Double(bias?[k] ?? 0)
                        for c in 0..<g.c {
                            for r in 0..<g.r {
                                for s in 0..<g.s {
                                    let ih = oh * g.strideH - g.padH + r
                                    let iw = ow * g.strideW - g.padW + s
                                    if ih < 0 || ih >= g.h || iw < 0 || iw >= g.w { continue }
                                    let x = input[((n * g.c + c) * g.h + ih) * g.w + iw]
                                    let wt = weight[((k * g.c + c) * g.r + r) * g.s + s]
                                    sum += Double(x) * Double(wt)
                                }
                            }
                        }
                        output[((n * g.k + k) * p + oh) * q + ow] = Float(sum)
                    }
                }
            }
        }
    }

    /// Naive twin of `Conv2D.backwardInput`: dOutput `[N, K, P, Q]`, weight `[K, C, R, S]`,
    /// dInput `[N, C, H, W]` (overwritten).
    /// ```
    /// dInput[n, c, h, w] = Σ_{k, p, q, r, s : p·strideH − padH + r = h, q·strideW − padW + s = w} weight[k, c, r, s] · dOutput[n, k, p, q]
    /// ```
    /// Written as a gather over (k, r, s) for each input pixel, accumulated in Double.
    public static func conv2DBackwardInput(dInput: UnsafeMutablePointer<Float>, dOutput: UnsafePointer<Float>,
                                           weight: UnsafePointer<Float>, geometry g: ConvGeometry) {
        precondition(g.isValid, "Reference.conv2DBackwardInput: invalid geometry \(g)")
        let p = g.p, q = g.q
        for n in 0..<g.n {
            for c in 0..<g.c {
                for ih in 0..<g.h {
                    for iw in 0..<g.w {
                        var sum = 0.0
                        for k in 0..<g.k {
                            for r in 0..<g.r {
                                for s in 0..<g.s {
                                    // The output pixel (oh, ow) that reads (ih, iw) through tap (r, s), if any.
                                    let rowOffset = ih + g.padH - r, colOffset = iw + g.padW - s
                                    if rowOffset < 0 || colOffset < 0 { continue }
                                    if rowOffset % g.strideH != 0 || colOffset % g.strideW != 0 { continue }
                                    let oh = rowOffset / g.strideH, ow = colOffset / g.strideW
                                    if oh >= p || ow >= q { continue }
                                    let dy = dOutput[((n * g.k + k) * p + oh) * q + ow]
                                    let wt = weight[((k * g.c + c) * g.r + r) * g.s + s]
                                    sum += Double(dy) * Double(wt)
                                }
                            }
                        }
                        dInput[((n * g.c + c) * g.h + ih) * g.w + iw] = Float(sum)
                    }
                }
            }
        }
    }

    /// Naive twin of `Conv2D.backwardWeight`: dOutput `[N, K, P, Q]`, input `[N, C, H, W]`;
    /// dWeight `[K, C, R, S]` and dBias `[K]` (or nil) are accumulated into (`+=`).
    /// ```
    /// dWeight[k, c, r, s] += Σ_{n, p, q} dOutput[n, k, p, q] · input[n, c, p·strideH − padH + r, q·strideW − padW + s]
    /// dBias[k]            += Σ_{n, p, q} dOutput[n, k, p, q]
    /// ```
    /// Sums are accumulated in Double.
    public static func conv2DBackwardWeight(dWeight: UnsafeMutablePointer<Float>, dBias: UnsafeMutablePointer<Float>?,
                                            dOutput: UnsafePointer<Float>, input: UnsafePointer<Float>,
                                            geometry g: ConvGeometry) {
        precondition(g.isValid, "Reference.conv2DBackwardWeight: invalid geometry \(g)")
        let p = g.p, q = g.q
        for k in 0..<g.k {
            for c in 0..<g.c {
                for r in 0..<g.r {
                    for s in 0..<g.s {
                        var sum = 0.0
                        for n in 0..<g.n {
                            for oh in 0..<p {
                                for ow in 0..<q {
                                    let ih = oh * g.strideH - g.padH + r
                                    let iw = ow * g.strideW - g.padW + s
                                    if ih < 0 || ih >= g.h || iw < 0 || iw >= g.w { continue }
                                    let x = input[((n * g.c + c) * g.h + ih) * g.w + iw]
                                    let dy = dOutput[((n * g.k + k) * p + oh) * q + ow]
                                    sum += Double(dy) * Double(x)
                                }
                            }
                        }
                        dWeight[((k * g.c + c) * g.r + r) * g.s + s] += Float(sum)
                    }
                }
            }
        }
        if let dBias {
            for k in 0..<g.k {
                var sum = 0.0
                for n in 0..<g.n {
                    for oh in 0..<p {
                        for ow in 0..<q { sum += Double(dOutput[((n * g.k + k) * p + oh) * q + ow]) }
                    }
                }
                dBias[k] += Float(sum)
            }
        }
    }
}
