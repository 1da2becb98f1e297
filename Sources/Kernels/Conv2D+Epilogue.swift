// Conv2D+Epilogue.swift: the fused forward entry point of the convolution kernels. A convolution is
// followed in every model by a per-channel affine (bias, or inference-mode batch norm folded to
// scale/shift), often a residual add, and a ReLU; `Conv2D.Epilogue` names those operations so a kernel
// can apply them while the output tile is still in registers instead of in separate passes over memory.
// Not here: the kernels themselves (Conv2D.swift, Conv2D+Direct.swift) and the layers that fold
// batch norm (Layers/, Models/).

import Tensors

extension Conv2D {
    /// What the forward pass applies to each accumulated output value before storing it:
    /// ```
    /// y[n, k, p, q] = act( scale[k] · acc[n, k, p, q] + shift[k] + residual[n, k, p, q] )
    /// ```
    /// where `acc = Σ_{c,r,s} weight · input` (no bias), a missing `scale` is 1, a missing `shift` is
    /// 0, a missing `residual` is 0 and `act` is ReLU (`max(0, ·)`) when `relu` is set, else the identity.
    ///
    /// - A conv bias is `shift = bias`.
    /// - Inference-mode batch norm after a conv with bias `b` is `scale = γ / √(σ² + ε)`,
    ///   `shift = β − μ · scale + b · scale`.
    /// - `residual` is `[N, K, P, Q]`, the same layout as the output, and may not alias it.
    /// - `gate` (used by the backward-input pass, `Conv2D.backwardInput(…, gate:)`) is a tensor of the
    ///   output's layout applied last: `y = gate[n, k, p, q] > 0 ? y : 0`. It is the ReLU mask of the
    ///   layer whose output this gradient flows into, fused into the store (`Activation.reluBackward`'s
    ///   rule, so the result is bitwise the separate mask pass).
    public struct Epilogue {
        public var scale: UnsafePointer<Float>?
        public var shift: UnsafePointer<Float>?
        public var residual: UnsafePointer<Float>?
        public var relu: Bool
        public var gate: UnsafePointer<Float>?

        public init(scale: UnsafePointer<Float>? = nil, shift: UnsafePointer<Float>? = nil,
                    residual: UnsafePointer<Float>? = nil, relu: Bool = false, gate: UnsafePointer<Float>? = nil) {
            self.scale = scale; self.shift = shift; self.residual = residual; self.relu = relu; self.gate = gate
        }

        /// The identity epilogue: `y = acc`.
        public static let none = Epilogue()

        /// Whether this epilogue is `y = acc + bias` or less (what the unfused forward already does).
        var isBiasOnly: Bool { scale == nil && residual == nil && !relu && gate == nil }

        /// Applies the epilogue in place to `count` values of output channel `k` that start at `values`
        /// (one channel's run of one image), whose residual run starts at `residual` (or nil).
        @inline(__always)
        func apply(_ values: UnsafeMutablePointer<Float>, channel k: Int, count: Int,
                   residual: UnsafePointer<Float>?, gate: UnsafePointer<Float>? = nil) {
            let a = scale?[k] ?? 1, b = shift?[k] ?? 0
            let va = FloatVector(repeating: a), vb = FloatVector(repeating: b), zero = FloatVector()
            let width = FloatVector.scalarCount
            var i = 0
            while i + width <= count {
                var v = loadVector(values + i) * va + vb
                if let residual { v += loadVector(residual + i) }
                if relu { v = v.replacing(with: zero, where: v .< zero) }
                if let gate { v = zero.replacing(with: v, where: loadVector(gate + i) .> zero) }
                storeVector(v, values + i)
                i += width
            }
            while i < count {
                var v = values[i] * a + b
                if let residual { v += residual[i] }
                if relu && v < 0 { v = 0 }
                if let gate { v = gate[i] > 0 ? v : 0 }
                values[i] = v
                i += 1
            }
        }
    }

    /// Convolution forward pass with a fused epilogue:
    /// `output = act(scale · (input ⋆ weight) + shift + residual)` (see `Epilogue`).
    ///
    /// - Parameters:
    ///   - output: `[N, K, P, Q]`, overwritten.
    ///   - input: `[N, C, H, W]`.
    ///   - weight: `[K, C, R, S]`.
    ///   - epilogue: per-channel affine, residual and activation applied before the store.
    ///   - g: the geometry; must be `isValid`.
    ///   - algorithm: the path; nil chooses with `algorithm(for:_:)` (Conv2D+Dispatch.swift).
    public static func forward(output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
                               weight: UnsafePointer<Float>, epilogue: Epilogue, geometry g: ConvGeometry,
                               algorithm: ConvAlgorithm? = nil) {
        let profile = KernelProfile.begin(.convForward, macs: g.forwardMACs); defer { KernelProfile.end(profile) }
        precondition(g.isValid, "Conv2D.forward: invalid geometry \(g)")
        let algorithm = algorithm ?? Self.algorithm(for: .forward, g)
        precondition(supports(algorithm, .forward, g), "Conv2D.forward: \(algorithm) does not support \(g)")
        switch algorithm {
        case .direct:
            directForward(output: output, input: input, weight: weight, epilogue: epilogue, geometry: g)
        case .winograd:
            winogradForward(output: output, input: input, weight: weight, epilogue: epilogue, geometry: g)
        case .gemm:
            if epilogue.isBiasOnly {
                gemmForward(output: output, input: input, weight: weight, bias: epilogue.shift, geometry: g)
                return
            }
            // The product first, then one pass per image that applies the epilogue.
            gemmForward(output: output, input: input, weight: weight, bias: nil, geometry: g)
            let pq = g.p * g.q, kpq = g.k * pq
            Parallel.forEachChunk(count: g.n) { range, _ in
                for image in range {
                    for k in 0..<g.k {
                        let offset = image * kpq + k * pq
                        epilogue.apply(output + offset, channel: k, count: pq, residual: epilogue.residual.map { $0 + offset },
                                       gate: epilogue.gate.map { $0 + offset })
                    }
                }
            }
        }
    }
}

// MARK: - Tensor entry point

extension Conv2D {
    /// `output [N, K, P, Q] = act(scale · (input ⋆ weight) + shift + residual)`, written into an existing
    /// tensor. `scale`, `shift` are `[K]` (or nil), `residual` is `[N, K, P, Q]` (or nil); `algorithm`
    /// picks the path (nil: `Conv2D.algorithm(for:_:)`).
    public static func forward(_ input: Tensor, weight: Tensor, geometry g: ConvGeometry,
                               scale: Tensor?, shift: Tensor?, residual: Tensor?, relu: Bool,
                               into output: inout Tensor, algorithm: ConvAlgorithm? = nil) {
        precondition(output.count == g.n * g.k * g.p * g.q, "Conv2D.forward(into:): output \(output.shape) for \(g)")
        precondition(scale.map { $0.count == g.k } ?? true, "Conv2D.forward: scale \(scale!.shape) for K = \(g.k)")
        precondition(shift.map { $0.count == g.k } ?? true, "Conv2D.forward: shift \(shift!.shape) for K = \(g.k)")
        precondition(residual.map { $0.count == output.count } ?? true,
                     "Conv2D.forward: residual \(residual!.shape) for output \(output.shape)")
        func withOptional<R>(_ t: Tensor?, _ body: (UnsafePointer<Float>?) -> R) -> R {
            if let t { return t.withUnsafePointer { body($0) } }
            return body(nil)
        }
        output.withUnsafeMutablePointer { out in
            input.withUnsafePointer { x in
                weight.withUnsafePointer { w in
                    withOptional(scale) { a in
                        withOptional(shift) { b in
                            withOptional(residual) { res in
                                forward(output: out, input: x, weight: w,
                                        epilogue: Epilogue(scale: a, shift: b, residual: res, relu: relu), geometry: g,
                                        algorithm: algorithm)
                            }
                        }
                    }
                }
            }
        }
    }

    /// The filters with a per-output-channel factor folded in: `W'[k, c, r, s] = W[k, c, r, s] · scale[k]`,
    /// so that `input ⋆ W' = scale · (input ⋆ W)` (up to rounding). Folding an inference-mode batch
    /// norm's scale this way lets the backward to the input be one `backwardInput` with `W'`.
    ///
    /// Shapes: `weight` `[K, C, R, S]`, `scale` `[K]`, result `[K, C, R, S]`.
    /// - Complexity: one pass over the `K·C·R·S` weights (cheap next to the convolution).
    public static func scaledFilters(_ weight: Tensor, by scale: Tensor) -> Tensor {
        precondition(weight.rank == 4 && scale.count == weight.shape[0],
                     "Conv2D.scaledFilters: scale \(scale.shape) must be [K] for weight \(weight.shape) ([K, C, R, S])")
        var out = Tensor(uninitialized: weight.shape)
        let k = weight.shape[0], crs = k == 0 ? 0 : weight.count / k
        out.withUnsafeMutablePointer { o in
            weight.withUnsafePointer { w in
                scale.withUnsafePointer { a in
                    for kk in 0..<k {
                        Elementwise.scale(output: o + kk * crs, input: w + kk * crs, by: a[kk], count: crs)
                    }
                }
            }
        }
        return out
    }

    /// Allocating form of the fused forward.
    public static func forward(_ input: Tensor, weight: Tensor, geometry g: ConvGeometry,
                               scale: Tensor?, shift: Tensor?, residual: Tensor?, relu: Bool) -> Tensor {
        var output = Tensor(uninitialized: [g.n, g.k, g.p, g.q])
        forward(input, weight: weight, geometry: g, scale: scale, shift: shift, residual: residual, relu: relu,
                into: &output)
        return output
    }
}
