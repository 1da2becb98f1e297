// Dropout.swift: inverted dropout (PyTorch `nn.Dropout` in training mode) over flat buffers, with the
// mask drawn from a caller-supplied SplitMix64 so a run is reproducible from its RNG state. Inference
// (identity) is the caller's business: it simply does not call this kernel. Naive twins:
// Dropout+Reference.swift.

import Tensors

/// Inverted-dropout kernels over `count` contiguous floats.
public enum Dropout {
    /// Training-mode forward: keeps each element with probability `1 − p` and rescales the kept ones.
    ///
    /// ```
    /// u_i     = rng.nextFloat()                    (uniform in [0, 1), 24-bit)
    /// mask_i  = u_i < p ? 0 : 1/(1 − p)
    /// output_i = input_i · mask_i
    /// ```
    /// The rescaling keeps `E[output] = input` (Srivastava et al. 2014, "inverted" form as in PyTorch).
    ///
    /// Shapes: `output`, `mask`, `input` `[count]`. `output` may be exactly `input`.
    /// - Parameters:
    ///   - mask: receives 0 or `1/(1 − p)` per element, for `backward`.
    ///   - p: drop probability in [0, 1). `p == 0` is the identity (mask all 1) and draws nothing.
    ///   - rng: consumes exactly `count` values (in element order) when `p > 0`, so the mask depends only
    ///     on the generator's state; single-threaded for that reason.
    public static func forward(output: UnsafeMutablePointer<Float>, mask: UnsafeMutablePointer<Float>,
                               input: UnsafePointer<Float>, count: Int, p: Float, rng: inout SplitMix64) {
        let profile = KernelProfile.begin(.elementwise); defer { KernelProfile.end(profile) }
        precondition(p >= 0 && p < 1, "Dropout.forward: p \(p) must be in [0, 1)")
        if count <= 0 { return }
        if p == 0 {
            mask.update(repeating: 1, count: count)
            Elementwise.copy(output: output, input: input, count: count)
            return
        }
        let keptScale = 1 / (1 - p)
        for i in 0..<count {
            let m: Float = rng.nextFloat() < p ? 0 : keptScale
            mask[i] = m
            output[i] = input[i] * m
        }
    }

    /// Backward: `dInput = dOutput ⊙ mask` (overwritten).
    ///
    /// Shapes: `dInput`, `dOutput`, `mask` `[count]`. `dInput` may be exactly `dOutput`.
    public static func backward(dInput: UnsafeMutablePointer<Float>, dOutput: UnsafePointer<Float>,
                                mask: UnsafePointer<Float>, count: Int) {
        let profile = KernelProfile.begin(.elementwise); defer { KernelProfile.end(profile) }
        Elementwise.forEachSlice(count) { start, length in
            let dx = dInput + start, dy = dOutput + start, m = mask + start
            let vectorCount = length / FloatVector.scalarCount
            for v in 0..<vectorCount {
                let i = v * FloatVector.scalarCount
                storeVector(loadVector(dy + i) * loadVector(m + i), dx + i)
            }
            for i in (vectorCount * FloatVector.scalarCount)..<length { dx[i] = dy[i] * m[i] }
        }
    }
}
