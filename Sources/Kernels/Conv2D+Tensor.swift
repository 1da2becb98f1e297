// Conv2D+Tensor.swift: Tensor-level entry points of the `Conv2D` kernels: geometry from shapes,
// forward, backward input and weight, and in-place variants that write into reused buffers. So that
// Layers, Attacks and Training never touch raw pointers, each function checks shapes, allocates its
// output (unless it writes `into:` one), opens the pointers once and calls the pointer kernel of
// Conv2D.swift. Gradient accumulators are passed `inout` (`+=` semantics).

import Tensors

extension Conv2D {
    /// Geometry of a convolution of `input [N, C, H, W]` with `weight [K, C, R, S]`.
    public static func geometry(input: [Int], weight: [Int], stride: Int, padding: Int) -> ConvGeometry {
        precondition(input.count == 4 && weight.count == 4 && input[1] == weight[1],
                     "Conv2D: input \(input) and weight \(weight) do not match (need [N,C,H,W] and [K,C,R,S])")
        return ConvGeometry(n: input[0], c: input[1], h: input[2], w: input[3], k: weight[0], r: weight[2],
                            s: weight[3], strideH: stride, strideW: stride, padH: padding, padW: padding)
    }

    /// `output [N, K, P, Q] = input ⋆ weight + bias`.
    public static func forward(_ input: Tensor, weight: Tensor, bias: Tensor?, geometry g: ConvGeometry) -> Tensor {
        var output = Tensor(uninitialized: [g.n, g.k, g.p, g.q])
        forward(input, weight: weight, bias: bias, geometry: g, into: &output)
        return output
    }

    /// `dInput [N, C, H, W]` from `dOutput [N, K, P, Q]`.
    /// With a `gate` (`[N, C, H, W]`): `gate > 0 ? dInput : 0`, the next layer down's ReLU mask fused.
    public static func backwardInput(_ dOutput: Tensor, weight: Tensor, geometry g: ConvGeometry,
                                     gate: Tensor? = nil) -> Tensor {
        var dInput = Tensor(uninitialized: [g.n, g.c, g.h, g.w])
        backwardInput(dOutput, weight: weight, geometry: g, into: &dInput, gate: gate)
        return dInput
    }

    /// `dWeight += ∂L/∂W`, and `dBias += ∂L/∂b` when given.
    /// `algorithm` picks the path (nil: `Conv2D.algorithm(for:_:)`).
    public static func backwardWeight(_ dOutput: Tensor, input: Tensor, geometry g: ConvGeometry,
                                      dWeight: inout Tensor, dBias: inout Tensor, algorithm: ConvAlgorithm? = nil) {
        dWeight.withUnsafeMutablePointer { dw in
            dBias.withUnsafeMutablePointer { db in
                dOutput.withUnsafePointer { dy in
                    input.withUnsafePointer { x in
                        backwardWeight(dWeight: dw, dBias: db, dOutput: dy, input: x, geometry: g, algorithm: algorithm)
                    }
                }
            }
        }
    }

    /// `dWeight += ∂L/∂W` (no bias).
    public static func backwardWeight(_ dOutput: Tensor, input: Tensor, geometry g: ConvGeometry,
                                      dWeight: inout Tensor) {
        dWeight.withUnsafeMutablePointer { dw in
            dOutput.withUnsafePointer { dy in
                input.withUnsafePointer { x in
                    backwardWeight(dWeight: dw, dBias: nil, dOutput: dy, input: x, geometry: g)
                }
            }
        }
    }
}

// MARK: - In-place variants (no allocation; for benchmarks and reused buffers)

extension Conv2D {
    /// `output [N, K, P, Q] = input ⋆ weight + bias`, written into an existing tensor; `algorithm`
    /// picks the path (nil: `Conv2D.algorithm(for:_:)`).
    public static func forward(_ input: Tensor, weight: Tensor, bias: Tensor?, geometry g: ConvGeometry,
                               into output: inout Tensor, algorithm: ConvAlgorithm? = nil) {
        precondition(output.count == g.n * g.k * g.p * g.q, "Conv2D.forward(into:): output \(output.shape) for \(g)")
        output.withUnsafeMutablePointer { out in
            input.withUnsafePointer { x in
                weight.withUnsafePointer { w in
                    if let bias {
                        bias.withUnsafePointer { b in
                            forward(output: out, input: x, weight: w, bias: b, geometry: g, algorithm: algorithm)
                        }
                    } else {
                        forward(output: out, input: x, weight: w, bias: nil, geometry: g, algorithm: algorithm)
                    }
                }
            }
        }
    }

    /// `dInput [N, C, H, W]` from `dOutput`, written into an existing tensor; `algorithm` picks the
    /// path (nil: `Conv2D.algorithm(for:_:)`).
    /// `gate` (`[N, C, H, W]`, or nil): `dInput = gate > 0 ? dInput : 0`, fused (see the pointer entry).
    public static func backwardInput(_ dOutput: Tensor, weight: Tensor, geometry g: ConvGeometry,
                                     into dInput: inout Tensor, algorithm: ConvAlgorithm? = nil, gate: Tensor? = nil) {
        precondition(dInput.count == g.n * g.c * g.h * g.w, "Conv2D.backwardInput(into:): \(dInput.shape) for \(g)")
        precondition(gate.map { $0.count == dInput.count } ?? true,
                     "Conv2D.backwardInput: gate \(gate?.shape ?? []) for dInput \(dInput.shape)")
        dInput.withUnsafeMutablePointer { dx in
            dOutput.withUnsafePointer { dy in
                weight.withUnsafePointer { w in
                    if let gate {
                        gate.withUnsafePointer { m in
                            backwardInput(dInput: dx, dOutput: dy, weight: w, geometry: g, algorithm: algorithm, gate: m)
                        }
                    } else {
                        backwardInput(dInput: dx, dOutput: dy, weight: w, geometry: g, algorithm: algorithm)
                    }
                }
            }
        }
    }
}
