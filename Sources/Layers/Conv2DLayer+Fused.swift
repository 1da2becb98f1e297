// Conv2DLayer+Fused.swift: a convolution run as one fused kernel call with what follows it in a
// model: its bias, an inference-mode batch norm folded into the filters, a residual add and a ReLU
// (`Conv2D.Epilogue`), and the matching backward (ReLU mask from the stored output, then one
// backward-input with the folded filters). Not here: training-mode batch norm, which depends on the
// batch statistics of the conv output and so cannot fold (BatchNorm2DLayer fuses its own epilogue).

import Kernels
import Tensors

extension Conv2DLayer {
    /// What `backwardFused` needs: the conv's own cache (input and geometry), the stored output
    /// (the ReLU mask), the filters the forward used (`W` or the folded `W'`), and the folded batch
    /// norm (for parameter gradients).
    public struct FusedCache {
        let conv: Cache
        let output: Tensor
        let relu: Bool
        let filters: Tensor
        let foldedBatchNorm: BatchNorm2DLayer?
    }

    /// One fused pass `y = act(bn(conv(x) + b) + residual)`:
    /// ```
    /// scale, shift = batchNorm.inferenceAffine(convBias: b)     (scale = 1, shift = b without a BN)
    /// W'[k]        = W[k] · scale[k]                             (folded per call: BN state may change)
    /// y            = act( x ⋆ W' + shift + residual )            (one Conv2D.forward with an epilogue)
    /// ```
    /// `batchNorm` is applied with its **running statistics** (inference mode): pass it only for an
    /// `.inference` forward. Without it the pass is the conv with its bias fused into the epilogue,
    /// valid in every mode and bitwise equal to `forward` followed by `add` and `relu`.
    ///
    /// Shapes: `input` `[N, C, H, W]`; `residual` and the output `[N, K, P, Q]`.
    /// - Note: with a folded batch norm the result equals the unfused conv → BN → add → ReLU up to
    ///   rounding (the scale is applied to the filters, the shift once), not bit for bit.
    public func forwardFused(_ input: Tensor, foldingInference batchNorm: BatchNorm2DLayer?, residual: Tensor?,
                             relu: Bool) -> (output: Tensor, cache: FusedCache) {
        precondition(batchNorm.map { $0.channels == outChannels } ?? true,
                     "Conv2DLayer.forwardFused: batch norm of \(batchNorm?.channels ?? 0) channels after a conv "
                     + "with \(outChannels) output channels")
        let g = Conv2D.geometry(input: input.shape, weight: weight.value.shape, stride: stride, padding: padding)
        let filters: Tensor, shift: Tensor?
        if let batchNorm {
            let affine = batchNorm.inferenceAffine(convBias: bias?.value)
            filters = Conv2D.scaledFilters(weight.value, by: affine.scale)
            shift = affine.shift
        } else {
            filters = weight.value
            shift = bias?.value
        }
        let y = Conv2D.forward(input, weight: filters, geometry: g, scale: nil, shift: shift, residual: residual,
                               relu: relu)
        return (y, FusedCache(conv: Cache(input: input, geometry: g), output: y, relu: relu, filters: filters,
                              foldedBatchNorm: batchNorm))
    }

    /// Backward of `forwardFused`:
    /// ```
    /// dz = relu ? dy · [y > 0] : dy          (the residual's gradient, returned as dPreActivation)
    /// dx = backwardInput(dz, W')             (no batch-norm pass: W' already holds its scale)
    /// ```
    /// With `.parameters` in `targets` the parameter gradients accumulate as in the unfused chain:
    /// without a batch norm, the conv's weight and bias gradients from `dz`; with a folded batch norm
    /// (inference-mode parameter gradients, which no training method takes but gradient checks do),
    /// the conv output `x ⋆ W + b` is recomputed unfused so the batch norm's backward sees its input,
    /// and `dW` comes from `dh = dz · scale`. The input gradient is the `W'` one in every case, so it
    /// does not depend on whether parameter gradients were asked for.
    ///
    /// `reluMaskApplied`: `dOutput` already carries the ReLU mask (it came from
    /// `MaxPool2D.backwardThroughReLU`, or from the next conv's backward with `gateInput`), so
    /// `dz = dOutput`.
    /// `gateInput`: this conv's input is the output of a ReLU, so its gradient is returned already
    /// masked, `dx = [x > 0] · backwardInput(dz, W')`, with the mask fused into the kernel's store;
    /// the caller then passes `reluMaskApplied` to that ReLU's layer. Bitwise the separate passes.
    public func backwardFused(_ dOutput: Tensor, cache: FusedCache, targets: GradientTargets,
                              reluMaskApplied: Bool = false, gateInput: Bool = false)
        -> (dInput: Tensor?, dPreActivation: Tensor) {
        let dz = cache.relu && !reluMaskApplied ? Activation.reluBackward(dOutput, input: cache.output) : dOutput
        if targets.contains(.parameters) {
            if let bn = cache.foldedBatchNorm {
                let h = Conv2D.forward(cache.conv.input, weight: weight.value, bias: bias?.value,
                                       geometry: cache.conv.geometry)
                let dh = bn.backward(dz, cache: bn.inferenceCache(input: h), targets: .all)!
                _ = backward(dh, cache: cache.conv, targets: .parameters)
            } else {
                _ = backward(dz, cache: cache.conv, targets: .parameters)
            }
        }
        guard targets.contains(.input) else { return (nil, dz) }
        return (Conv2D.backwardInput(dz, weight: cache.filters, geometry: cache.conv.geometry,
                                     gate: gateInput ? cache.conv.input : nil), dz)
    }
}
