// Conv2D+Rows.swift: the row-vectorised direct convolution, for the shapes the channel-vectorised
// micro-kernel of Conv2D+Direct.swift fits badly: first layers (C·R·S of 9 or 27: too few taps to hide
// that kernel's transposing store) and convolutions with very few output channels (the backward-input
// of a first layer computes 1 or 3 channels: most lanes of a 16- or 32-channel tile would be empty).
// Here a vector holds consecutive output pixels of one row (stride-1 columns), so loads of the input
// are contiguous, the weights are broadcast, and the store is a plain vector store into NCHW.
// Which kernel runs is decided in `directForward` / `directBackwardInput` (Conv2D+Direct.swift) by
// `rowKernelFits`; docs/kernels.md ("Row-vectorised kernel").

import Foundation

/// An `M × V` tile of accumulators: `M` output channels × `V` row vectors.
typealias RowTile<let M: Int, let V: Int> = InlineArray<M, InlineArray<V, WideVector>>

extension Conv2D {
    /// Whether the row-vectorised kernel computes the forward of `g`: stride-1 columns, rows of at
    /// least half a vector, and few taps (C·R·S ≤ 32), few output channels (K ≤ 4), or row vectors at
    /// least as full as the channel kernel's tiles.
    static func rowKernelFits(_ g: ConvGeometry) -> Bool {
        guard g.strideW == 1 && g.q >= WideVector.scalarCount / 2 else { return false }
        switch forcedDirectLayout {
        case "rows": return true
        case "channels": return false
        default:
            if g.c * g.r * g.s <= 32 || g.k <= 4 { return true }
            // Otherwise the layout whose vectors are fuller: the row kernel's last vector of a row
            // holds Q mod L pixels, the channel kernel's last tile K mod 2L channels; a tie goes to
            // the rows (their store is a plain vector store). Measured on ResNet-18 ×0.25 and SmallCNN
            // shapes (docs/kernels.md): rows win at Q = 16, 32; channels at Q = 8, 10, 24 with K ≥ 32.
            let lanes = WideVector.scalarCount, tile = directChannelTile
            let rowFill = Double(g.q) / Double((g.q + lanes - 1) / lanes * lanes)
            let channelFill = Double(g.k) / Double((g.k + tile - 1) / tile * tile)
            return rowFill >= channelFill
        }
    }

    /// MEMLOSS_DIRECT_LAYOUT=rows|channels forces the direct kernel's vectorisation where the row kernel
    /// applies (benchmarks that set the rule); unset, `rowKernelFits` decides.
    nonisolated(unsafe) static var forcedDirectLayout: String? = ProcessInfo.processInfo.environment["MEMLOSS_DIRECT_LAYOUT"]

    /// The row-vectorised forward on weights given as `value(k, t)` (output channel `k`, tap
    /// `t = (c·R + r)·S + s`), with the fused epilogue; same contract as the direct forward.
    ///
    /// Work: per image, the input is copied into a zero-bordered buffer `[C, H + 2·padH, W + 2·padW]`
    /// (plus a vector of slack, so the last partial vector of a row may read past it). The output is
    /// cut into vectors of `L` consecutive pixels of one row (`L` = `WideVector.scalarCount`; the last
    /// vector of a row is partial) and a tile of `M` output channels × `V` such vectors accumulates
    /// ```
    /// acc[m][v] += w[k0 + m, t] · x[base(v) + offset(t)]      for every tap t
    /// ```
    /// with `base(v) = p·strideH·W' + q0`, `offset(t) = c·H'·W' + r·W' + s`. `M × V` is chosen from `K`
    /// so that the accumulators, the `V` input vectors and a broadcast fit the register file.
    static func rowForward(output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
                           epilogue: Epilogue, geometry g: ConvGeometry,
                           weight value: (_ k: Int, _ t: Int) -> Float) {
        if g.n == 0 { return }
        #if MEMLOSS_AVX512
        // 32 registers: M·V accumulators + V inputs + 1 broadcast ≤ 32.
        switch g.k {
        case 1: rowForwardTiled(output, input, epilogue, g, value, zero: RowTile<1, 12>(repeating: InlineArray<12, WideVector>(repeating: WideVector())))
        case 2: rowForwardTiled(output, input, epilogue, g, value, zero: RowTile<2, 8>(repeating: InlineArray<8, WideVector>(repeating: WideVector())))
        case 3: rowForwardTiled(output, input, epilogue, g, value, zero: RowTile<3, 6>(repeating: InlineArray<6, WideVector>(repeating: WideVector())))
        case 4...7: rowForwardTiled(output, input, epilogue, g, value, zero: RowTile<4, 4>(repeating: InlineArray<4, WideVector>(repeating: WideVector())))
        default: rowForwardTiled(output, input, epilogue, g, value, zero: RowTile<8, 2>(repeating: InlineArray<2, WideVector>(repeating: WideVector())))
        }
        #else
        // 16 registers: M·V accumulators + V inputs + 1 broadcast ≤ 16.
        switch g.k {
        case 1: rowForwardTiled(output, input, epilogue, g, value, zero: RowTile<1, 6>(repeating: InlineArray<6, WideVector>(repeating: WideVector())))
        case 2: rowForwardTiled(output, input, epilogue, g, value, zero: RowTile<2, 4>(repeating: InlineArray<4, WideVector>(repeating: WideVector())))
        case 3...5: rowForwardTiled(output, input, epilogue, g, value, zero: RowTile<3, 3>(repeating: InlineArray<3, WideVector>(repeating: WideVector())))
        default: rowForwardTiled(output, input, epilogue, g, value, zero: RowTile<6, 2>(repeating: InlineArray<2, WideVector>(repeating: WideVector())))
        }
        #endif
    }

    /// The forward loop for one tile shape `M × V` (see `rowForward`).
    private static func rowForwardTiled<let M: Int, let V: Int>(
        _ output: UnsafeMutablePointer<Float>, _ input: UnsafePointer<Float>, _ epilogue: Epilogue,
        _ g: ConvGeometry, _ value: (_ k: Int, _ t: Int) -> Float, zero: RowTile<M, V>
    ) {
        let lanes = WideVector.scalarCount
        let crs = g.c * g.r * g.s, chw = g.c * g.h * g.w, pq = g.p * g.q, kpq = g.k * pq
        let wp = g.w + 2 * g.padW, hp = g.h + 2 * g.padH, borderedCount = g.c * hp * wp
        let blocks = (g.k + M - 1) / M

        // Weights packed [⌈K/M⌉, C·R·S, M], zero past K.
        let packed = allocateScratch(blocks * crs * M)
        defer { releaseScratch(packed) }
        for block in 0..<blocks {
            for t in 0..<crs {
                for m in 0..<M {
                    let k = block * M + m
                    packed[(block * crs + t) * M + m] = k < g.k ? value(k, t) : 0
                }
            }
        }
        var tapOffsets = [Int](repeating: 0, count: crs)
        for c in 0..<g.c { for r in 0..<g.r { for s in 0..<g.s {
            tapOffsets[(c * g.r + r) * g.s + s] = c * hp * wp + r * wp + s
        } } }
        // The row vectors of one image, padded to a multiple of V with empty vectors (valid 0) that
        // read the first vector's inputs and store nothing. `validLanes` is how many lanes are stored.
        let perRow = (g.q + lanes - 1) / lanes
        let vectorCount = g.p * perRow, tiles = (vectorCount + V - 1) / V
        var inputBases = [Int](repeating: 0, count: tiles * V)
        var outputOffsets = [Int](repeating: 0, count: tiles * V)
        var validLanes = [Int](repeating: 0, count: tiles * V)
        for p in 0..<g.p {
            for v in 0..<perRow {
                let i = p * perRow + v, q0 = v * lanes
                inputBases[i] = p * g.strideH * wp + q0
                outputOffsets[i] = p * g.q + q0
                // A partial vector is stored whole when the lanes past the row stay inside the channel's
                // plane: they land on pixels of later vectors of the same plane, which this thread
                // stores afterwards (tiles and, within a tile, vectors run in increasing order).
                validLanes[i] = p * g.q + q0 + lanes <= pq ? lanes : g.q - q0
            }
        }

        tapOffsets.withUnsafeBufferPointer { offsets in
            inputBases.withUnsafeBufferPointer { inputBases in
                outputOffsets.withUnsafeBufferPointer { outputOffsets in
                    validLanes.withUnsafeBufferPointer { validLanes in
                        let offsets = offsets.baseAddress!, inputBases = inputBases.baseAddress!
                        let outputOffsets = outputOffsets.baseAddress!, validLanes = validLanes.baseAddress!
                        Parallel.forEachChunk(count: g.n) { range, _ in
                            let bordered = allocateScratch(borderedCount + lanes)
                            defer { releaseScratch(bordered) }
                            bordered.update(repeating: 0, count: borderedCount + lanes)
                            for image in range {
                                copyBordered(bordered, input + image * chw, g)
                                let out = output + image * kpq
                                let residual = epilogue.residual.map { $0 + image * kpq }
                                let gate = epilogue.gate.map { $0 + image * kpq }
                                for block in 0..<blocks {
                                    let w = UnsafePointer(packed + block * crs * M)
                                    for tile in 0..<tiles {
                                        var acc = zero
                                        rowTile(&acc, source: UnsafePointer(bordered), weights: w, offsets: offsets,
                                                taps: crs, bases: inputBases + tile * V)
                                        rowStore(acc, out: out, residual: residual, gate: gate, k0: block * M, k: g.k, pq: pq,
                                                 offsets: outputOffsets + tile * V, valid: validLanes + tile * V,
                                                 epilogue: epilogue)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// `bordered[c, h + padH, w + padW] = image[c, h, w]`; the border and the slack stay zero.
    @inline(__always)
    private static func copyBordered(_ bordered: UnsafeMutablePointer<Float>, _ image: UnsafePointer<Float>,
                                     _ g: ConvGeometry) {
        let wp = g.w + 2 * g.padW, hp = g.h + 2 * g.padH
        for c in 0..<g.c {
            for h in 0..<g.h {
                (bordered + (c * hp + h + g.padH) * wp + g.padW).update(from: image + (c * g.h + h) * g.w, count: g.w)
            }
        }
    }

    /// Accumulates every tap into one `M × V` tile: per tap, `V` contiguous input vectors and `M`
    /// broadcast weights (`weights [taps, M]`).
    @inline(__always)
    private static func rowTile<let M: Int, let V: Int>(
        _ acc: inout RowTile<M, V>, source: UnsafePointer<Float>,
        weights: UnsafePointer<Float>, offsets: UnsafePointer<Int>, taps: Int, bases: UnsafePointer<Int>
    ) {
        var x = InlineArray<V, UnsafePointer<Float>>(repeating: source)
        for v in 0..<V { x[v] = source + bases[v] }
        var w = weights
        for t in 0..<taps {
            let o = offsets[t]
            var inputs = InlineArray<V, WideVector>(repeating: WideVector())
            for v in 0..<V { inputs[v] = loadWide(x[v] + o) }
            for m in 0..<M {
                let b = WideVector(repeating: w[m])
                for v in 0..<V { acc[m][v].addProduct(b, inputs[v]) }
            }
            w += M
        }
    }

    /// Applies the epilogue to a finished tile and stores it: channel `k0 + m` (< `k`), vector `v` at
    /// `out[(k0 + m)·P·Q + offsets[v]]`, its first `valid[v]` lanes.
    @inline(__always)
    private static func rowStore<let M: Int, let V: Int>(
        _ acc: RowTile<M, V>, out: UnsafeMutablePointer<Float>,
        residual: UnsafePointer<Float>?, gate: UnsafePointer<Float>?, k0: Int, k: Int, pq: Int, offsets: UnsafePointer<Int>,
        valid: UnsafePointer<Int>, epilogue: Epilogue
    ) {
        let lanes = WideVector.scalarCount, zero = WideVector()
        for m in 0..<M where k0 + m < k {
            let channel = k0 + m
            let scale = WideVector(repeating: epilogue.scale?[channel] ?? 1)
            let shift = WideVector(repeating: epilogue.shift?[channel] ?? 0)
            for v in 0..<V where valid[v] > 0 {
                let at = channel * pq + offsets[v]
                var y = acc[m][v]
                if epilogue.scale != nil { y *= scale }
                y += shift
                if valid[v] == lanes {
                    if let residual { y += loadWide(residual + at) }
                    if epilogue.relu { y = y.replacing(with: zero, where: y .< zero) }
                    if let gate { y = zero.replacing(with: y, where: loadWide(gate + at) .> zero) }
                    storeWide(y, out + at)
                } else {
                    for l in 0..<valid[v] {
                        var s = y[l]
                        if let residual { s += residual[at + l] }
                        if epilogue.relu && s < 0 { s = 0 }
                        if let gate { s = gate[at + l] > 0 ? s : 0 }
                        out[at + l] = s
                    }
                }
            }
        }
    }
}
