// Conv2D.swift: the geometry of a 2-D convolution on NCHW float32 tensors, and its GEMM path — forward,
// backward to the input and backward to the weights as im2col / col2im packing (SIMD Swift) around
// single-threaded BLAS.gemm calls, parallel over contiguous batch chunks (one per worker, Parallel.swift).
// Not here: the public entry points and the choice of path (Conv2D+Dispatch.swift), the direct SIMD
// kernels (Conv2D+Direct.swift), the naive twins (Conv2D+Reference.swift), dilation, groups, layer state.

import Foundation

// MARK: - Geometry

/// The shape of one 2-D convolution: input `[N, C, H, W]`, weight `[K, C, R, S]`, output `[N, K, P, Q]`
/// with
/// ```
/// P = (H + 2·padH − R) / strideH + 1,   Q = (W + 2·padW − S) / strideW + 1   (floor division)
/// ```
/// Dimension letters follow Vector.swift (N batch, C/K in/out channels, H/W input, P/Q output, R/S kernel).
public struct ConvGeometry: Hashable, Sendable, CustomStringConvertible {
    public var n, c, h, w, k, r, s, strideH, strideW, padH, padW: Int

    public init(n: Int, c: Int, h: Int, w: Int, k: Int, r: Int, s: Int,
                strideH: Int, strideW: Int, padH: Int, padW: Int) {
        self.n = n; self.c = c; self.h = h; self.w = w; self.k = k; self.r = r; self.s = s
        self.strideH = strideH; self.strideW = strideW; self.padH = padH; self.padW = padW
    }

    /// A square kernel (`R = S = kernel`) with the same stride and padding in both directions.
    public init(n: Int, c: Int, h: Int, w: Int, k: Int, kernel: Int, stride: Int = 1, padding: Int = 0) {
        self.init(n: n, c: c, h: h, w: w, k: k, r: kernel, s: kernel,
                  strideH: stride, strideW: stride, padH: padding, padW: padding)
    }

    /// Output height; 0 when the padded input is shorter than the kernel.
    public var p: Int { strideH > 0 && h + 2 * padH >= r ? (h + 2 * padH - r) / strideH + 1 : 0 }

    /// Output width; 0 when the padded input is narrower than the kernel.
    public var q: Int { strideW > 0 && w + 2 * padW >= s ? (w + 2 * padW - s) / strideW + 1 : 0 }

    /// Multiply-accumulates of one forward pass, `N·K·P·Q·C·R·S` (each backward pass costs the same).
    public var forwardMACs: Int { n * k * p * q * c * r * s }

    /// Whether the kernels accept this geometry: `N ≥ 0`, every other size and stride `≥ 1`,
    /// padding `≥ 0`, and a non-empty output (`P, Q ≥ 1`).
    public var isValid: Bool {
        n >= 0 && c >= 1 && h >= 1 && w >= 1 && k >= 1 && r >= 1 && s >= 1
            && strideH >= 1 && strideW >= 1 && padH >= 0 && padW >= 0 && p >= 1 && q >= 1
    }

    public var description: String {
        let kernel = r == s ? "\(r)×\(r)" : "\(r)×\(s)"
        let stride = strideH == strideW ? "s\(strideH)" : "s\(strideH)×\(strideW)"
        let pad = padH == padW ? "p\(padH)" : "p\(padH)×\(padW)"
        return "N\(n) \(c)×\(h)×\(w) → \(k)×\(p)×\(q) (\(kernel) \(stride) \(pad))"
    }
}

// MARK: - Kernels

/// 2-D convolution kernels (NCHW, float32, row-major) built on im2col + `BLAS.gemm`.
///
/// Work is split into one contiguous chunk of the batch per worker (`Parallel.forEachChunk`), each
/// worker with its own scratch buffers (taken from `ScratchCache` once per call); BLAS runs on one
/// thread (systems.md §4). Within a chunk, images are processed in groups of `G` so that every GEMM
/// has at least `minimumGemmColumns` columns (`G·P·Q`): layer4 of ResNet-18 has `P·Q = 16`, and its
/// per-image forward ran at 51 GF/s against 71 GF/s grouped to 256 columns (1 thread, this machine).
///
/// Results are deterministic for a fixed worker count (chunk boundaries and reduction order depend
/// only on `N` and `Parallel.workerCount`). They are not bitwise equal across worker counts.
public enum Conv2D {
    /// The GEMM N dimension (`G·P·Q`) that image grouping aims for. Per-image GEMMs narrower than this
    /// lose 20–40% of BLAS throughput; 512 and 1024 measured 2–8% slower than 256 on layer3/layer4
    /// (batch 128, 2 workers) and need more scratch.
    static let minimumGemmColumns = 256

    /// Spare floats at the end of every column-matrix row: im2col writes whole vectors, so a row of
    /// `Q` outputs may spill up to one vector minus one float past its end (see `im2col`).
    static let columnRowSlack = FloatVector.scalarCount

    /// The im2col + BLAS forward pass (the public entry point is in Conv2D+Dispatch.swift).
    ///
    /// ```
    /// output[n, k, p, q] = bias[k] + Σ_{c, r, s} weight[k, c, r, s] · input[n, c, p·strideH − padH + r, q·strideW − padW + s]
    /// ```
    /// where input pixels outside `[0, H) × [0, W)` are zero.
    ///
    /// - Parameters:
    ///   - output: `[N, K, P, Q]`, overwritten.
    ///   - input: `[N, C, H, W]`.
    ///   - weight: `[K, C, R, S]`.
    ///   - bias: `[K]`, or `nil` for no bias.
    ///   - g: the geometry; must be `isValid`.
    /// - Complexity: `forwardMACs` multiply-adds, plus im2col traffic of `C·R·S·P·Q` floats per image
    ///   (skipped for a 1×1, stride-1, unpadded conv whose images fill a GEMM on their own).
    static func gemmForward(output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
                            weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                            geometry g: ConvGeometry) {
        precondition(g.isValid, "Conv2D.forward: invalid geometry \(g)")
        if g.n == 0 { return }
        let pq = g.p * g.q, crs = g.c * g.r * g.s, chw = g.c * g.h * g.w, kpq = g.k * pq

        Parallel.forEachChunk(count: g.n) { range, _ in
            let groupSize = imagesPerGroup(g, chunkLength: range.count)
            // A pointwise conv's image [C, H·W] already is its column matrix [C·R·S, P·Q].
            let usesImageAsColumns = groupSize == 1 && isPointwise(g)
            // [C·R·S, G·P·Q] with `columnRowSlack` spare floats per row for im2col's rounded-up vector stores.
            let columns = usesImageAsColumns ? nil : allocateScratch(crs * (groupSize * pq + columnRowSlack))
            let staging = groupSize > 1 ? allocateScratch(g.k * groupSize * pq) : nil      // [K, G·P·Q]
            let padded = PaddedImage(g, zeroed: true)                                        // [C, H+2padH, W+2padW]
            defer { releaseScratch(columns); releaseScratch(staging); padded.release() }

            var first = range.lowerBound
            while first < range.upperBound {
                let count = min(groupSize, range.upperBound - first)
                let width = count * pq  // GEMM N
                let b: UnsafePointer<Float>, ldb: Int
                if let columns {
                    ldb = width + columnRowSlack
                    for i in 0..<count {
                        let (source, end) = padded.source(for: input + (first + i) * chw)
                        im2col(source, readableEnd: end, into: columns + i * pq, rowStride: ldb, g)
                    }
                    b = UnsafePointer(columns)
                } else {
                    (b, ldb) = (input + first * chw, width)
                }
                if count == 1 {
                    // One image: its output slab [K, P·Q] is the GEMM result, no staging.
                    let out = output + first * kpq
                    BLAS.gemm(m: g.k, n: pq, k: crs, a: weight, lda: crs, b: b, ldb: ldb, c: out, ldc: pq)
                    if let bias {
                        for kk in 0..<g.k { addScalarRun(out + kk * pq, bias[kk], pq) }
                    }
                } else {
                    let staging = staging!
                    BLAS.gemm(m: g.k, n: width, k: crs, a: weight, lda: crs, b: b, ldb: ldb,
                              c: staging, ldc: width)
                    // Scatter [K, G·P·Q] → G slabs [K, P·Q] of NCHW, adding the bias on the way.
                    for i in 0..<count {
                        let out = output + (first + i) * kpq
                        for kk in 0..<g.k {
                            copyAddingScalar(out + kk * pq, staging + kk * width + i * pq, bias?[kk] ?? 0, pq)
                        }
                    }
                }
                first += count
            }
        }
    }

    /// The col2im + BLAS backward pass to the input (a transposed convolution of `dOutput`).
    ///
    /// ```
    /// dInput[n, c, h, w] = Σ_{k, p, q, r, s : p·strideH − padH + r = h, q·strideW − padW + s = w}
    ///                        weight[k, c, r, s] · dOutput[n, k, p, q]
    /// ```
    /// computed as `dColumns = weightᵀ · dOutput` (`[C·R·S, G·P·Q]`) followed by col2im.
    ///
    /// - Parameters:
    ///   - dInput: `[N, C, H, W]`, overwritten (input gradients are not accumulated).
    ///   - dOutput: `[N, K, P, Q]`.
    ///   - weight: `[K, C, R, S]`.
    ///   - g: the geometry; must be `isValid`.
    /// - Complexity: `forwardMACs` multiply-adds plus col2im traffic.
    static func gemmBackwardInput(dInput: UnsafeMutablePointer<Float>, dOutput: UnsafePointer<Float>,
                                  weight: UnsafePointer<Float>, geometry g: ConvGeometry) {
        precondition(g.isValid, "Conv2D.backwardInput: invalid geometry \(g)")
        if g.n == 0 { return }
        let pq = g.p * g.q, crs = g.c * g.r * g.s, chw = g.c * g.h * g.w, kpq = g.k * pq

        Parallel.forEachChunk(count: g.n) { range, _ in
            let groupSize = imagesPerGroup(g, chunkLength: range.count)
            let writesImageDirectly = groupSize == 1 && isPointwise(g)
            let dColumns = writesImageDirectly ? nil : allocateScratch(crs * groupSize * pq)  // [C·R·S, G·P·Q]
            let gathered = groupSize > 1 ? allocateScratch(g.k * groupSize * pq) : nil         // [K, G·P·Q]
            let padded = PaddedImage(g, zeroed: false)  // [C, H+2padH, W+2padW], zeroed per image below
            defer { releaseScratch(dColumns); releaseScratch(gathered); padded.release() }

            var first = range.lowerBound
            while first < range.upperBound {
                let count = min(groupSize, range.upperBound - first)
                let width = count * pq
                // The GEMM's B operand: dOutput of the group as one [K, G·P·Q] matrix.
                let b: UnsafePointer<Float>
                if count == 1 {
                    b = dOutput + first * kpq
                } else {
                    let gathered = gathered!
                    for i in 0..<count {
                        let slab = dOutput + (first + i) * kpq
                        for kk in 0..<g.k { copyRun(gathered + kk * width + i * pq, slab + kk * pq, pq) }
                    }
                    b = UnsafePointer(gathered)
                }
                if let dColumns {
                    BLAS.gemm(transposeA: .transposed, m: crs, n: width, k: g.k, a: weight, lda: crs,
                              b: b, ldb: width, c: dColumns, ldc: width)
                    for i in 0..<count {
                        // col2im adds into a zeroed zero-bordered image; the border (padding) is then dropped.
                        let image = dInput + (first + i) * chw
                        let target = padded.target(for: image)
                        target.update(repeating: 0, count: padded.count)
                        col2imAdd(UnsafePointer(dColumns + i * pq), rowStride: width, into: target, g)
                        padded.cropIfPadded(into: image)
                    }
                } else {
                    // Pointwise, one image: dInput[n] as [C, H·W] is the GEMM result itself.
                    BLAS.gemm(transposeA: .transposed, m: crs, n: pq, k: g.k, a: weight, lda: crs,
                              b: b, ldb: pq, c: dInput + first * chw, ldc: pq)
                }
                first += count
            }
        }
    }

    /// The im2col + BLAS backward pass to the weights and bias, **accumulated** into `dWeight` / `dBias`.
    ///
    /// ```
    /// dWeight[k, c, r, s] += Σ_{n, p, q} dOutput[n, k, p, q] · input[n, c, p·strideH − padH + r, q·strideW − padW + s]
    /// dBias[k]            += Σ_{n, p, q} dOutput[n, k, p, q]
    /// ```
    /// Each worker sums `dOutput_n [K, P·Q] · columns_nᵀ [P·Q, C·R·S]` over its images into a private
    /// partial; the partials are then added into `dWeight` in worker order, so the result is
    /// deterministic for a fixed worker count.
    ///
    /// - Parameters:
    ///   - dWeight: `[K, C, R, S]`, accumulated into (`+=`): parameter gradients accumulate across passes.
    ///   - dBias: `[K]`, accumulated into, or `nil` to skip the bias gradient.
    ///   - dOutput: `[N, K, P, Q]`.
    ///   - input: `[N, C, H, W]`, the forward input.
    ///   - g: the geometry; must be `isValid`.
    /// - Complexity: `forwardMACs` multiply-adds plus im2col traffic and a `workers·K·C·R·S` reduction.
    static func gemmBackwardWeight(dWeight: UnsafeMutablePointer<Float>, dBias: UnsafeMutablePointer<Float>?,
                                   dOutput: UnsafePointer<Float>, input: UnsafePointer<Float>,
                                   geometry g: ConvGeometry) {
        precondition(g.isValid, "Conv2D.backwardWeight: invalid geometry \(g)")
        if g.n == 0 { return }
        let pq = g.p * g.q, crs = g.c * g.r * g.s, chw = g.c * g.h * g.w, kpq = g.k * pq
        let kcrs = g.k * crs
        let chunks = Parallel.chunkCount(count: g.n)
        let partialWeights = allocateScratch(chunks * kcrs)                  // [chunks, K, C·R·S]
        let partialBiases = dBias == nil ? nil : allocateScratch(chunks * g.k)  // [chunks, K]
        defer { releaseScratch(partialWeights); releaseScratch(partialBiases) }

        Parallel.forEachChunk(count: g.n) { range, worker in
            let groupSize = imagesPerGroup(g, chunkLength: range.count)
            let usesImageAsColumns = groupSize == 1 && isPointwise(g)
            // [C·R·S, G·P·Q] with `columnRowSlack` spare floats per row for im2col's rounded-up vector stores.
            let columns = usesImageAsColumns ? nil : allocateScratch(crs * (groupSize * pq + columnRowSlack))
            let gathered = groupSize > 1 ? allocateScratch(g.k * groupSize * pq) : nil      // [K, G·P·Q]
            let padded = PaddedImage(g, zeroed: true)                                        // [C, H+2padH, W+2padW]
            defer { releaseScratch(columns); releaseScratch(gathered); padded.release() }
            let partial = partialWeights + worker * kcrs

            var first = range.lowerBound
            while first < range.upperBound {
                let count = min(groupSize, range.upperBound - first)
                let width = count * pq  // the GEMM's reduction length
                let a: UnsafePointer<Float>
                if count == 1 {
                    a = dOutput + first * kpq
                } else {
                    let gathered = gathered!
                    for i in 0..<count {
                        let slab = dOutput + (first + i) * kpq
                        for kk in 0..<g.k { copyRun(gathered + kk * width + i * pq, slab + kk * pq, pq) }
                    }
                    a = UnsafePointer(gathered)
                }
                let b: UnsafePointer<Float>, ldb: Int
                if let columns {
                    ldb = width + columnRowSlack
                    for i in 0..<count {
                        let (source, end) = padded.source(for: input + (first + i) * chw)
                        im2col(source, readableEnd: end, into: columns + i * pq, rowStride: ldb, g)
                    }
                    b = UnsafePointer(columns)
                } else {
                    (b, ldb) = (input + first * chw, width)
                }
                // The first group overwrites the partial (beta 0), so it needs no zeroing.
                BLAS.gemm(transposeB: .transposed, m: g.k, n: crs, k: width, a: a, lda: width,
                          b: b, ldb: ldb, beta: first == range.lowerBound ? 0 : 1, c: partial, ldc: crs)
                first += count
            }

            if let partialBiases {
                let partialBias = partialBiases + worker * g.k
                partialBias.update(repeating: 0, count: g.k)
                for image in range {
                    let slab = dOutput + image * kpq
                    for kk in 0..<g.k { partialBias[kk] += sumRun(slab + kk * pq, pq) }
                }
            }
        }

        // Deterministic reduction: partials are added in worker order.
        for worker in 0..<chunks {
            addRun(dWeight, UnsafePointer(partialWeights + worker * kcrs), kcrs)
            if let dBias, let partialBiases {
                addRun(dBias, UnsafePointer(partialBiases + worker * g.k), g.k)
            }
        }
    }
}

// MARK: - Planning and packing

extension Conv2D {
    /// Images per GEMM within a chunk: enough for `G·P·Q ≥ minimumGemmColumns`, at most the chunk.
    @inline(__always)
    static func imagesPerGroup(_ g: ConvGeometry, chunkLength: Int) -> Int {
        let pq = g.p * g.q
        let wanted = (minimumGemmColumns + pq - 1) / pq
        return max(1, min(wanted, chunkLength))
    }

    /// A 1×1, stride-1, unpadded conv: the input image `[C, H·W]` is its own column matrix.
    @inline(__always)
    static func isPointwise(_ g: ConvGeometry) -> Bool {
        g.r == 1 && g.s == 1 && g.strideH == 1 && g.strideW == 1 && g.padH == 0 && g.padW == 0
    }

    /// Scratch memory for one worker, from the process-wide cache (see `ScratchCache`).
    @inline(__always)
    static func allocateScratch(_ count: Int) -> UnsafeMutablePointer<Float> {
        ScratchCache.shared.take(count)
    }

    @inline(__always)
    static func releaseScratch(_ buffer: UnsafeMutablePointer<Float>?) {
        if let buffer { ScratchCache.shared.give(buffer) }
    }

    /// A per-worker image with an explicit zero border: `[C, H + 2·padH, W + 2·padW]`, plus slack so
    /// that vector loads may run a few floats past the last row. im2col and col2im then address every
    /// tap as `plane[(p·strideH + r)·(W + 2·padW) + q·strideW + s]` with no bounds tests, and stride-1
    /// rows become whole-row vector copies. Unpadded geometries use the image itself (no buffer).
    struct PaddedImage {
        let g: ConvGeometry
        /// Floats in the bordered image `[C, H + 2·padH, W + 2·padW]` (without the slack).
        let count: Int
        let buffer: UnsafeMutablePointer<Float>?
        /// Extra floats after the image: im2col's rounded-up stride-2 gather reads up to 15 past a row.
        static let slack = 2 * FloatVector.scalarCount

        init(_ g: ConvGeometry, zeroed: Bool) {
            self.g = g
            count = g.c * (g.h + 2 * g.padH) * (g.w + 2 * g.padW)
            if g.padH == 0 && g.padW == 0 {
                buffer = nil
            } else {
                let buffer = allocateScratch(count + Self.slack)
                // The border is never written after this, so one zeroing per call serves every image.
                if zeroed { buffer.update(repeating: 0, count: count + Self.slack) }
                self.buffer = buffer
            }
        }

        func release() { releaseScratch(buffer) }

        /// The bordered form of `image [C, H, W]` for im2col — the image itself when unpadded, else a copy
        /// of its interior into the (already zero-bordered) buffer — and the end of what may be read.
        func source(for image: UnsafePointer<Float>) -> (UnsafePointer<Float>, readableEnd: UnsafePointer<Float>) {
            guard let buffer else { return (image, image + count) }
            let wp = g.w + 2 * g.padW, hp = g.h + 2 * g.padH
            for c in 0..<g.c {
                for ih in 0..<g.h {
                    copyRun(buffer + (c * hp + ih + g.padH) * wp + g.padW, image + (c * g.h + ih) * g.w, g.w)
                }
            }
            return (UnsafePointer(buffer), UnsafePointer(buffer + count + Self.slack))
        }

        /// Where col2im accumulates `image`'s gradient: the image itself when unpadded, else the buffer.
        func target(for image: UnsafeMutablePointer<Float>) -> UnsafeMutablePointer<Float> {
            buffer ?? image
        }

        /// Copies the buffer's interior into `image [C, H, W]` (no-op when unpadded: col2im wrote `image`).
        func cropIfPadded(into image: UnsafeMutablePointer<Float>) {
            guard let buffer else { return }
            let wp = g.w + 2 * g.padW, hp = g.h + 2 * g.padH
            for c in 0..<g.c {
                for ih in 0..<g.h {
                    copyRun(image + (c * g.h + ih) * g.w, buffer + (c * hp + ih + g.padH) * wp + g.padW, g.w)
                }
            }
        }
    }

    /// im2col of one image: writes the bordered image `source [C, H + 2·padH, W + 2·padW]` as the column
    /// block `[C·R·S, P·Q]` at `columns`, whose rows are `rowStride` floats apart (the group's width).
    /// Vector reads stop before `readableEnd` (the bordered buffer has slack; an unpadded image has none).
    ///
    /// Row `(c·R + r)·S + s`, column `p·Q + q` holds `source[c, p·strideH + r, q·strideW + s]`.
    /// Loop order c → r → s → p keeps one bordered plane (≤ a few KiB) in L1 while its R·S rows are
    /// written; each output row is one contiguous (stride 1) or every-other (stride 2) read.
    ///
    /// Output rows are written as whole vectors (no scalar tails, which dominated for Q = 4 and 26), so
    /// each may spill up to 7 floats past its `Q`. Rows are written in increasing p, and images in
    /// increasing column order, so a spill always lands on floats written later — except after the
    /// group's last image, where it lands in the row's `columnRowSlack`.
    private static func im2col(_ source: UnsafePointer<Float>, readableEnd end: UnsafePointer<Float>,
                               into columns: UnsafeMutablePointer<Float>, rowStride: Int, _ g: ConvGeometry) {
        let p = g.p, q = g.q, strideW = g.strideW
        let wp = g.w + 2 * g.padW, planeSize = (g.h + 2 * g.padH) * wp
        let sourceRowStep = g.strideH * wp  // source floats between consecutive output rows
        var row = columns
        for c in 0..<g.c {
            for r in 0..<g.r {
                for s in 0..<g.s {
                    var src = source + c * planeSize + r * wp + s  // tap (r, s) of output pixel (0, 0)
                    var dst = row
                    switch strideW {
                    case 1:
                        for _ in 0..<p {
                            copyRunRoundedUp(dst, src, q, readableEnd: end)
                            src += sourceRowStep; dst += q
                        }
                    case 2:
                        for _ in 0..<p {
                            gatherEveryOtherRoundedUp(dst, src, q, readableEnd: end)
                            src += sourceRowStep; dst += q
                        }
                    default:
                        for _ in 0..<p {
                            for j in 0..<q { dst[j] = src[j * strideW] }
                            src += sourceRowStep; dst += q
                        }
                    }
                    row += rowStride
                }
            }
        }
    }

    /// col2im of one image, accumulating into the zeroed bordered image `target [C, H + 2·padH, W + 2·padW]`:
    /// `target[c, p·strideH + r, q·strideW + s] += columns[(c·R + r)·S + s, p·Q + q]`.
    /// Loop order c → r → s → p keeps one bordered plane in L1 while its R·S rows are added into it.
    /// (Masked whole-vector adds for short rows, as im2col does for copies, measured no faster.)
    private static func col2imAdd(_ columns: UnsafePointer<Float>, rowStride: Int,
                                  into target: UnsafeMutablePointer<Float>, _ g: ConvGeometry) {
        let p = g.p, q = g.q, strideW = g.strideW
        let wp = g.w + 2 * g.padW, planeSize = (g.h + 2 * g.padH) * wp
        let targetRowStep = g.strideH * wp
        let end = UnsafePointer(target + g.c * planeSize)  // vector read-modify-writes stay before this
        var row = columns
        for c in 0..<g.c {
            for r in 0..<g.r {
                for s in 0..<g.s {
                    var dst = target + c * planeSize + r * wp + s  // tap (r, s) of output pixel (0, 0)
                    var src = row
                    switch strideW {
                    case 1:
                        for _ in 0..<p { addRun(dst, src, q); dst += targetRowStep; src += q }
                    case 2:
                        for _ in 0..<p {
                            scatterAddEveryOther(dst, src, q, writableEnd: end)
                            dst += targetRowStep; src += q
                        }
                    default:
                        for _ in 0..<p {
                            for j in 0..<q { dst[j * strideW] += src[j] }
                            dst += targetRowStep; src += q
                        }
                    }
                    row += rowStride
                }
            }
        }
    }
}

// MARK: - Scratch cache

extension Conv2D {
    /// Reusable float buffers for the conv kernels' per-worker scratch (column matrices, staging, partial
    /// gradients). Allocating them fresh on every call costs a page fault per 4 KiB — several MB per call
    /// at ResNet-18 shapes, 2–5% of a kernel's time — so released buffers are kept and handed out again.
    ///
    /// `take` returns the smallest cached buffer that is large enough (contents undefined), else a new
    /// one; `give` returns it. At most `maximumRetained` buffers are kept (the largest ones), so the cache
    /// holds at most 16 × the largest request seen (≈ 50 MB after a ResNet-18 pass at batch 128).
    /// Thread-safe (one lock); shared by concurrent and nested kernel calls.
    final class ScratchCache: @unchecked Sendable {
        static let shared = ScratchCache()

        /// Enough for the buffers of every worker of one kernel call, with room for a second shape.
        static let maximumRetained = 16

        private let lock = NSLock()
        private var capacities: [UnsafeMutablePointer<Float>: Int] = [:]  // every buffer handed out or cached
        private var cached: [UnsafeMutablePointer<Float>] = []            // buffers free for reuse

        /// A buffer of at least `count` floats (contents undefined); hand it back with `give`.
        func take(_ count: Int) -> UnsafeMutablePointer<Float> {
            let count = max(count, 1)
            lock.lock()
            let fitting = cached.indices.filter { capacities[cached[$0]]! >= count }
            if let best = fitting.min(by: { capacities[cached[$0]]! < capacities[cached[$1]]! }) {
                let buffer = cached.remove(at: best)
                lock.unlock()
                return buffer
            }
            lock.unlock()
            let buffer = UnsafeMutablePointer<Float>.allocate(capacity: count)
            lock.lock()
            capacities[buffer] = count
            lock.unlock()
            return buffer
        }

        /// Returns a buffer obtained from `take` to the cache.
        func give(_ buffer: UnsafeMutablePointer<Float>) {
            lock.lock()
            cached.append(buffer)
            var evicted: UnsafeMutablePointer<Float>? = nil
            if cached.count > Self.maximumRetained {
                // Drop the smallest: large buffers are the expensive ones to fault in again.
                let smallest = cached.indices.min { capacities[cached[$0]]! < capacities[cached[$1]]! }!
                evicted = cached.remove(at: smallest)
                capacities[evicted!] = nil
            }
            lock.unlock()
            evicted?.deallocate()
        }
    }
}

// MARK: - Vector helpers (FloatVector main loop + scalar tail)

extension Conv2D {
    /// `dst[i] = src[i]` for `i < count`.
    @inline(__always)
    static func copyRun(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, _ count: Int) {
        let width = FloatVector.scalarCount
        let vectorEnd = (count / width) * width
        var i = 0
        while i < vectorEnd {
            storeVector(loadVector(src + i), dst + i)
            i += width
        }
        while i < count { dst[i] = src[i]; i += 1 }
    }

    /// `dst[i] = src[i]` for `i < count`, in whole vectors: writes (and reads) up to the next multiple
    /// of the vector width. Falls back to `copyRun` when the over-read would pass `readableEnd`.
    @inline(__always)
    private static func copyRunRoundedUp(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>,
                                         _ count: Int, readableEnd: UnsafePointer<Float>) {
        let width = FloatVector.scalarCount
        let roundedUp = (count + width - 1) / width * width
        guard src + roundedUp <= readableEnd else { return copyRun(dst, src, count) }
        var i = 0
        while i < roundedUp {
            storeVector(loadVector(src + i), dst + i)
            i += width
        }
    }

    /// `dst[j] = src[2·j]` for `j < count`, in whole vectors like `copyRunRoundedUp` (reads twice as far).
    @inline(__always)
    private static func gatherEveryOtherRoundedUp(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>,
                                                  _ count: Int, readableEnd: UnsafePointer<Float>) {
        let width = FloatVector.scalarCount
        let roundedUp = (count + width - 1) / width * width
        guard src + 2 * roundedUp <= readableEnd else {
            return gatherEveryOther(dst, src, count, readableEnd: readableEnd)
        }
        var j = 0
        while j < roundedUp {
            let low = loadVector(src + 2 * j), high = loadVector(src + 2 * j + width)
            storeVector(FloatVector(lowHalf: low.evenHalf, highHalf: high.evenHalf), dst + j)
            j += width
        }
    }

    /// `dst[i] += src[i]` for `i < count`.
    @inline(__always)
    private static func addRun(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, _ count: Int) {
        let width = FloatVector.scalarCount
        let vectorEnd = (count / width) * width
        var i = 0
        while i < vectorEnd {
            storeVector(loadVector(dst + i) + loadVector(src + i), dst + i)
            i += width
        }
        while i < count { dst[i] += src[i]; i += 1 }
    }

    /// `dst[i] += value` for `i < count` (the bias add).
    @inline(__always)
    private static func addScalarRun(_ dst: UnsafeMutablePointer<Float>, _ value: Float, _ count: Int) {
        if value == 0 { return }
        let width = FloatVector.scalarCount
        let vectorEnd = (count / width) * width
        let splat = FloatVector(repeating: value)
        var i = 0
        while i < vectorEnd {
            storeVector(loadVector(dst + i) + splat, dst + i)
            i += width
        }
        while i < count { dst[i] += value; i += 1 }
    }

    /// `dst[i] = src[i] + value` for `i < count` (scatter of a staged GEMM row plus the bias).
    @inline(__always)
    private static func copyAddingScalar(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>,
                                         _ value: Float, _ count: Int) {
        let width = FloatVector.scalarCount
        let vectorEnd = (count / width) * width
        let splat = FloatVector(repeating: value)
        var i = 0
        while i < vectorEnd {
            storeVector(loadVector(src + i) + splat, dst + i)
            i += width
        }
        while i < count { dst[i] = src[i] + value; i += 1 }
    }

    /// `dst[j] = src[2·j]` for `j < count`: two vector loads, keep the even lanes. Vector reads stop
    /// before `readableEnd`; the rest is scalar.
    @inline(__always)
    private static func gatherEveryOther(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>,
                                         _ count: Int, readableEnd: UnsafePointer<Float>) {
        let width = FloatVector.scalarCount
        var j = 0
        while j + width <= count && src + 2 * j + 2 * width <= readableEnd {
            let low = loadVector(src + 2 * j), high = loadVector(src + 2 * j + width)
            storeVector(FloatVector(lowHalf: low.evenHalf, highHalf: high.evenHalf), dst + j)
            j += width
        }
        while j < count { dst[j] = src[2 * j]; j += 1 }
    }

    /// `dst[2·j] += src[j]` for `j < count`: read-modify-write of two vectors, adding into the even
    /// lanes (odd lanes are stored back unchanged). Vector access stops before `writableEnd`.
    @inline(__always)
    private static func scatterAddEveryOther(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>,
                                             _ count: Int, writableEnd: UnsafePointer<Float>) {
        let width = FloatVector.scalarCount
        var j = 0
        while j + width <= count && UnsafePointer(dst + 2 * j + 2 * width) <= writableEnd {
            var low = loadVector(dst + 2 * j), high = loadVector(dst + 2 * j + width)
            let values = loadVector(src + j)
            low.evenHalf += values.lowHalf
            high.evenHalf += values.highHalf
            storeVector(low, dst + 2 * j)
            storeVector(high, dst + 2 * j + width)
            j += width
        }
        while j < count { dst[2 * j] += src[j]; j += 1 }
    }

    /// `Σ src[i]` for `i < count`. Four independent vector accumulators: Swift never reassociates a
    /// float `+`, so one accumulator would serialise on the add latency (3–4 cycles on Zen).
    @inline(__always)
    private static func sumRun(_ src: UnsafePointer<Float>, _ count: Int) -> Float {
        let width = FloatVector.scalarCount
        let blockEnd = (count / (4 * width)) * (4 * width)
        var acc0 = FloatVector(), acc1 = FloatVector(), acc2 = FloatVector(), acc3 = FloatVector()
        var i = 0
        while i < blockEnd {
            acc0 += loadVector(src + i)
            acc1 += loadVector(src + i + width)
            acc2 += loadVector(src + i + 2 * width)
            acc3 += loadVector(src + i + 3 * width)
            i += 4 * width
        }
        while i + width <= count {
            acc0 += loadVector(src + i)
            i += width
        }
        let pairs0 = acc0 + acc1
        let pairs1 = acc2 + acc3
        var total = (pairs0 + pairs1).sum()
        while i < count { total += src[i]; i += 1 }
        return total
    }
}
