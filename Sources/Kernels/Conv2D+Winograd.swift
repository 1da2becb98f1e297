// Conv2D+Winograd.swift: 3×3 stride-1 convolution by Winograd's minimal filtering F(2×2, 3×3), for the
// forward pass and the backward-input pass (a stride-1 3×3 conv's input gradient is itself a stride-1
// 3×3 conv of dY with the flipped, transposed filters). Each 2×2 block of outputs costs 16 products per
// (input, output) channel pair instead of 36, so the multiply-adds drop by 2.25×; the price is three
// transforms (filters once per call, input tiles, output tiles) and a rounding error a few ulp larger
// than the direct sum's. Work per worker, per block of tile rows: input transform into
// `V [16, C, tiles]` (vectors along the tiles of a row), 16 small GEMMs `M[ξ] = U[ξ] · V[ξ]` in a
// register-blocked micro-kernel (weights broadcast, tiles in vectors, as Conv2D+Rows.swift), output
// transform with the fused epilogue and the store into NCHW. Which shapes run here is decided in
// Conv2D+Dispatch.swift's measured table (`winogradFits` says where it can run, `MEMLOSS_WINOGRAD=0`
// turns the table's Winograd entries off); docs/kernels.md, "Winograd".
// Not here: the direct kernels (Conv2D+Direct.swift, Conv2D+Rows.swift), the naive twins
// (Conv2D+Reference.swift).

import Foundation

extension Conv2D {
    /// Whether the dispatch table's Winograd entries apply: `MEMLOSS_WINOGRAD` unset or not `0` (with
    /// `0` those shapes run the rule's choice, for A/B runs; `MEMLOSS_CONV=winograd` forces Winograd
    /// wherever it fits). Settable for tests; not meant to change during a run.
    public nonisolated(unsafe) static var winogradEnabled: Bool =
        ProcessInfo.processInfo.environment["MEMLOSS_WINOGRAD"] != "0"

    /// Whether the Winograd kernel computes a forward conv of geometry `g`: a 3×3 kernel, stride 1,
    /// padding ≤ 2, input channels a multiple of 8 (the transforms' vectors run along the tiles, the
    /// GEMM's reduction along the channels), at least 16 input and output channels, and at least a
    /// 4×4 output (2×2 tiles per image).
    public static func winogradFits(_ g: ConvGeometry) -> Bool {
        g.r == 3 && g.s == 3 && g.strideH == 1 && g.strideW == 1 && g.padH <= 2 && g.padW <= 2
            && g.c % 8 == 0 && g.c >= 16 && g.k >= 16 && g.p >= 4 && g.q >= 4
    }

    /// Whether the Winograd kernel computes the backward-input pass of `g` (as the forward of its
    /// transposed geometry, `transposedGeometry`).
    public static func winogradFitsBackwardInput(_ g: ConvGeometry) -> Bool {
        g.strideH == 1 && g.strideW == 1 && g.padH < g.r && g.padW < g.s && winogradFits(transposedGeometry(g))
    }

    /// Winograd forward (same contract as `forward(output:input:weight:epilogue:geometry:)`); `g` must
    /// satisfy `winogradFits`.
    static func winogradForward(output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
                                weight: UnsafePointer<Float>, epilogue: Epilogue, geometry g: ConvGeometry) {
        precondition(winogradFits(g), "Conv2D.winogradForward: unsupported geometry \(g)")
        if g.n == 0 { return }
        let crs = g.c * 9
        winogradRun(output: output, input: input, epilogue: epilogue, geometry: g) { k, c, r, s in
            weight[k * crs + c * 9 + r * 3 + s]
        }
    }

    /// Winograd backward to the input (overwrites `dInput`), as the forward of `dOutput` with the
    /// weights transposed and flipped, `w'[c, k, r, s] = w[k, c, 2 − r, 2 − s]`, and padding `2 − pad`;
    /// `g` must satisfy `winogradFitsBackwardInput`.
    static func winogradBackwardInput(dInput: UnsafeMutablePointer<Float>, dOutput: UnsafePointer<Float>,
                                      weight: UnsafePointer<Float>, geometry g: ConvGeometry,
                                      gate: UnsafePointer<Float>?) {
        precondition(winogradFitsBackwardInput(g), "Conv2D.winogradBackwardInput: unsupported geometry \(g)")
        if g.n == 0 { return }
        let crs = g.c * 9
        winogradRun(output: dInput, input: dOutput, epilogue: Epilogue(gate: gate), geometry: transposedGeometry(g)) {
            c, k, r, s in weight[k * crs + c * 9 + (2 - r) * 3 + (2 - s)]
        }
    }

    /// The filter transform `U = G · g · Gᵀ` of one 3×3 filter (row-major), as 16 values `U[ξ]`,
    /// `ξ = 4·i + j`, with `G = [[1, 0, 0], [½, ½, ½], [½, −½, ½], [0, 0, 1]]`.
    @inline(__always)
    static func winogradFilter(_ f: (_ r: Int, _ s: Int) -> Float) -> InlineArray<16, Float> {
        // Rows of G·g (4 × 3), then each row times Gᵀ (4 values).
        var gg = InlineArray<12, Float>(repeating: 0)
        for s in 0..<3 {
            let g0 = f(0, s), g1 = f(1, s), g2 = f(2, s)
            gg[s] = g0
            gg[3 + s] = 0.5 * (g0 + g1 + g2)
            gg[6 + s] = 0.5 * (g0 - g1 + g2)
            gg[9 + s] = g2
        }
        var u = InlineArray<16, Float>(repeating: 0)
        for i in 0..<4 {
            let u0 = gg[3 * i], u1 = gg[3 * i + 1], u2 = gg[3 * i + 2]
            u[4 * i] = u0
            u[4 * i + 1] = 0.5 * (u0 + u1 + u2)
            u[4 * i + 2] = 0.5 * (u0 - u1 + u2)
            u[4 * i + 3] = u2
        }
        return u
    }

    /// The loop for the build's vector width: `M` output channels × `V` vectors of tiles per
    /// micro-kernel tile, chosen so that the `M·V` accumulators, `V` inputs and a broadcast fit the
    /// register file and the channels fill the tiles (4 × 3 when K is a multiple of 4 but not 6).
    private static func winogradRun(output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
                                    epilogue: Epilogue, geometry g: ConvGeometry,
                                    weight value: (_ k: Int, _ c: Int, _ r: Int, _ s: Int) -> Float) {
        #if MEMLOSS_AVX512
        winogradTiled(output, input, epilogue, g, value, zero: RowTile<8, 2>(repeating: InlineArray<2, WideVector>(repeating: WideVector())))
        #else
        if g.k % 6 != 0 && g.k % 4 == 0 {
            winogradTiled(output, input, epilogue, g, value, zero: RowTile<4, 3>(repeating: InlineArray<3, WideVector>(repeating: WideVector())))
        } else {
            winogradTiled(output, input, epilogue, g, value, zero: RowTile<6, 2>(repeating: InlineArray<2, WideVector>(repeating: WideVector())))
        }
        #endif
    }

    /// Bytes of transformed input `V [16, C, tiles]` per block of tile rows: the block's tile count is
    /// chosen so that `V` and the GEMM's output `M [16, K, tiles]` stay in the L2 cache.
    nonisolated(unsafe) static var winogradBlockBytes = 160 * 1024

    /// The least number of GEMM micro-tiles (`V·L` tiles each) per block, whatever `winogradBlockBytes`
    /// says. With many channels the byte budget alone leaves a block a handful of tiles (512 channels:
    /// 5), so each micro-tile computes mostly padding and the transformed weights `U[ξ]` are re-read
    /// for a few tiles each; four micro-tiles (128 tiles with 16-lane vectors, 64 with 8-lane) made
    /// ResNet-18's layer2–4 3×3 convs 1.4–4× faster in `memloss bench conv` (Zen 4, 16 lanes,
    /// 2026-12-04), while V and M then outgrow L2 (V[ξ] alone, read K/M times per block, still fits).
    nonisolated(unsafe) static var winogradMinMicroTiles = 4

    /// Work, per image group (one contiguous chunk of images per worker, G images per group so that a
    /// group has enough tiles):
    /// 1. the images are copied into zero-bordered buffers `[G, C, H + 2·pad + 1, W + 2·pad]` (plus slack);
    /// 2. the group's tile rows (`TY = ⌈P/2⌉` per image, `TX = ⌈Q/2⌉` tiles each) run in blocks of rows;
    ///    per block, the input transform `V[ξ, c, t] = (Bᵀ d B)[ξ]` of every tile's 4×4 patch `d`, with
    ///    `Bᵀ = [[1, 0, −1, 0], [0, 1, 1, 0], [0, −1, 1, 0], [0, 1, 0, −1]]`: first along the columns of
    ///    four bordered rows (whole-row vectors), then along the rows (even / odd lanes of 8 tiles);
    /// 3. 16 GEMMs `M[ξ, k, t] = Σ_c U[ξ, k, c] · V[ξ, c, t]` in `M × V·L` micro-tiles;
    /// 4. the output transform `Y = Aᵀ M A` with `Aᵀ = [[1, 1, 1, 0], [0, 1, −1, −1]]` per channel and
    ///    8 tiles, the epilogue, and the store of the valid pixels (a last tile of an odd P or Q holds
    ///    one row or column); a gate is applied once the group is complete.
    /// Lanes of a vector past a row's last tile read neighbouring (finite, bordered) data and are
    /// never stored. The order of every sum is fixed, so the result is deterministic and does not
    /// depend on the worker count.
    private static func winogradTiled<let M: Int, let V: Int>(
        _ output: UnsafeMutablePointer<Float>, _ input: UnsafePointer<Float>, _ epilogue: Epilogue,
        _ g: ConvGeometry, _ value: (_ k: Int, _ c: Int, _ r: Int, _ s: Int) -> Float, zero: RowTile<M, V>
    ) {
        let lanes = FloatVector.scalarCount, wideLanes = WideVector.scalarCount
        let chw = g.c * g.h * g.w, pq = g.p * g.q, kpq = g.k * pq
        let tileRows = (g.p + 1) / 2, tilesPerRow = (g.q + 1) / 2
        let tilesPerImage = tileRows * tilesPerRow
        // Bordered image: one extra row below (the last tile row of an odd P reads it); rows of wp floats.
        let wp = g.w + 2 * g.padW, hp = g.h + 2 * g.padH + 1, plane = hp * wp, imageFloats = g.c * plane
        // The column transform of a tile row covers `rowSpan` columns: whole vectors of 8 tiles and 2 more.
        let vectorsPerRow = (tilesPerRow + lanes - 1) / lanes
        let rowSpan = 2 * vectorsPerRow * lanes + 2
        let columnVectors = (rowSpan + lanes - 1) / lanes
        let slack = 2 * wp + columnVectors * lanes + 2 * lanes

        // Blocks of tile rows: V [16, C, tilesPad] within winogradBlockBytes.
        let micro = V * wideLanes
        let targetTiles = max(tilesPerRow, winogradBlockBytes / (16 * 4 * g.c), winogradMinMicroTiles * micro)
        let perWorker = (g.n + Parallel.chunkCount(count: g.n) - 1) / max(1, Parallel.chunkCount(count: g.n))
        let group = max(1, min(perWorker, targetTiles / tilesPerImage))
        let rowsPerBlock = max(1, min(group * tileRows, targetTiles / tilesPerRow))
        let blockTiles = rowsPerBlock * tilesPerRow
        // The input transform stores whole vectors of 8 tiles per row: room for the last row's overrun.
        let tilesPad = (blockTiles + lanes + micro - 1) / micro * micro
        let kBlocks = (g.k + M - 1) / M, kPad = kBlocks * M

        // U [16, kBlocks, C, M]: per ξ and block of M output channels, per input channel M weights.
        let u = allocateScratch(16 * kPad * g.c)
        defer { releaseScratch(u) }
        for k in 0..<kPad {
            for c in 0..<g.c {
                let f = k < g.k ? winogradFilter { r, s in value(k, c, r, s) } : InlineArray<16, Float>(repeating: 0)
                let kb = k / M, m = k % M
                for xi in 0..<16 { u[((xi * kBlocks + kb) * g.c + c) * M + m] = f[xi] }
            }
        }
        let uConst = UnsafePointer(u)

        Parallel.forEachChunk(count: g.n) { range, _ in
            let bordered = allocateScratch(group * imageFloats + slack)
            let vBuffer = allocateScratch(16 * g.c * tilesPad)
            let mBuffer = allocateScratch(16 * kPad * tilesPad)
            let columns = allocateScratch(4 * columnVectors * lanes + 2 * lanes)
            defer { releaseScratch(bordered); releaseScratch(vBuffer); releaseScratch(mBuffer); releaseScratch(columns) }
            bordered.update(repeating: 0, count: group * imageFloats + slack)
            vBuffer.update(repeating: 0, count: 16 * g.c * tilesPad)
            mBuffer.update(repeating: 0, count: 16 * kPad * tilesPad)
            columns.update(repeating: 0, count: 4 * columnVectors * lanes + 2 * lanes)
            let columnRow = columnVectors * lanes

            var first = range.lowerBound
            while first < range.upperBound {
                let count = min(group, range.upperBound - first)
                for i in 0..<count {
                    winogradCopyBordered(bordered + i * imageFloats, input + (first + i) * chw, g, wp: wp, plane: plane)
                }
                let out = output + first * kpq
                let residual = epilogue.residual.map { $0 + first * kpq }
                let groupRows = count * tileRows
                var row0 = 0
                while row0 < groupRows {
                    let rows = min(rowsPerBlock, groupRows - row0)
                    let tiles = rows * tilesPerRow

                    // 2. Input transform, one tile row and channel at a time.
                    for b in 0..<rows {
                        let gr = row0 + b, image = gr / tileRows, ty = gr % tileRows
                        let at = b * tilesPerRow
                        for c in 0..<g.c {
                            let src = UnsafePointer(bordered + image * imageFloats + c * plane + 2 * ty * wp)
                            // Along the columns: t0 = d0 − d2, t1 = d1 + d2, t2 = d2 − d1, t3 = d1 − d3.
                            for v in 0..<columnVectors {
                                let o = v * lanes
                                let d0 = loadVector(src + o), d1 = loadVector(src + wp + o)
                                let d2 = loadVector(src + 2 * wp + o), d3 = loadVector(src + 3 * wp + o)
                                storeVector(d0 - d2, columns + o)
                                storeVector(d1 + d2, columns + columnRow + o)
                                storeVector(d2 - d1, columns + 2 * columnRow + o)
                                storeVector(d1 - d3, columns + 3 * columnRow + o)
                            }
                            // Along the rows, 8 tiles at a time: tile t reads columns 2t … 2t + 3.
                            let dst = vBuffer + c * tilesPad + at
                            for tv in 0..<vectorsPerRow {
                                let t0 = tv * lanes
                                for i in 0..<4 {
                                    let line = UnsafePointer(columns + i * columnRow + 2 * t0)
                                    let a = UnsafeRawPointer(line).loadUnaligned(as: SIMD16<Float>.self)
                                    let b2 = UnsafeRawPointer(line + 2).loadUnaligned(as: SIMD16<Float>.self)
                                    let x0 = a.evenHalf, x1 = a.oddHalf, x2 = b2.evenHalf, x3 = b2.oddHalf
                                    let xi = 4 * i * g.c * tilesPad
                                    storeVector(x0 - x2, dst + xi + t0)
                                    storeVector(x1 + x2, dst + xi + g.c * tilesPad + t0)
                                    storeVector(x2 - x1, dst + xi + 2 * g.c * tilesPad + t0)
                                    storeVector(x1 - x3, dst + xi + 3 * g.c * tilesPad + t0)
                                }
                            }
                        }
                    }

                    // 3. The 16 GEMMs over the block's tiles.
                    let microTiles = (tiles + micro - 1) / micro
                    for xi in 0..<16 {
                        let vx = UnsafePointer(vBuffer + xi * g.c * tilesPad)
                        let mx = mBuffer + xi * kPad * tilesPad
                        for kb in 0..<kBlocks {
                            let w = uConst + (xi * kBlocks + kb) * g.c * M
                            for mt in 0..<microTiles {
                                let t0 = mt * micro
                                var acc = zero
                                winogradMicro(&acc, v: vx + t0, stride: tilesPad, weights: w, channels: g.c)
                                for m in 0..<M {
                                    let row = mx + (kb * M + m) * tilesPad + t0
                                    for v in 0..<V { storeWide(acc[m][v], row + v * wideLanes) }
                                }
                            }
                        }
                    }

                    // 4. Output transform, epilogue and store, one tile row, channel and 8 tiles at a time.
                    let xiStride = kPad * tilesPad
                    for b in 0..<rows {
                        let gr = row0 + b, image = gr / tileRows, ty = gr % tileRows
                        let p0 = 2 * ty, twoRows = p0 + 1 < g.p
                        for k in 0..<g.k {
                            let scale = epilogue.scale?[k] ?? 1, shift = epilogue.shift?[k] ?? 0
                            let base = UnsafePointer(mBuffer + k * tilesPad + b * tilesPerRow)
                            let outPlane = out + image * kpq + k * pq
                            let resPlane = residual.map { $0 + image * kpq + k * pq }
                            for tv in 0..<vectorsPerRow {
                                let t0 = tv * lanes
                                @inline(__always) func m(_ xi: Int) -> FloatVector { loadVector(base + xi * xiStride + t0) }
                                // Along the rows of M: s0 = m0 + m1 + m2, s1 = m1 − m2 − m3 (per column j).
                                var s0 = InlineArray<4, FloatVector>(repeating: FloatVector())
                                var s1 = InlineArray<4, FloatVector>(repeating: FloatVector())
                                for j in 0..<4 {
                                    let a0 = m(j), a1 = m(4 + j), a2 = m(8 + j), a3 = m(12 + j)
                                    s0[j] = a0 + a1 + a2
                                    s1[j] = a1 - a2 - a3
                                }
                                var y = InlineArray<4, FloatVector>(repeating: FloatVector())
                                y[0] = s0[0] + s0[1] + s0[2]; y[1] = s0[1] - s0[2] - s0[3]
                                y[2] = s1[0] + s1[1] + s1[2]; y[3] = s1[1] - s1[2] - s1[3]
                                let validTiles = min(lanes, tilesPerRow - t0)
                                winogradStore(y, out: outPlane, residual: resPlane, p0: p0, twoRows: twoRows, q0: 2 * t0,
                                              validTiles: validTiles, q: g.q, scale: scale, shift: shift,
                                              affine: epilogue.scale != nil, relu: epilogue.relu)
                            }
                        }
                    }
                    row0 += rows
                }
                if let gate = epilogue.gate { gateInPlace(out, gate: gate + first * kpq, count: count * kpq) }
                first += count
            }
        }
    }

    /// `target[c, h + padH, w + padW] = image[c, h, w]` with channel planes `plane` floats and rows `wp`
    /// floats apart; the border is left as it is (zero).
    @inline(__always)
    private static func winogradCopyBordered(_ target: UnsafeMutablePointer<Float>, _ image: UnsafePointer<Float>,
                                             _ g: ConvGeometry, wp: Int, plane: Int) {
        for c in 0..<g.c {
            for h in 0..<g.h {
                (target + c * plane + (h + g.padH) * wp + g.padW).update(from: image + (c * g.h + h) * g.w, count: g.w)
            }
        }
    }

    /// One micro-tile of a Winograd GEMM: `acc[m][v] += Σ_c w[c, m] · V[c, t0 + v·L ..< t0 + (v + 1)·L]`
    /// (`weights [channels, M]`, `V` rows `stride` floats apart).
    @inline(__always)
    private static func winogradMicro<let M: Int, let V: Int>(
        _ acc: inout RowTile<M, V>, v: UnsafePointer<Float>, stride: Int, weights: UnsafePointer<Float>, channels: Int
    ) {
        let width = WideVector.scalarCount
        var x = v, w = weights
        for _ in 0..<channels {
            var inputs = InlineArray<V, WideVector>(repeating: WideVector())
            for j in 0..<V { inputs[j] = loadWide(x + j * width) }
            for m in 0..<M {
                let b = WideVector(repeating: w[m])
                for j in 0..<V { acc[m][j].addProduct(b, inputs[j]) }
            }
            x += stride
            w += M
        }
    }

    /// Stores the 2×2 outputs of up to 8 tiles of one channel: `y[2·i + j]` holds output pixel
    /// `(p0 + i, q0 + 2·t + j)` of tile t in lane t. Applies `scale · y + shift`, the residual and the
    /// ReLU; pixels past P or Q are not stored.
    @inline(__always)
    private static func winogradStore(_ y: InlineArray<4, FloatVector>, out: UnsafeMutablePointer<Float>,
                                      residual: UnsafePointer<Float>?, p0: Int, twoRows: Bool, q0: Int, validTiles: Int,
                                      q: Int, scale: Float, shift: Float, affine: Bool, relu: Bool) {
        let zero = FloatVector(), vs = FloatVector(repeating: scale), vb = FloatVector(repeating: shift)
        for i in 0..<(twoRows ? 2 : 1) {
            var e = y[2 * i], o = y[2 * i + 1]
            if affine { e *= vs; o *= vs }
            e += vb; o += vb
            let row = out + (p0 + i) * q + q0
            if let residual {
                let res = residual + (p0 + i) * q + q0
                let columns = min(2 * validTiles, q - q0)
                for t in 0..<columns {
                    var s = (t & 1 == 0 ? e[t >> 1] : o[t >> 1]) + res[t]
                    if relu && s < 0 { s = 0 }
                    row[t] = s
                }
                continue
            }
            if relu { e = e.replacing(with: zero, where: e .< zero); o = o.replacing(with: zero, where: o .< zero) }
            if validTiles == FloatVector.scalarCount && q0 + 16 <= q {
                let both = SIMD16<Float>(e[0], o[0], e[1], o[1], e[2], o[2], e[3], o[3],
                                         e[4], o[4], e[5], o[5], e[6], o[6], e[7], o[7])
                UnsafeMutableRawPointer(row).storeBytes(of: both, as: SIMD16<Float>.self)
            } else {
                let columns = min(2 * validTiles, q - q0)
                for t in 0..<columns { row[t] = t & 1 == 0 ? e[t >> 1] : o[t >> 1] }
            }
        }
    }
}
