// BatchNorm2DLayer+Sync.swift: synchronised batch norm for data-parallel training (docs/distributed.md
// §5): a training-mode pass whose per-channel statistics are summed across the replicas through the
// layer's `statisticsReducer`, so R replicas with batch B/R each normalise with the mean and variance
// one process computes over the whole batch B, and the backward uses the matching global sums.
// The per-element work runs in the batch-norm kernels; only per-channel sums are formed here. The
// layer knows nothing of MPI.

import Kernels
import Tensors

/// Sums `values` element-wise across every replica, in place (the same count on every replica).
/// Set by the trainer under data parallelism; must be called by every replica in the same order.
public typealias BatchNormStatisticsReducer = (_ values: inout [Double]) -> Void

extension BatchNorm2DLayer {
    /// What the synchronised backward needs: the global mean and biased variance per channel (as
    /// `[C]` tensors, the form the inference kernels take) and the global element count per channel
    /// `M = Σ_replicas N·H·W`.
    public struct SyncedStatistics {
        let mean: Tensor
        let variance: Tensor
        let count: Double
    }

    /// The training forward with global statistics. Each replica's mean μ_r and biased variance
    /// σ²_r over its `m_r = N·H·W` elements per channel come from the training kernel; one reduction
    /// sums `[m_r·μ_r, m_r·(σ²_r + μ_r²), m_r]`, so
    /// ```
    /// M = Σ m_r,  μ = Σ m_r·μ_r / M,  σ² = max(Σ m_r·(σ²_r + μ_r²) / M − μ², 0)      (in Double)
    /// y = act(γ·(x − μ)/√(σ² + eps) + β + residual)                                   (the inference kernel)
    /// running_mean ← (1 − m)·running_mean + m·μ,  running_var ← (1 − m)·running_var + m·σ²·M/(M − 1)
    /// ```
    /// Shapes: `input`, `residual`, output `[N, C, H, W]`.
    func forwardSynchronized(_ input: Tensor, reducer: BatchNormStatisticsReducer, residual: Tensor?, relu: Bool)
        -> (output: Tensor, cache: Cache) {
        let c = channels
        let local = Double(input.shape[0] * input.shape[2] * input.shape[3])
        var scratchMean = runningMean.value, scratchVar = runningVar.value  // the kernel's running update is discarded
        let saved = BatchNorm2D.forwardTraining(input, gamma: weight.value, beta: bias.value, runningMean: &scratchMean,
                                                runningVar: &scratchVar, momentum: momentum, eps: eps).saved
        let localMean = saved.mean.scalars, localInverseStd = saved.inverseStd.scalars
        var sums = [Double](repeating: 0, count: 2 * c + 1)
        for ch in 0..<c {
            let mu = Double(localMean[ch])
            let variance = max(1 / (Double(localInverseStd[ch]) * Double(localInverseStd[ch])) - Double(eps), 0)
            sums[ch] = local * mu
            sums[c + ch] = local * (variance + mu * mu)
        }
        sums[2 * c] = local
        reducer(&sums)
        let m = sums[2 * c]
        var mean = [Float](repeating: 0, count: c), variance = [Float](repeating: 0, count: c)
        var rm = runningMean.value.scalars, rv = runningVar.value.scalars
        let mom = Double(momentum)
        for ch in 0..<c {
            let mu = sums[ch] / m
            let v = max(sums[c + ch] / m - mu * mu, 0)
            mean[ch] = Float(mu); variance[ch] = Float(v)
            rm[ch] = Float((1 - mom) * Double(rm[ch]) + mom * mu)
            rv[ch] = Float((1 - mom) * Double(rv[ch]) + mom * (m > 1 ? v * m / (m - 1) : v))
        }
        let stats = SyncedStatistics(mean: Tensor(shape: [c], values: mean), variance: Tensor(shape: [c], values: variance), count: m)
        let output = BatchNorm2D.forwardInference(input, gamma: weight.value, beta: bias.value, runningMean: stats.mean,
                                                  runningVar: stats.variance, eps: eps, residual: residual, relu: relu)
        runningMean.value = Tensor(shape: [c], values: rm)
        runningVar.value = Tensor(shape: [c], values: rv)
        batchesTracked.value += 1
        return (output, Cache(input: input, saved: nil, reluOutput: relu ? output : nil, synced: stats))
    }

    /// The backward of `forwardSynchronized`, with `dz` the gradient at `bn(x) + residual` (the
    /// incoming gradient masked by `y > 0` with a fused ReLU), `s = 1/√(σ² + eps)` and
    /// `x̂ = (x − μ)·s`:
    /// ```
    /// A = Σ_{n,h,w} dz,  B = Σ_{n,h,w} dz·x̂,  dx₀ = γ·s·dz        (the inference kernel: this replica's sums)
    /// Ā, B̄ = A, B summed over the replicas                         (one reduction)
    /// dx = dx₀ + γ′·(x − μ)·s + β′,  γ′ = −γ·s·B̄/M,  β′ = −γ·s·Ā/M    (the inference kernel again)
    ///    = γ·s·(dz − Ā/M − x̂·B̄/M)
    /// ```
    /// dβ += A and dγ += B stay this replica's (the gradient all-reduce sums them afterwards).
    func backwardSynchronized(_ dOutput: Tensor, cache: Cache, synced: SyncedStatistics, reducer: BatchNormStatisticsReducer,
                              targets: GradientTargets, wantPreActivation: Bool) -> (dInput: Tensor?, dPreActivation: Tensor?) {
        let c = channels
        var localGamma: Tensor? = Tensor(zeros: [c]), localBeta: Tensor? = Tensor(zeros: [c])
        let (dx0, dz) = BatchNorm2D.backwardInference(dOutput, input: cache.input, gamma: weight.value, runningMean: synced.mean,
                                                      runningVar: synced.variance, eps: eps, reluOutput: cache.reluOutput,
                                                      wantInput: targets.contains(.input), wantPreActivation: wantPreActivation,
                                                      dGamma: &localGamma, dBeta: &localBeta)
        let a = localBeta!.scalars, b = localGamma!.scalars
        if targets.contains(.parameters) {
            Elementwise.accumulate(&bias.gradient, localBeta!)
            Elementwise.accumulate(&weight.gradient, localGamma!)
        }
        var sums = a.map(Double.init) + b.map(Double.init)
        reducer(&sums)
        guard let dx0 else { return (nil, dz) }
        let gamma = weight.value.scalars, variance = synced.variance.scalars
        var g = [Float](repeating: 0, count: c), beta = [Float](repeating: 0, count: c)
        for ch in 0..<c {
            let k = Double(gamma[ch]) / (Double(variance[ch]) + Double(eps)).squareRoot()
            g[ch] = Float(-k * sums[c + ch] / synced.count)
            beta[ch] = Float(-k * sums[ch] / synced.count)
        }
        let dx = BatchNorm2D.forwardInference(cache.input, gamma: Tensor(shape: [c], values: g), beta: Tensor(shape: [c], values: beta),
                                              runningMean: synced.mean, runningVar: synced.variance, eps: eps, residual: dx0)
        return (dx, dz)
    }
}
