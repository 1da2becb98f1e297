// Linear.swift: the fully connected layer (PyTorch `nn.Linear` layout, weight [out, in]) forward and
// backward, each one single-threaded OpenBLAS GEMM through BLAS.gemm plus a SIMD bias loop. Not split
// across workers: the classifier heads here (≤ 640 → 100) are too small to pay for a dispatch.
// Naive twins: Linear+Reference.swift.

/// Fully connected kernels. `n` batch rows, `inFeatures` inputs, `outFeatures` outputs per row.
public enum Linear {
    /// Forward: `output = input · weightᵀ + bias`.
    ///
    /// ```
    /// output[i, o] = bias[o] + Σ_k input[i, k] · weight[o, k]
    /// ```
    /// Shapes: `input` `[N, in]`; `weight` `[out, in]` (PyTorch layout); `bias` `[out]` or nil;
    /// `output` `[N, out]` (overwritten).
    public static func forward(output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
                               weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                               n: Int, inFeatures: Int, outFeatures: Int) {
        let profile = KernelProfile.begin(.linear, macs: n * inFeatures * outFeatures); defer { KernelProfile.end(profile) }
        precondition(n >= 0 && inFeatures >= 0 && outFeatures >= 0, "Linear.forward: negative dimension")
        if n == 0 || outFeatures == 0 { return }
        if let bias {
            // Rows start as the bias, and GEMM adds onto them (beta = 1).
            for i in 0..<n { (output + i * outFeatures).update(from: bias, count: outFeatures) }
        }
        BLAS.gemm(transposeA: .none, transposeB: .transposed, m: n, n: outFeatures, k: inFeatures,
                  a: input, lda: inFeatures, b: weight, ldb: inFeatures,
                  beta: bias == nil ? 0 : 1, c: output, ldc: outFeatures)
    }

    /// Input gradient: `dInput = dOutput · weight`.
    ///
    /// ```
    /// dInput[i, k] = Σ_o dOutput[i, o] · weight[o, k]
    /// ```
    /// Shapes: `dOutput` `[N, out]`; `weight` `[out, in]`; `dInput` `[N, in]` (overwritten).
    public static func backwardInput(dInput: UnsafeMutablePointer<Float>, dOutput: UnsafePointer<Float>,
                                     weight: UnsafePointer<Float>, n: Int, inFeatures: Int, outFeatures: Int) {
        let profile = KernelProfile.begin(.linear, macs: n * inFeatures * outFeatures); defer { KernelProfile.end(profile) }
        precondition(n >= 0 && inFeatures >= 0 && outFeatures >= 0, "Linear.backwardInput: negative dimension")
        BLAS.gemm(transposeA: .none, transposeB: .none, m: n, n: inFeatures, k: outFeatures,
                  a: dOutput, lda: outFeatures, b: weight, ldb: inFeatures,
                  beta: 0, c: dInput, ldc: inFeatures)
    }

    /// Parameter gradients, accumulated: `dWeight += dOutputᵀ · input`, `dBias += Σ_rows dOutput`.
    ///
    /// ```
    /// dWeight[o, k] += Σ_i dOutput[i, o] · input[i, k]
    /// dBias[o]      += Σ_i dOutput[i, o]
    /// ```
    /// Shapes: `dOutput` `[N, out]`; `input` `[N, in]`; `dWeight` `[out, in]`; `dBias` `[out]` or nil
    /// (skipped). Both accumulate (`+=`), so callers zero them once per optimisation step.
    public static func backwardWeight(dWeight: UnsafeMutablePointer<Float>, dBias: UnsafeMutablePointer<Float>?,
                                      dOutput: UnsafePointer<Float>, input: UnsafePointer<Float>,
                                      n: Int, inFeatures: Int, outFeatures: Int) {
        let profile = KernelProfile.begin(.linear, macs: n * inFeatures * outFeatures); defer { KernelProfile.end(profile) }
        precondition(n >= 0 && inFeatures >= 0 && outFeatures >= 0, "Linear.backwardWeight: negative dimension")
        if n == 0 { return }
        BLAS.gemm(transposeA: .transposed, transposeB: .none, m: outFeatures, n: inFeatures, k: n,
                  a: dOutput, lda: outFeatures, b: input, ldb: inFeatures,
                  beta: 1, c: dWeight, ldc: inFeatures)
        guard let dBias else { return }
        // Column sums of dOutput, rows added in order (vectorised across the output features).
        for i in 0..<n {
            Elementwise.accumulate(into: dBias, from: dOutput + i * outFeatures, count: outFeatures)
        }
    }
}
