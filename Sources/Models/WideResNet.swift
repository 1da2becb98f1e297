// WideResNet.swift: WideResNet-depth-widen (Zagoruyko & Komodakis 2016) as in the TRADES repository
// (algorithms.md §6.3): widths [16, 16k, 32k, 64k], n = (depth − 4)/6 pre-activation blocks per
// group, strides 1, 2, 2, then BN → ReLU → 8×8 average pool → fc. Without the unused `sub_block1`.

import Kernels
import Layers
import Tensors

/// WideResNet for 32×32 images.
///
/// Shapes: `[N, 3, 32, 32]` → `[N, classes]`. WRN-34-10 with 10 classes: 46,160,474 parameters,
/// ≈ 6.66 GMACs. Initialisation as the reference: convs N(0, 2/(k²·out)), BN γ = 1 and β = 0,
/// fc bias 0 (fc weight PyTorch default). DropoutLayer rate 0 (the TRADES default), so none is built.
public final class WideResNet: Classifier {
    public let inputShape: [Int]
    public let classCount: Int
    public let depth: Int, widen: Int
    public let conv1: Conv2DLayer
    /// Blocks of the three groups, flattened; `groupSize` per group.
    public let blocks: [PreActivationBlock]
    public let groupSize: Int
    public let bn1: BatchNorm2DLayer
    public let pool: AvgPool2D
    public let fc: LinearLayer

    public typealias Cache = PreActivationNetworkCache

    /// - Precondition: `(depth − 4) % 6 == 0` (e.g. 16, 22, 28, 34, 40).
    public init(depth: Int = 34, widen: Int = 10, classes: Int = 10, width: Double = 1, inputSize: Int = 32,
                seed: UInt64) {
        precondition(depth >= 10 && (depth - 4) % 6 == 0, "WideResNet: depth \(depth) must be 6n + 4 (n ≥ 1)")
        precondition(widen >= 1, "WideResNet: widen factor must be ≥ 1")
        var rng = SplitMix64(seed: seed)
        self.depth = depth; self.widen = widen
        inputShape = [3, inputSize, inputSize]
        classCount = classes
        let ch = [16, 16 * widen, 32 * widen, 64 * widen].map { scaledWidth($0, width) }
        let n = (depth - 4) / 6
        groupSize = n
        conv1 = Conv2DLayer(3, ch[0], kernel: 3, stride: 1, padding: 1, bias: false, weightInit: .kaimingNormalFanOut, rng: &rng)
        var b: [PreActivationBlock] = []
        for (g, stride) in [1, 2, 2].enumerated() {
            for i in 0..<n {
                b.append(PreActivationBlock(i == 0 ? ch[g] : ch[g + 1], ch[g + 1], stride: i == 0 ? stride : 1,
                                            naming: .wideResNet, convInit: .kaimingNormalFanOut, rng: &rng))
            }
        }
        blocks = b
        bn1 = BatchNorm2DLayer(ch[3])
        pool = AvgPool2D(kernel: 8)
        fc = LinearLayer(ch[3], classes, biasInit: .zeros, rng: &rng)
    }

    public func forward(_ x: Tensor, mode: ForwardMode) -> (logits: Tensor, cache: Cache) {
        preActivationNetworkForward(x, mode: mode, stem: conv1, blocks: blocks, bn: bn1, pool: pool, fc: fc)
    }

    public func backward(_ dLogits: Tensor, cache: Cache, targets: GradientTargets) -> Tensor? {
        preActivationNetworkBackward(dLogits, cache: cache, targets: targets, stem: conv1, blocks: blocks, bn: bn1,
                                     pool: pool, fc: fc)
    }

    public func stateEntries(prefix: String) -> [StateEntry] {
        var e = conv1.stateEntries(prefix: prefix + "conv1.")
        for (i, b) in blocks.enumerated() {
            e += b.stateEntries(prefix: prefix + "block\(i / groupSize + 1).layer.\(i % groupSize).")
        }
        return e + bn1.stateEntries(prefix: prefix + "bn1.") + fc.stateEntries(prefix: prefix + "fc.")
    }

    public var forwardMACs: Int {
        residualNetworkMACs(inputSize: inputShape[1], stem: conv1, blocks: blocks, head: fc)
    }
}
