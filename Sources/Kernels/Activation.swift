// Activation.swift: pointwise activations (ReLU forward and backward) over flat buffers, FloatVector
// main loop plus scalar tail. Shape-agnostic: callers pass element counts. No fused conv+ReLU here.
// Naive twins: Activation+Reference.swift.

/// Pointwise activation kernels over `count` contiguous floats.
public enum Activation {
    /// ReLU: `output[i] = max(input[i], 0)`.
    ///
    /// ```
    /// y = x   if x > 0
    /// y = 0   otherwise            (NaN passes through, as in PyTorch)
    /// ```
    /// Shapes: `input`, `output` `[count]` (any layout). `output` may be exactly `input` (in place).
    public static func reluForward(output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, count: Int) {
        let profile = KernelProfile.begin(.elementwise); defer { KernelProfile.end(profile) }
        let zero = FloatVector()
        Elementwise.forEachSlice(count) { start, length in
            let o = output + start, x = input + start
            let vectorCount = length / FloatVector.scalarCount
            for v in 0..<vectorCount {
                let i = v * FloatVector.scalarCount
                let value = loadVector(x + i)
                storeVector(value.replacing(with: zero, where: value .< zero), o + i)
            }
            for i in (vectorCount * FloatVector.scalarCount)..<length {
                let value = x[i]
                o[i] = value < 0 ? 0 : value
            }
        }
    }

    /// ReLU backward: `dInput[i] = dOutput[i] · [input[i] > 0]` (overwritten).
    ///
    /// ```
    /// dx = dy   if x > 0
    /// dx = 0    if x ≤ 0           (PyTorch's convention: gradient 0 at the kink x = 0)
    /// ```
    /// Shapes: all `[count]`. The ReLU *output* may be passed as `input`, since `y > 0 ⇔ x > 0`
    /// (lets a layer keep only its output). `dInput` may be exactly `dOutput` (in place).
    public static func reluBackward(dInput: UnsafeMutablePointer<Float>, dOutput: UnsafePointer<Float>,
                                    input: UnsafePointer<Float>, count: Int) {
        let profile = KernelProfile.begin(.elementwise); defer { KernelProfile.end(profile) }
        let zero = FloatVector()
        Elementwise.forEachSlice(count) { start, length in
            let dx = dInput + start, dy = dOutput + start, x = input + start
            let vectorCount = length / FloatVector.scalarCount
            for v in 0..<vectorCount {
                let i = v * FloatVector.scalarCount
                let gradient = loadVector(dy + i)
                storeVector(zero.replacing(with: gradient, where: loadVector(x + i) .> zero), dx + i)
            }
            for i in (vectorCount * FloatVector.scalarCount)..<length {
                dx[i] = x[i] > 0 ? dy[i] : 0
            }
        }
    }
}
