// Activation+Tensor.swift: Tensor-level entry points of the `Activation` kernels: ReLU and its
// backward. So that Layers, Attacks and Training never touch raw pointers, each function checks
// shapes, allocates its output (unless it writes `into:` one), opens the pointers once and calls
// the pointer kernel of Activation.swift. Gradient accumulators are passed `inout` (`+=`
// semantics).

import Tensors

extension Activation {
    /// `max(x, 0)` elementwise.
    public static func relu(_ input: Tensor) -> Tensor {
        var out = Tensor(uninitialized: input.shape)
        out.withUnsafeMutablePointer { y in input.withUnsafePointer { x in reluForward(output: y, input: x, count: input.count) } }
        return out
    }

    /// `dy · [x > 0]`.
    public static func reluBackward(_ dOutput: Tensor, input: Tensor) -> Tensor {
        var dInput = Tensor(uninitialized: input.shape)
        dInput.withUnsafeMutablePointer { dx in
            dOutput.withUnsafePointer { dy in
                input.withUnsafePointer { x in reluBackward(dInput: dx, dOutput: dy, input: x, count: input.count) }
            }
        }
        return dInput
    }
}
