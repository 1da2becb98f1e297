// BatchNorm2DLayer.swift: batch normalisation over (N, H, W) per channel with PyTorch's names and
// semantics: `weight` (γ), `bias` (β), `running_mean`, `running_var`, `num_batches_tracked`;
// momentum 0.1, eps 1e-5, unbiased variance in the running estimate; optionally fused with a residual
// add and a ReLU, and foldable into a conv in inference mode. Arithmetic: Kernels/BatchNorm2D.

import Kernels
import Tensors

/// `y = γ · (x − μ) / √(σ² + eps) + β`, with batch statistics in `.training` mode (and a running
/// statistics update as a side effect of that forward pass, as in PyTorch) and running statistics
/// in `.inference` mode.
///
/// Shapes: input and output `[N, C, H, W]`; γ, β and the running statistics `[C]`.
public final class BatchNorm2DLayer: Layer {
    /// PyTorch's defaults (torch.nn.BatchNorm2d).
    public static let defaultMomentum: Float = 0.1
    public static let defaultEps: Float = 1e-5

    public let channels: Int
    public let momentum: Float, eps: Float
    public let weight: Parameter, bias: Parameter
    public let runningMean: Buffer, runningVar: Buffer
    public let batchesTracked: Counter
    /// Synchronised batch norm (BatchNorm2DLayer+Sync.swift): when set, training-mode passes use
    /// the statistics of every replica's batch, summed through it; nil (the default): this batch's.
    public var statisticsReducer: BatchNormStatisticsReducer?

    /// What `backward` needs: the forward input, the batch statistics of a training pass (nil in
    /// inference), and the output of a fused ReLU (its mask; nil without one).
    public struct Cache {
        let input: Tensor
        let saved: BatchNorm2D.Saved?
        let reluOutput: Tensor?
        /// The global statistics of a synchronised training pass (nil otherwise).
        var synced: SyncedStatistics? = nil
    }

    public init(_ channels: Int, momentum: Float = BatchNorm2DLayer.defaultMomentum, eps: Float = BatchNorm2DLayer.defaultEps) {
        self.channels = channels; self.momentum = momentum; self.eps = eps
        weight = Parameter(Tensor(shape: [channels], repeating: 1))
        bias = Parameter(Tensor(zeros: [channels]))
        runningMean = Buffer(Tensor(zeros: [channels]))
        runningVar = Buffer(Tensor(shape: [channels], repeating: 1))
        batchesTracked = Counter(0)
    }

    public func forward(_ input: Tensor, mode: ForwardMode) -> (output: Tensor, cache: Cache) {
        forward(input, mode: mode, residual: nil, relu: false)
    }

    /// The fused pass `y = act(bn(x) + residual)`: batch norm in `mode`, then the optional residual
    /// add and ReLU in the same store, bitwise equal to `forward` followed by `Elementwise.add` and
    /// `Activation.relu`. The cache keeps `y` as the ReLU mask (no pre-activation tensor is stored).
    ///
    /// Shapes: `input`, `residual` and the output `[N, C, H, W]`.
    public func forward(_ input: Tensor, mode: ForwardMode, residual: Tensor?, relu: Bool)
        -> (output: Tensor, cache: Cache) {
        precondition(input.rank == 4 && input.shape[1] == channels,
                     "BatchNorm2DLayer(\(channels)): input must be [N, \(channels), H, W], got \(input.shape)")
        if mode == .training, let statisticsReducer {
            return forwardSynchronized(input, reducer: statisticsReducer, residual: residual, relu: relu)
        }
        switch mode {
        case .training:
            let (y, saved) = BatchNorm2D.forwardTraining(input, gamma: weight.value, beta: bias.value,
                                                         runningMean: &runningMean.value,
                                                         runningVar: &runningVar.value, momentum: momentum, eps: eps,
                                                         residual: residual, relu: relu)
            batchesTracked.value += 1
            return (y, Cache(input: input, saved: saved, reluOutput: relu ? y : nil))
        case .inference:
            let y = BatchNorm2D.forwardInference(input, gamma: weight.value, beta: bias.value,
                                                 runningMean: runningMean.value, runningVar: runningVar.value, eps: eps,
                                                 residual: residual, relu: relu)
            return (y, Cache(input: input, saved: nil, reluOutput: relu ? y : nil))
        }
    }

    public func backward(_ dOutput: Tensor, cache: Cache, targets: GradientTargets) -> Tensor? {
        backward(dOutput, cache: cache, targets: targets, wantPreActivation: false).dInput
    }

    /// Backward of the fused pass: the ReLU mask (`y > 0`, from the cache) is applied as the gradient
    /// is loaded. Returns the input gradient when `targets` has `.input`, and, when
    /// `wantPreActivation`, the gradient at `bn(x) + residual` (`dz`, which is also the residual's
    /// gradient). Parameter gradients accumulate when `targets` has `.parameters`.
    public func backward(_ dOutput: Tensor, cache: Cache, targets: GradientTargets, wantPreActivation: Bool)
        -> (dInput: Tensor?, dPreActivation: Tensor?) {
        if let synced = cache.synced, let statisticsReducer {
            return backwardSynchronized(dOutput, cache: cache, synced: synced, reducer: statisticsReducer, targets: targets,
                                        wantPreActivation: wantPreActivation)
        }
        let wantParams = targets.contains(.parameters)
        var dGamma: Tensor? = wantParams ? weight.gradient : nil
        var dBeta: Tensor? = wantParams ? bias.gradient : nil
        if wantParams {
            // Move the accumulators out so the kernel writes them without a copy-on-write.
            weight.gradient = Tensor(zeros: [0]); bias.gradient = Tensor(zeros: [0])
        }
        let result: (dInput: Tensor?, dPreActivation: Tensor?)
        if let saved = cache.saved {
            result = BatchNorm2D.backwardTraining(dOutput, input: cache.input, gamma: weight.value, saved: saved,
                                                  reluOutput: cache.reluOutput, wantInput: targets.contains(.input),
                                                  wantPreActivation: wantPreActivation, dGamma: &dGamma, dBeta: &dBeta)
        } else {
            result = BatchNorm2D.backwardInference(dOutput, input: cache.input, gamma: weight.value,
                                                   runningMean: runningMean.value, runningVar: runningVar.value,
                                                   eps: eps, reluOutput: cache.reluOutput,
                                                   wantInput: targets.contains(.input),
                                                   wantPreActivation: wantPreActivation, dGamma: &dGamma, dBeta: &dBeta)
        }
        if wantParams { weight.gradient = dGamma!; bias.gradient = dBeta! }
        return result
    }

    /// The inference-mode map folded to a per-channel affine for a preceding conv with bias `convBias`:
    /// `bn(acc + b) = scale · acc + shift`, `scale = γ/√(running_var + ε)`,
    /// `shift = β + (b − running_mean)·scale` (see `BatchNorm2D.inferenceAffine`). Shapes `[C]`.
    public func inferenceAffine(convBias: Tensor? = nil) -> (scale: Tensor, shift: Tensor) {
        BatchNorm2D.inferenceAffine(gamma: weight.value, beta: bias.value, runningMean: runningMean.value,
                                    runningVar: runningVar.value, eps: eps, bias: convBias)
    }

    /// A cache for `backward` of an inference-mode pass over `input` without a fused ReLU, for code
    /// that ran the pass folded into a conv and needs this layer's parameter gradients afterwards.
    func inferenceCache(input: Tensor) -> Cache { Cache(input: input, saved: nil, reluOutput: nil) }

    public func stateEntries(prefix: String) -> [StateEntry] {
        [StateEntry(prefix + "weight", .parameter(weight)),
         StateEntry(prefix + "bias", .parameter(bias)),
         StateEntry(prefix + "running_mean", .buffer(runningMean)),
         StateEntry(prefix + "running_var", .buffer(runningVar)),
         StateEntry(prefix + "num_batches_tracked", .counter(batchesTracked))]
    }
}
