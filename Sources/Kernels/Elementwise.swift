// Elementwise.swift: flat float32 maps (add, +=, scale, axpy, copy) and a sum reduction over whole
// buffers, each a FloatVector main loop plus a scalar tail. No shapes and no broadcasting: callers pass
// element counts. Large maps are split across workers; the sum stays on one thread so that its value
// does not depend on the worker count. Naive twins: Elementwise+Reference.swift.

// MARK: - Public kernels

/// Flat elementwise kernels over `count` contiguous floats.
///
/// Aliasing: an output may be *exactly* the same buffer as one of the inputs (in-place use, e.g.
/// `add(output: a, a: a, b: b, count:)`); partially overlapping buffers are not supported.
public enum Elementwise {
    /// Counts below this run on the calling thread: a memory-bound map over fewer than 256 Ki floats
    /// (1 MiB) finishes in well under the ~10 µs a dispatch to the other core costs.
    static let parallelThreshold = 1 << 18

    /// Smallest slice handed to one worker once a map is split (same reasoning as the threshold).
    static let parallelMinimumChunk = 1 << 17

    /// Floats summed in Float (4 vector accumulators, 32 lanes) before the block total moves into a
    /// Double: each lane then adds at most 128 values, so the Float rounding error stays near 1e-6
    /// relative however long the buffer is.
    static let sumBlockLength = 4096

    /// `output[i] = a[i] + b[i]` for `i` in `0..<count`.
    public static func add(output: UnsafeMutablePointer<Float>, a: UnsafePointer<Float>,
                           b: UnsafePointer<Float>, count: Int) {
        let profile = KernelProfile.begin(.elementwise); defer { KernelProfile.end(profile) }
        forEachSlice(count) { start, length in
            let o = output + start, x = a + start, y = b + start
            let vectorCount = length / FloatVector.scalarCount
            for v in 0..<vectorCount {
                let i = v * FloatVector.scalarCount
                storeVector(loadVector(x + i) + loadVector(y + i), o + i)
            }
            for i in (vectorCount * FloatVector.scalarCount)..<length { o[i] = x[i] + y[i] }
        }
    }

    /// `target[i] += source[i]` for `i` in `0..<count` (gradient accumulation).
    public static func accumulate(into target: UnsafeMutablePointer<Float>, from source: UnsafePointer<Float>,
                                  count: Int) {
        let profile = KernelProfile.begin(.elementwise); defer { KernelProfile.end(profile) }
        forEachSlice(count) { start, length in
            let o = target + start, x = source + start
            let vectorCount = length / FloatVector.scalarCount
            for v in 0..<vectorCount {
                let i = v * FloatVector.scalarCount
                storeVector(loadVector(o + i) + loadVector(x + i), o + i)
            }
            for i in (vectorCount * FloatVector.scalarCount)..<length { o[i] += x[i] }
        }
    }

    /// `output[i] = factor · input[i]` for `i` in `0..<count`.
    public static func scale(output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
                             by factor: Float, count: Int) {
        let profile = KernelProfile.begin(.elementwise); defer { KernelProfile.end(profile) }
        let f = FloatVector(repeating: factor)
        forEachSlice(count) { start, length in
            let o = output + start, x = input + start
            let vectorCount = length / FloatVector.scalarCount
            for v in 0..<vectorCount {
                let i = v * FloatVector.scalarCount
                storeVector(loadVector(x + i) * f, o + i)
            }
            for i in (vectorCount * FloatVector.scalarCount)..<length { o[i] = factor * x[i] }
        }
    }

    /// `target[i] += factor · source[i]` for `i` in `0..<count` (BLAS axpy), one fused multiply-add per
    /// element, so the result can differ from a separate multiply and add in the last bit.
    public static func addScaled(into target: UnsafeMutablePointer<Float>, from source: UnsafePointer<Float>,
                                 scale factor: Float, count: Int) {
        let profile = KernelProfile.begin(.elementwise); defer { KernelProfile.end(profile) }
        let f = FloatVector(repeating: factor)
        forEachSlice(count) { start, length in
            let o = target + start, x = source + start
            let vectorCount = length / FloatVector.scalarCount
            for v in 0..<vectorCount {
                let i = v * FloatVector.scalarCount
                storeVector(loadVector(o + i).addingProduct(loadVector(x + i), f), o + i)
            }
            for i in (vectorCount * FloatVector.scalarCount)..<length { o[i] = o[i].addingProduct(x[i], factor) }
        }
    }

    /// `Σ_i input[i]` over `0..<count`.
    ///
    /// ```
    /// sum = Σ_blocks Double( Σ_{i ∈ block} input[i] )     blocks of 4096, Float inside a block
    /// ```
    /// Four vector accumulators (Swift never reassociates float `+`, so one accumulator would serialise
    /// on the add latency); block totals are added in Double. Single-threaded, so the result is
    /// bitwise reproducible for a given input. Returns 0 for `count == 0`.
    public static func sum(_ input: UnsafePointer<Float>, count: Int) -> Float {
        let profile = KernelProfile.begin(.elementwise); defer { KernelProfile.end(profile) }
        return Float(blockedSum(input, count: count))
    }

    /// `output[i] = input[i]` for `i` in `0..<count` (`memcpy` semantics: no overlap).
    public static func copy(output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, count: Int) {
        let profile = KernelProfile.begin(.elementwise); defer { KernelProfile.end(profile) }
        if count <= 0 || UnsafePointer(output) == input { return }
        output.update(from: input, count: count)
    }

    // MARK: - Helpers

    /// Calls `body(start, length)` once for the whole range, or once per worker slice for large counts.
    @inline(__always)
    static func forEachSlice(_ count: Int, _ body: (_ start: Int, _ length: Int) -> Void) {
        if count <= 0 { return }
        if count < parallelThreshold {
            body(0, count)
            return
        }
        Parallel.forEachChunk(count: count, minimumChunk: parallelMinimumChunk) { range, _ in
            body(range.lowerBound, range.count)
        }
    }
}

// MARK: - Internal reductions shared with other kernels

/// `Σ input[0..<count]` in blocks: Float with four vector accumulators inside a block of
/// `Elementwise.sumBlockLength`, Double across blocks.
@inline(__always)
func blockedSum(_ input: UnsafePointer<Float>, count: Int) -> Double {
    var total = 0.0
    var start = 0
    while start < count {
        let length = min(Elementwise.sumBlockLength, count - start)
        total += floatBlockSum(input + start, count: length)
        start += length
    }
    return total
}

/// Sum of one block with four independent vector accumulators (hides the 3–4 cycle add latency),
/// lanes reduced in Double.
@inline(__always)
func floatBlockSum(_ x: UnsafePointer<Float>, count: Int) -> Double {
    let width = FloatVector.scalarCount
    var a0 = FloatVector(), a1 = FloatVector(), a2 = FloatVector(), a3 = FloatVector()
    let unrolledCount = count / (4 * width)
    for u in 0..<unrolledCount {
        let i = u * 4 * width
        a0 += loadVector(x + i)
        a1 += loadVector(x + i + width)
        a2 += loadVector(x + i + 2 * width)
        a3 += loadVector(x + i + 3 * width)
    }
    var i = unrolledCount * 4 * width
    while i + width <= count {
        a0 += loadVector(x + i)
        i += width
    }
    let combined = (a0 + a1) + (a2 + a3)
    var total = 0.0
    for lane in 0..<width { total += Double(combined[lane]) }
    while i < count {
        total += Double(x[i])
        i += 1
    }
    return total
}
