// SmallCNN.swift: the TRADES MNIST network (algorithms.md §6.4): four 3×3 convs with bias and no
// padding, two 2×2 max pools, FC 200 → ReLU → Dropout(0.5) → FC 200 → ReLU → FC classes.
// PyTorch names: feature_extractor.conv{1..4}.*, classifier.fc{1,2,3}.*.

import Kernels
import Layers
import Tensors

/// SmallCNN for 28×28 single-channel images.
///
/// Shapes: `[N, 1, 28, 28]` → `[N, classes]`. With width 1 and 10 classes: 312,202 parameters,
/// 9.95 M MACs per image. Initialisation as the reference: Kaiming-normal convs (fan in), zero
/// conv biases, PyTorch-default FC1/FC2, and FC3 weight and bias all zero.
///
/// Each conv → ReLU is one fused conv call (the bias is the epilogue's shift, the ReLU its
/// activation) in every mode, and its backward masks with the stored output; bitwise equal to the
/// separate passes. No backward mask runs as a pass of its own: where a max pool follows (conv2,
/// conv4) the pool's scatter applies the mask, and conv1's and conv3's masks are applied at the store
/// of conv2's and conv4's input gradients (`gateInput`).
public final class SmallCNN: Classifier {
    public let inputShape: [Int]
    public let classCount: Int
    public let conv1: Conv2DLayer, conv2: Conv2DLayer, conv3: Conv2DLayer, conv4: Conv2DLayer
    public let pool1 = MaxPool2D(kernel: 2), pool2 = MaxPool2D(kernel: 2)
    public let fc1: LinearLayer, fc2: LinearLayer, fc3: LinearLayer
    public let dropout: DropoutLayer
    public var stochasticLayers: [DropoutLayer] { [dropout] }
    /// Whether conv + bias + ReLU run as one fused call (always, except in tests that compare it
    /// with the separate passes).
    var usesFusedPasses = true

    public struct Cache {
        let c1: ConvStage, c2: ConvStage, p1: MaxPool2D.Cache
        let c3: ConvStage, c4: ConvStage, p2: MaxPool2D.Cache
        let f1: LinearLayer.Cache, r5: Tensor, d: DropoutLayer.Cache, f2: LinearLayer.Cache, r6: Tensor, f3: LinearLayer.Cache
        let featureShape: [Int]
    }

    /// - Parameters:
    ///   - classes: number of output classes (10 for MNIST).
    ///   - width: multiplies every channel and hidden width (1 = the reference network).
    ///   - inputChannels, inputSize: 1 and 28 for MNIST (the spatial size must leave ≥ 1 pixel
    ///     after the two conv–conv–pool stages).
    ///   - dropout: FC dropout probability (0.5 in the reference).
    public init(classes: Int = 10, width: Double = 1, inputChannels: Int = 1, inputSize: Int = 28,
                dropout p: Float = 0.5, seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        let c32 = scaledWidth(32, width), c64 = scaledWidth(64, width), f200 = scaledWidth(200, width)
        inputShape = [inputChannels, inputSize, inputSize]
        classCount = classes
        conv1 = Conv2DLayer(inputChannels, c32, kernel: 3, weightInit: .kaimingNormalFanIn, biasInit: .zeros, rng: &rng)
        conv2 = Conv2DLayer(c32, c32, kernel: 3, weightInit: .kaimingNormalFanIn, biasInit: .zeros, rng: &rng)
        conv3 = Conv2DLayer(c32, c64, kernel: 3, weightInit: .kaimingNormalFanIn, biasInit: .zeros, rng: &rng)
        conv4 = Conv2DLayer(c64, c64, kernel: 3, weightInit: .kaimingNormalFanIn, biasInit: .zeros, rng: &rng)
        let s = ((inputSize - 4) / 2 - 4) / 2
        precondition(s >= 1, "SmallCNN: input size \(inputSize) is too small (needs ≥ 14)")
        fc1 = LinearLayer(c64 * s * s, f200, rng: &rng)
        fc2 = LinearLayer(f200, f200, rng: &rng)
        fc3 = LinearLayer(f200, classes, weightInit: .zeros, biasInit: .zeros, rng: &rng)
        dropout = DropoutLayer(probability: p, seed: rng.next())
    }

    public func forward(_ x: Tensor, mode: ForwardMode) -> (logits: Tensor, cache: Cache) {
        let (a1, c1) = convReLU(conv1, x, mode: mode)
        let (a2, c2) = convReLU(conv2, a1, mode: mode)
        let (q1, p1) = pool1.forward(a2, mode: mode)
        let (a3, c3) = convReLU(conv3, q1, mode: mode)
        let (a4, c4) = convReLU(conv4, a3, mode: mode)
        let (q2, p2) = pool2.forward(a4, mode: mode)
        let (g1, f1) = fc1.forward(q2, mode: mode); let a5 = Activation.relu(g1)
        let (dr, d) = dropout.forward(a5, mode: mode)
        let (g2, f2) = fc2.forward(dr, mode: mode); let a6 = Activation.relu(g2)
        let (z, f3) = fc3.forward(a6, mode: mode)
        return (z, Cache(c1: c1, c2: c2, p1: p1, c3: c3, c4: c4, p2: p2,
                         f1: f1, r5: g1, d: d, f2: f2, r6: g2, f3: f3, featureShape: q2.shape))
    }

    public func backward(_ dLogits: Tensor, cache k: Cache, targets: GradientTargets) -> Tensor? {
        let t = innerTargets(targets)
        var d = fc3.backward(dLogits, cache: k.f3, targets: t)!
        d = Activation.reluBackward(d, input: k.r6)
        d = fc2.backward(d, cache: k.f2, targets: t)!
        d = dropout.backward(d, cache: k.d, targets: t)!
        d = Activation.reluBackward(d, input: k.r5)
        d = fc1.backward(d, cache: k.f1, targets: t)!.reshaped(k.featureShape)
        // On fused stages every ReLU mask rides on a neighbouring pass: the pools' scatters apply
        // conv2's and conv4's, conv4's and conv2's input gradients apply conv3's and conv1's.
        d = poolBackward(pool2, d, k.p2, before: k.c4, targets: t)
        d = convReLUBackward(conv4, d, k.c4, targets: t, maskApplied: true, gateInput: true)!
        d = convReLUBackward(conv3, d, k.c3, targets: t, maskApplied: true)!
        d = poolBackward(pool1, d, k.p1, before: k.c2, targets: t)
        d = convReLUBackward(conv2, d, k.c2, targets: t, maskApplied: true, gateInput: true)!
        return convReLUBackward(conv1, d, k.c1, targets: targets, maskApplied: true)
    }

    /// The cache of one conv → ReLU: one fused call, or separate passes keeping the pre-activation.
    enum ConvStage {
        case fused(Conv2DLayer.FusedCache)
        case unfused(Conv2DLayer.Cache, preActivation: Tensor)
    }

    private func convReLU(_ conv: Conv2DLayer, _ x: Tensor, mode: ForwardMode) -> (Tensor, ConvStage) {
        if usesFusedPasses {
            let (y, f) = conv.forwardFused(x, foldingInference: nil, residual: nil, relu: true)
            return (y, .fused(f))
        }
        let (h, c) = conv.forward(x, mode: mode)
        return (Activation.relu(h), .unfused(c, preActivation: h))
    }

    /// `maskApplied`: on a fused stage, `d` already carries this stage's ReLU mask (it came from
    /// `poolBackward` or from the next conv's `gateInput` backward). `gateInput`: on a fused stage,
    /// return the input gradient masked by the previous stage's ReLU (this conv's input). Both are
    /// ignored on unfused stages, which run every pass separately.
    private func convReLUBackward(_ conv: Conv2DLayer, _ d: Tensor, _ stage: ConvStage,
                                  targets: GradientTargets, maskApplied: Bool = false,
                                  gateInput: Bool = false) -> Tensor? {
        switch stage {
        case .fused(let f):
            return conv.backwardFused(d, cache: f, targets: targets, reluMaskApplied: maskApplied,
                                      gateInput: gateInput).dInput
        case .unfused(let c, let h):
            return conv.backward(Activation.reluBackward(d, input: h), cache: c, targets: targets)
        }
    }

    /// The backward of a max pool that follows a conv → ReLU stage: on a fused stage, one pass that
    /// scatters and applies the stage's ReLU mask (`MaxPool2D.backwardThroughReLU`, bitwise equal to
    /// the separate passes); on an unfused stage the plain scatter (the mask follows in
    /// `convReLUBackward`).
    private func poolBackward(_ pool: MaxPool2D, _ d: Tensor, _ cache: MaxPool2D.Cache, before stage: ConvStage,
                              targets: GradientTargets) -> Tensor {
        if case .fused = stage { return pool.backwardThroughReLU(d, cache: cache, targets: targets)! }
        return pool.backward(d, cache: cache, targets: targets)!
    }

    public func stateEntries(prefix: String) -> [StateEntry] {
        let fe = prefix + "feature_extractor.", cl = prefix + "classifier."
        return conv1.stateEntries(prefix: fe + "conv1.") + conv2.stateEntries(prefix: fe + "conv2.")
            + conv3.stateEntries(prefix: fe + "conv3.") + conv4.stateEntries(prefix: fe + "conv4.")
            + fc1.stateEntries(prefix: cl + "fc1.") + fc2.stateEntries(prefix: cl + "fc2.")
            + fc3.stateEntries(prefix: cl + "fc3.")
    }

    /// Multiply-accumulates of one forward pass per image (convs and linears).
    public var forwardMACs: Int {
        let s = inputShape[1]
        let s2 = (s - 4) / 2
        let convs: Int = conv1.macs(height: s, width: s) + conv2.macs(height: s - 2, width: s - 2)
        let convs2: Int = conv3.macs(height: s2, width: s2) + conv4.macs(height: s2 - 2, width: s2 - 2)
        let fcs: Int = fc1.inFeatures * fc1.outFeatures + fc2.inFeatures * fc2.outFeatures
        return convs + convs2 + fcs + fc3.inFeatures * fc3.outFeatures
    }
}

/// `channels · width`, rounded, at least 1.
func scaledWidth(_ channels: Int, _ width: Double) -> Int {
    max(1, Int((Double(channels) * width).rounded()))
}
