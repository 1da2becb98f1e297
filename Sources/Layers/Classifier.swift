// Classifier.swift: the small protocol attacks and training methods see a model through (logits
// in a given mode; input and/or parameter gradients for a logit gradient), and a type-erased box
// for models chosen at run time (with an optional PassProfiler, PassProfiler.swift). Nothing here
// knows concrete architectures.

import Tensors

/// An image classifier: `[N, C, H, W]` images in [0, 1] → `[N, classes]` logits.
///
/// Forward passes are independent: each returns its own cache, so a training step may run the
/// clean, adversarial and memory batches through the model and backpropagate each separately
/// (parameter gradients accumulate). BatchNorm running statistics update on every `.training`
/// forward pass, as in PyTorch.
public protocol Classifier: StateProvider {
    associatedtype Cache
    /// `[C, H, W]` of one input image.
    var inputShape: [Int] { get }
    var classCount: Int { get }
    func forward(_ input: Tensor, mode: ForwardMode) -> (logits: Tensor, cache: Cache)
    func backward(_ dLogits: Tensor, cache: Cache, targets: GradientTargets) -> Tensor?
    /// Layers that draw random numbers in `.training` mode (dropout), in a fixed order, so that a
    /// checkpoint can save and restore their streams for an exact resume.
    var stochasticLayers: [DropoutLayer] { get }
}

extension Classifier {
    public var stochasticLayers: [DropoutLayer] { [] }

    /// Logits only (no cache kept).
    public func logits(_ input: Tensor, mode: ForwardMode) -> Tensor { forward(input, mode: mode).logits }
}

/// A type-erased classifier whose cache is an opaque box, for code that picks the architecture
/// at run time (the trainer, the CLI). Generic code can also take the concrete type directly.
public final class AnyClassifier: Classifier {
    /// An opaque forward cache of the wrapped model.
    public struct Cache { fileprivate let box: Any }

    public let base: AnyObject
    public let inputShape: [Int]
    public let classCount: Int
    private let forwardImpl: (Tensor, ForwardMode) -> (Tensor, Any)
    private let backwardImpl: (Tensor, Any, GradientTargets) -> Tensor?
    private let stateImpl: (String) -> [StateEntry]
    public let stochasticLayers: [DropoutLayer]
    /// When set, every forward and backward pass is timed into it (`ModelPass.forward(mode)`,
    /// `ModelPass.backward(targets)`); nil (the default) costs one check per pass. Results are the same.
    public var profiler: PassProfiler?

    public init<M: Classifier>(_ model: M) {
        base = model
        inputShape = model.inputShape
        classCount = model.classCount
        forwardImpl = { x, mode in let (y, c) = model.forward(x, mode: mode); return (y, c as Any) }
        backwardImpl = { dy, c, targets in
            guard let cache = c as? M.Cache else { preconditionFailure("AnyClassifier: cache from another model") }
            return model.backward(dy, cache: cache, targets: targets)
        }
        stateImpl = { model.stateEntries(prefix: $0) }
        stochasticLayers = model.stochasticLayers
    }

    public func forward(_ input: Tensor, mode: ForwardMode) -> (logits: Tensor, cache: Cache) {
        let pass = beginPass(.forward(mode)); defer { endPass(pass) }
        let (y, c) = forwardImpl(input, mode)
        return (y, Cache(box: c))
    }

    public func backward(_ dLogits: Tensor, cache: Cache, targets: GradientTargets) -> Tensor? {
        let pass = beginPass(.backward(targets)); defer { endPass(pass) }
        return backwardImpl(dLogits, cache.box, targets)
    }

    public func stateEntries(prefix: String) -> [StateEntry] { stateImpl(prefix) }
}
