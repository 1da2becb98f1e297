// Dropout+Reference.swift: naive twins of the Dropout kernels. The forward twin draws from the RNG in
// the same order as the fast kernel, so both produce the same mask from the same state. Tests only.

import Tensors

extension Reference {
    /// Twin of `Dropout.forward`: one `nextFloat()` per element, dropped when it is below `p`.
    public static func dropoutForward(output: UnsafeMutablePointer<Float>, mask: UnsafeMutablePointer<Float>,
                                      input: UnsafePointer<Float>, count: Int, p: Float, rng: inout SplitMix64) {
        for i in 0..<max(count, 0) {
            var m: Float = 1
            if p > 0 { m = rng.nextFloat() < p ? 0 : 1 / (1 - p) }
            mask[i] = m
            output[i] = input[i] * m
        }
    }

    /// Twin of `Dropout.backward`: `dInput[i] = dOutput[i]·mask[i]`.
    public static func dropoutBackward(dInput: UnsafeMutablePointer<Float>, dOutput: UnsafePointer<Float>,
                                       mask: UnsafePointer<Float>, count: Int) {
        for i in 0..<max(count, 0) { dInput[i] = dOutput[i] * mask[i] }
    }
}
