// Linear+Reference.swift: naive twins of the Linear kernels: triple loops with Double accumulation, no
// BLAS. Tests only.

extension Reference {
    /// Twin of `Linear.forward`: `output[i, o] = bias[o] + Σ_k input[i, k]·weight[o, k]`.
    public static func linearForward(output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
                                     weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                                     n: Int, inFeatures: Int, outFeatures: Int) {
        for i in 0..<n {
            for o in 0..<outFeatures {
                var total = bias.map { Double($0[o]) } ?? 0
                for k in 0..<inFeatures { total += Double(input[i * inFeatures + k]) * Double(weight[o * inFeatures + k]) }
                output[i * outFeatures + o] = Float(total)
            }
        }
    }

    /// Twin of `Linear.backwardInput`: `dInput[i, k] = Σ_o dOutput[i, o]·weight[o, k]`.
    public static func linearBackwardInput(dInput: UnsafeMutablePointer<Float>, dOutput: UnsafePointer<Float>,
                                           weight: UnsafePointer<Float>, n: Int, inFeatures: Int, outFeatures: Int) {
        for i in 0..<n {
            for k in 0..<inFeatures {
                var total = 0.0
                for o in 0..<outFeatures {
                    total += Double(dOutput[i * outFeatures + o]) * Double(weight[o * inFeatures + k])
                }
                dInput[i * inFeatures + k] = Float(total)
            }
        }
    }

    /// Twin of `Linear.backwardWeight`: `dWeight[o, k] += Σ_i dOutput[i, o]·input[i, k]`, `dBias[o] += Σ_i dOutput[i, o]`.
    public static func linearBackwardWeight(dWeight: UnsafeMutablePointer<Float>, dBias: UnsafeMutablePointer<Float>?,
                                            dOutput: UnsafePointer<Float>, input: UnsafePointer<Float>,
                                            n: Int, inFeatures: Int, outFeatures: Int) {
        for o in 0..<outFeatures {
            for k in 0..<inFeatures {
                var total = Double(dWeight[o * inFeatures + k])
                for i in 0..<n { total += Double(dOutput[i * outFeatures + o]) * Double(input[i * inFeatures + k]) }
                dWeight[o * inFeatures + k] = Float(total)
            }
            if let dBias {
                var total = Double(dBias[o])
                for i in 0..<n { total += Double(dOutput[i * outFeatures + o]) }
                dBias[o] = Float(total)
            }
        }
    }
}
