// Conv2D+Dispatch.swift: the public pointer entry points of the convolution forward and backward-input
// passes, and the choice, per shape and pass, between the direct SIMD kernel (Conv2D+Direct.swift) and
// the im2col + BLAS path (Conv2D.swift). The choice comes from a committed table of measured shapes
// (`measuredChoices`, from `memloss bench conv`, see docs/performance.md) and a rule for other shapes;
// MEMLOSS_CONV=gemm|direct forces one path where it applies (benchmarks, A/B runs).

import Foundation

/// How a convolution pass is computed.
public enum ConvAlgorithm: String, Sendable, CaseIterable, Codable {
    /// im2col / col2im around single-threaded OpenBLAS sgemm (Conv2D.swift): the reference twin.
    case gemm
    /// The register-blocked Swift SIMD direct kernel (Conv2D+Direct.swift).
    case direct
    /// Winograd F(2×2, 3×3) (Conv2D+Winograd.swift): 3×3 stride-1 forward and backward-input only.
    case winograd
}

/// One of the three passes of a convolution.
public enum ConvPass: String, Sendable, CaseIterable, Codable {
    case forward, backwardInput, backwardWeight
}

extension Conv2D {
    /// Forces one algorithm wherever it is supported: `MEMLOSS_CONV` at start-up when set to a valid
    /// algorithm name, else nil (the table and the rule decide). Settable so that a test can compare
    /// whole models on the GEMM path with the dispatched one; not meant to change during a run.
    public nonisolated(unsafe) static var forcedAlgorithm: ConvAlgorithm? =
        ProcessInfo.processInfo.environment["MEMLOSS_CONV"].flatMap { ConvAlgorithm(rawValue: $0.lowercased()) }

    /// Whether `algorithm` can compute `pass` for `g`. The GEMM path computes everything; the direct
    /// kernel computes every pass too (backward-input: stride 1 with padding < kernel as a transposed
    /// forward, the rest by output phase, Conv2D+Strided.swift).
    public static func supports(_ algorithm: ConvAlgorithm, _ pass: ConvPass, _ g: ConvGeometry) -> Bool {
        switch (algorithm, pass) {
        case (.gemm, _): return true
        case (.direct, .forward): return true
        case (.direct, .backwardInput): return true
        case (.direct, .backwardWeight): return true
        case (.winograd, .forward): return winogradFits(g)
        case (.winograd, .backwardInput): return winogradFitsBackwardInput(g)
        case (.winograd, .backwardWeight): return false
        }
    }

    /// A conv shape without the batch size (the choice does not depend on N).
    public struct ShapeKey: Hashable, Sendable {
        public var c, h, w, k, kernel, stride, padding: Int
        public init(c: Int, h: Int, w: Int, k: Int, kernel: Int, stride: Int, padding: Int) {
            self.c = c; self.h = h; self.w = w; self.k = k; self.kernel = kernel; self.stride = stride; self.padding = padding
        }
        init?(_ g: ConvGeometry) {
            guard g.r == g.s, g.strideH == g.strideW, g.padH == g.padW else { return nil }
            self.init(c: g.c, h: g.h, w: g.w, k: g.k, kernel: g.r, stride: g.strideH, padding: g.padH)
        }
    }

    /// The path that runs `pass` for `g`: the forced one if set and supported, else the measured table's
    /// entry (a Winograd entry only while `winogradEnabled`), else the rule (`ruleChoice`, which never
    /// picks Winograd: it wins only where its transforms are amortised over many channels, and the
    /// table says where that is).
    public static func algorithm(for pass: ConvPass, _ g: ConvGeometry) -> ConvAlgorithm {
        if let forced = forcedAlgorithm, supports(forced, pass, g) { return forced }
        if let key = ShapeKey(g), let choice = measuredChoices[key]?[pass], supports(choice, pass, g),
           choice != .winograd || winogradEnabled {
            return choice
        }
        let rule = ruleChoice(pass, g)
        return supports(rule, pass, g) ? rule : .gemm
    }

    /// For shapes the table does not list: the direct kernel where its row-vectorised form applies
    /// (first layers, few output channels, full rows: Conv2D+Rows.swift), or where a channel tile is at
    /// least half used and the reduction is long enough to hide the transposing store (C·R·S ≥ 64).
    static func ruleChoice(_ pass: ConvPass, _ g: ConvGeometry) -> ConvAlgorithm {
        let half = WideVector.scalarCount
        switch pass {
        case .forward:
            return rowKernelFits(g) || (g.k >= half && g.c * g.r * g.s >= 64) ? .direct : .gemm
        case .backwardInput:
            // Stride 1 with padding < kernel is a transposed forward (the row kernel may fit); the rest
            // runs by phase, each input pixel reached by K·R·S / (sH·sW) taps on average.
            let transposed = g.strideH == 1 && g.strideW == 1 && g.padH < g.r && g.padW < g.s
            if transposed && rowKernelFits(transposedGeometry(g)) { return .direct }
            return g.c >= half && g.k * g.r * g.s / (g.strideH * g.strideW) >= 64 ? .direct : .gemm
        case .backwardWeight: return g.k >= half ? .direct : .gemm
        }
    }

    /// The measured table of the build's vector width (see `measuredChoicesAVX2`,
    /// `measuredChoicesAVX512`): a shape's choice depends on the kernels' width as much as on the CPU.
    static var measuredChoices: [ShapeKey: [ConvPass: ConvAlgorithm]] {
        #if MEMLOSS_AVX512
        return measuredChoicesAVX512
        #else
        return measuredChoicesAVX2
        #endif
    }

    /// Measured choices per shape for 16-lane (AVX-512) kernels: two runs of `memloss bench conv
    /// --skip-whole-model --json` (batch 128, 2 workers, best of ≥ 0.5 s per cell; forward with the
    /// shift + ReLU epilogue of an inference pass) on an idle AMD EPYC Zen 5 (family 26), 2026-12-02,
    /// with the row-vectorised kernel; per pass, the direct kernel where the GEMM path's summed time
    /// over both runs was ≥ 1.03× the direct one's. The GEMM path's OpenBLAS 0.3.21 runs its Haswell
    /// (AVX2) kernel on this CPU. The comment under each entry gives the harmonic-mean GF/s (GEMM /
    /// direct). The three Winograd entries (ResNet-18's layer1–3 3×3 convs, forward and backward-input)
    /// come from two later runs with the Winograd column on an AMD EPYC Zen 4 (family 25, model 17),
    /// 2026-12-04 (the means of the two under each entry): Winograd where the direct kernel took
    /// ≥ 1.03× its time in both runs; it lost at 16–64 channels everywhere and at ResNet-18's layer4
    /// (512×4×4) in one of the two. Regenerate with `memloss bench conv --dispatch-table`
    /// (docs/performance.md).
    static let measuredChoicesAVX512: [ShapeKey: [ConvPass: ConvAlgorithm]] = [
        ShapeKey(c: 3, h: 32, w: 32, k: 64, kernel: 3, stride: 1, padding: 1): [.forward: .direct, .backwardInput: .direct, .backwardWeight: .gemm],
            // resnet18 conv1 (stem); GF/s gemm/direct: fwd 158/296, bwd-in 141/255, bwd-w 115/116
        ShapeKey(c: 64, h: 32, w: 32, k: 64, kernel: 3, stride: 1, padding: 1): [.forward: .winograd, .backwardInput: .winograd, .backwardWeight: .direct],
            // resnet18 layer1 3×3; GF/s gemm/direct: fwd 214/477, bwd-in 218/470, bwd-w 197/380;
            // Zen 4, 2026-12-04, gemm/direct/winograd: fwd 170/218/270, bwd-in 160/218/268
        ShapeKey(c: 64, h: 32, w: 32, k: 128, kernel: 3, stride: 2, padding: 1): [.forward: .direct, .backwardInput: .gemm, .backwardWeight: .direct],
            // resnet18 layer2.0.conv1 s2; GF/s gemm/direct: fwd 215/424, bwd-in 215/–, bwd-w 209/281
        ShapeKey(c: 128, h: 16, w: 16, k: 128, kernel: 3, stride: 1, padding: 1): [.forward: .winograd, .backwardInput: .winograd, .backwardWeight: .direct],
            // resnet18 layer2 3×3; GF/s gemm/direct: fwd 221/485, bwd-in 228/461, bwd-w 218/343;
            // Zen 4, 2026-12-04, gemm/direct/winograd: fwd 188/219/310, bwd-in 191/216/312
        ShapeKey(c: 128, h: 16, w: 16, k: 256, kernel: 3, stride: 2, padding: 1): [.forward: .direct, .backwardInput: .gemm, .backwardWeight: .direct],
            // resnet18 layer3.0.conv1 s2; GF/s gemm/direct: fwd 223/450, bwd-in 221/–, bwd-w 226/308
        ShapeKey(c: 256, h: 8, w: 8, k: 256, kernel: 3, stride: 1, padding: 1): [.forward: .winograd, .backwardInput: .winograd, .backwardWeight: .direct],
            // resnet18 layer3 3×3; GF/s gemm/direct: fwd 230/471, bwd-in 229/417, bwd-w 230/348;
            // Zen 4, 2026-12-04, gemm/direct/winograd: fwd 187/211/251, bwd-in 188/203/250
        ShapeKey(c: 256, h: 8, w: 8, k: 512, kernel: 3, stride: 2, padding: 1): [.forward: .direct, .backwardInput: .gemm, .backwardWeight: .direct],
            // resnet18 layer4.0.conv1 s2; GF/s gemm/direct: fwd 221/436, bwd-in 219/–, bwd-w 216/240
        ShapeKey(c: 512, h: 4, w: 4, k: 512, kernel: 3, stride: 1, padding: 1): [.forward: .direct, .backwardInput: .direct, .backwardWeight: .direct],
            // resnet18 layer4 3×3; GF/s gemm/direct: fwd 214/443, bwd-in 210/302, bwd-w 208/241
        ShapeKey(c: 64, h: 32, w: 32, k: 128, kernel: 1, stride: 2, padding: 0): [.forward: .gemm, .backwardInput: .gemm, .backwardWeight: .gemm],
            // resnet18 layer2.0 shortcut; GF/s gemm/direct: fwd 150/147, bwd-in 175/–, bwd-w 140/77
        ShapeKey(c: 128, h: 16, w: 16, k: 256, kernel: 1, stride: 2, padding: 0): [.forward: .direct, .backwardInput: .gemm, .backwardWeight: .gemm],
            // resnet18 layer3.0 shortcut; GF/s gemm/direct: fwd 181/279, bwd-in 198/–, bwd-w 183/111
        ShapeKey(c: 256, h: 8, w: 8, k: 512, kernel: 1, stride: 2, padding: 0): [.forward: .direct, .backwardInput: .gemm, .backwardWeight: .direct],
            // resnet18 layer4.0 shortcut; GF/s gemm/direct: fwd 212/355, bwd-in 209/–, bwd-w 205/219
        ShapeKey(c: 3, h: 32, w: 32, k: 16, kernel: 3, stride: 1, padding: 1): [.forward: .direct, .backwardInput: .direct, .backwardWeight: .direct],
            // resnet18×0.25 conv1 (stem); GF/s gemm/direct: fwd 132/316, bwd-in 141/322, bwd-w 96/101
        ShapeKey(c: 16, h: 32, w: 32, k: 16, kernel: 3, stride: 1, padding: 1): [.forward: .direct, .backwardInput: .direct, .backwardWeight: .direct],
            // resnet18×0.25 layer1 3×3; GF/s gemm/direct: fwd 145/423, bwd-in 159/411, bwd-w 126/182
        ShapeKey(c: 16, h: 32, w: 32, k: 32, kernel: 3, stride: 2, padding: 1): [.forward: .direct, .backwardInput: .gemm, .backwardWeight: .direct],
            // resnet18×0.25 layer2.0.conv1 s2; GF/s gemm/direct: fwd 164/322, bwd-in 169/–, bwd-w 155/322
        ShapeKey(c: 32, h: 16, w: 16, k: 32, kernel: 3, stride: 1, padding: 1): [.forward: .direct, .backwardInput: .direct, .backwardWeight: .direct],
            // resnet18×0.25 layer2 3×3; GF/s gemm/direct: fwd 178/453, bwd-in 190/440, bwd-w 162/396
        ShapeKey(c: 32, h: 16, w: 16, k: 64, kernel: 3, stride: 2, padding: 1): [.forward: .direct, .backwardInput: .gemm, .backwardWeight: .direct],
            // resnet18×0.25 layer3.0.conv1 s2; GF/s gemm/direct: fwd 186/381, bwd-in 185/–, bwd-w 183/344
        ShapeKey(c: 64, h: 8, w: 8, k: 64, kernel: 3, stride: 1, padding: 1): [.forward: .direct, .backwardInput: .direct, .backwardWeight: .direct],
            // resnet18×0.25 layer3 3×3; GF/s gemm/direct: fwd 200/439, bwd-in 206/396, bwd-w 193/391
        ShapeKey(c: 64, h: 8, w: 8, k: 128, kernel: 3, stride: 2, padding: 1): [.forward: .direct, .backwardInput: .gemm, .backwardWeight: .direct],
            // resnet18×0.25 layer4.0.conv1 s2; GF/s gemm/direct: fwd 196/408, bwd-in 190/–, bwd-w 193/331
        ShapeKey(c: 128, h: 4, w: 4, k: 128, kernel: 3, stride: 1, padding: 1): [.forward: .direct, .backwardInput: .direct, .backwardWeight: .direct],
            // resnet18×0.25 layer4 3×3; GF/s gemm/direct: fwd 201/426, bwd-in 190/302, bwd-w 196/344
        ShapeKey(c: 16, h: 32, w: 32, k: 32, kernel: 1, stride: 2, padding: 0): [.forward: .direct, .backwardInput: .gemm, .backwardWeight: .gemm],
            // resnet18×0.25 layer2.0 shortcut; GF/s gemm/direct: fwd 94/98, bwd-in 107/–, bwd-w 102/79
        ShapeKey(c: 32, h: 16, w: 16, k: 64, kernel: 1, stride: 2, padding: 0): [.forward: .direct, .backwardInput: .gemm, .backwardWeight: .gemm],
            // resnet18×0.25 layer3.0 shortcut; GF/s gemm/direct: fwd 121/153, bwd-in 129/–, bwd-w 127/113
        ShapeKey(c: 64, h: 8, w: 8, k: 128, kernel: 1, stride: 2, padding: 0): [.forward: .direct, .backwardInput: .gemm, .backwardWeight: .direct],
            // resnet18×0.25 layer4.0 shortcut; GF/s gemm/direct: fwd 128/236, bwd-in 138/–, bwd-w 133/150
        ShapeKey(c: 1, h: 28, w: 28, k: 32, kernel: 3, stride: 1, padding: 0): [.forward: .direct, .backwardInput: .gemm, .backwardWeight: .gemm],
            // smallcnn conv1; GF/s gemm/direct: fwd 101/158, bwd-in 112/92, bwd-w 83/55
        ShapeKey(c: 32, h: 26, w: 26, k: 32, kernel: 3, stride: 1, padding: 0): [.forward: .direct, .backwardInput: .direct, .backwardWeight: .direct],
            // smallcnn conv2; GF/s gemm/direct: fwd 181/386, bwd-in 193/326, bwd-w 157/354
        ShapeKey(c: 32, h: 12, w: 12, k: 64, kernel: 3, stride: 1, padding: 0): [.forward: .direct, .backwardInput: .direct, .backwardWeight: .direct],
            // smallcnn conv3; GF/s gemm/direct: fwd 197/391, bwd-in 200/291, bwd-w 192/370
        ShapeKey(c: 64, h: 10, w: 10, k: 64, kernel: 3, stride: 1, padding: 0): [.forward: .direct, .backwardInput: .direct, .backwardWeight: .direct],
            // smallcnn conv4; GF/s gemm/direct: fwd 205/452, bwd-in 211/258, bwd-w 199/387
    ]

    /// Measured choices per shape for 8-lane (AVX2) kernels: two runs of `memloss bench conv
    /// --skip-whole-model --dispatch-table` (batch 128, 2 workers, best of ≥ 0.5 s per cell; forward with
    /// the shift + ReLU epilogue of an inference pass) on an idle AMD EPYC Zen 3 (family 25),
    /// 2026-12-02 21:40 UTC, with the row-vectorised kernel, the phased strided backward-input and the
    /// channel kernel's image groups and tap chunks; per pass, the direct kernel where the GEMM path's
    /// summed time over both runs was ≥ 1.03× the direct one's. Cells within ~10% are run-to-run noise
    /// either way (single cells moved by up to 40% between the two runs on this VM). The comment under
    /// each entry gives the harmonic-mean GF/s (GEMM / direct). The five Winograd entries (ResNet-18's
    /// layer1 and layer2 3×3 convs, forward and backward-input, and layer3's backward-input) come from
    /// two later runs of the 8-lane build (`MEMLOSS_TARGET_CPU=haswell`) on an AMD EPYC Zen 4 (family
    /// 25, model 17), 2026-12-04, not on an AVX2-only CPU: Winograd where the choice without it took
    /// ≥ 1.03× its time in both runs (the means of the two under each entry); it won in only one of
    /// the two at layer3's forward and on several 16–64-channel shapes, lost at layer4. Regenerate with
    /// `memloss bench conv --dispatch-table` (docs/performance.md).
    static let measuredChoicesAVX2: [ShapeKey: [ConvPass: ConvAlgorithm]] = [
        ShapeKey(c: 3, h: 32, w: 32, k: 64, kernel: 3, stride: 1, padding: 1): [.forward: .direct, .backwardInput: .direct, .backwardWeight: .gemm],
            // resnet18 conv1 (stem); GF/s gemm/direct: fwd 71/109, bwd-in 85/104, bwd-w 73/65
        ShapeKey(c: 64, h: 32, w: 32, k: 64, kernel: 3, stride: 1, padding: 1): [.forward: .winograd, .backwardInput: .winograd, .backwardWeight: .direct],
            // resnet18 layer1 3×3; GF/s gemm/direct: fwd 144/153, bwd-in 129/151, bwd-w 141/154;
            // 8-lane build on Zen 4, 2026-12-04, gemm/direct/winograd: fwd 132/142/290, bwd-in 122/168/252
        ShapeKey(c: 64, h: 32, w: 32, k: 128, kernel: 3, stride: 2, padding: 1): [.forward: .direct, .backwardInput: .gemm, .backwardWeight: .gemm],
            // resnet18 layer2.0.conv1 s2; GF/s gemm/direct: fwd 138/150, bwd-in 141/120, bwd-w 150/101
        ShapeKey(c: 128, h: 16, w: 16, k: 128, kernel: 3, stride: 1, padding: 1): [.forward: .winograd, .backwardInput: .winograd, .backwardWeight: .gemm],
            // resnet18 layer2 3×3; GF/s gemm/direct: fwd 159/172, bwd-in 141/171, bwd-w 152/156;
            // 8-lane build on Zen 4, 2026-12-04, gemm/direct/winograd: fwd 181/204/264, bwd-in 190/201/251
        ShapeKey(c: 128, h: 16, w: 16, k: 256, kernel: 3, stride: 2, padding: 1): [.forward: .gemm, .backwardInput: .gemm, .backwardWeight: .gemm],
            // resnet18 layer3.0.conv1 s2; GF/s gemm/direct: fwd 150/148, bwd-in 143/139, bwd-w 157/125
        ShapeKey(c: 256, h: 8, w: 8, k: 256, kernel: 3, stride: 1, padding: 1): [.forward: .direct, .backwardInput: .winograd, .backwardWeight: .gemm],
            // resnet18 layer3 3×3; GF/s gemm/direct: fwd 109/171, bwd-in 135/163, bwd-w 141/121;
            // 8-lane build on Zen 4, 2026-12-04, gemm/direct/winograd: fwd 174/164/177, bwd-in 174/160/219
        ShapeKey(c: 256, h: 8, w: 8, k: 512, kernel: 3, stride: 2, padding: 1): [.forward: .direct, .backwardInput: .gemm, .backwardWeight: .gemm],
            // resnet18 layer4.0.conv1 s2; GF/s gemm/direct: fwd 123/141, bwd-in 122/117, bwd-w 123/76
        ShapeKey(c: 512, h: 4, w: 4, k: 512, kernel: 3, stride: 1, padding: 1): [.forward: .direct, .backwardInput: .direct, .backwardWeight: .gemm],
            // resnet18 layer4 3×3; GF/s gemm/direct: fwd 128/134, bwd-in 109/119, bwd-w 127/76
        ShapeKey(c: 64, h: 32, w: 32, k: 128, kernel: 1, stride: 2, padding: 0): [.forward: .gemm, .backwardInput: .gemm, .backwardWeight: .gemm],
            // resnet18 layer2.0 shortcut; GF/s gemm/direct: fwd 72/43, bwd-in 83/58, bwd-w 73/52
        ShapeKey(c: 128, h: 16, w: 16, k: 256, kernel: 1, stride: 2, padding: 0): [.forward: .direct, .backwardInput: .gemm, .backwardWeight: .gemm],
            // resnet18 layer3.0 shortcut; GF/s gemm/direct: fwd 95/98, bwd-in 110/97, bwd-w 104/77
        ShapeKey(c: 256, h: 8, w: 8, k: 512, kernel: 1, stride: 2, padding: 0): [.forward: .gemm, .backwardInput: .gemm, .backwardWeight: .gemm],
            // resnet18 layer4.0 shortcut; GF/s gemm/direct: fwd 133/104, bwd-in 135/115, bwd-w 136/54
        ShapeKey(c: 3, h: 32, w: 32, k: 16, kernel: 3, stride: 1, padding: 1): [.forward: .direct, .backwardInput: .direct, .backwardWeight: .direct],
            // resnet18×0.25 conv1 (stem); GF/s gemm/direct: fwd 51/72, bwd-in 42/89, bwd-w 45/65
        ShapeKey(c: 16, h: 32, w: 32, k: 16, kernel: 3, stride: 1, padding: 1): [.forward: .direct, .backwardInput: .direct, .backwardWeight: .direct],
            // resnet18×0.25 layer1 3×3; GF/s gemm/direct: fwd 91/140, bwd-in 57/140, bwd-w 73/133
        ShapeKey(c: 16, h: 32, w: 32, k: 32, kernel: 3, stride: 2, padding: 1): [.forward: .gemm, .backwardInput: .direct, .backwardWeight: .direct],
            // resnet18×0.25 layer2.0.conv1 s2; GF/s gemm/direct: fwd 105/96, bwd-in 80/100, bwd-w 85/115
        ShapeKey(c: 32, h: 16, w: 16, k: 32, kernel: 3, stride: 1, padding: 1): [.forward: .direct, .backwardInput: .direct, .backwardWeight: .direct],
            // resnet18×0.25 layer2 3×3; GF/s gemm/direct: fwd 108/139, bwd-in 90/150, bwd-w 106/140
        ShapeKey(c: 32, h: 16, w: 16, k: 64, kernel: 3, stride: 2, padding: 1): [.forward: .direct, .backwardInput: .gemm, .backwardWeight: .gemm],
            // resnet18×0.25 layer3.0.conv1 s2; GF/s gemm/direct: fwd 106/147, bwd-in 109/99, bwd-w 126/124
        ShapeKey(c: 64, h: 8, w: 8, k: 64, kernel: 3, stride: 1, padding: 1): [.forward: .direct, .backwardInput: .direct, .backwardWeight: .direct],
            // resnet18×0.25 layer3 3×3; GF/s gemm/direct: fwd 99/144, bwd-in 88/152, bwd-w 95/139
        ShapeKey(c: 64, h: 8, w: 8, k: 128, kernel: 3, stride: 2, padding: 1): [.forward: .direct, .backwardInput: .gemm, .backwardWeight: .gemm],
            // resnet18×0.25 layer4.0.conv1 s2; GF/s gemm/direct: fwd 128/154, bwd-in 120/107, bwd-w 132/134
        ShapeKey(c: 128, h: 4, w: 4, k: 128, kernel: 3, stride: 1, padding: 1): [.forward: .direct, .backwardInput: .direct, .backwardWeight: .direct],
            // resnet18×0.25 layer4 3×3; GF/s gemm/direct: fwd 134/163, bwd-in 113/133, bwd-w 135/139
        ShapeKey(c: 16, h: 32, w: 32, k: 32, kernel: 1, stride: 2, padding: 0): [.forward: .gemm, .backwardInput: .gemm, .backwardWeight: .gemm],
            // resnet18×0.25 layer2.0 shortcut; GF/s gemm/direct: fwd 50/41, bwd-in 61/37, bwd-w 65/37
        ShapeKey(c: 32, h: 16, w: 16, k: 64, kernel: 1, stride: 2, padding: 0): [.forward: .gemm, .backwardInput: .gemm, .backwardWeight: .gemm],
            // resnet18×0.25 layer3.0 shortcut; GF/s gemm/direct: fwd 72/64, bwd-in 86/66, bwd-w 86/62
        ShapeKey(c: 64, h: 8, w: 8, k: 128, kernel: 1, stride: 2, padding: 0): [.forward: .direct, .backwardInput: .gemm, .backwardWeight: .gemm],
            // resnet18×0.25 layer4.0 shortcut; GF/s gemm/direct: fwd 89/94, bwd-in 94/87, bwd-w 92/72
        ShapeKey(c: 1, h: 28, w: 28, k: 32, kernel: 3, stride: 1, padding: 0): [.forward: .direct, .backwardInput: .gemm, .backwardWeight: .gemm],
            // smallcnn conv1; GF/s gemm/direct: fwd 44/47, bwd-in 63/36, bwd-w 47/29
        ShapeKey(c: 32, h: 26, w: 26, k: 32, kernel: 3, stride: 1, padding: 0): [.forward: .direct, .backwardInput: .direct, .backwardWeight: .direct],
            // smallcnn conv2; GF/s gemm/direct: fwd 118/148, bwd-in 98/110, bwd-w 113/154
        ShapeKey(c: 32, h: 12, w: 12, k: 64, kernel: 3, stride: 1, padding: 0): [.forward: .gemm, .backwardInput: .gemm, .backwardWeight: .direct],
            // smallcnn conv3; GF/s gemm/direct: fwd 129/131, bwd-in 112/98, bwd-w 124/145
        ShapeKey(c: 64, h: 10, w: 10, k: 64, kernel: 3, stride: 1, padding: 0): [.forward: .direct, .backwardInput: .gemm, .backwardWeight: .direct],
            // smallcnn conv4; GF/s gemm/direct: fwd 134/170, bwd-in 117/101, bwd-w 130/151
    ]
}

// MARK: - Entry points

extension Conv2D {
    /// Convolution forward pass.
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
    ///   - algorithm: the path; nil chooses with `algorithm(for:_:)`.
    public static func forward(output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
                               weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                               geometry g: ConvGeometry, algorithm: ConvAlgorithm? = nil) {
        forward(output: output, input: input, weight: weight, epilogue: Epilogue(shift: bias), geometry: g,
                algorithm: algorithm)
    }

    /// Convolution backward pass to the input (a transposed convolution of `dOutput`).
    ///
    /// ```
    /// dInput[n, c, h, w] = Σ_{k, p, q, r, s : p·strideH − padH + r = h, q·strideW − padW + s = w}
    ///                        weight[k, c, r, s] · dOutput[n, k, p, q]
    /// ```
    ///
    /// - Parameters:
    ///   - dInput: `[N, C, H, W]`, overwritten (input gradients are not accumulated).
    ///   - dOutput: `[N, K, P, Q]`.
    ///   - weight: `[K, C, R, S]`.
    ///   - g: the geometry; must be `isValid`.
    ///   - algorithm: the path; nil chooses with `algorithm(for:_:)`; `.direct` needs stride 1.
    ///   - gate: `[N, C, H, W]` or nil: when given, `dInput = gate > 0 ? dInput : 0` (the ReLU mask of
    ///     the layer that produced this conv's input, usually that input itself), applied at the
    ///     direct kernels' store or, on the GEMM path, in one pass after it; bitwise the separate
    ///     `Activation.reluBackward`. May not alias `dInput`.
    public static func backwardInput(dInput: UnsafeMutablePointer<Float>, dOutput: UnsafePointer<Float>,
                                     weight: UnsafePointer<Float>, geometry g: ConvGeometry,
                                     algorithm: ConvAlgorithm? = nil, gate: UnsafePointer<Float>? = nil) {
        let profile = KernelProfile.begin(.convBackwardInput, macs: g.forwardMACs); defer { KernelProfile.end(profile) }
        precondition(g.isValid, "Conv2D.backwardInput: invalid geometry \(g)")
        let algorithm = algorithm ?? Self.algorithm(for: .backwardInput, g)
        precondition(supports(algorithm, .backwardInput, g), "Conv2D.backwardInput: \(algorithm) does not support \(g)")
        switch algorithm {
        case .direct: directBackwardInput(dInput: dInput, dOutput: dOutput, weight: weight, geometry: g, gate: gate)
        case .winograd: winogradBackwardInput(dInput: dInput, dOutput: dOutput, weight: weight, geometry: g, gate: gate)
        case .gemm:
            gemmBackwardInput(dInput: dInput, dOutput: dOutput, weight: weight, geometry: g)
            if let gate { applyGate(dInput, gate: gate, count: g.n * g.c * g.h * g.w) }
        }
    }

    /// `values[i] = gate[i] > 0 ? values[i] : 0` in place (the rule of `Activation.reluBackward`).
    static func applyGate(_ values: UnsafeMutablePointer<Float>, gate: UnsafePointer<Float>, count: Int) {
        let zero = FloatVector()
        Elementwise.forEachSlice(count) { start, length in
            let v = values + start, m = gate + start
            let vectorCount = length / FloatVector.scalarCount
            for i in stride(from: 0, to: vectorCount * FloatVector.scalarCount, by: FloatVector.scalarCount) {
                storeVector(zero.replacing(with: loadVector(v + i), where: loadVector(m + i) .> zero), v + i)
            }
            for i in (vectorCount * FloatVector.scalarCount)..<length { v[i] = m[i] > 0 ? v[i] : 0 }
        }
    }

    /// Convolution backward pass to the weights and bias, **accumulated** into `dWeight` / `dBias`.
    ///
    /// ```
    /// dWeight[k, c, r, s] += Σ_{n, p, q} dOutput[n, k, p, q] · input[n, c, p·strideH − padH + r, q·strideW − padW + s]
    /// dBias[k]            += Σ_{n, p, q} dOutput[n, k, p, q]
    /// ```
    /// Each worker reduces its images into a private partial; the partials are added in worker order,
    /// so the result is deterministic for a fixed worker count.
    ///
    /// - Parameters:
    ///   - dWeight: `[K, C, R, S]`, accumulated into (`+=`): parameter gradients accumulate across passes.
    ///   - dBias: `[K]`, accumulated into, or `nil` to skip the bias gradient.
    ///   - dOutput: `[N, K, P, Q]`.
    ///   - input: `[N, C, H, W]`, the forward input.
    ///   - g: the geometry; must be `isValid`.
    ///   - algorithm: the path; nil chooses with `algorithm(for:_:)`.
    public static func backwardWeight(dWeight: UnsafeMutablePointer<Float>, dBias: UnsafeMutablePointer<Float>?,
                                      dOutput: UnsafePointer<Float>, input: UnsafePointer<Float>,
                                      geometry g: ConvGeometry, algorithm: ConvAlgorithm? = nil) {
        let profile = KernelProfile.begin(.convBackwardWeight, macs: g.forwardMACs); defer { KernelProfile.end(profile) }
        precondition(g.isValid, "Conv2D.backwardWeight: invalid geometry \(g)")
        let algorithm = algorithm ?? Self.algorithm(for: .backwardWeight, g)
        precondition(supports(algorithm, .backwardWeight, g), "Conv2D.backwardWeight: \(algorithm) does not support \(g)")
        switch algorithm {
        case .winograd: break
        case .direct: directBackwardWeight(dWeight: dWeight, dBias: dBias, dOutput: dOutput, input: input, geometry: g)
        case .gemm: gemmBackwardWeight(dWeight: dWeight, dBias: dBias, dOutput: dOutput, input: input, geometry: g)
        }
    }
}
