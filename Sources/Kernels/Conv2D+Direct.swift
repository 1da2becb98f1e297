// Conv2D+Direct.swift: direct (implicit-GEMM) convolution in Swift SIMD, with no im2col matrix, no
// col2im and no zeroing pass: a register-blocked micro-kernel of P output pixels × V wide vectors of
// output channels (an InlineArray tile: 8 × 2 with AVX-512's 32 registers, 6 × 2 with AVX2's 16, and
// V = 1 when the layer has at most one vector of channels) reads the zero-bordered input through a
// per-pixel offset table and channel-blocked packed weights, and applies the fused epilogue
// (Conv2D+Epilogue.swift) before the store. Forward for every stride and padding; backward-input of
// stride-1 convolutions as the forward of the flipped, transposed weights (strided ones by output
// phase, Conv2D+Strided.swift, on this file's channel kernel); backward-weight as 2 wide
// vectors of channels × 6 taps reduced over pixels. First layers, few output channels and rows that
// fill the vectors go to the row-vectorised kernel (Conv2D+Rows.swift) instead. Which path runs for a
// shape is decided in Conv2D+Dispatch.swift.
// Not here: the im2col + BLAS path (Conv2D.swift), the naive twins (Conv2D+Reference.swift).

import Foundation

extension Conv2D {
    /// Output channels per micro-kernel tile of a wide layer: two wide vectors (32 with AVX-512, else
    /// 16). Layers with at most one vector of output channels use a one-vector tile (`channelTile(for:)`).
    static let directChannelTile = 2 * WideVector.scalarCount

    /// The channel tile of the forward micro-kernel for `k` output channels: one wide vector when `k`
    /// fits in it, else two.
    static func channelTile(for k: Int) -> Int {
        k <= WideVector.scalarCount ? WideVector.scalarCount : directChannelTile
    }

    /// Direct forward pass (same contract as `forward(output:input:weight:epilogue:geometry:)`).
    ///
    /// Layout of the work, per image `n` (images split into one contiguous chunk per worker):
    /// - the image is copied into a zero-bordered buffer `[C, H + 2·padH, W + 2·padW]` (border zeroed
    ///   once per call);
    /// - the weights are packed once per call as `[⌈K/T⌉, C·R·S, T]` (`T = channelTile(for: K)`, one
    ///   or two wide vectors), zero-padded past `K`, so that tap `t = (c·R + r)·S + s` of a channel
    ///   block is `T / L` contiguous vectors;
    /// - each tile of P consecutive output pixels (flat index `j = p·Q + q`) × T channels accumulates
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
        let crs = g.c * g.r * g.s, tile = channelTile(for: g.k)
        let blocks = (g.k + tile - 1) / tile
        let packed = allocateScratch(blocks * crs * tile)
        defer { releaseScratch(packed) }
        packWeightsChannelBlocked(packed, crs: crs, k: g.k, tile: tile) { k, t in weight[k * crs + t] }
        directForwardPacked(output: output, input: input, packed: UnsafePointer(packed), epilogue: epilogue, geometry: g)
    }

    /// Direct backward pass to the input, every stride and padding. Overwrites `dInput`.
    /// - stride 1 with padding < kernel: the forward of `dOutput` (bordered by `R − 1 − padH`,
    ///   `S − 1 − padW`) with the weights transposed and flipped, `w'[c, k, r, s] = w[k, c, R−1−r, S−1−s]`,
    ///   on the channel or the row kernel;
    /// - otherwise (stride 2, or padding ≥ kernel): one channel-kernel pass per output phase
    ///   (`directPhasedBackwardInput`, Conv2D+Strided.swift).
    static func directBackwardInput(dInput: UnsafeMutablePointer<Float>, dOutput: UnsafePointer<Float>,
                                    weight: UnsafePointer<Float>, geometry g: ConvGeometry,
                                    gate: UnsafePointer<Float>? = nil) {
        if g.n == 0 { return }
        guard g.strideH == 1 && g.strideW == 1 && g.padH < g.r && g.padW < g.s else {
            directPhasedBackwardInput(dInput: dInput, dOutput: dOutput, weight: weight, geometry: g, gate: gate)
            return
        }
        let t = transposedGeometry(g)
        let krs = g.k * g.r * g.s, rs = g.r * g.s
        if rowKernelFits(t) {
            // Few input channels (a first layer): vectors along dInput's rows, C output channels.
            rowForward(output: dInput, input: dOutput, epilogue: Epilogue(gate: gate), geometry: t) { c, tap in
                let k = tap / rs, rr = (tap % rs) / g.s, ss = tap % g.s
                return weight[((k * g.c + c) * g.r + (g.r - 1 - rr)) * g.s + (g.s - 1 - ss)]
            }
            return
        }
        let tile = channelTile(for: g.c)
        let blocks = (g.c + tile - 1) / tile
        let packed = allocateScratch(blocks * krs * tile)
        defer { releaseScratch(packed) }
        // Tap (k, r, s) of output channel c of the transposed conv reads w[k, c, R−1−r, S−1−s].
        packWeightsChannelBlocked(packed, crs: krs, k: g.c, tile: tile) { c, tap in
            let k = tap / rs, rr = (tap % rs) / g.s, ss = tap % g.s
            return weight[((k * g.c + c) * g.r + (g.r - 1 - rr)) * g.s + (g.s - 1 - ss)]
        }
        directForwardPacked(output: dInput, input: dOutput, packed: UnsafePointer(packed), epilogue: Epilogue(gate: gate),
                            geometry: t)
    }

    /// The forward conv that computes a stride-1 conv's input gradient: `dOutput [N, K, P, Q]` as input,
    /// `C` output channels, padding `R − 1 − pad` (output `[N, C, H, W]`).
    static func transposedGeometry(_ g: ConvGeometry) -> ConvGeometry {
        ConvGeometry(n: g.n, c: g.k, h: g.p, w: g.q, k: g.c, r: g.r, s: g.s, strideH: 1, strideW: 1,
                     padH: g.r - 1 - g.padH, padW: g.s - 1 - g.padW)
    }

    /// Packs `value(k, t)` (output channel `k < kCount`, tap `t < crs`) as `[⌈K/T⌉, crs, T]` (`T` =
    /// `tile`), zero for `k ≥ kCount`.
    @inline(__always)
    private static func packWeightsChannelBlocked(_ packed: UnsafeMutablePointer<Float>, crs: Int, k kCount: Int, tile: Int,
                                                  _ value: (_ k: Int, _ t: Int) -> Float) {
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

    /// The direct forward on weights packed `[⌈K/T⌉, C·R·S, T]` (`T = channelTile(for: K)`): one
    /// `ChannelPass` over every output pixel, `offset(t)` and `base(j)` from the geometry.
    private static func directForwardPacked(output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
                                            packed: UnsafePointer<Float>, epilogue: Epilogue, geometry g: ConvGeometry) {
        let pq = g.p * g.q, crs = g.c * g.r * g.s
        let wp = g.w + 2 * g.padW, hp = g.h + 2 * g.padH
        var tapOffsets = [Int32](repeating: 0, count: crs)
        for c in 0..<g.c { for r in 0..<g.r { for s in 0..<g.s {
            tapOffsets[(c * g.r + r) * g.s + s] = Int32(c * hp * wp + r * wp + s)
        } } }
        var pixelBases = [Int](repeating: 0, count: pq)
        for j in 0..<pq { pixelBases[j] = (j / g.q) * g.strideH * wp + (j % g.q) * g.strideW }
        tapOffsets.withUnsafeBufferPointer { offsets in
            pixelBases.withUnsafeBufferPointer { bases in
                let pass = ChannelPass(packed: packed, taps: crs, offsets: offsets.baseAddress!, bases: bases.baseAddress!,
                                       pixels: pq, outIndex: nil)
                channelConvolve(output: output, input: input, passes: [pass], source: g, outChannels: g.k, outPlane: pq,
                                epilogue: epilogue)
            }
        }
    }

    /// Entries past the last pixel of a group's bases table (repeats of the last pixel's base), so that a
    /// partial last tile of up to 8 pixels reads valid memory; its extra lanes are not stored.
    static let channelPixelSlack = 8

    /// One sweep of the channel kernel over a set of output pixels of every image: the pixels' `P`-tiles
    /// × the `T`-channel blocks, each accumulating `Σ_t x[base(j) + offset(t)] · packed[block, t, ·]`.
    /// A plain forward is one pass over all `P·Q` pixels; a strided backward-input is one pass per
    /// output phase (Conv2D+Strided.swift).
    struct ChannelPass {
        /// `[⌈K/T⌉, taps, T]` packed weights (zero past the last output channel).
        var packed: UnsafePointer<Float>
        var taps: Int
        /// `[taps]`: offset of tap t in the bordered source image.
        var offsets: UnsafePointer<Int32>
        /// `[pixels]`: offset of output pixel j's first tap in the bordered source image.
        var bases: UnsafePointer<Int>
        var pixels: Int
        /// `[pixels]`: where pixel j goes in an output channel plane; nil: at j.
        var outIndex: UnsafePointer<Int>?
    }

    /// Output pixels a group of images should reach before the channel kernel's tiles run over it: small
    /// planes (ResNet-18's 4×4 and 8×8 stages) put several images into one sweep of a channel block's
    /// weights, so the weights are read once per group instead of once per image and a partial last
    /// tile is paid once per group. Settable for tests and tuning (the result does not depend on it).
    nonisolated(unsafe) static var channelGroupPixels = 96

    /// Bytes of packed weights one sweep over a group's tiles may read (a tap chunk: `bytes / (4·T)`
    /// taps). Wide layers (C·R·S·T·4 bytes of weights per channel block: 147 KB for 256 channels with
    /// 16-channel tiles) otherwise stream every block from L2 or L3 once per tile; in chunks the weights
    /// stay in L1 across the tiles, and the tiles' accumulators are parked in a per-worker buffer
    /// between chunks. The sum runs over the taps in the same order either way, so the result is bitwise
    /// the same for every chunk size. Settable for tests and tuning.
    nonisolated(unsafe) static var channelTapChunkBytes = 16 * 1024

    /// Runs `passes` over every image (one contiguous chunk of images per worker), a group of G images
    /// at a time (`channelGroupPixels`): the images are copied into zero-bordered buffers of `source`'s
    /// geometry (`[G, C, H + 2·padH, W + 2·padW]`, an input image being `[C, H, W]`), then for each pass,
    /// channel block and tap chunk (`channelTapChunkBytes`) every tile of the group's pixels is
    /// accumulated, and after the last chunk stored into the output images `[outChannels, outPlane]`
    /// with the epilogue; a gate is applied once the group is complete.
    static func channelConvolve(output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, passes: [ChannelPass],
                                source: ConvGeometry, outChannels: Int, outPlane: Int, epilogue: Epilogue) {
        #if MEMLOSS_AVX512
        // 32 registers: P·V accumulators + V weights + 1 broadcast ≤ 32; P is held at 8 because every
        // pixel of the tile keeps its own input pointer in a general register (12 spill them).
        if channelTile(for: outChannels) == WideVector.scalarCount {
            channelRun(output, input, passes, source, outChannels, outPlane, epilogue, zero: ChannelTile<8, 1>(repeating: InlineArray<1, WideVector>(repeating: WideVector())))
        } else {
            channelRun(output, input, passes, source, outChannels, outPlane, epilogue, zero: ChannelTile<8, 2>(repeating: InlineArray<2, WideVector>(repeating: WideVector())))
        }
        #else
        // 16 registers: P·V accumulators + V weights + 1 broadcast ≤ 16.
        if channelTile(for: outChannels) == WideVector.scalarCount {
            channelRun(output, input, passes, source, outChannels, outPlane, epilogue, zero: ChannelTile<8, 1>(repeating: InlineArray<1, WideVector>(repeating: WideVector())))
        } else {
            channelRun(output, input, passes, source, outChannels, outPlane, epilogue, zero: ChannelTile<6, 2>(repeating: InlineArray<2, WideVector>(repeating: WideVector())))
        }
        #endif
    }

    /// The loop over image groups, passes, channel blocks, tap chunks and pixel tiles for one tile
    /// shape: `P` output pixels × `V` wide vectors of output channels (`T = V·L` channels).
    private static func channelRun<let P: Int, let V: Int>(
        _ output: UnsafeMutablePointer<Float>, _ input: UnsafePointer<Float>, _ passes: [ChannelPass],
        _ g: ConvGeometry, _ outChannels: Int, _ outPlane: Int, _ epilogue: Epilogue, zero: ChannelTile<P, V>
    ) {
        let chw = g.c * g.h * g.w, kpq = outChannels * outPlane
        let tile = V * WideVector.scalarCount
        let blocks = (outChannels + tile - 1) / tile
        let bordered = g.padH > 0 || g.padW > 0
        let imageFloats = g.c * (g.h + 2 * g.padH) * (g.w + 2 * g.padW)   // one bordered image
        let planePixels = passes.map(\.pixels).reduce(0, +)
        let perWorker = (g.n + Parallel.chunkCount(count: g.n) - 1) / max(1, Parallel.chunkCount(count: g.n))
        let group = max(1, min(perWorker, (channelGroupPixels + planePixels - 1) / max(1, planePixels)))
        let chunkTaps = max(1, channelTapChunkBytes / (4 * tile))

        // Per pass, the tables of a whole group: pixel j of image i is pixel i·pixels + j, reading at
        // i·imageFloats + base(j) and writing at i·kpq + outIndex(j) (channel 0; channels outPlane apart).
        let groupBases = passes.map { pass -> [Int] in
            var t = [Int](repeating: 0, count: group * pass.pixels + channelPixelSlack)
            for i in 0..<group { for j in 0..<pass.pixels { t[i * pass.pixels + j] = i * imageFloats + pass.bases[j] } }
            for j in (group * pass.pixels)..<t.count { t[j] = t[group * pass.pixels - 1] }
            return t
        }
        let groupOut: [[Int]?] = passes.map { pass in
            if group == 1 { return pass.outIndex.map { Array(UnsafeBufferPointer(start: $0, count: pass.pixels)) } }
            var t = [Int](repeating: 0, count: group * pass.pixels)
            for i in 0..<group { for j in 0..<pass.pixels { t[i * pass.pixels + j] = i * kpq + (pass.outIndex?[j] ?? j) } }
            return t
        }
        let maxTiles = passes.map { (group * $0.pixels + P - 1) / P }.max() ?? 0
        let chunked = passes.contains { $0.taps > chunkTaps }
        // A bordered image needs its copy; a group needs one too, so that the lanes past a short last
        // group (which read images `count ..< group`) stay inside allocated memory.
        let copies = bordered || group > 1

        Parallel.forEachChunk(count: g.n) { range, _ in
            let buffer = copies ? allocateScratch(group * imageFloats + PaddedImage.slack) : nil
            if let buffer { buffer.update(repeating: 0, count: group * imageFloats + PaddedImage.slack) }
            let parked = chunked ? UnsafeMutablePointer<ChannelTile<P, V>>.allocate(capacity: maxTiles) : nil
            defer { releaseScratch(buffer); parked?.deallocate() }
            var first = range.lowerBound
            while first < range.upperBound {
                let count = min(group, range.upperBound - first)
                let source: UnsafePointer<Float>
                if let buffer {
                    for i in 0..<count {
                        copyBordered(buffer + i * imageFloats, input + (first + i) * chw, g)
                    }
                    source = UnsafePointer(buffer)
                } else {
                    source = input + first * chw   // one unbordered image (group 1)
                }
                let out = output + first * kpq
                let residual = epilogue.residual.map { $0 + first * kpq }
                for (index, pass) in passes.enumerated() {
                    let pixels = count * pass.pixels
                    if pass.taps == 0, let table = groupOut[index] {
                        // A phase no tap reaches (e.g. the odd pixels of a 1×1 stride-2 conv): zeros.
                        for k in 0..<outChannels {
                            let plane = out + k * outPlane
                            for j in 0..<pixels { plane[table[j]] = 0 }
                        }
                        continue
                    }
                    let tileCount = (pixels + P - 1) / P
                    groupBases[index].withUnsafeBufferPointer { bases in
                        let bases = bases.baseAddress!
                        let outIndex = groupOut[index]
                        outIndex.withOptionalBase { outIndex in
                            for block in 0..<blocks {
                                let w = pass.packed + block * pass.taps * tile
                                let k0 = block * tile, validChannels = min(tile, outChannels - k0)
                                var t0 = 0
                                repeat {
                                    let taps = min(chunkTaps, pass.taps - t0), last = t0 + taps >= pass.taps
                                    for tileIndex in 0..<tileCount {
                                        let j0 = tileIndex * P
                                        var acc = t0 == 0 ? zero : parked![tileIndex]
                                        channelTileAccumulate(&acc, source: source, weights: w + t0 * tile,
                                                              offsets: pass.offsets + t0, taps: taps, bases: bases + j0)
                                        if last {
                                            channelTileStore(acc, out: out, residual: residual, j0: j0,
                                                             validPixels: min(P, pixels - j0), outIndex: outIndex,
                                                             k0: k0, validChannels: validChannels, pq: outPlane,
                                                             epilogue: epilogue)
                                        } else {
                                            parked![tileIndex] = acc
                                        }
                                    }
                                    t0 += taps
                                } while t0 < pass.taps
                            }
                        }
                    }
                }
                // The gate once the group is complete, while it is still in cache: vector loads along
                // the pixels beat a per-element select in the transposing store.
                if let gate = epilogue.gate { gateInPlace(out, gate: gate + first * kpq, count: count * kpq) }
                first += count
            }
        }
    }

    /// `target[c, h + padH, w + padW] = image[c, h, w]` for `image [C, H, W]`; the border of `target`
    /// (`[C, H + 2·padH, W + 2·padW]`) is left as it is.
    @inline(__always)
    private static func copyBordered(_ target: UnsafeMutablePointer<Float>, _ image: UnsafePointer<Float>, _ g: ConvGeometry) {
        let wp = g.w + 2 * g.padW, hp = g.h + 2 * g.padH
        if g.padH == 0 && g.padW == 0 { return copyRun(target, image, g.c * g.h * g.w) }
        for c in 0..<g.c {
            for h in 0..<g.h {
                copyRun(target + (c * hp + h + g.padH) * wp + g.padW, image + (c * g.h + h) * g.w, g.w)
            }
        }
    }

    /// Accumulates every tap into a `P × V` tile: per tap, `V` weight vectors (`weights [taps, V·L]`)
    /// times `P` broadcast input values `x[base(j) + offset(t)]`.
    @inline(__always)
    private static func channelTileAccumulate<let P: Int, let V: Int>(
        _ acc: inout ChannelTile<P, V>, source: UnsafePointer<Float>, weights: UnsafePointer<Float>,
        offsets: UnsafePointer<Int32>, taps: Int, bases: UnsafePointer<Int>
    ) {
        let width = WideVector.scalarCount
        var x = InlineArray<P, UnsafePointer<Float>>(repeating: source)
        for i in 0..<P { x[i] = source + bases[i] }
        var w = weights
        for t in 0..<taps {
            let o = Int(offsets[t])
            var wv = InlineArray<V, WideVector>(repeating: WideVector())
            for v in 0..<V { wv[v] = loadWide(w + v * width) }
            for i in 0..<P {
                let b = WideVector(repeating: x[i][o])
                for v in 0..<V { acc[i][v].addProduct(b, wv[v]) }
            }
            w += V * width
        }
    }

    /// Applies the epilogue's per-channel affine (and a ReLU when nothing is added after it) to the
    /// accumulators, then stores the tile transposed into NCHW (`out[k, j]`, or `out[k, outIndex[j]]` for a
    /// phase of a strided backward-input), adding a residual per element at the store. (The gate is
    /// applied per image by the caller, see `channelRun`.)
    @inline(__always)
    private static func channelTileStore<let P: Int, let V: Int>(
        _ accumulators: ChannelTile<P, V>, out: UnsafeMutablePointer<Float>, residual: UnsafePointer<Float>?,
        j0: Int, validPixels: Int, outIndex: UnsafePointer<Int>?, k0: Int, validChannels: Int, pq: Int,
        epilogue: Epilogue
    ) {
        let width = WideVector.scalarCount, lanes = V * width
        let reluHere = epilogue.relu && residual == nil
        let zero = WideVector()
        // A copy whose address is taken for the scalar store; the accumulators themselves never have
        // their address taken, so they stay in registers through the tap loop.
        var acc = accumulators
        for v in 0..<V {
            var scale = WideVector(repeating: 1), shift = WideVector()
            if let s = epilogue.scale { scale = loadChannelVector(s, k0 + v * width, validChannels - v * width) }
            if let s = epilogue.shift { shift = loadChannelVector(s, k0 + v * width, validChannels - v * width) }
            for i in 0..<P {
                var y = acc[i][v]
                if epilogue.scale != nil { y *= scale }
                y += shift
                if reluHere { y = y.replacing(with: zero, where: y .< zero) }
                acc[i][v] = y
            }
        }
        withUnsafeBytes(of: &acc) { raw in
            let values = raw.baseAddress!.assumingMemoryBound(to: Float.self)  // [P pixels][V·L channels]
            if let outIndex {
                // Pixels by table (a group of images, a phase of a strided backward-input).
                let index = outIndex + j0
                if let residual {
                    let relu = epilogue.relu
                    for l in 0..<validChannels {
                        let plane = out + (k0 + l) * pq, res = residual + (k0 + l) * pq
                        for i in 0..<validPixels {
                            var y = values[i * lanes + l] + res[index[i]]
                            if relu && y < 0 { y = 0 }
                            plane[index[i]] = y
                        }
                    }
                } else {
                    for l in 0..<validChannels {
                        let plane = out + (k0 + l) * pq
                        for i in 0..<validPixels { plane[index[i]] = values[i * lanes + l] }
                    }
                }
            } else if let residual {
                let relu = epilogue.relu
                for l in 0..<validChannels {
                    let row = out + (k0 + l) * pq + j0, res = residual + (k0 + l) * pq + j0
                    for i in 0..<validPixels {
                        var y = values[i * lanes + l] + res[i]
                        if relu && y < 0 { y = 0 }
                        row[i] = y
                    }
                }
            } else {
                for l in 0..<validChannels {
                    let row = out + (k0 + l) * pq + j0
                    for i in 0..<validPixels { row[i] = values[i * lanes + l] }
                }
            }
        }
    }

    /// `values[i] = gate[i] > 0 ? values[i] : 0` over one image, on the calling worker (the rule of
    /// `Activation.reluBackward`).
    @inline(__always)
    static func gateInPlace(_ values: UnsafeMutablePointer<Float>, gate: UnsafePointer<Float>, count: Int) {
        let width = WideVector.scalarCount, zero = WideVector()
        var i = 0
        while i + width <= count {
            storeWide(zero.replacing(with: loadWide(values + i), where: loadWide(gate + i) .> zero), values + i)
            i += width
        }
        while i < count { values[i] = gate[i] > 0 ? values[i] : 0; i += 1 }
    }

    /// Loads `values[k0 ..< k0 + count]` (count may exceed a vector: the first L are taken) into a wide
    /// vector, zero past `count`.
    @inline(__always)
    private static func loadChannelVector(_ values: UnsafePointer<Float>, _ k0: Int, _ count: Int) -> WideVector {
        let width = WideVector.scalarCount
        if count >= width { return loadWide(values + k0) }
        var v = WideVector()
        for l in 0..<max(count, 0) { v[l] = values[k0 + l] }
        return v
    }
}

/// A `P × V` tile of accumulators of the channel-vectorised kernel: `P` output pixels × `V` wide
/// vectors of output channels.
typealias ChannelTile<let P: Int, let V: Int> = InlineArray<P, InlineArray<V, WideVector>>

// MARK: - Backward to the weights

extension Conv2D {
    /// Taps per backward-weight tile (6 taps × 2 wide vectors of channels = 12 accumulators).
    static let directTapTile = 6

    /// Direct backward pass to the weights and bias, **accumulated** into `dWeight` / `dBias`, every
    /// stride and padding (same contract as `backwardWeight(dWeight:dBias:dOutput:input:geometry:)`):
    /// ```
    /// dWeight[k, t] += Σ_{n, j} dOutput[n, k, j] · x_n[base(j) + offset(t)]      (t = (c·R + r)·S + s)
    /// ```
    /// A tile holds T = 2 wide vectors of output channels (32 with AVX-512, 16 with AVX2) × 6 taps in
    /// registers and runs over every output pixel of a group of images (≥ 256 pixels): per pixel, the T
    /// channels' `dOutput` (one transposed row, two vectors) times 6 broadcast input values. Each worker
    /// reduces its images into a private `[C·R·S, T·⌈K/T⌉]`
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
        let partialWeights = allocateScratch(chunks * crs * kPadded)   // [chunks, C·R·S, K padded to T]
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

    /// One T-channel × 6-tap tile of the weight gradient, reduced over `pixels` output pixels and
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

extension Optional where Wrapped == [Int] {
    /// Calls `body` with the array's base address, or nil when there is no array.
    @inline(__always)
    func withOptionalBase<R>(_ body: (UnsafePointer<Int>?) -> R) -> R {
        switch self {
        case .some(let array): return array.withUnsafeBufferPointer { body($0.baseAddress) }
        case .none: return body(nil)
        }
    }
}
