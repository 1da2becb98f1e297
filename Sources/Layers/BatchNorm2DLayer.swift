// BatchNorm2DLayer.swift: batch normalisation over (N, H, W) per channel with PyTorch's names and
// semantics: `weight` (γ), `bias` (β), `running_mean`, `running_var`, `num_batches_tracked`;
// momentum 0.1, eps 1e-5, unbiased variance in the running estimate. Arithmetic: Kernels/BatchNorm2D.

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

    public enum Cache {
        case training(input: Tensor, saved: BatchNorm2D.Saved)
        case inference(input: Tensor)
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
        precondition(input.rank == 4 && input.shape[1] == channels,
                     "BatchNorm2DLayer(\(channels)): input must be [N, \(channels), H, W], got \(input.shape)")
        switch mode {
        case .training:
            let (y, saved) = BatchNorm2D.forwardTraining(input, gamma: weight.value, beta: bias.value,
                                                         runningMean: &runningMean.value,
                                                         runningVar: &runningVar.value, momentum: momentum, eps: eps)
            batchesTracked.value += 1
            return (y, .training(input: input, saved: saved))
        case .inference:
            let y = BatchNorm2D.forwardInference(input, gamma: weight.value, beta: bias.value,
                                                 runningMean: runningMean.value, runningVar: runningVar.value, eps: eps)
            return (y, .inference(input: input))
        }
    }

    public func backward(_ dOutput: Tensor, cache: Cache, targets: GradientTargets) -> Tensor? {
        let wantParams = targets.contains(.parameters)
        var dGamma: Tensor? = wantParams ? weight.gradient : nil
        var dBeta: Tensor? = wantParams ? bias.gradient : nil
        if wantParams {
            // Move the accumulators out so the kernel writes them without a copy-on-write.
            weight.gradient = Tensor(zeros: [0]); bias.gradient = Tensor(zeros: [0])
        }
        let dInput: Tensor?
        switch cache {
        case .training(let input, let saved):
            dInput = BatchNorm2D.backwardTraining(dOutput, input: input, gamma: weight.value, saved: saved,
                                                  wantInput: targets.contains(.input), dGamma: &dGamma, dBeta: &dBeta)
        case .inference(let input):
            dInput = BatchNorm2D.backwardInference(dOutput, input: input, gamma: weight.value,
                                                   runningMean: runningMean.value, runningVar: runningVar.value,
                                                   eps: eps, wantInput: targets.contains(.input),
                                                   dGamma: &dGamma, dBeta: &dBeta)
        }
        if wantParams { weight.gradient = dGamma!; bias.gradient = dBeta! }
        return dInput
    }

    public func stateEntries(prefix: String) -> [StateEntry] {
        [StateEntry(prefix + "weight", .parameter(weight)),
         StateEntry(prefix + "bias", .parameter(bias)),
         StateEntry(prefix + "running_mean", .buffer(runningMean)),
         StateEntry(prefix + "running_var", .buffer(runningVar)),
         StateEntry(prefix + "num_batches_tracked", .counter(batchesTracked))]
    }
}
