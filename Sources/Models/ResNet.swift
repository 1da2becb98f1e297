// ResNet.swift: ResNet-18 (CIFAR variant: 3×3 stem, no max pool) and PreAct ResNet-18, with the
// HAT repository's layer shapes and PyTorch names (algorithms.md §6.1–6.2), a width multiplier and
// a class count. PyTorch-default initialisation (no custom init in the reference code).

import Kernels
import Layers
import Tensors

/// ResNet-18 for 32×32 images: conv3×3(3→64) → BN → ReLU → 4 stages of 2 BasicBlocks
/// (64, 128, 256, 512 channels; strides 1, 2, 2, 2) → 4×4 average pool → Linear.
///
/// The stem is one fused conv call with bn1 folded and the ReLU in its epilogue in `.inference` mode,
/// and a conv plus a batch-norm pass with the ReLU fused into it in `.training` mode; the blocks are
/// fused likewise (see `BasicBlock`).
///
/// Shapes: `[N, 3, 32, 32]` → `[N, classes]`. 11,173,962 parameters with 10 classes; 0.555 GMACs.
public final class ResNet18: Classifier {
    public let inputShape: [Int]
    public let classCount: Int
    public let conv1: Conv2DLayer, bn1: BatchNorm2DLayer
    public let blocks: [BasicBlock]
    public let pool: AvgPool2D
    public let linear: LinearLayer

    /// Whether forward passes use the fused kernels, here and in every block (always, except in
    /// tests that compare them with the unfused chain of separate layer passes).
    var usesFusedPasses = true {
        didSet { for b in blocks { b.usesFusedPasses = usesFusedPasses } }
    }

    public struct Cache {
        let stem: Stem
        let blocks: [BasicBlock.Cache], pool: AvgPool2D.Cache, featureShape: [Int], fc: LinearLayer.Cache
    }

    /// The stem's cache: conv1 + bn1 + ReLU as one folded call (inference), as a conv and a fused
    /// BN+ReLU pass (training; the BN cache holds the mask), or as separate passes (tests).
    enum Stem {
        case folded(Conv2DLayer.FusedCache)
        case fused(Conv2DLayer.Cache, BatchNorm2DLayer.Cache)
        case unfused(Conv2DLayer.Cache, BatchNorm2DLayer.Cache, preActivation: Tensor)
    }

    public init(classes: Int = 10, width: Double = 1, inputSize: Int = 32, seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        inputShape = [3, inputSize, inputSize]
        classCount = classes
        let w = [64, 128, 256, 512].map { scaledWidth($0, width) }
        conv1 = Conv2DLayer(3, w[0], kernel: 3, stride: 1, padding: 1, bias: false, rng: &rng)
        bn1 = BatchNorm2DLayer(w[0])
        var b: [BasicBlock] = []
        var inPlanes = w[0]
        for (stage, planes) in w.enumerated() {
            for i in 0..<2 {
                b.append(BasicBlock(inPlanes, planes, stride: (i == 0 && stage > 0) ? 2 : 1, rng: &rng))
                inPlanes = planes
            }
        }
        blocks = b
        pool = AvgPool2D(kernel: 4)
        linear = LinearLayer(w[3], classes, rng: &rng)
    }

    public func forward(_ x: Tensor, mode: ForwardMode) -> (logits: Tensor, cache: Cache) {
        let a: Tensor, stem: Stem
        switch (usesFusedPasses, mode) {
        case (true, .inference):
            let (y, f) = conv1.forwardFused(x, foldingInference: bn1, residual: nil, relu: true)
            (a, stem) = (y, .folded(f))
        case (true, .training):
            let (h, c1) = conv1.forward(x, mode: mode)
            let (y, b1) = bn1.forward(h, mode: mode, residual: nil, relu: true)
            (a, stem) = (y, .fused(c1, b1))
        case (false, _):
            let (h, c1) = conv1.forward(x, mode: mode)
            let (n1, b1) = bn1.forward(h, mode: mode)
            (a, stem) = (Activation.relu(n1), .unfused(c1, b1, preActivation: n1))
        }
        let (f, bc) = forwardSequence(blocks, a, mode: mode)
        let (p, pc) = pool.forward(f, mode: mode)
        let (z, fc) = linear.forward(p, mode: mode)
        return (z, Cache(stem: stem, blocks: bc, pool: pc, featureShape: p.shape, fc: fc))
    }

    public func backward(_ dLogits: Tensor, cache k: Cache, targets: GradientTargets) -> Tensor? {
        let t = innerTargets(targets)
        var d = linear.backward(dLogits, cache: k.fc, targets: t)!.reshaped(k.featureShape)
        d = pool.backward(d, cache: k.pool, targets: t)!
        d = backwardSequence(blocks, d, caches: k.blocks, targets: t)!
        switch k.stem {
        case .folded(let f):
            return conv1.backwardFused(d, cache: f, targets: targets).dInput
        case .fused(let c1, let b1):
            return conv1.backward(bn1.backward(d, cache: b1, targets: t)!, cache: c1, targets: targets)
        case .unfused(let c1, let b1, let n1):
            d = Activation.reluBackward(d, input: n1)
            return conv1.backward(bn1.backward(d, cache: b1, targets: t)!, cache: c1, targets: targets)
        }
    }

    public func stateEntries(prefix: String) -> [StateEntry] {
        var e = conv1.stateEntries(prefix: prefix + "conv1.") + bn1.stateEntries(prefix: prefix + "bn1.")
        for (i, b) in blocks.enumerated() {
            e += b.stateEntries(prefix: prefix + "layer\(i / 2 + 1).\(i % 2).")
        }
        return e + linear.stateEntries(prefix: prefix + "linear.")
    }

    public var forwardMACs: Int {
        residualNetworkMACs(inputSize: inputShape[1], stem: conv1, blocks: blocks, head: linear)
    }
}

/// PreAct ResNet-18 (He et al. 2016b) as in the HAT repository: conv3×3(3→64) → 4 stages of 2
/// pre-activation blocks → BN → ReLU → 4×4 average pool → Linear. No BN on the 1×1 shortcuts.
///
/// Shapes: `[N, 3, 32, 32]` → `[N, classes]`. 11,172,170 parameters with 10 classes (including the
/// final BN); 0.555 GMACs.
public final class PreActResNet18: Classifier {
    public let inputShape: [Int]
    public let classCount: Int
    public let conv1: Conv2DLayer
    public let blocks: [PreActivationBlock]
    public let bn: BatchNorm2DLayer
    public let pool: AvgPool2D
    public let linear: LinearLayer

    public typealias Cache = PreActivationNetworkCache

    public init(classes: Int = 10, width: Double = 1, inputSize: Int = 32, seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        inputShape = [3, inputSize, inputSize]
        classCount = classes
        let w = [64, 128, 256, 512].map { scaledWidth($0, width) }
        conv1 = Conv2DLayer(3, w[0], kernel: 3, stride: 1, padding: 1, bias: false, rng: &rng)
        var b: [PreActivationBlock] = []
        var inPlanes = w[0]
        for (stage, planes) in w.enumerated() {
            for i in 0..<2 {
                b.append(PreActivationBlock(inPlanes, planes, stride: (i == 0 && stage > 0) ? 2 : 1,
                                            naming: .preActResNet, convInit: .pytorchDefault, rng: &rng))
                inPlanes = planes
            }
        }
        blocks = b
        bn = BatchNorm2DLayer(w[3])
        pool = AvgPool2D(kernel: 4)
        linear = LinearLayer(w[3], classes, rng: &rng)
    }

    public func forward(_ x: Tensor, mode: ForwardMode) -> (logits: Tensor, cache: Cache) {
        preActivationNetworkForward(x, mode: mode, stem: conv1, blocks: blocks, bn: bn, pool: pool, fc: linear)
    }

    public func backward(_ dLogits: Tensor, cache: Cache, targets: GradientTargets) -> Tensor? {
        preActivationNetworkBackward(dLogits, cache: cache, targets: targets, stem: conv1, blocks: blocks, bn: bn,
                                     pool: pool, fc: linear)
    }

    public func stateEntries(prefix: String) -> [StateEntry] {
        var e = conv1.stateEntries(prefix: prefix + "conv1.")
        for (i, b) in blocks.enumerated() {
            e += b.stateEntries(prefix: prefix + "layer\(i / 2 + 1).\(i % 2).")
        }
        return e + bn.stateEntries(prefix: prefix + "bn.") + linear.stateEntries(prefix: prefix + "linear.")
    }

    public var forwardMACs: Int {
        residualNetworkMACs(inputSize: inputShape[1], stem: conv1, blocks: blocks, head: linear)
    }
}
