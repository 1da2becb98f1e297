// Linear+Tensor.swift: Tensor-level entry points of the `Linear` kernels: forward (one sgemm),
// backward input and weight. So that Layers, Attacks and Training never touch raw pointers, each
// function checks shapes, allocates its output (unless it writes `into:` one), opens the pointers
// once and calls the pointer kernel of Linear.swift. Gradient accumulators are passed `inout` (`+=`
// semantics).

import Tensors

extension Linear {
    /// `output [N, out] = input [N, in] · weightᵀ + bias`, weight `[out, in]` (PyTorch layout).
    public static func forward(_ input: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
        let n = input.shape[0], inF = weight.shape[1], outF = weight.shape[0]
        precondition(input.count == n * inF, "Linear: input \(input.shape) does not match weight \(weight.shape)")
        var out = Tensor(zeros: [n, outF])
        out.withUnsafeMutablePointer { y in
            input.withUnsafePointer { x in
                weight.withUnsafePointer { w in
                    if let bias {
                        bias.withUnsafePointer { b in
                            forward(output: y, input: x, weight: w, bias: b, n: n, inFeatures: inF, outFeatures: outF)
                        }
                    } else {
                        forward(output: y, input: x, weight: w, bias: nil, n: n, inFeatures: inF, outFeatures: outF)
                    }
                }
            }
        }
        return out
    }

    public static func backwardInput(_ dOutput: Tensor, weight: Tensor, inputShape: [Int]) -> Tensor {
        let n = dOutput.shape[0], inF = weight.shape[1], outF = weight.shape[0]
        var dInput = Tensor(zeros: inputShape)
        dInput.withUnsafeMutablePointer { dx in
            dOutput.withUnsafePointer { dy in
                weight.withUnsafePointer { w in
                    backwardInput(dInput: dx, dOutput: dy, weight: w, n: n, inFeatures: inF, outFeatures: outF)
                }
            }
        }
        return dInput
    }

    /// `dWeight += dOutputᵀ · input`, `dBias += Σ_n dOutput`.
    public static func backwardWeight(_ dOutput: Tensor, input: Tensor, dWeight: inout Tensor, dBias: inout Tensor) {
        let n = dOutput.shape[0], inF = dWeight.shape[1], outF = dWeight.shape[0]
        dWeight.withUnsafeMutablePointer { dw in
            dBias.withUnsafeMutablePointer { db in
                dOutput.withUnsafePointer { dy in
                    input.withUnsafePointer { x in
                        backwardWeight(dWeight: dw, dBias: db, dOutput: dy, input: x, n: n, inFeatures: inF,
                                       outFeatures: outF)
                    }
                }
            }
        }
    }
}
