// Dropout+Tensor.swift: Tensor-level entry points of the `Dropout` kernels: the masked forward and
// its backward. So that Layers, Attacks and Training never touch raw pointers, each function checks
// shapes, allocates its output (unless it writes `into:` one), opens the pointers once and calls
// the pointer kernel of Dropout.swift. Gradient accumulators are passed `inout` (`+=` semantics).

import Tensors

extension Dropout {
    /// Inverted dropout; returns the output and the mask (0 or 1/(1−p)).
    public static func forward(_ input: Tensor, p: Float, rng: inout SplitMix64) -> (output: Tensor, mask: Tensor) {
        var out = Tensor(zeros: input.shape), mask = Tensor(zeros: input.shape)
        out.withUnsafeMutablePointer { y in
            mask.withUnsafeMutablePointer { m in
                input.withUnsafePointer { x in forward(output: y, mask: m, input: x, count: input.count, p: p, rng: &rng) }
            }
        }
        return (out, mask)
    }

    public static func backward(_ dOutput: Tensor, mask: Tensor) -> Tensor {
        var dInput = Tensor(zeros: dOutput.shape)
        dInput.withUnsafeMutablePointer { dx in
            dOutput.withUnsafePointer { dy in mask.withUnsafePointer { m in backward(dInput: dx, dOutput: dy, mask: m, count: dOutput.count) } }
        }
        return dInput
    }
}
