// ResidualBlock.swift: the residual blocks the ResNet family is built from: the post-activation
// BasicBlock (ResNet-18) and the pre-activation block (PreAct ResNet-18 and WideResNet, which
// differ only in names and initialisation). Each block is a Layer with a typed cache.

import Kernels
import Layers
import Tensors

/// Targets for a layer inside a network: it must pass the input gradient on even when the caller
/// wants only parameter gradients.
@inline(__always) func innerTargets(_ targets: GradientTargets) -> GradientTargets {
    targets.union(.input)
}

/// ResNet BasicBlock (He et al. 2016), CIFAR variant as in the HAT repository:
/// `relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`, shortcut = `bn(conv1×1(x))` when the
/// stride or channel count changes, identity otherwise. PyTorch names: `conv1, bn1, conv2, bn2,
/// shortcut.0, shortcut.1`.
///
/// Passes (docs/kernels.md, "Fused and folded passes"):
/// - `.inference`: three fused conv calls, each batch norm folded into its conv —
///   `a1 = relu(conv1'(x))`, `s = conv_s'(x)` (or `x`), `y = relu(conv2'(a1) + s)` — and a backward of
///   ReLU masks from the stored outputs plus one backward-input per conv.
/// - `.training`: the batch norms use batch statistics, so they stay separate passes, each with
///   its ReLU (and, for `bn2`, the residual add) fused into its store; bitwise the unfused chain.
///
/// Shapes: `[N, Cin, H, W]` → `[N, Cout, H/s, W/s]`.
public final class BasicBlock: Layer {
    public let conv1: Conv2DLayer, bn1: BatchNorm2DLayer, conv2: Conv2DLayer, bn2: BatchNorm2DLayer
    public let shortcutConv: Conv2DLayer?, shortcutBN: BatchNorm2DLayer?
    /// Whether forward passes use the fused kernels (always, except in tests that compare them with
    /// the unfused chain of separate layer passes).
    var usesFusedPasses = true

    public enum Cache {
        /// Inference mode, batch norms folded: conv1+bn1+ReLU, shortcut conv+BN, conv2+bn2+add+ReLU.
        case folded(f1: Conv2DLayer.FusedCache, f2: Conv2DLayer.FusedCache, fs: Conv2DLayer.FusedCache?)
        /// Training mode: separate convs; bn1+ReLU and bn2+add+ReLU fused (their caches hold the masks).
        case fused(c1: Conv2DLayer.Cache, b1: BatchNorm2DLayer.Cache, c2: Conv2DLayer.Cache,
                   b2: BatchNorm2DLayer.Cache, sc: Conv2DLayer.Cache?, sb: BatchNorm2DLayer.Cache?)
        /// The reference chain of separate passes (tests only).
        case unfused(UnfusedCache)
    }

    public struct UnfusedCache {
        let c1: Conv2DLayer.Cache, b1: BatchNorm2DLayer.Cache, a1: Tensor
        let c2: Conv2DLayer.Cache, b2: BatchNorm2DLayer.Cache
        let sc: Conv2DLayer.Cache?, sb: BatchNorm2DLayer.Cache?
        let sum: Tensor
    }

    public init(_ inPlanes: Int, _ planes: Int, stride: Int, rng: inout SplitMix64) {
        conv1 = Conv2DLayer(inPlanes, planes, kernel: 3, stride: stride, padding: 1, bias: false, rng: &rng)
        bn1 = BatchNorm2DLayer(planes)
        conv2 = Conv2DLayer(planes, planes, kernel: 3, stride: 1, padding: 1, bias: false, rng: &rng)
        bn2 = BatchNorm2DLayer(planes)
        if stride != 1 || inPlanes != planes {
            shortcutConv = Conv2DLayer(inPlanes, planes, kernel: 1, stride: stride, padding: 0, bias: false, rng: &rng)
            shortcutBN = BatchNorm2DLayer(planes)
        } else {
            shortcutConv = nil; shortcutBN = nil
        }
    }

    public func forward(_ x: Tensor, mode: ForwardMode) -> (output: Tensor, cache: Cache) {
        guard usesFusedPasses else { return forwardUnfused(x, mode: mode) }
        switch mode {
        case .inference:
            let (a1, f1) = conv1.forwardFused(x, foldingInference: bn1, residual: nil, relu: true)
            var shortcut = x, fs: Conv2DLayer.FusedCache? = nil
            if let shortcutConv {
                (shortcut, fs) = shortcutConv.forwardFused(x, foldingInference: shortcutBN, residual: nil, relu: false)
            }
            let (y, f2) = conv2.forwardFused(a1, foldingInference: bn2, residual: shortcut, relu: true)
            return (y, .folded(f1: f1, f2: f2, fs: fs))
        case .training:
            let (h1, c1) = conv1.forward(x, mode: mode)
            let (a1, b1) = bn1.forward(h1, mode: mode, residual: nil, relu: true)
            let (h2, c2) = conv2.forward(a1, mode: mode)
            var shortcut = x
            var sc: Conv2DLayer.Cache? = nil, sb: BatchNorm2DLayer.Cache? = nil
            if let shortcutConv, let shortcutBN {
                let (s1, scc) = shortcutConv.forward(x, mode: mode)
                (shortcut, sb) = shortcutBN.forward(s1, mode: mode)
                sc = scc
            }
            let (y, b2) = bn2.forward(h2, mode: mode, residual: shortcut, relu: true)
            return (y, .fused(c1: c1, b1: b1, c2: c2, b2: b2, sc: sc, sb: sb))
        }
    }

    public func backward(_ dOutput: Tensor, cache: Cache, targets: GradientTargets) -> Tensor? {
        let inner = innerTargets(targets)
        switch cache {
        case .folded(let f1, let f2, let fs):
            // conv2's input is conv1's ReLU output: its gradient leaves conv2 already masked (`gateInput`),
            // so conv1's fused backward skips its own mask pass.
            let (dA1, dSum) = conv2.backwardFused(dOutput, cache: f2, targets: inner, gateInput: true)
            let dX = conv1.backwardFused(dA1!, cache: f1, targets: targets, reluMaskApplied: true).dInput
            var dShortcut = dSum
            if let shortcutConv, let fs {
                guard let d = shortcutConv.backwardFused(dSum, cache: fs, targets: targets).dInput else { return nil }
                dShortcut = d
            }
            guard var dX else { return nil }
            Elementwise.accumulate(&dX, dShortcut)
            return dX
        case .fused(let c1, let b1, let c2, let b2, let sc, let sb):
            let (dH2, dSum) = bn2.backward(dOutput, cache: b2, targets: inner, wantPreActivation: true)
            let dA1 = conv2.backward(dH2!, cache: c2, targets: inner)!
            let dH1 = bn1.backward(dA1, cache: b1, targets: inner)!
            return finishBackward(conv1.backward(dH1, cache: c1, targets: targets), dSum: dSum!, sc: sc, sb: sb,
                                  targets: targets)
        case .unfused(let k):
            let dSum = Activation.reluBackward(dOutput, input: k.sum)
            let dH2 = bn2.backward(dSum, cache: k.b2, targets: inner)!
            let dA1 = conv2.backward(dH2, cache: k.c2, targets: inner)!
            let dN1 = Activation.reluBackward(dA1, input: k.a1)
            let dH1 = bn1.backward(dN1, cache: k.b1, targets: inner)!
            return finishBackward(conv1.backward(dH1, cache: k.c1, targets: targets), dSum: dSum, sc: k.sc, sb: k.sb,
                                  targets: targets)
        }
    }

    /// `dX + dShortcut`, the shortcut's gradient backpropagated through its conv and BN (if any).
    private func finishBackward(_ dX: Tensor?, dSum: Tensor, sc: Conv2DLayer.Cache?, sb: BatchNorm2DLayer.Cache?,
                                targets: GradientTargets) -> Tensor? {
        var dShortcut = dSum
        if let shortcutConv, let shortcutBN, let sc, let sb {
            let dS1 = shortcutBN.backward(dSum, cache: sb, targets: innerTargets(targets))!
            guard let d = shortcutConv.backward(dS1, cache: sc, targets: targets) else { return nil }
            dShortcut = d
        }
        guard var dX else { return nil }
        Elementwise.accumulate(&dX, dShortcut)
        return dX
    }

    /// The chain of separate layer passes (conv → BN → ReLU → conv → BN → add → ReLU), kept as the
    /// reference the fused passes are tested against.
    func forwardUnfused(_ x: Tensor, mode: ForwardMode) -> (output: Tensor, cache: Cache) {
        let (h1, c1) = conv1.forward(x, mode: mode)
        let (n1, b1) = bn1.forward(h1, mode: mode)
        let a1 = Activation.relu(n1)
        let (h2, c2) = conv2.forward(a1, mode: mode)
        let (n2, b2) = bn2.forward(h2, mode: mode)
        var shortcut = x
        var sc: Conv2DLayer.Cache? = nil, sb: BatchNorm2DLayer.Cache? = nil
        if let shortcutConv, let shortcutBN {
            let (s1, scc) = shortcutConv.forward(x, mode: mode)
            let (s2, sbc) = shortcutBN.forward(s1, mode: mode)
            shortcut = s2; sc = scc; sb = sbc
        }
        let sum = Elementwise.add(n2, shortcut)
        return (Activation.relu(sum), .unfused(UnfusedCache(c1: c1, b1: b1, a1: n1, c2: c2, b2: b2, sc: sc, sb: sb,
                                                            sum: sum)))
    }

    public func stateEntries(prefix: String) -> [StateEntry] {
        var e = conv1.stateEntries(prefix: prefix + "conv1.") + bn1.stateEntries(prefix: prefix + "bn1.")
            + conv2.stateEntries(prefix: prefix + "conv2.") + bn2.stateEntries(prefix: prefix + "bn2.")
        if let shortcutConv, let shortcutBN {
            e += shortcutConv.stateEntries(prefix: prefix + "shortcut.0.")
            e += shortcutBN.stateEntries(prefix: prefix + "shortcut.1.")
        }
        return e
    }

    func macs(height: Int, width: Int) -> Int {
        let h2 = (height - 1) / conv1.stride + 1, w2 = (width - 1) / conv1.stride + 1
        return conv1.macs(height: height, width: width) + conv2.macs(height: h2, width: w2)
            + (shortcutConv?.macs(height: height, width: width) ?? 0)
    }
}

/// Pre-activation residual block: `a = relu(bn1(x))`,
/// `out = conv2(relu(bn2(conv1(a)))) + (shortcut ? conv1×1(a) : x)`; the 1×1 shortcut has no BN
/// and takes the *activated* input. Used by PreAct ResNet-18 (names `bn1, conv1, bn2, conv2,
/// shortcut.0`) and WideResNet (names `bn1, conv1, bn2, conv2, convShortcut`).
///
/// Each `relu(bn(·))` is one batch-norm pass with the ReLU fused into its store, in both modes
/// (bitwise the separate passes). The batch norms cannot fold into the following conv: the ReLU
/// between them is not linear.
public final class PreActivationBlock: Layer {
    public enum Naming: Sendable { case preActResNet, wideResNet }

    public let bn1: BatchNorm2DLayer, conv1: Conv2DLayer, bn2: BatchNorm2DLayer, conv2: Conv2DLayer
    public let shortcutConv: Conv2DLayer?
    public let naming: Naming

    /// The batch-norm caches hold the fused ReLUs' outputs (`a` and the conv2 input) as their masks.
    public struct Cache {
        let b1: BatchNorm2DLayer.Cache
        let c1: Conv2DLayer.Cache, b2: BatchNorm2DLayer.Cache, c2: Conv2DLayer.Cache
        let sc: Conv2DLayer.Cache?
    }

    public init(_ inPlanes: Int, _ planes: Int, stride: Int, naming: Naming, convInit: Initializer,
                rng: inout SplitMix64) {
        self.naming = naming
        bn1 = BatchNorm2DLayer(inPlanes)
        conv1 = Conv2DLayer(inPlanes, planes, kernel: 3, stride: stride, padding: 1, bias: false, weightInit: convInit, rng: &rng)
        bn2 = BatchNorm2DLayer(planes)
        conv2 = Conv2DLayer(planes, planes, kernel: 3, stride: 1, padding: 1, bias: false, weightInit: convInit, rng: &rng)
        // PreAct adds the projection when the stride or width changes; WRN only when the width
        // changes (it never strides without widening).
        let needsProjection = naming == .wideResNet ? inPlanes != planes : (stride != 1 || inPlanes != planes)
        shortcutConv = needsProjection
            ? Conv2DLayer(inPlanes, planes, kernel: 1, stride: stride, padding: 0, bias: false, weightInit: convInit, rng: &rng)
            : nil
    }

    public func forward(_ x: Tensor, mode: ForwardMode) -> (output: Tensor, cache: Cache) {
        let (a, b1) = bn1.forward(x, mode: mode, residual: nil, relu: true)
        let (h1, c1) = conv1.forward(a, mode: mode)
        let (a2, b2) = bn2.forward(h1, mode: mode, residual: nil, relu: true)
        let (h2, c2) = conv2.forward(a2, mode: mode)
        var shortcut = x
        var sc: Conv2DLayer.Cache? = nil
        if let shortcutConv {
            let (s, scc) = shortcutConv.forward(a, mode: mode)
            shortcut = s; sc = scc
        }
        return (Elementwise.add(h2, shortcut), Cache(b1: b1, c1: c1, b2: b2, c2: c2, sc: sc))
    }

    public func backward(_ dOutput: Tensor, cache: Cache, targets: GradientTargets) -> Tensor? {
        let inner = innerTargets(targets)
        let dR2 = conv2.backward(dOutput, cache: cache.c2, targets: inner)!
        let dH1 = bn2.backward(dR2, cache: cache.b2, targets: inner)!
        var dA = conv1.backward(dH1, cache: cache.c1, targets: inner)!
        if let shortcutConv, let sc = cache.sc {
            Elementwise.accumulate(&dA, shortcutConv.backward(dOutput, cache: sc, targets: inner)!)
        }
        guard var dX = bn1.backward(dA, cache: cache.b1, targets: targets) else { return nil }
        if shortcutConv == nil { Elementwise.accumulate(&dX, dOutput) }
        return dX
    }

    public func stateEntries(prefix: String) -> [StateEntry] {
        var e: [StateEntry] = []
        switch naming {
        case .preActResNet:
            e += bn1.stateEntries(prefix: prefix + "bn1.") + conv1.stateEntries(prefix: prefix + "conv1.")
            e += bn2.stateEntries(prefix: prefix + "bn2.") + conv2.stateEntries(prefix: prefix + "conv2.")
            if let shortcutConv { e += shortcutConv.stateEntries(prefix: prefix + "shortcut.0.") }
        case .wideResNet:
            e += bn1.stateEntries(prefix: prefix + "bn1.") + conv1.stateEntries(prefix: prefix + "conv1.")
            e += bn2.stateEntries(prefix: prefix + "bn2.") + conv2.stateEntries(prefix: prefix + "conv2.")
            if let shortcutConv { e += shortcutConv.stateEntries(prefix: prefix + "convShortcut.") }
        }
        return e
    }

    func macs(height: Int, width: Int) -> Int {
        let h2 = (height - 1) / conv1.stride + 1, w2 = (width - 1) / conv1.stride + 1
        return conv1.macs(height: height, width: width) + conv2.macs(height: h2, width: w2)
            + (shortcutConv?.macs(height: height, width: width) ?? 0)
    }
}

/// Runs `blocks` in sequence, keeping each block's cache.
func forwardSequence<B: Layer>(_ blocks: [B], _ x: Tensor, mode: ForwardMode) -> (Tensor, [B.Cache]) {
    var h = x
    var caches: [B.Cache] = []
    caches.reserveCapacity(blocks.count)
    for b in blocks {
        let (y, c) = b.forward(h, mode: mode)
        caches.append(c)
        h = y
    }
    return (h, caches)
}

/// Backpropagates through `blocks` in reverse; the first block gets `targets`, the others also `.input`.
func backwardSequence<B: Layer>(_ blocks: [B], _ dOutput: Tensor, caches: [B.Cache],
                                targets: GradientTargets) -> Tensor? {
    var d: Tensor? = dOutput
    for i in stride(from: blocks.count - 1, through: 0, by: -1) {
        d = blocks[i].backward(d!, cache: caches[i], targets: i == 0 ? targets : innerTargets(targets))
        if d == nil { return nil }
    }
    return d
}

/// Forward cache of a pre-activation network (PreAct ResNet-18, WideResNet): stem conv → blocks →
/// BN → ReLU → average pool → linear.
public struct PreActivationNetworkCache {
    let c1: Conv2DLayer.Cache, blocks: [PreActivationBlock.Cache], b: BatchNorm2DLayer.Cache
    let pool: AvgPool2D.Cache, featureShape: [Int], fc: LinearLayer.Cache
}

/// The forward pass shared by PreAct ResNet-18 and WideResNet.
func preActivationNetworkForward(_ x: Tensor, mode: ForwardMode, stem: Conv2DLayer, blocks: [PreActivationBlock],
                                 bn: BatchNorm2DLayer, pool: AvgPool2D, fc: LinearLayer)
    -> (logits: Tensor, cache: PreActivationNetworkCache) {
    let (h, c1) = stem.forward(x, mode: mode)
    let (f, bc) = forwardSequence(blocks, h, mode: mode)
    let (a, b) = bn.forward(f, mode: mode, residual: nil, relu: true)
    let (p, pc) = pool.forward(a, mode: mode)
    let (z, fcc) = fc.forward(p, mode: mode)
    return (z, PreActivationNetworkCache(c1: c1, blocks: bc, b: b, pool: pc, featureShape: p.shape, fc: fcc))
}

/// The backward pass shared by PreAct ResNet-18 and WideResNet.
func preActivationNetworkBackward(_ dLogits: Tensor, cache k: PreActivationNetworkCache, targets: GradientTargets,
                                  stem: Conv2DLayer, blocks: [PreActivationBlock], bn: BatchNorm2DLayer, pool: AvgPool2D,
                                  fc: LinearLayer) -> Tensor? {
    let t = innerTargets(targets)
    var d = fc.backward(dLogits, cache: k.fc, targets: t)!.reshaped(k.featureShape)
    d = pool.backward(d, cache: k.pool, targets: t)!
    d = bn.backward(d, cache: k.b, targets: t)!
    d = backwardSequence(blocks, d, caches: k.blocks, targets: t)!
    return stem.backward(d, cache: k.c1, targets: targets)
}

/// A residual block's arithmetic cost and downsampling, for MAC counting.
protocol ResidualBlock {
    var stride: Int { get }
    func macs(height: Int, width: Int) -> Int
}

extension BasicBlock: ResidualBlock { var stride: Int { conv1.stride } }
extension PreActivationBlock: ResidualBlock { var stride: Int { conv1.stride } }

/// Forward MACs per image of stem → residual blocks → linear head (square inputs).
func residualNetworkMACs<B: ResidualBlock>(inputSize: Int, stem: Conv2DLayer, blocks: [B], head: LinearLayer) -> Int {
    var s = inputSize
    var total = stem.macs(height: s, width: s)
    for b in blocks {
        total += b.macs(height: s, width: s)
        s = (s - 1) / b.stride + 1
    }
    return total + head.inFeatures * head.outFeatures
}
