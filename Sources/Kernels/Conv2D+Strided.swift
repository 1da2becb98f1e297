// Conv2D+Strided.swift: the direct backward-input of strided convolutions (and of stride-1 ones whose
// padding is not smaller than the kernel), by output phase. For stride (sH, sW) the input gradient's
// pixels fall into sH·sW phases (h mod sH, w mod sW); within one phase only the taps of matching
// parity reach a pixel, and they read dOutput at a fixed offset from the pixel's phase coordinates,
// so each phase is a stride-1 correlation of dOutput with a sub-kernel (3×3 stride 2: 1×1, 1×2, 2×1
// and 2×2 taps) whose results are stored every sH-th row and sW-th column. Each phase runs as one
// pass of the channel kernel (Conv2D+Direct.swift: `ChannelPass`, `channelConvolve`) on the image's
// dOutput with a zero border wide enough for every phase: no col2im, no zeroing of dInput, no
// multiply by an inserted zero.
// Not here: stride-1 backward-input with padding < kernel (Conv2D+Direct.swift), the GEMM path.

import Foundation

extension Conv2D {
    /// One phase of one axis: the input rows (or columns) `phase + stride·i`, `i < count`, and the taps
    /// that reach them: kernel row `r` reads dOutput row `i + shift` (`shift = (phase + pad − r) / stride`,
    /// exact).
    struct AxisPhase {
        var phase: Int, count: Int
        var taps: [(r: Int, shift: Int)]
    }

    /// The phases of one axis of size `size` (input), `outSize` (output), and the zero border dOutput
    /// needs on both sides so that every tap of every phase reads inside the bordered plane.
    static func axisPhases(size: Int, outSize: Int, kernel: Int, stride: Int, pad: Int) -> (phases: [AxisPhase], border: Int) {
        var phases: [AxisPhase] = [], border = 0
        for phase in 0..<min(stride, size) {
            let count = (size - phase + stride - 1) / stride
            var taps: [(r: Int, shift: Int)] = []
            for r in 0..<kernel where (phase + pad - r) % stride == 0 {
                let shift = (phase + pad - r) / stride
                taps.append((r, shift))
                border = max(border, -shift, count - 1 + shift - (outSize - 1))
            }
            phases.append(AxisPhase(phase: phase, count: count, taps: taps))
        }
        return (phases, border)
    }

    /// Direct backward pass to the input by output phase (see the file comment), every stride and
    /// padding; overwrites `dInput [N, C, H, W]`:
    /// ```
    /// dInput[n, c, phH + sH·i, phW + sW·j] = Σ_k Σ_{r ∈ taps(phH)} Σ_{s ∈ taps(phW)}
    ///                                          w[k, c, r, s] · dOutput[n, k, i + shiftH(r), j + shiftW(s)]
    /// ```
    /// with dOutput zero outside `[0, P) × [0, Q)`. The weights are packed per phase as
    /// `[⌈C/T⌉, K·|taps|, T]` (output channel c in the lanes); `gate`, if given, masks the result as in
    /// `backwardInput(…, gate:)`.
    static func directPhasedBackwardInput(dInput: UnsafeMutablePointer<Float>, dOutput: UnsafePointer<Float>,
                                          weight: UnsafePointer<Float>, geometry g: ConvGeometry,
                                          gate: UnsafePointer<Float>? = nil) {
        if g.n == 0 { return }
        let (rows, borderH) = axisPhases(size: g.h, outSize: g.p, kernel: g.r, stride: g.strideH, pad: g.padH)
        let (columns, borderW) = axisPhases(size: g.w, outSize: g.q, kernel: g.s, stride: g.strideW, pad: g.padW)
        // dOutput as the source image: [K, P, Q] bordered to [K, P + 2·borderH, Q + 2·borderW].
        let source = ConvGeometry(n: g.n, c: g.k, h: g.p, w: g.q, k: g.c, r: 1, s: 1, strideH: 1, strideW: 1,
                                  padH: borderH, padW: borderW)
        let wp = g.q + 2 * borderW, plane = (g.p + 2 * borderH) * wp
        let tile = channelTile(for: g.c), blocks = (g.c + tile - 1) / tile
        let packed = allocateScratch(max(1, blocks * g.k * g.r * g.s * tile))
        defer { releaseScratch(packed) }

        var passes: [ChannelPass] = []
        var tables: [UnsafeMutableRawPointer] = []
        defer { for t in tables { t.deallocate() } }
        var packedAt = packed
        for rowPhase in rows {
            for columnPhase in columns {
                let taps = g.k * rowPhase.taps.count * columnPhase.taps.count
                let pixels = rowPhase.count * columnPhase.count
                let offsets = UnsafeMutablePointer<Int32>.allocate(capacity: max(1, taps))
                let bases = UnsafeMutablePointer<Int>.allocate(capacity: pixels)
                let outIndex = UnsafeMutablePointer<Int>.allocate(capacity: pixels)
                tables += [UnsafeMutableRawPointer(offsets), UnsafeMutableRawPointer(bases), UnsafeMutableRawPointer(outIndex)]
                // Taps k-major, then the phase's kernel rows and columns: offsets rise through the planes.
                var t = 0
                for k in 0..<g.k {
                    for (_, dr) in rowPhase.taps {
                        for (_, ds) in columnPhase.taps {
                            offsets[t] = Int32(k * plane + (dr + borderH) * wp + ds + borderW)
                            t += 1
                        }
                    }
                }
                for j in 0..<pixels {
                    let i = j / columnPhase.count, q = j % columnPhase.count
                    bases[j] = i * wp + q
                    outIndex[j] = (rowPhase.phase + g.strideH * i) * g.w + columnPhase.phase + g.strideW * q
                }
                // Packed [⌈C/T⌉, taps, T]: tap (k, r, s) of output channel c is w[k, c, r, s].
                let rowTaps = rowPhase.taps.map(\.r), columnTaps = columnPhase.taps.map(\.r)
                let perK = rowTaps.count * columnTaps.count
                for block in 0..<blocks {
                    let base = packedAt + block * taps * tile
                    for tap in 0..<taps {
                        let k = tap / perK, r = rowTaps[(tap % perK) / columnTaps.count], s = columnTaps[tap % columnTaps.count]
                        for lane in 0..<tile {
                            let c = block * tile + lane
                            base[tap * tile + lane] = c < g.c ? weight[((k * g.c + c) * g.r + r) * g.s + s] : 0
                        }
                    }
                }
                passes.append(ChannelPass(packed: UnsafePointer(packedAt), taps: taps, offsets: UnsafePointer(offsets),
                                          bases: UnsafePointer(bases), pixels: pixels, outIndex: UnsafePointer(outIndex)))
                packedAt += blocks * taps * tile
            }
        }
        channelConvolve(output: dInput, input: dOutput, passes: passes, source: source, outChannels: g.c,
                        outPlane: g.h * g.w, epilogue: Epilogue(gate: gate))
    }
}
