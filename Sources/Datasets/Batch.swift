// Batch.swift: the batch value handed to the trainer (IDs, labels, recorded views, float images) and
// the loader that fills one from a dataset: for each ID, sample its view from (seed, epoch, id) and
// render it with Dataset.renderView, the same function the memory bank uses to rebuild it.
// No threads here (Prefetcher.swift runs the loader ahead of the consumer).

import Tensors

/// One batch of augmented samples.
///
/// Row `i` of `images` is `dataset.renderView(id: ids[i], view: views[i])` bit for bit.
public struct Batch: Sendable {
    /// Epoch the batch belongs to.
    public var epoch: Int
    /// Index of the batch within its epoch's plan.
    public var index: Int
    /// Sample IDs (stable keys of the memory bank).
    public var ids: [Int]
    /// Labels, `0..<classCount`.
    public var labels: [Int32]
    /// The view each row was rendered with.
    public var views: [ViewParameters]
    /// `[B, C, H, W]`, float in [0, 1].
    public var images: Tensor

    /// Number of samples.
    public var count: Int { ids.count }

    /// An empty batch with image storage for `capacity` samples of `shape` (a prefetch slot).
    public init(capacity: Int, shape: ImageShape) {
        epoch = 0
        index = 0
        ids = []
        labels = []
        views = []
        ids.reserveCapacity(capacity)
        labels.reserveCapacity(capacity)
        views.reserveCapacity(capacity)
        images = Tensor(zeros: [capacity] + shape.dimensions)
    }
}

/// Fills batches from a dataset with recorded, seeded augmentation.
public struct BatchLoader: Sendable {
    public let dataset: Dataset
    public let augmentation: AugmentationConfig
    /// Seed of the augmentation streams (usually the run seed).
    public let seed: UInt64

    /// Samples between two resident-memory checks (Dataset.noteSamplesRead).
    static let residencyCheckInterval = 16

    public init(dataset: Dataset, augmentation: AugmentationConfig, seed: UInt64) {
        self.dataset = dataset
        self.augmentation = augmentation
        self.seed = seed
    }

    /// The view sample `id` gets in `epoch`.
    public func view(epoch: Int, id: Int) -> ViewParameters {
        augmentation.view(seed: seed, epoch: epoch, id: id)
    }

    /// Loads `ids` into `batch`, reusing its storage when it already has room for exactly `ids.count`
    /// rows (and nobody else holds it); otherwise allocates.
    public func load<S: Collection>(ids: S, epoch: Int, index: Int, into batch: inout Batch) where S.Element == Int {
        let n = ids.count
        let shape = dataset.shape
        if batch.images.rank != 4 || batch.images.shape[0] != n || Array(batch.images.shape.dropFirst()) != shape.dimensions {
            batch.images = Tensor(zeros: [n] + shape.dimensions)
        }
        batch.epoch = epoch
        batch.index = index
        batch.ids.removeAll(keepingCapacity: true)
        batch.labels.removeAll(keepingCapacity: true)
        batch.views.removeAll(keepingCapacity: true)
        for (row, id) in ids.enumerated() {
            let v = view(epoch: epoch, id: id)
            batch.ids.append(id)
            batch.labels.append(Int32(dataset.label(at: id)))
            batch.views.append(v)
            dataset.renderView(id: id, view: v, into: &batch.images, row: row)
            // Bounded RSS: check every `residencyCheckInterval` samples (one check ≈ a few µs).
            if (row + 1) % BatchLoader.residencyCheckInterval == 0 { dataset.noteSamplesRead(BatchLoader.residencyCheckInterval) }
        }
        dataset.noteSamplesRead(n % BatchLoader.residencyCheckInterval)
    }

    /// A freshly allocated batch of `ids`.
    public func load<S: Collection>(ids: S, epoch: Int, index: Int = 0) -> Batch where S.Element == Int {
        var b = Batch(capacity: ids.count, shape: dataset.shape)
        load(ids: ids, epoch: epoch, index: index, into: &b)
        return b
    }
}
