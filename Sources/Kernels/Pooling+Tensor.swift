// Pooling+Tensor.swift: Tensor-level entry points of the `Pooling` kernels: max and average pooling
// and their backward. So that Layers, Attacks and Training never touch raw pointers, each function
// checks shapes, allocates its output (unless it writes `into:` one), opens the pointers once and
// calls the pointer kernel of Pooling.swift. Gradient accumulators are passed `inout` (`+=`
// semantics).

import Tensors

extension Pooling {
    /// Max-pool `[N, C, H, W]` → `[N, C, H', W']`; also returns the argmax plane indices.
    public static func maxPool(_ input: Tensor, kernel: Int, stride: Int) -> (output: Tensor, argmax: [Int32]) {
        let (n, c, h, w) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
        let p = (h - kernel) / stride + 1, q = (w - kernel) / stride + 1
        var out = Tensor(uninitialized: [n, c, p, q])
        // The kernel writes every argmax slot, so the array is not cleared first.
        let argmax = [Int32](unsafeUninitializedCapacity: out.count) { a, initialized in
            out.withUnsafeMutablePointer { y in
                input.withUnsafePointer { x in
                    maxPoolForward(output: y, argmax: a.baseAddress!, input: x, n: n, c: c, h: h, w: w,
                                   kernel: kernel, stride: stride)
                }
            }
            initialized = a.count
        }
        return (out, argmax)
    }

    public static func maxPoolBackward(_ dOutput: Tensor, argmax: [Int32], inputShape: [Int], kernel: Int,
                                       stride: Int) -> Tensor {
        var dInput = Tensor(uninitialized: inputShape)
        dInput.withUnsafeMutablePointer { dx in
            dOutput.withUnsafePointer { dy in
                argmax.withUnsafeBufferPointer { a in
                    maxPoolBackward(dInput: dx, dOutput: dy, argmax: a.baseAddress!, n: inputShape[0],
                                    c: inputShape[1], h: inputShape[2], w: inputShape[3], kernel: kernel, stride: stride)
                }
            }
        }
        return dInput
    }

    /// `maxPoolBackward` fused with the ReLU mask of the pooled layer (`Pooling.maxPoolReLUBackward`):
    /// `pooled` is the forward's output. Equals `Activation.reluBackward(maxPoolBackward(dOutput, …),
    /// input: x)` bit for bit, where `x` is the forward's input.
    public static func maxPoolReLUBackward(_ dOutput: Tensor, argmax: [Int32], pooled: Tensor, inputShape: [Int],
                                           kernel: Int, stride: Int) -> Tensor {
        precondition(pooled.shape == dOutput.shape && argmax.count == dOutput.count,
                     "Pooling.maxPoolReLUBackward: dOutput \(dOutput.shape), pooled \(pooled.shape), "
                     + "argmax \(argmax.count) must match")
        var dInput = Tensor(uninitialized: inputShape)
        dInput.withUnsafeMutablePointer { dx in
            dOutput.withUnsafePointer { dy in
                pooled.withUnsafePointer { y in
                    argmax.withUnsafeBufferPointer { a in
                        maxPoolReLUBackward(dInput: dx, dOutput: dy, argmax: a.baseAddress!, pooled: y,
                                            n: inputShape[0], c: inputShape[1], h: inputShape[2], w: inputShape[3],
                                            kernel: kernel, stride: stride)
                    }
                }
            }
        }
        return dInput
    }

    /// Average-pool with a square window, no padding.
    public static func avgPool(_ input: Tensor, kernel: Int, stride: Int) -> Tensor {
        let (n, c, h, w) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
        let p = (h - kernel) / stride + 1, q = (w - kernel) / stride + 1
        var out = Tensor(uninitialized: [n, c, p, q])
        out.withUnsafeMutablePointer { y in
            input.withUnsafePointer { x in
                avgPoolForward(output: y, input: x, n: n, c: c, h: h, w: w, kernel: kernel, stride: stride)
            }
        }
        return out
    }

    public static func avgPoolBackward(_ dOutput: Tensor, inputShape: [Int], kernel: Int, stride: Int) -> Tensor {
        var dInput = Tensor(uninitialized: inputShape)
        dInput.withUnsafeMutablePointer { dx in
            dOutput.withUnsafePointer { dy in
                avgPoolBackward(dInput: dx, dOutput: dy, n: inputShape[0], c: inputShape[1], h: inputShape[2],
                                w: inputShape[3], kernel: kernel, stride: stride)
            }
        }
        return dInput
    }
}
