// Pooling.swift: 2-D max and average pooling (square window, no padding, floor output size) and global
// average pooling over NCHW float32, forward and backward. Work is split across workers by (n, c)
// plane; planes are independent, so results do not depend on the worker count. No padding, dilation,
// ceil mode or count_include_pad variants. Naive twins: Pooling+Reference.swift.

/// Pooling kernels for `[N, C, H, W]` tensors.
///
/// Window geometry (PyTorch `nn.MaxPool2d` / `nn.AvgPool2d` with `padding = 0`, `ceil_mode = False`):
/// ```
/// P = ⌊(H − kernel)/stride⌋ + 1,   Q = ⌊(W − kernel)/stride⌋ + 1
/// window(p, q) = rows p·stride ..< p·stride + kernel, columns q·stride ..< q·stride + kernel
/// ```
public enum Pooling {
    /// Target number of input elements per worker slice (smaller jobs stay on one thread).
    static let parallelMinimumElements = 1 << 15

    /// Output extent along one axis: `⌊(size − kernel)/stride⌋ + 1` (0 if the window does not fit).
    public static func outputSize(_ size: Int, kernel: Int, stride: Int) -> Int {
        precondition(kernel >= 1 && stride >= 1, "Pooling.outputSize: kernel \(kernel), stride \(stride) must be ≥ 1")
        return size < kernel ? 0 : (size - kernel) / stride + 1
    }

    // MARK: - Max pooling

    /// Max pooling forward; records which input each output came from.
    ///
    /// ```
    /// output[n,c,p,q] = max_{(h,w) ∈ window(p,q)} input[n,c,h,w]
    /// argmax[n,c,p,q] = h·W + w of that maximum (flat index within the (n, c) plane)
    /// ```
    /// Ties: the first maximum in row-major window order wins. NaN propagates (a NaN in the window is
    /// selected, as in PyTorch).
    ///
    /// Shapes: `input` `[N, C, H, W]`; `output`, `argmax` `[N, C, P, Q]`.
    /// - Precondition: `kernel ≥ 1`, `stride ≥ 1`, `H ≥ kernel`, `W ≥ kernel`, `H·W ≤ Int32.max`.
    public static func maxPoolForward(output: UnsafeMutablePointer<Float>, argmax: UnsafeMutablePointer<Int32>,
                                      input: UnsafePointer<Float>,
                                      n: Int, c: Int, h: Int, w: Int, kernel: Int, stride: Int) {
        let profile = KernelProfile.begin(.pooling); defer { KernelProfile.end(profile) }
        checkGeometry(h: h, w: w, kernel: kernel, stride: stride, function: "maxPoolForward")
        let p = outputSize(h, kernel: kernel, stride: stride), q = outputSize(w, kernel: kernel, stride: stride)
        // 2×2 stride 2 (SmallCNN's pooling) has a SIMD path for 8 outputs at a time; the rest of each
        // row and every other geometry use the scalar window scan.
        let vectorOutputs = kernel == 2 && stride == 2 ? q / FloatVector.scalarCount * FloatVector.scalarCount : 0
        forEachPlaneSlice(planes: n * c, elementsPerPlane: h * w) { planes in
            for plane in planes {
                let x = input + plane * h * w          // [H, W]
                let y = output + plane * p * q         // [P, Q]
                let index = argmax + plane * p * q     // [P, Q]
                for op in 0..<p {
                    if vectorOutputs > 0 {
                        maxPool2x2Row(output: y + op * q, argmax: index + op * q, input: x, row: 2 * op, w: w,
                                      count: vectorOutputs)
                    }
                    for oq in vectorOutputs..<q {
                        let top = op * stride, left = oq * stride
                        var best = -Float.infinity
                        var bestIndex = top * w + left
                        for r in 0..<kernel {
                            let row = (top + r) * w + left
                            for s in 0..<kernel {
                                let value = x[row + s]
                                // `value != value` is the NaN test (`isNaN` compiles to bit tests and
                                // branches); a NaN is taken, so NaN propagates as in PyTorch.
                                let take = value > best || value != value
                                best = take ? value : best
                                bestIndex = take ? row + s : bestIndex
                            }
                        }
                        y[op * q + oq] = best
                        index[op * q + oq] = Int32(truncatingIfNeeded: bestIndex)
                    }
                }
            }
        }
    }

    /// 2×2 stride-2 max pooling of `count` (a multiple of 8) outputs of one output row, 8 at a time
    /// without branches: the 16 input columns of two rows are split into even and odd columns, and the
    /// four window positions are compared in row-major order with the scalar rule (strictly greater or
    /// NaN), so values and argmax match the scalar scan exactly.
    @inline(__always)
    static func maxPool2x2Row(output: UnsafeMutablePointer<Float>, argmax: UnsafeMutablePointer<Int32>,
                              input x: UnsafePointer<Float>, row: Int, w: Int, count: Int) {
        let width = FloatVector.scalarCount
        let laneOffsets = SIMD8<Int32>(0, 2, 4, 6, 8, 10, 12, 14)
        for q0 in stride(from: 0, to: count, by: width) {
            let first = row * w + 2 * q0                     // flat index of window (q0, top-left)
            let top = x + first, bottom = top + w            // 16 columns each: 2·q0 ..< 2·q0 + 16
            let upper = SIMD16<Float>(lowHalf: loadVector(top), highHalf: loadVector(top + width))
            let lower = SIMD16<Float>(lowHalf: loadVector(bottom), highHalf: loadVector(bottom + width))
            let baseIndex = SIMD8<Int32>(repeating: Int32(truncatingIfNeeded: first)) &+ laneOffsets
            var best = upper.evenHalf
            var bestIndex = baseIndex
            consider(upper.oddHalf, index: baseIndex &+ 1, best: &best, bestIndex: &bestIndex)
            consider(lower.evenHalf, index: baseIndex &+ Int32(w), best: &best, bestIndex: &bestIndex)
            consider(lower.oddHalf, index: baseIndex &+ Int32(w + 1), best: &best, bestIndex: &bestIndex)
            storeVector(best, output + q0)
            UnsafeMutableRawPointer(argmax + q0).storeBytes(of: bestIndex, as: SIMD8<Int32>.self)
        }
    }

    /// Lane-wise step of the window scan: take `value` where it is strictly greater than `best` or NaN.
    @inline(__always)
    static func consider(_ value: FloatVector, index: SIMD8<Int32>, best: inout FloatVector,
                         bestIndex: inout SIMD8<Int32>) {
        let take = (value .> best) .| (value .!= value)
        best.replace(with: value, where: take)
        bestIndex.replace(with: index, where: take)
    }

    /// Max pooling backward: routes each output gradient to the input recorded in `argmax`.
    ///
    /// ```
    /// dInput = 0;   dInput[n,c, argmax[n,c,p,q]] += dOutput[n,c,p,q]   for every (p, q)
    /// ```
    /// Overlapping windows (`kernel > stride`) add up. Shapes: `dInput` `[N, C, H, W]` (overwritten);
    /// `dOutput`, `argmax` `[N, C, P, Q]` from `maxPoolForward` with the same geometry.
    public static func maxPoolBackward(dInput: UnsafeMutablePointer<Float>, dOutput: UnsafePointer<Float>,
                                       argmax: UnsafePointer<Int32>,
                                       n: Int, c: Int, h: Int, w: Int, kernel: Int, stride: Int) {
        let profile = KernelProfile.begin(.pooling); defer { KernelProfile.end(profile) }
        checkGeometry(h: h, w: w, kernel: kernel, stride: stride, function: "maxPoolBackward")
        let outputCount = outputSize(h, kernel: kernel, stride: stride) * outputSize(w, kernel: kernel, stride: stride)
        forEachPlaneSlice(planes: n * c, elementsPerPlane: h * w) { planes in
            for plane in planes {
                let dx = dInput + plane * h * w               // [H, W]
                let dy = dOutput + plane * outputCount        // [P, Q]
                let index = argmax + plane * outputCount      // [P, Q]
                dx.update(repeating: 0, count: h * w)
                for o in 0..<outputCount { dx[Int(index[o])] += dy[o] }
            }
        }
    }

    /// Max pooling backward fused with the ReLU mask of the layer whose output was pooled:
    ///
    /// ```
    /// dInput = 0;   dInput[n,c, argmax[n,c,p,q]] += pooled[n,c,p,q] > 0 ? dOutput[n,c,p,q] : 0
    /// ```
    /// where `pooled` and `argmax` are `maxPoolForward`'s output and argmax on an input `x`. Because
    /// `pooled[o] = x[argmax[o]]`, this equals `Activation.reluBackward(maxPoolBackward(dOutput),
    /// input: x)` bit for bit (positions no window selected get 0 either way, and every contribution
    /// to one position shares that position's mask), while reading only the pooled tensors: the mask
    /// pass over the `[N, C, H, W]` tensor disappears. For 2×2 windows with stride 2 each output
    /// writes its whole window (the gradient at the argmax, zeros elsewhere) and only the rows and
    /// columns no window covers are zeroed, so `dInput` is written once and never cleared first.
    ///
    /// Shapes: `dInput` `[N, C, H, W]` (overwritten); `dOutput`, `argmax`, `pooled` `[N, C, P, Q]`.
    public static func maxPoolReLUBackward(dInput: UnsafeMutablePointer<Float>, dOutput: UnsafePointer<Float>,
                                           argmax: UnsafePointer<Int32>, pooled: UnsafePointer<Float>,
                                           n: Int, c: Int, h: Int, w: Int, kernel: Int, stride: Int) {
        let profile = KernelProfile.begin(.pooling); defer { KernelProfile.end(profile) }
        checkGeometry(h: h, w: w, kernel: kernel, stride: stride, function: "maxPoolReLUBackward")
        let p = outputSize(h, kernel: kernel, stride: stride), q = outputSize(w, kernel: kernel, stride: stride)
        let outputCount = p * q
        forEachPlaneSlice(planes: n * c, elementsPerPlane: h * w) { planes in
            for plane in planes {
                let dx = dInput + plane * h * w               // [H, W]
                let dy = dOutput + plane * outputCount        // [P, Q]
                let index = argmax + plane * outputCount      // [P, Q]
                let y = pooled + plane * outputCount          // [P, Q]
                if kernel == 2 && stride == 2 {
                    for op in 0..<p {
                        scatter2x2Row(dInput: dx, dOutput: dy + op * q, argmax: index + op * q, pooled: y + op * q,
                                      row: 2 * op, w: w, count: q)
                        if w > 2 * q {                        // the last column, in no window
                            dx[2 * op * w + w - 1] = 0
                            dx[(2 * op + 1) * w + w - 1] = 0
                        }
                    }
                    if h > 2 * p { (dx + 2 * p * w).update(repeating: 0, count: (h - 2 * p) * w) }
                } else {
                    dx.update(repeating: 0, count: h * w)
                    for o in 0..<outputCount where y[o] > 0 { dx[Int(index[o])] += dy[o] }
                }
            }
        }
    }

    /// Writes the 2×2 windows of `count` consecutive outputs of one output row (input rows `row` and
    /// `row + 1`): the masked gradient at each window's argmax, 0 at its other three positions. Eight
    /// outputs at a time with vector compares, then a scalar tail.
    @inline(__always)
    static func scatter2x2Row(dInput dx: UnsafeMutablePointer<Float>, dOutput dy: UnsafePointer<Float>,
                              argmax: UnsafePointer<Int32>, pooled y: UnsafePointer<Float>,
                              row: Int, w: Int, count: Int) {
        let width = FloatVector.scalarCount
        let vectorCount = count / width * width
        let laneOffsets = SIMD8<Int32>(0, 2, 4, 6, 8, 10, 12, 14)
        let zero = FloatVector()
        for q0 in stride(from: 0, to: vectorCount, by: width) {
            let first = row * w + 2 * q0
            let base = SIMD8<Int32>(repeating: Int32(truncatingIfNeeded: first)) &+ laneOffsets
            let winner = UnsafeRawPointer(argmax + q0).loadUnaligned(as: SIMD8<Int32>.self)
            // `+ 0` turns a −0 gradient into +0, as the unfused scatter's `0 + dy` does.
            let g = zero.replacing(with: loadVector(dy + q0), where: loadVector(y + q0) .> zero) + zero
            let topEven = zero.replacing(with: g, where: winner .== base)
            let topOdd = zero.replacing(with: g, where: winner .== base &+ 1)
            let bottomEven = zero.replacing(with: g, where: winner .== base &+ Int32(w))
            let bottomOdd = zero.replacing(with: g, where: winner .== base &+ Int32(w + 1))
            storeInterleaved(topEven, topOdd, dx + first)
            storeInterleaved(bottomEven, bottomOdd, dx + first + w)
        }
        for oq in vectorCount..<count {
            let first = row * w + 2 * oq
            let g: Float = (y[oq] > 0 ? dy[oq] : 0) + 0
            let a = Int(argmax[oq])
            dx[first] = a == first ? g : 0
            dx[first + 1] = a == first + 1 ? g : 0
            dx[first + w] = a == first + w ? g : 0
            dx[first + w + 1] = a == first + w + 1 ? g : 0
        }
    }

    /// Stores `even[0], odd[0], even[1], odd[1], …` (16 floats) at `p`.
    @inline(__always)
    static func storeInterleaved(_ even: FloatVector, _ odd: FloatVector, _ p: UnsafeMutablePointer<Float>) {
        let lanes = SIMD16<Float>(even[0], odd[0], even[1], odd[1], even[2], odd[2], even[3], odd[3],
                                  even[4], odd[4], even[5], odd[5], even[6], odd[6], even[7], odd[7])
        UnsafeMutableRawPointer(p).storeBytes(of: lanes, as: SIMD16<Float>.self)
    }

    // MARK: - Average pooling

    /// Average pooling forward (every window lies inside the input, so the divisor is always `kernel²`).
    ///
    /// ```
    /// output[n,c,p,q] = (1/kernel²) Σ_{(h,w) ∈ window(p,q)} input[n,c,h,w]
    /// ```
    /// Shapes: `input` `[N, C, H, W]`; `output` `[N, C, P, Q]`.
    public static func avgPoolForward(output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
                                      n: Int, c: Int, h: Int, w: Int, kernel: Int, stride: Int) {
        let profile = KernelProfile.begin(.pooling); defer { KernelProfile.end(profile) }
        checkGeometry(h: h, w: w, kernel: kernel, stride: stride, function: "avgPoolForward")
        let p = outputSize(h, kernel: kernel, stride: stride), q = outputSize(w, kernel: kernel, stride: stride)
        let divisor = Float(kernel * kernel)
        forEachPlaneSlice(planes: n * c, elementsPerPlane: h * w) { planes in
            for plane in planes {
                let x = input + plane * h * w      // [H, W]
                let y = output + plane * p * q     // [P, Q]
                for op in 0..<p {
                    for oq in 0..<q {
                        let top = op * stride, left = oq * stride
                        var total: Float = 0
                        for r in 0..<kernel {
                            let row = x + (top + r) * w + left
                            for s in 0..<kernel { total += row[s] }
                        }
                        y[op * q + oq] = total / divisor
                    }
                }
            }
        }
    }

    /// Average pooling backward: each output gradient is spread evenly over its window.
    ///
    /// ```
    /// dInput = 0;   dInput[n,c,h,w] += dOutput[n,c,p,q] / kernel²   for every (h, w) ∈ window(p, q)
    /// ```
    /// Shapes: `dInput` `[N, C, H, W]` (overwritten); `dOutput` `[N, C, P, Q]`. Inputs outside every
    /// window (when `(H − kernel)` is not a multiple of `stride`) get 0.
    public static func avgPoolBackward(dInput: UnsafeMutablePointer<Float>, dOutput: UnsafePointer<Float>,
                                       n: Int, c: Int, h: Int, w: Int, kernel: Int, stride: Int) {
        let profile = KernelProfile.begin(.pooling); defer { KernelProfile.end(profile) }
        checkGeometry(h: h, w: w, kernel: kernel, stride: stride, function: "avgPoolBackward")
        let p = outputSize(h, kernel: kernel, stride: stride), q = outputSize(w, kernel: kernel, stride: stride)
        let inverseArea = 1 / Float(kernel * kernel)
        forEachPlaneSlice(planes: n * c, elementsPerPlane: h * w) { planes in
            for plane in planes {
                let dx = dInput + plane * h * w      // [H, W]
                let dy = dOutput + plane * p * q     // [P, Q]
                dx.update(repeating: 0, count: h * w)
                for op in 0..<p {
                    for oq in 0..<q {
                        let share = dy[op * q + oq] * inverseArea
                        let top = op * stride, left = oq * stride
                        for r in 0..<kernel {
                            let row = dx + (top + r) * w + left
                            for s in 0..<kernel { row[s] += share }
                        }
                    }
                }
            }
        }
    }

    // MARK: - Global average pooling

    /// Global average pooling: the mean of each (n, c) plane.
    ///
    /// ```
    /// output[n,c] = (1/HW) Σ_{hw} input[n,c,hw]
    /// ```
    /// Shapes: `input` `[N, C, H, W]` (`hw = H·W ≥ 1`); `output` `[N, C]`. Plane sums use four vector
    /// accumulators, with block totals in Double.
    public static func globalAvgPoolForward(output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
                                            n: Int, c: Int, hw: Int) {
        let profile = KernelProfile.begin(.pooling); defer { KernelProfile.end(profile) }
        precondition(hw >= 1, "Pooling.globalAvgPoolForward: hw \(hw) must be ≥ 1")
        forEachPlaneSlice(planes: n * c, elementsPerPlane: hw) { planes in
            for plane in planes {
                output[plane] = Float(blockedSum(input + plane * hw, count: hw) / Double(hw))
            }
        }
    }

    /// Global average pooling backward.
    ///
    /// ```
    /// dInput[n,c,hw] = dOutput[n,c] / HW
    /// ```
    /// Shapes: `dInput` `[N, C, H, W]` (overwritten); `dOutput` `[N, C]`.
    public static func globalAvgPoolBackward(dInput: UnsafeMutablePointer<Float>, dOutput: UnsafePointer<Float>,
                                             n: Int, c: Int, hw: Int) {
        let profile = KernelProfile.begin(.pooling); defer { KernelProfile.end(profile) }
        precondition(hw >= 1, "Pooling.globalAvgPoolBackward: hw \(hw) must be ≥ 1")
        let inverseArea = 1 / Float(hw)
        forEachPlaneSlice(planes: n * c, elementsPerPlane: hw) { planes in
            for plane in planes {
                (dInput + plane * hw).update(repeating: dOutput[plane] * inverseArea, count: hw)
            }
        }
    }

    // MARK: - Helpers

    @inline(__always)
    static func checkGeometry(h: Int, w: Int, kernel: Int, stride: Int, function: String) {
        precondition(kernel >= 1 && stride >= 1 && h >= kernel && w >= kernel && h * w <= Int(Int32.max),
                     "Pooling.\(function): kernel \(kernel), stride \(stride) do not fit input \(h)×\(w)")
    }

    /// Runs `body` over contiguous plane ranges, one per worker when each gets enough elements.
    @inline(__always)
    static func forEachPlaneSlice(planes: Int, elementsPerPlane: Int, _ body: (Range<Int>) -> Void) {
        let minimumPlanes = max(1, parallelMinimumElements / max(1, elementsPerPlane))
        Parallel.forEachChunk(count: planes, minimumChunk: minimumPlanes) { range, _ in body(range) }
    }
}
