// Augmentation.swift: the recorded augmentation: the config that says which views (Tensors'
// ViewParameters: crop offset, flip) are allowed, and the sampling rule that makes a view a pure function of
// (seed, epoch, sample ID). Rendering a view is Dataset.renderView (Dataset+Unsafe.swift); this file
// never touches pixels.

import Tensors

/// Which random views training draws: random crop with `padding` pixels of zero padding on each side
/// and/or a horizontal flip with probability 1/2.
///
/// Defaults follow the standard CIFAR recipe (He et al. 2016; Madry et al., TRADES and MemLoss code):
/// padding 4 and flip for CIFAR-10/100; none for MNIST and SVHN (digits are not mirror-symmetric).
public struct AugmentationConfig: Hashable, Codable, Sendable {
    /// Zero padding on each side before the random crop, in pixels, `0...127`. 0 = no crop.
    public var padding: Int
    /// Horizontal flip with probability 1/2.
    public var flip: Bool

    public init(padding: Int, flip: Bool) {
        precondition(padding >= 0 && padding <= 127, "AugmentationConfig: padding \(padding) out of 0...127")
        self.padding = padding
        self.flip = flip
    }

    /// No augmentation: every view is the identity.
    public static let none = AugmentationConfig(padding: 0, flip: false)
    /// CIFAR convention: 4-pixel zero padding, random 32×32 crop, horizontal flip.
    public static let cifar = AugmentationConfig(padding: 4, flip: true)

    public var isIdentity: Bool { padding == 0 && !flip }

    /// The default for a format: `.cifar` for CIFAR-10/100, `.none` otherwise.
    public static func standard(for format: DatasetFormat) -> AugmentationConfig {
        switch format {
        case .cifar10, .cifar100: return .cifar
        default: return .none
        }
    }

    /// Salt separating augmentation streams from permutation and split streams (docs/datasets.md §5).
    static let streamSalt: UInt64 = 0x6175_676D_656E_7431  // "augment1"

    /// The view of sample `id` in epoch `epoch`: a pure function of (seed, epoch, id, config).
    ///
    /// ```
    /// g  = SplitMix64.derived(seed: SplitMix64.derived(seed: seed ^ salt, stream: epoch).next(), stream: id)
    /// dy = g.nextInt(below: 2p + 1) − p,  dx = g.nextInt(below: 2p + 1) − p   (only if p > 0)
    /// flip = g.next() >> 63 == 1                                              (only if flip)
    /// ```
    public func view(seed: UInt64, epoch: Int, id: Int) -> ViewParameters {
        if isIdentity { return .identity }
        var epochStream = SplitMix64.derived(seed: seed ^ AugmentationConfig.streamSalt, stream: UInt64(epoch))
        var g = SplitMix64.derived(seed: epochStream.next(), stream: UInt64(id))
        var v = ViewParameters.identity
        if padding > 0 {
            v.dy = Int8(g.nextInt(below: 2 * padding + 1) - padding)
            v.dx = Int8(g.nextInt(below: 2 * padding + 1) - padding)
        }
        if flip { v.flip = g.next() >> 63 == 1 }
        return v
    }
}
