// Conv2D+Direct.swift: direct (implicit-GEMM) convolution in Swift SIMD, with no im2col matrix, no
// col2im and no zeroing pass: a register-blocked micro-kernel of 6 output pixels × 16 output channels
// (12 FloatVector accumulators) reads the zero-bordered input through a per-pixel offset table and
// channel-blocked packed weights, and applies the fused epilogue (Conv2D+Epilogue.swift) before the
// store. Forward for every stride and padding; backward-input of stride-1 convolutions as the forward of
// the flipped, transposed weights; backward-weight as 16 channels × 6 taps reduced over pixels. Which
// path runs for a shape is decided in Conv2D+Dispatch.swift.
// Not here: the im2col + BLAS path (Conv2D.swift), the naive twins (Conv2D+Reference.swift).

import Foundation

extension Conv2D {
    /// Output channels per micro-kernel tile: two wide vectors (32 with AVX-512, else 16).
    static let directChannelTile = 2 * WideVector.scalarCount
    /// Output pixels per micro-kernel tile (6 × 2 accumulators + 2 weight vectors + 1 broadcast ≤ 16 ymm).
    static let directPixelTile = 6

    /// Direct forward pass (same contract as `forward(output:input:weight:epilogue:geometry:)`).
    ///
    /// Layout of the work, per image `n` (images split into one contiguous chunk per worker):
    /// - the image is copied into a zero-bordered buffer `[C, H + 2·padH, W + 2·padW]` (border zeroed
    ///   once per call);
    /// - the weights are packed once per call as `[⌈K/16⌉, C·R·S, 16]`, zero-padded past `K`, so that
    ///   tap `t = (c·R + r)·S + s` of a channel block is two contiguous vectors;
    /// - each tile of 6 consecutive output pixels (flat index `j = p·Q + q`) × 16 channels accumulates
    ///   `Σ_t x[base(j) + offset(t)] · w[t, k]` where `base(j) = p·strideH·W' + q·strideW` and
    ///   `offset(t) = c·H'·W' + r·W' + s` (`H'`, `W'` the bordered sizes): every stride and padding
    ///   goes through the same loop, with no garbage columns.
    /// - the epilogue's per-channel affine and a ReLU without residual are applied to the accumulators;
    ///   a residual is added per element at the (transposing) store.
    static func directForward(output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
                              weight: UnsafePointer<Float>, epilogue: Epilogue, geometry g: ConvGeometry) {
        if g.n == 0 { return }
        if rowKernelFits(g) {
            rowForward(output: output, input: input, epilogue: epilogue, geometry: g) { k, t in weight[k * (g.c * g.r * g.s) + t] }
            return
        }
        let crs = g.c * g.r * g.s
        let blocks = (g.k + directChannelTile - 1) / directChannelTile
        let packed = allocateScratch(blocks * crs * directChannelTile)
        defer { releaseScratch(packed) }
        packWeightsChannelBlocked(packed, crs: crs, k: g.k) { k, t in weight[k * crs + t] }
        directForwardPacked(output: output, input: input, packed: UnsafePointer(packed), epilogue: epilogue, geometry: g)
    }

    /// Direct backward pass to the input of a **stride-1** convolution: the forward of `dOutput`
    /// (bordered by `R − 1 − padH`, `S − 1 − padW`) with the weights transposed and flipped,
    /// `w'[c, k, r, s] = w[k, c, R−1−r, S−1−s]`. Overwrites `dInput`.
    static func directBackwardInput(dInput: UnsafeMutablePointer<Float>, dOutput: UnsafePointer<Float>,
                                    weight: UnsafePointer<Float>, geometry g: ConvGeometry) {
        precondition(g.strideH == 1 && g.strideW == 1 && g.padH < g.r && g.padW < g.s,
                     "Conv2D.directBackwardInput: needs stride 1 and padding < kernel, got \(g)")
        if g.n == 0 { return }
        let t = transposedGeometry(g)
        let krs = g.k * g.r * g.s, rs = g.r * g.s
        if rowKernelFits(t) {
            // Few input channels (a first layer): vectors along dInput's rows, C output channels.
            rowForward(output: dInput, input: dOutput, epilogue: .none, geometry: t) { c, tap in
                let k = tap / rs, rr = (tap % rs) / g.s, ss = tap % g.s
                return weight[((k * g.c + c) * g.r + (g.r - 1 - rr)) * g.s + (g.s - 1 - ss)]
            }
            return
        }
        let blocks = (g.c + directChannelTile - 1) / directChannelTile
        let packed = allocateScratch(blocks * krs * directChannelTile)
        defer { releaseScratch(packed) }
        // Tap (k, r, s) of output channel c of the transposed conv reads w[k, c, R−1−r, S−1−s].
        packWeightsChannelBlocked(packed, crs: krs, k: g.c) { c, tap in
            let k = tap / rs, rr = (tap % rs) / g.s, ss = tap % g.s
            return weight[((k * g.c + c) * g.r + (g.r - 1 - rr)) * g.s + (g.s - 1 - ss)]
        }
        directForwardPacked(output: dInput, input: dOutput, packed: UnsafePointer(packed), epilogue: .none, geometry: t)
    }

    /// The forward conv that computes a stride-1 conv's input gradient: `dOutput [N, K, P, Q]` as input,
    /// `C` output channels, padding `R − 1 − pad` (output `[N, C, H, W]`).
    static func transposedGeometry(_ g: ConvGeometry) -> ConvGeometry {
        ConvGeometry(n: g.n, c: g.k, h: g.p, w: g.q, k: g.c, r: g.r, s: g.s, strideH: 1, strideW: 1,
                     padH: g.r - 1 - g.padH, padW: g.s - 1 - g.padW)
    }

    /// Packs `value(k, t)` (output channel `k < kCount`, tap `t < crs`) as `[⌈K/16⌉, crs, 16]`,
    /// zero for `k ≥ kCount`.
    @inline(__always)
    private static func packWeightsChannelBlocked(_ packed: UnsafeMutablePointer<Float>, crs: Int, k kCount: Int,
                                                  _ value: (_ k: Int, _ t: Int) -> Float) {
        let tile = directChannelTile
        let blocks = (kCount + tile - 1) / tile
        for block in 0..<blocks {
            let base = packed + block * crs * tile
            for t in 0..<crs {
                for lane in 0..<tile {
                    let k = block * tile + lane
                    base[t * tile + lane] = k < kCount ? value(k, t) : 0
                }
            }
        }
    }

    /// The direct forward loop over images, channel blocks and pixel tiles, on packed weights.
    private static func directForwardPacked(output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
                                            packed: UnsafePointer<Float>, epilogue: Epilogue, geometry g: ConvGeometry) {
        let pq = g.p * g.q, crs = g.c * g.r * g.s, chw = g.c * g.h * g.w, kpq = g.k * pq
        let wp = g.w + 2 * g.padW, hp = g.h + 2 * g.padH
        let tile = directChannelTile, pixels = directPixelTile
        let blocks = (g.k + tile - 1) / tile

        // offset(t) for every tap, and base(j) for every pixel (padded with the last pixel so that a
        // partial last tile reads valid memory; its extra lanes are not stored).
        let tileCount = (pq + pixels - 1) / pixels
        var tapOffsets = [Int32](repeating: 0, count: crs)
        for c in 0..<g.c { for r in 0..<g.r { for s in 0..<g.s {
            tapOffsets[(c * g.r + r) * g.s + s] = Int32(c * hp * wp + r * wp + s)
        } } }
        var pixelBases = [Int](repeating: 0, count: tileCount * pixels)
        for j in 0..<(tileCount * pixels) {
            let jj = min(j, pq - 1)
            pixelBases[j] = (jj / g.q) * g.strideH * wp + (jj % g.q) * g.strideW
        }

        tapOffsets.withUnsafeBufferPointer { offsets in
            pixelBases.withUnsafeBufferPointer { bases in
                let offsets = offsets.baseAddress!, bases = bases.baseAddress!
                Parallel.forEachChunk(count: g.n) { range, _ in
                    let padded = PaddedImage(g, zeroed: true)
                    defer { padded.release() }
                    for image in range {
                        let (source, _) = padded.source(for: input + image * chw)
                        let out = output + image * kpq
                        let residual = epilogue.residual.map { $0 + image * kpq }
                        for block in 0..<blocks {
                            let w = packed + block * crs * tile
                            let k0 = block * tile
                            for tileIndex in 0..<tileCount {
                                let j0 = tileIndex * pixels
                                directTile(out: out, residual: residual, source: source, weights: w,
                                           offsets: offsets, taps: crs, bases: bases + j0,
                                           j0: j0, validPixels: min(pixels, pq - j0),
                                           k0: k0, validChannels: min(tile, g.k - k0), pq: pq, epilogue: epilogue)
                            }
                        }
                    }
                }
            }
        }
    }

    /// One 6-pixel × 16-channel tile: accumulate over all taps, apply the epilogue, store transposed
    /// into NCHW (`out[k, j]`).
    @inline(__always)
    private static func directTile(out: UnsafeMutablePointer<Float>, residual: UnsafePointer<Float>?,
                                   source: UnsafePointer<Float>, weights: UnsafePointer<Float>,
                                   offsets: UnsafePointer<Int32>, taps: Int, bases: UnsafePointer<Int>,
                                   j0: Int, validPixels: Int, k0: Int, validChannels: Int, pq: Int,
                                   epilogue: Epilogue) {
        let x0 = source + bases[0], x1 = source + bases[1], x2 = source + bases[2]
        let x3 = source + bases[3], x4 = source + bases[4], x5 = source + bases[5]
        var a00 = WideVector(), a01 = WideVector(), a10 = WideVector(), a11 = WideVector()
        var a20 = WideVector(), a21 = WideVector(), a30 = WideVector(), a31 = WideVector()
        var a40 = WideVector(), a41 = WideVector(), a50 = WideVector(), a51 = WideVector()
        var w = weights
        let width = WideVector.scalarCount, lanes = 2 * width
        for t in 0..<taps {
            let o = Int(offsets[t])
            let w0 = loadWide(w), w1 = loadWide(w + width)
            var b = WideVector(repeating: x0[o]); a00.addProduct(b, w0); a01.addProduct(b, w1)
            b = WideVector(repeating: x1[o]); a10.addProduct(b, w0); a11.addProduct(b, w1)
            b = WideVector(repeating: x2[o]); a20.addProduct(b, w0); a21.addProduct(b, w1)
            b = WideVector(repeating: x3[o]); a30.addProduct(b, w0); a31.addProduct(b, w1)
            b = WideVector(repeating: x4[o]); a40.addProduct(b, w0); a41.addProduct(b, w1)
            b = WideVector(repeating: x5[o]); a50.addProduct(b, w0); a51.addProduct(b, w1)
            w += 2 * width
        }

        // Per-channel affine (and ReLU when nothing is added after it) on the accumulators.
        var scale0 = WideVector(repeating: 1), scale1 = WideVector(repeating: 1)
        var shift0 = WideVector(), shift1 = WideVector()
        if let scale = epilogue.scale { loadChannels(scale, k0, validChannels, &scale0, &scale1) }
        if let shift = epilogue.shift { loadChannels(shift, k0, validChannels, &shift0, &shift1) }
        var tile = (a00, a01, a10, a11, a20, a21, a30, a31, a40, a41, a50, a51)
        let reluHere = epilogue.relu && residual == nil
        withUnsafeMutableBytes(of: &tile) { raw in
            let acc = raw.baseAddress!.assumingMemoryBound(to: Float.self)  // [6 pixels][lanes channels]
            let zero = WideVector()
            for i in 0..<6 {
                var v0 = loadWide(acc + i * lanes), v1 = loadWide(acc + i * lanes + width)
                if epilogue.scale != nil { v0 *= scale0; v1 *= scale1 }
                v0 += shift0; v1 += shift1
                if reluHere {
                    v0 = v0.replacing(with: zero, where: v0 .< zero)
                    v1 = v1.replacing(with: zero, where: v1 .< zero)
                }
                storeWide(v0, acc + i * lanes); storeWide(v1, acc + i * lanes + width)
            }
            if let residual {
                let relu = epilogue.relu
                for l in 0..<validChannels {
                    let row = out + (k0 + l) * pq + j0, res = residual + (k0 + l) * pq + j0
                    for i in 0..<validPixels {
                        var v = acc[i * lanes + l] + res[i]
                        if relu && v < 0 { v = 0 }
                        row[i] = v
                    }
                }
            } else {
                for l in 0..<validChannels {
                    let row = out + (k0 + l) * pq + j0
                    for i in 0..<validPixels { row[i] = acc[i * lanes + l] }
                }
            }
        }
    }

    /// Loads `values[k0 ..< k0 + count]` (count ≤ 16) into two vectors, zero past `count`.
    @inline(__always)
    private static func loadChannels(_ values: UnsafePointer<Float>, _ k0: Int, _ count: Int,
                                     _ v0: inout WideVector, _ v1: inout WideVector) {
        let width = WideVector.scalarCount
        if count == 2 * width {
            v0 = loadWide(values + k0); v1 = loadWide(values + k0 + width)
            return
        }
        for l in 0..<(2 * width) {
            let v: Float = l < count ? values[k0 + l] : 0
            if l < width { v0[l] = v } else { v1[l - width] = v }
        }
    }
}

// MARK: - Backward to the weights

extension Conv2D {
    /// Taps per backward-weight tile (6 taps × 16 channels = 12 accumulators).
    static let directTapTile = 6

    /// Direct backward pass to the weights and bias, **accumulated** into `dWeight` / `dBias`, every
    /// stride and padding (same contract as `backwardWeight(dWeight:dBias:dOutput:input:geometry:)`):
    /// ```
    /// dWeight[k, t] += Σ_{n, j} dOutput[n, k, j] · x_n[base(j) + offset(t)]      (t = (c·R + r)·S + s)
    /// ```
    /// A tile holds 16 output channels × 6 taps in registers and runs over every output pixel of a group
    /// of images (≥ 256 pixels): per pixel, the 16 channels' `dOutput` (one transposed row, two vectors)
    /// times 6 broadcast input values. Each worker reduces its images into a private `[C·R·S, 16·⌈K/16⌉]`
    /// partial; the partials are added into `dWeight` in worker order (deterministic for a fixed worker
    /// count).
    static func directBackwardWeight(dWeight: UnsafeMutablePointer<Float>, dBias: UnsafeMutablePointer<Float>?,
                                     dOutput: UnsafePointer<Float>, input: UnsafePointer<Float>,
                                     geometry g: ConvGeometry) {
        if g.n == 0 { return }
        let pq = g.p * g.q, crs = g.c * g.r * g.s, chw = g.c * g.h * g.w, kpq = g.k * pq
        let wp = g.w + 2 * g.padW, hp = g.h + 2 * g.padH, paddedCount = g.c * hp * wp
        let lanes = directChannelTile, tapTile = directTapTile
        let blocks = (g.k + lanes - 1) / lanes, kPadded = blocks * lanes
        let tapTiles = (crs + tapTile - 1) / tapTile
        let chunks = Parallel.chunkCount(count: g.n)
        let partialWeights = allocateScratch(chunks * crs * kPadded)   // [chunks, C·R·S, K padded to 16]
        let partialBiases = allocateScratch(chunks * g.k)              // [chunks, K]
        defer { releaseScratch(partialWeights); releaseScratch(partialBiases) }

        // offset(t) (taps past C·R·S read offset 0 and are not stored), base(j) within one image.
        var tapOffsets = [Int](repeating: 0, count: tapTiles * tapTile)
        for c in 0..<g.c { for r in 0..<g.r { for s in 0..<g.s {
            tapOffsets[(c * g.r + r) * g.s + s] = c * hp * wp + r * wp + s
        } } }
        var pixelBases = [Int](repeating: 0, count: pq)
        for j in 0..<pq { pixelBases[j] = (j / g.q) * g.strideH * wp + (j % g.q) * g.strideW }
        let wantedGroup = (minimumGemmColumns + pq - 1) / pq

        tapOffsets.withUnsafeBufferPointer { offsets in
            pixelBases.withUnsafeBufferPointer { bases in
                let offsets = offsets.baseAddress!, bases = bases.baseAddress!
                Parallel.forEachChunk(count: g.n) { range, worker in
                    let group = max(1, min(wantedGroup, range.count))
                    let partial = partialWeights + worker * crs * kPadded
                    let partialBias = partialBiases + worker * g.k
                    partial.update(repeating: 0, count: crs * kPadded)
                    partialBias.update(repeating: 0, count: g.k)
                    // G bordered images [G, C, H', W'] (border zeroed once), G·P·Q transposed dOutput rows
                    // [G·P·Q, K padded] (lanes past K zeroed once), and the G·P·Q pixel bases.
                    let images = allocateScratch(group * paddedCount)
                    let rows = allocateScratch(group * pq * kPadded)
                    let groupBases = UnsafeMutablePointer<Int>.allocate(capacity: group * pq)
                    defer { releaseScratch(images); releaseScratch(rows); groupBases.deallocate() }
                    images.update(repeating: 0, count: group * paddedCount)
                    rows.update(repeating: 0, count: group * pq * kPadded)
                    for i in 0..<group { for j in 0..<pq { groupBases[i * pq + j] = i * paddedCount + bases[j] } }

                    var first = range.lowerBound
                    while first < range.upperBound {
                        let count = min(group, range.upperBound - first)
                        for i in 0..<count {
                            let image = first + i
                            copyInterior(images + i * paddedCount, input + image * chw, g)
                            let dy = dOutput + image * kpq
                            for k in 0..<g.k {
                                let channel = dy + k * pq
                                var sum: Float = 0
                                let row = rows + i * pq * kPadded + k
                                for j in 0..<pq { row[j * kPadded] = channel[j]; sum += channel[j] }
                                partialBias[k] += sum
                            }
                        }
                        let pixels = count * pq
                        for block in 0..<blocks {
                            for tile in 0..<tapTiles {
                                let t0 = tile * tapTile
                                backwardWeightTile(partial: partial + block * lanes, kPadded: kPadded,
                                                   t0: t0, validTaps: min(tapTile, crs - t0),
                                                   images: UnsafePointer(images), offsets: offsets + t0,
                                                   rows: UnsafePointer(rows + block * lanes), bases: UnsafePointer(groupBases),
                                                   pixels: pixels)
                            }
                        }
                        first += count
                    }
                }
            }
        }

        // Deterministic reduction in worker order; the partial is tap-major [C·R·S, K padded].
        for worker in 0..<chunks {
            let partial = partialWeights + worker * crs * kPadded
            for k in 0..<g.k {
                let row = dWeight + k * crs
                for t in 0..<crs { row[t] += partial[t * kPadded + k] }
            }
            if let dBias {
                let partialBias = partialBiases + worker * g.k
                for k in 0..<g.k { dBias[k] += partialBias[k] }
            }
        }
    }

    /// `images[c, h + padH, w + padW] = image[c, h, w]` (the border is left as it is: zero).
    @inline(__always)
    private static func copyInterior(_ bordered: UnsafeMutablePointer<Float>, _ image: UnsafePointer<Float>,
                                     _ g: ConvGeometry) {
        let wp = g.w + 2 * g.padW, hp = g.h + 2 * g.padH
        for c in 0..<g.c {
            for h in 0..<g.h {
                (bordered + (c * hp + h + g.padH) * wp + g.padW).update(from: image + (c * g.h + h) * g.w, count: g.w)
            }
        }
    }

    /// One 16-channel × 6-tap tile of the weight gradient, reduced over `pixels` output pixels and
    /// added into `partial[t, k]` (rows `kPadded` apart).
    @inline(__always)
    private static func backwardWeightTile(partial: UnsafeMutablePointer<Float>, kPadded: Int, t0: Int, validTaps: Int,
                                           images: UnsafePointer<Float>, offsets: UnsafePointer<Int>,
                                           rows: UnsafePointer<Float>, bases: UnsafePointer<Int>, pixels: Int) {
        let x0 = images + offsets[0], x1 = images + offsets[1], x2 = images + offsets[2]
        let x3 = images + offsets[3], x4 = images + offsets[4], x5 = images + offsets[5]
        var a00 = WideVector(), a01 = WideVector(), a10 = WideVector(), a11 = WideVector()
        var a20 = WideVector(), a21 = WideVector(), a30 = WideVector(), a31 = WideVector()
        var a40 = WideVector(), a41 = WideVector(), a50 = WideVector(), a51 = WideVector()
        let width = WideVector.scalarCount, lanes = 2 * width
        var row = rows
        for j in 0..<pixels {
            let b = bases[j]
            let d0 = loadWide(row), d1 = loadWide(row + width)
            var v = WideVector(repeating: x0[b]); a00.addProduct(v, d0); a01.addProduct(v, d1)
            v = WideVector(repeating: x1[b]); a10.addProduct(v, d0); a11.addProduct(v, d1)
            v = WideVector(repeating: x2[b]); a20.addProduct(v, d0); a21.addProduct(v, d1)
            v = WideVector(repeating: x3[b]); a30.addProduct(v, d0); a31.addProduct(v, d1)
            v = WideVector(repeating: x4[b]); a40.addProduct(v, d0); a41.addProduct(v, d1)
            v = WideVector(repeating: x5[b]); a50.addProduct(v, d0); a51.addProduct(v, d1)
            row += kPadded
        }
        var tile = (a00, a01, a10, a11, a20, a21, a30, a31, a40, a41, a50, a51)
        withUnsafeBytes(of: &tile) { raw in
            let acc = raw.baseAddress!.assumingMemoryBound(to: Float.self)  // [6 taps][lanes channels]
            for i in 0..<validTaps {
                let target = partial + (t0 + i) * kPadded
                storeWide(loadWide(target) + loadWide(acc + i * lanes), target)
                storeWide(loadWide(target + width) + loadWide(acc + i * lanes + width), target + width)
            }
        }
    }
}
