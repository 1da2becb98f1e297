// BatchNorm2D+Reference.swift: naive twins of the BatchNorm2D kernels: plain loops over [N, C, H·W]
// with every statistic and sum in Double and the textbook two-pass formulas (no SIMD, no threads).
// For tests only.

extension Reference {
    /// Twin of `BatchNorm2D.forwardTraining` (same semantics, including `M == 1` and `nil` running stats).
    public static func batchNorm2DForwardTraining(output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
                                                  gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>,
                                                  saveMean: UnsafeMutablePointer<Float>,
                                                  saveInverseStd: UnsafeMutablePointer<Float>,
                                                  runningMean: UnsafeMutablePointer<Float>?,
                                                  runningVar: UnsafeMutablePointer<Float>?,
                                                  momentum: Float, eps: Float, n: Int, c: Int, hw: Int) {
        let m = Double(n * hw)
        for ch in 0..<c {
            var sum = 0.0
            for i in 0..<n { for j in 0..<hw { sum += Double(input[(i * c + ch) * hw + j]) } }
            let mean = sum / m
            var squares = 0.0
            for i in 0..<n {
                for j in 0..<hw {
                    let d = Double(input[(i * c + ch) * hw + j]) - mean
                    squares += d * d
                }
            }
            let variance = squares / m
            let inverseStd = 1 / (variance + Double(eps)).squareRoot()
            saveMean[ch] = Float(mean)
            saveInverseStd[ch] = Float(inverseStd)
            let mom = Double(momentum)
            if let runningMean { runningMean[ch] = Float((1 - mom) * Double(runningMean[ch]) + mom * mean) }
            if let runningVar {
                let unbiased = m > 1 ? variance * m / (m - 1) : variance
                runningVar[ch] = Float((1 - mom) * Double(runningVar[ch]) + mom * unbiased)
            }
            for i in 0..<n {
                for j in 0..<hw {
                    let k = (i * c + ch) * hw + j
                    output[k] = Float(Double(gamma[ch]) * (Double(input[k]) - mean) * inverseStd + Double(beta[ch]))
                }
            }
        }
    }

    /// Twin of `BatchNorm2D.forwardInference`.
    public static func batchNorm2DForwardInference(output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
                                                   gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>,
                                                   runningMean: UnsafePointer<Float>, runningVar: UnsafePointer<Float>,
                                                   eps: Float, n: Int, c: Int, hw: Int) {
        for i in 0..<n {
            for ch in 0..<c {
                let inverseStd = 1 / (Double(runningVar[ch]) + Double(eps)).squareRoot()
                for j in 0..<hw {
                    let k = (i * c + ch) * hw + j
                    let xhat = (Double(input[k]) - Double(runningMean[ch])) * inverseStd
                    output[k] = Float(Double(gamma[ch]) * xhat + Double(beta[ch]))
                }
            }
        }
    }

    /// Twin of `BatchNorm2D.backwardTraining`: `dx = γ·invStd/M · (M·dy − Σdy − x̂·Σ dy·x̂)`.
    public static func batchNorm2DBackwardTraining(dInput: UnsafeMutablePointer<Float>?,
                                                   dGamma: UnsafeMutablePointer<Float>?,
                                                   dBeta: UnsafeMutablePointer<Float>?,
                                                   dOutput: UnsafePointer<Float>, input: UnsafePointer<Float>,
                                                   gamma: UnsafePointer<Float>,
                                                   saveMean: UnsafePointer<Float>,
                                                   saveInverseStd: UnsafePointer<Float>,
                                                   n: Int, c: Int, hw: Int) {
        let m = Double(n * hw)
        for ch in 0..<c {
            let mean = Double(saveMean[ch]), inverseStd = Double(saveInverseStd[ch])
            var sumDy = 0.0, sumDyXhat = 0.0
            for i in 0..<n {
                for j in 0..<hw {
                    let k = (i * c + ch) * hw + j
                    let dy = Double(dOutput[k])
                    sumDy += dy
                    sumDyXhat += dy * (Double(input[k]) - mean) * inverseStd
                }
            }
            if let dBeta { dBeta[ch] = Float(Double(dBeta[ch]) + sumDy) }
            if let dGamma { dGamma[ch] = Float(Double(dGamma[ch]) + sumDyXhat) }
            guard let dInput else { continue }
            let factor = Double(gamma[ch]) * inverseStd / m
            for i in 0..<n {
                for j in 0..<hw {
                    let k = (i * c + ch) * hw + j
                    let xhat = (Double(input[k]) - mean) * inverseStd
                    dInput[k] = Float(factor * (m * Double(dOutput[k]) - sumDy - xhat * sumDyXhat))
                }
            }
        }
    }

    /// Twin of `BatchNorm2D.backwardInference`: `dx = dy·γ/√(runningVar + eps)`.
    public static func batchNorm2DBackwardInference(dInput: UnsafeMutablePointer<Float>?,
                                                    dGamma: UnsafeMutablePointer<Float>?,
                                                    dBeta: UnsafeMutablePointer<Float>?,
                                                    dOutput: UnsafePointer<Float>, input: UnsafePointer<Float>,
                                                    gamma: UnsafePointer<Float>,
                                                    runningMean: UnsafePointer<Float>,
                                                    runningVar: UnsafePointer<Float>,
                                                    eps: Float, n: Int, c: Int, hw: Int) {
        for ch in 0..<c {
            let mean = Double(runningMean[ch])
            let inverseStd = 1 / (Double(runningVar[ch]) + Double(eps)).squareRoot()
            var sumDy = 0.0, sumDyXhat = 0.0
            for i in 0..<n {
                for j in 0..<hw {
                    let k = (i * c + ch) * hw + j
                    let dy = Double(dOutput[k])
                    sumDy += dy
                    sumDyXhat += dy * (Double(input[k]) - mean) * inverseStd
                    dInput?[k] = Float(dy * Double(gamma[ch]) * inverseStd)
                }
            }
            if let dBeta { dBeta[ch] = Float(Double(dBeta[ch]) + sumDy) }
            if let dGamma { dGamma[ch] = Float(Double(dGamma[ch]) + sumDyXhat) }
        }
    }
}
