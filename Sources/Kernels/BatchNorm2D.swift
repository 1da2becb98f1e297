// BatchNorm2D.swift: 2-D batch normalisation over NCHW float32 with PyTorch semantics (batch statistics
// and running-statistic updates in training, running statistics in inference), forward and backward.
// Channels are independent, so work is split across workers by channel and every result is bitwise
// independent of the worker count. The forward passes can fuse a residual add and a ReLU into their
// store, and the backward passes the ReLU mask (from the stored output) into their loads. It does not
// own parameters or buffers (Layers does); eps and momentum are arguments. Naive twins:
// BatchNorm2D+Reference.swift.

/// Batch normalisation kernels for `[N, C, H, W]` tensors (`hw = H·W`).
///
/// Notation: `M = N·H·W` values per channel; `μ_c`, `σ²_c` the batch mean and *biased* variance of
/// channel `c`; `invStd_c = 1/√(σ²_c + eps)`; `x̂ = (x − μ_c)·invStd_c`.
public enum BatchNorm2D {
    /// Target number of elements per worker slice; channels are grouped so that each worker gets at
    /// least this much work (splitting a few kilobytes over threads costs more than it saves).
    static let parallelMinimumElements = 1 << 15

    // MARK: - Forward

    /// Training-mode forward with batch statistics, saving what backward needs and updating the
    /// running statistics (PyTorch `nn.BatchNorm2d.train()` semantics).
    ///
    /// ```
    /// μ_c     = (1/M) Σ_{n,hw} x[n,c,hw]
    /// σ²_c    = (1/M) Σ_{n,hw} (x[n,c,hw] − μ_c)²                  (biased)
    /// invStd  = 1 / √(σ²_c + eps)
    /// y       = γ_c · (x − μ_c) · invStd_c + β_c
    /// runningMean_c ← (1 − momentum)·runningMean_c + momentum·μ_c
    /// runningVar_c  ← (1 − momentum)·runningVar_c  + momentum·σ²_c·M/(M − 1)   (unbiased)
    /// ```
    /// Statistics use the corrected two-pass algorithm: per-plane Float partial sums (four vector
    /// accumulators) are combined in Double, the mean is computed first, then `Σd` and `Σd²` of the
    /// centred values `d = x − μ̃` give `μ = μ̃ + Σd/M` and `σ² = (Σd² − (Σd)²/M)/M` (no catastrophic
    /// cancellation when |μ| ≫ σ).
    ///
    /// Shapes: `input`, `output` `[N, C, H, W]`; `gamma`, `beta`, `saveMean`, `saveInverseStd`,
    /// `runningMean`, `runningVar` `[C]`.
    ///
    /// - Parameters:
    ///   - saveMean, saveInverseStd: receive `μ_c` and `invStd_c` (overwritten), for `backwardTraining`.
    ///   - runningMean, runningVar: updated in place; pass `nil` to skip the update (PyTorch always
    ///     updates; `nil` is for probes and gradient checks).
    ///   - momentum: in [0, 1]; PyTorch's default is 0.1 (callers pass it).
    ///   - eps: > 0; PyTorch's default is 1e-5 (callers pass it).
    ///   - residual, relu: the fused epilogue `output = act(y + residual)` (see `normalizePlane`);
    ///     `residual` is `[N, C, H, W]` and may not alias `output`. The result is bitwise that of
    ///     this pass followed by `Elementwise.add` and `Activation.reluForward` (both exact).
    /// - Note: with `M == 1` the unbiased factor `M/(M − 1)` is undefined; the biased variance (0) is
    ///   used as is. PyTorch raises an error for that case instead.
    /// - Complexity: three reads of `input`, one write of `output` (plus one read of `residual`).
    public static func forwardTraining(output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
                                       gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>,
                                       saveMean: UnsafeMutablePointer<Float>,
                                       saveInverseStd: UnsafeMutablePointer<Float>,
                                       runningMean: UnsafeMutablePointer<Float>?,
                                       runningVar: UnsafeMutablePointer<Float>?,
                                       momentum: Float, eps: Float, n: Int, c: Int, hw: Int,
                                       residual: UnsafePointer<Float>?, relu: Bool) {
        let profile = KernelProfile.begin(.batchNorm); defer { KernelProfile.end(profile) }
        precondition(n >= 1 && c >= 0 && hw >= 1, "BatchNorm2D.forwardTraining: bad shape n \(n) c \(c) hw \(hw)")
        let m = n * hw
        let channelStride = c * hw  // distance between consecutive batch planes of one channel
        forEachChannelSlice(c: c, elementsPerChannel: m) { channels in
            for ch in channels {
                let x = input + ch * hw   // plane (0, ch); plane (i, ch) is at x + i·channelStride
                // Pass 1: mean.
                var total = 0.0
                for i in 0..<n { total += blockedSum(x + i * channelStride, count: hw) }
                let roughMean = Float(total / Double(m))
                // Pass 2: centred first and second moments around the rough mean.
                var sumD = 0.0, sumD2 = 0.0
                for i in 0..<n {
                    let (s1, s2) = centredMoments(x + i * channelStride, count: hw, mean: roughMean)
                    sumD += s1
                    sumD2 += s2
                }
                let mean = Double(roughMean) + sumD / Double(m)
                // Rounding can leave a tiny negative value for a constant channel; the variance is ≥ 0.
                let variance = max(0, (sumD2 - sumD * sumD / Double(m)) / Double(m))
                let inverseStd = 1 / (variance + Double(eps)).squareRoot()
                saveMean[ch] = Float(mean)
                saveInverseStd[ch] = Float(inverseStd)
                let mom = Double(momentum)
                if let runningMean {
                    runningMean[ch] = Float((1 - mom) * Double(runningMean[ch]) + mom * mean)
                }
                if let runningVar {
                    let unbiased = m > 1 ? variance * Double(m) / Double(m - 1) : variance
                    runningVar[ch] = Float((1 - mom) * Double(runningVar[ch]) + mom * unbiased)
                }
                // Pass 3: y = act(β + (x − μ)·(γ·invStd) + residual).
                let scale = Float(Double(gamma[ch]) * inverseStd)
                for i in 0..<n {
                    let offset = i * channelStride + ch * hw
                    normalizePlane(output: output + offset, input: input + offset, count: hw,
                                   mean: Float(mean), scale: scale, shift: beta[ch],
                                   residual: residual.map { $0 + offset }, relu: relu)
                }
            }
        }
    }

    /// Inference-mode forward with the running statistics (PyTorch `eval()` semantics); nothing is saved
    /// or updated.
    ///
    /// ```
    /// y = γ_c · (x − runningMean_c) / √(runningVar_c + eps) + β_c
    /// ```
    /// Shapes: `input`, `output` `[N, C, H, W]`; `gamma`, `beta`, `runningMean`, `runningVar` `[C]`.
    /// `output` may be exactly `input`. `residual` and `relu` fuse `output = act(y + residual)` into
    /// the store, as in `forwardTraining` (`residual` `[N, C, H, W]`, not aliasing `output`).
    public static func forwardInference(output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
                                        gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>,
                                        runningMean: UnsafePointer<Float>, runningVar: UnsafePointer<Float>,
                                        eps: Float, n: Int, c: Int, hw: Int,
                                        residual: UnsafePointer<Float>?, relu: Bool) {
        let profile = KernelProfile.begin(.batchNorm); defer { KernelProfile.end(profile) }
        precondition(n >= 0 && c >= 0 && hw >= 0, "BatchNorm2D.forwardInference: bad shape n \(n) c \(c) hw \(hw)")
        let channelStride = c * hw
        forEachChannelSlice(c: c, elementsPerChannel: n * hw) { channels in
            for ch in channels {
                let inverseStd = 1 / (Double(runningVar[ch]) + Double(eps)).squareRoot()
                let scale = Float(Double(gamma[ch]) * inverseStd)
                for i in 0..<n {
                    let offset = i * channelStride + ch * hw
                    normalizePlane(output: output + offset, input: input + offset, count: hw,
                                   mean: runningMean[ch], scale: scale, shift: beta[ch],
                                   residual: residual.map { $0 + offset }, relu: relu)
                }
            }
        }
    }

    // MARK: - Backward

    /// Training-mode backward through the batch statistics (μ and σ² depend on every input).
    ///
    /// ```
    /// x̂      = (x − μ_c)·invStd_c                      (recomputed from input and the saved statistics)
    /// dβ_c  += Σ_{n,hw} dy
    /// dγ_c  += Σ_{n,hw} dy·x̂
    /// dx     = γ_c·invStd_c/M · (M·dy − Σ dy − x̂·Σ dy·x̂)
    /// ```
    /// Shapes: `dInput`, `dOutput`, `input` `[N, C, H, W]`; `gamma`, `saveMean`, `saveInverseStd`,
    /// `dGamma`, `dBeta` `[C]`.
    ///
    /// With a fused ReLU (`reluOutput` given: the forward's `act(y + residual)`), `dy` above is the
    /// masked `dz = dOutput · [reluOutput > 0]`, computed plane by plane while it is in cache; it is
    /// stored in `dPreActivation` (the residual branch's gradient) when given, else in `dInput`.
    ///
    /// - Parameters:
    ///   - dInput: overwritten if non-nil; may be exactly `dOutput`.
    ///   - dGamma, dBeta: accumulated (`+=`) if non-nil.
    ///   - saveMean, saveInverseStd: as written by `forwardTraining` for this `input`.
    ///   - reluOutput: `[N, C, H, W]`, the fused forward's output, or nil for no ReLU.
    ///   - dPreActivation: `[N, C, H, W]`, overwritten with `dz` if non-nil (may be exactly
    ///     `dOutput`; not `dInput`). With `reluOutput` at least one of it and `dInput` is required.
    public static func backwardTraining(dInput: UnsafeMutablePointer<Float>?,
                                        dGamma: UnsafeMutablePointer<Float>?,
                                        dBeta: UnsafeMutablePointer<Float>?,
                                        dOutput: UnsafePointer<Float>, input: UnsafePointer<Float>,
                                        gamma: UnsafePointer<Float>,
                                        saveMean: UnsafePointer<Float>, saveInverseStd: UnsafePointer<Float>,
                                        n: Int, c: Int, hw: Int,
                                        reluOutput: UnsafePointer<Float>?,
                                        dPreActivation: UnsafeMutablePointer<Float>?) {
        let profile = KernelProfile.begin(.batchNorm); defer { KernelProfile.end(profile) }
        precondition(n >= 1 && c >= 0 && hw >= 1, "BatchNorm2D.backwardTraining: bad shape n \(n) c \(c) hw \(hw)")
        precondition(reluOutput == nil || dInput != nil || dPreActivation != nil,
                     "BatchNorm2D.backwardTraining: a fused ReLU needs dInput or dPreActivation to hold dz")
        if dInput == nil && dGamma == nil && dBeta == nil && dPreActivation == nil { return }
        let m = n * hw
        let channelStride = c * hw
        forEachChannelSlice(c: c, elementsPerChannel: m) { channels in
            for ch in channels {
                let mean = saveMean[ch], inverseStd = Double(saveInverseStd[ch])
                let dOutput = maskedGradient(dOutput: dOutput, reluOutput: reluOutput,
                                             into: dPreActivation ?? dInput, channel: ch, n: n, c: c, hw: hw)
                // Σ dy and Σ dy·(x − μ), per plane in Float, across planes in Double.
                var sumDy = 0.0, sumDyCentred = 0.0
                for i in 0..<n {
                    let offset = i * channelStride + ch * hw
                    let (s1, s2) = gradientMoments(dOutput: dOutput + offset, input: input + offset,
                                                   count: hw, mean: mean)
                    sumDy += s1
                    sumDyCentred += s2
                }
                let sumDyXhat = sumDyCentred * inverseStd
                if let dBeta { dBeta[ch] += Float(sumDy) }
                if let dGamma { dGamma[ch] += Float(sumDyXhat) }
                guard let dInput else { continue }
                // dx = k·dy − k·mean(dy) − k·(Σdy·x̂/M)·invStd·(x − μ), with k = γ·invStd.
                let k = Double(gamma[ch]) * inverseStd
                let dyScale = Float(k)
                let shift = Float(-k * sumDy / Double(m))
                let centredScale = Float(-k * sumDyXhat / Double(m) * inverseStd)
                for i in 0..<n {
                    let offset = i * channelStride + ch * hw
                    affineGradientPlane(dInput: dInput + offset, dOutput: dOutput + offset, input: input + offset,
                                        count: hw, mean: mean, dyScale: dyScale, centredScale: centredScale,
                                        shift: shift)
                }
            }
        }
    }

    /// Inference-mode backward: the running statistics are constants, so the layer is a per-channel
    /// affine map.
    ///
    /// ```
    /// invStd_c = 1/√(runningVar_c + eps),   x̂ = (x − runningMean_c)·invStd_c
    /// dx       = dy · γ_c · invStd_c
    /// dγ_c    += Σ dy·x̂,   dβ_c += Σ dy
    /// ```
    /// Shapes as in `backwardTraining`; the same nil/overwrite/accumulate rules apply, and so do
    /// `reluOutput` and `dPreActivation` (the fused ReLU's mask and the masked gradient `dz`).
    public static func backwardInference(dInput: UnsafeMutablePointer<Float>?,
                                         dGamma: UnsafeMutablePointer<Float>?,
                                         dBeta: UnsafeMutablePointer<Float>?,
                                         dOutput: UnsafePointer<Float>, input: UnsafePointer<Float>,
                                         gamma: UnsafePointer<Float>,
                                         runningMean: UnsafePointer<Float>, runningVar: UnsafePointer<Float>,
                                         eps: Float, n: Int, c: Int, hw: Int,
                                         reluOutput: UnsafePointer<Float>?,
                                         dPreActivation: UnsafeMutablePointer<Float>?) {
        let profile = KernelProfile.begin(.batchNorm); defer { KernelProfile.end(profile) }
        precondition(n >= 0 && c >= 0 && hw >= 0, "BatchNorm2D.backwardInference: bad shape n \(n) c \(c) hw \(hw)")
        precondition(reluOutput == nil || dInput != nil || dPreActivation != nil,
                     "BatchNorm2D.backwardInference: a fused ReLU needs dInput or dPreActivation to hold dz")
        if dInput == nil && dGamma == nil && dBeta == nil && dPreActivation == nil { return }
        let channelStride = c * hw
        forEachChannelSlice(c: c, elementsPerChannel: n * hw) { channels in
            for ch in channels {
                let dOutput = maskedGradient(dOutput: dOutput, reluOutput: reluOutput,
                                             into: dPreActivation ?? dInput, channel: ch, n: n, c: c, hw: hw)
                let mean = runningMean[ch]
                let inverseStd = 1 / (Double(runningVar[ch]) + Double(eps)).squareRoot()
                if dGamma != nil || dBeta != nil {
                    var sumDy = 0.0, sumDyCentred = 0.0
                    for i in 0..<n {
                        let offset = i * channelStride + ch * hw
                        let (s1, s2) = gradientMoments(dOutput: dOutput + offset, input: input + offset,
                                                       count: hw, mean: mean)
                        sumDy += s1
                        sumDyCentred += s2
                    }
                    if let dBeta { dBeta[ch] += Float(sumDy) }
                    if let dGamma { dGamma[ch] += Float(sumDyCentred * inverseStd) }
                }
                guard let dInput else { continue }
                let factor = Float(Double(gamma[ch]) * inverseStd)
                for i in 0..<n {
                    let offset = i * channelStride + ch * hw
                    affineGradientPlane(dInput: dInput + offset, dOutput: dOutput + offset, input: input + offset,
                                        count: hw, mean: mean, dyScale: factor, centredScale: 0, shift: 0)
                }
            }
        }
    }

    // MARK: - Unfused forms (no residual, no ReLU)

    /// `forwardTraining` without a fused residual or ReLU.
    public static func forwardTraining(output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
                                       gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>,
                                       saveMean: UnsafeMutablePointer<Float>,
                                       saveInverseStd: UnsafeMutablePointer<Float>,
                                       runningMean: UnsafeMutablePointer<Float>?,
                                       runningVar: UnsafeMutablePointer<Float>?,
                                       momentum: Float, eps: Float, n: Int, c: Int, hw: Int) {
        forwardTraining(output: output, input: input, gamma: gamma, beta: beta, saveMean: saveMean,
                        saveInverseStd: saveInverseStd, runningMean: runningMean, runningVar: runningVar,
                        momentum: momentum, eps: eps, n: n, c: c, hw: hw, residual: nil, relu: false)
    }

    /// `forwardInference` without a fused residual or ReLU.
    public static func forwardInference(output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
                                        gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>,
                                        runningMean: UnsafePointer<Float>, runningVar: UnsafePointer<Float>,
                                        eps: Float, n: Int, c: Int, hw: Int) {
        forwardInference(output: output, input: input, gamma: gamma, beta: beta, runningMean: runningMean,
                         runningVar: runningVar, eps: eps, n: n, c: c, hw: hw, residual: nil, relu: false)
    }

    /// `backwardTraining` without a fused ReLU.
    public static func backwardTraining(dInput: UnsafeMutablePointer<Float>?,
                                        dGamma: UnsafeMutablePointer<Float>?,
                                        dBeta: UnsafeMutablePointer<Float>?,
                                        dOutput: UnsafePointer<Float>, input: UnsafePointer<Float>,
                                        gamma: UnsafePointer<Float>,
                                        saveMean: UnsafePointer<Float>, saveInverseStd: UnsafePointer<Float>,
                                        n: Int, c: Int, hw: Int) {
        backwardTraining(dInput: dInput, dGamma: dGamma, dBeta: dBeta, dOutput: dOutput, input: input, gamma: gamma,
                         saveMean: saveMean, saveInverseStd: saveInverseStd, n: n, c: c, hw: hw,
                         reluOutput: nil, dPreActivation: nil)
    }

    /// `backwardInference` without a fused ReLU.
    public static func backwardInference(dInput: UnsafeMutablePointer<Float>?,
                                         dGamma: UnsafeMutablePointer<Float>?,
                                         dBeta: UnsafeMutablePointer<Float>?,
                                         dOutput: UnsafePointer<Float>, input: UnsafePointer<Float>,
                                         gamma: UnsafePointer<Float>,
                                         runningMean: UnsafePointer<Float>, runningVar: UnsafePointer<Float>,
                                         eps: Float, n: Int, c: Int, hw: Int) {
        backwardInference(dInput: dInput, dGamma: dGamma, dBeta: dBeta, dOutput: dOutput, input: input, gamma: gamma,
                          runningMean: runningMean, runningVar: runningVar, eps: eps, n: n, c: c, hw: hw,
                          reluOutput: nil, dPreActivation: nil)
    }

    // MARK: - Helpers

    /// Runs `body` over contiguous channel ranges, one per worker when each gets enough elements.
    @inline(__always)
    static func forEachChannelSlice(c: Int, elementsPerChannel: Int, _ body: (Range<Int>) -> Void) {
        let minimumChannels = max(1, parallelMinimumElements / max(1, elementsPerChannel))
        Parallel.forEachChunk(count: c, minimumChunk: minimumChannels) { channels, _ in body(channels) }
    }

    /// `output[i] = act(shift + (input[i] − mean)·scale + residual[i])` over one plane, where `act` is
    /// ReLU when `relu` is set (NaN passes, as `Activation.reluForward`) and a nil `residual` adds nothing.
    /// The add and the ReLU are the exact operations of `Elementwise.add` and `Activation.reluForward`,
    /// so the fused store is bitwise the unfused composition.
    @inline(__always)
    static func normalizePlane(output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, count: Int,
                               mean: Float, scale: Float, shift: Float,
                               residual: UnsafePointer<Float>? = nil, relu: Bool = false) {
        let meanV = FloatVector(repeating: mean), scaleV = FloatVector(repeating: scale)
        let shiftV = FloatVector(repeating: shift), zero = FloatVector()
        let vectorCount = count / FloatVector.scalarCount
        for v in 0..<vectorCount {
            let i = v * FloatVector.scalarCount
            var value = shiftV.addingProduct(loadVector(input + i) - meanV, scaleV)
            if let residual { value = value + loadVector(residual + i) }
            if relu { value = value.replacing(with: zero, where: value .< zero) }
            storeVector(value, output + i)
        }
        for i in (vectorCount * FloatVector.scalarCount)..<count {
            var value = shift.addingProduct(input[i] - mean, scale)
            if let residual { value = value + residual[i] }
            if relu && value < 0 { value = 0 }
            output[i] = value
        }
    }

    /// The gradient a channel's backward reads: `dOutput` itself without a fused ReLU; else
    /// `dz = dOutput · [reluOutput > 0]` written into `scratch`'s planes of channel `ch` (same
    /// `[N, C, H, W]` layout, so the returned base pointer is indexed like `dOutput`). The mask is
    /// `Activation.reluBackward`'s, so the result is bitwise that of the unfused ReLU backward.
    @inline(__always)
    static func maskedGradient(dOutput: UnsafePointer<Float>, reluOutput: UnsafePointer<Float>?,
                               into scratch: UnsafeMutablePointer<Float>?, channel ch: Int,
                               n: Int, c: Int, hw: Int) -> UnsafePointer<Float> {
        guard let reluOutput, let scratch else { return dOutput }
        let zero = FloatVector()
        let vectorCount = hw / FloatVector.scalarCount
        for image in 0..<n {
            let offset = image * c * hw + ch * hw
            let dy = dOutput + offset, y = reluOutput + offset, dz = scratch + offset
            for v in 0..<vectorCount {
                let i = v * FloatVector.scalarCount
                storeVector(zero.replacing(with: loadVector(dy + i), where: loadVector(y + i) .> zero), dz + i)
            }
            for i in (vectorCount * FloatVector.scalarCount)..<hw {
                dz[i] = y[i] > 0 ? dy[i] : 0
            }
        }
        return UnsafePointer(scratch)
    }

    /// `dInput[i] = shift + dyScale·dOutput[i] + centredScale·(input[i] − mean)` over one plane.
    @inline(__always)
    static func affineGradientPlane(dInput: UnsafeMutablePointer<Float>, dOutput: UnsafePointer<Float>,
                                    input: UnsafePointer<Float>, count: Int, mean: Float,
                                    dyScale: Float, centredScale: Float, shift: Float) {
        let meanV = FloatVector(repeating: mean), dyScaleV = FloatVector(repeating: dyScale)
        let centredScaleV = FloatVector(repeating: centredScale), shiftV = FloatVector(repeating: shift)
        let vectorCount = count / FloatVector.scalarCount
        for v in 0..<vectorCount {
            let i = v * FloatVector.scalarCount
            var r = shiftV.addingProduct(loadVector(dOutput + i), dyScaleV)
            r.addProduct(loadVector(input + i) - meanV, centredScaleV)
            storeVector(r, dInput + i)
        }
        for i in (vectorCount * FloatVector.scalarCount)..<count {
            dInput[i] = shift.addingProduct(dOutput[i], dyScale).addingProduct(input[i] - mean, centredScale)
        }
    }
}

// MARK: - Plane reductions

/// `(Σ d, Σ d²)` with `d = x − mean` over one plane: Float with two accumulators per moment inside a
/// block of `Elementwise.sumBlockLength`, Double across blocks and lanes.
@inline(__always)
func centredMoments(_ x: UnsafePointer<Float>, count: Int, mean: Float) -> (Double, Double) {
    let width = FloatVector.scalarCount
    let meanV = FloatVector(repeating: mean)
    var sum = 0.0, sumSquares = 0.0
    var start = 0
    while start < count {
        let length = min(Elementwise.sumBlockLength, count - start)
        let p = x + start
        var s0 = FloatVector(), s1 = FloatVector(), q0 = FloatVector(), q1 = FloatVector()
        let pairCount = length / (2 * width)
        for u in 0..<pairCount {
            let i = u * 2 * width
            let d0 = loadVector(p + i) - meanV
            let d1 = loadVector(p + i + width) - meanV
            s0 += d0
            s1 += d1
            q0.addProduct(d0, d0)
            q1.addProduct(d1, d1)
        }
        var i = pairCount * 2 * width
        if i + width <= length {
            let d0 = loadVector(p + i) - meanV
            s0 += d0
            q0.addProduct(d0, d0)
            i += width
        }
        let s = s0 + s1, q = q0 + q1
        for lane in 0..<width {
            sum += Double(s[lane])
            sumSquares += Double(q[lane])
        }
        while i < length {
            let d = Double(p[i] - mean)
            sum += d
            sumSquares += d * d
            i += 1
        }
        start += length
    }
    return (sum, sumSquares)
}

/// `(Σ dy, Σ dy·(x − mean))` over one plane, blocked like `centredMoments`.
@inline(__always)
func gradientMoments(dOutput: UnsafePointer<Float>, input: UnsafePointer<Float>, count: Int,
                     mean: Float) -> (Double, Double) {
    let width = FloatVector.scalarCount
    let meanV = FloatVector(repeating: mean)
    var sum = 0.0, sumProducts = 0.0
    var start = 0
    while start < count {
        let length = min(Elementwise.sumBlockLength, count - start)
        let dy = dOutput + start, x = input + start
        var s0 = FloatVector(), s1 = FloatVector(), q0 = FloatVector(), q1 = FloatVector()
        let pairCount = length / (2 * width)
        for u in 0..<pairCount {
            let i = u * 2 * width
            let g0 = loadVector(dy + i), g1 = loadVector(dy + i + width)
            s0 += g0
            s1 += g1
            q0.addProduct(g0, loadVector(x + i) - meanV)
            q1.addProduct(g1, loadVector(x + i + width) - meanV)
        }
        var i = pairCount * 2 * width
        if i + width <= length {
            let g0 = loadVector(dy + i)
            s0 += g0
            q0.addProduct(g0, loadVector(x + i) - meanV)
            i += width
        }
        let s = s0 + s1, q = q0 + q1
        for lane in 0..<width {
            sum += Double(s[lane])
            sumProducts += Double(q[lane])
        }
        while i < length {
            sum += Double(dy[i])
            sumProducts += Double(dy[i]) * Double(x[i] - mean)
            i += 1
        }
        start += length
    }
    return (sum, sumProducts)
}
