// EpochOrder.swift: which samples an epoch visits and in what order: the per-epoch permutation as a
// pure function of (seed, epoch), the batches of an epoch, and the validation split held out of the
// training set. All deterministic from the seed, so a resumed run sees exactly the same order.
// Nothing here reads data; only labels (for stratification).

import Tensors

/// Seeded permutations of sample positions.
public enum EpochOrder {
    /// Salt separating permutation streams from augmentation and split streams (docs/datasets.md §5).
    static let streamSalt: UInt64 = 0x7065_726D_7574_6531  // "permute1"
    /// Salt of the per-rank seeds of data-parallel shards (`EpochPlan(shardOf:…)`).
    static let shardSalt: UInt64 = 0x7368_6172_6472_6B31  // "shardrk1"

    /// The permutation of `0..<count` for epoch `epoch`: Fisher–Yates (Durstenfeld) driven by
    /// `SplitMix64.derived(seed: seed ^ salt, stream: epoch)`:
    /// ```
    /// π = [0, 1, …, count−1];  for i in count−1 down to 1: swap(π[i], π[g.nextInt(below: i + 1)])
    /// ```
    /// - Complexity: O(count) time and memory (8 bytes per sample).
    public static func permutation(seed: UInt64, epoch: Int, count: Int) -> [Int] {
        precondition(count >= 0 && epoch >= 0, "EpochOrder.permutation: negative count or epoch")
        var p = Array(0..<count)
        guard count > 1 else { return p }
        var g = SplitMix64.derived(seed: seed ^ streamSalt, stream: UInt64(epoch))
        for i in stride(from: count - 1, through: 1, by: -1) {
            let j = g.nextInt(below: i + 1)
            p.swapAt(i, j)
        }
        return p
    }
}

/// The sample IDs of one epoch in visiting order, cut into batches.
///
/// `ids[k] = population[π_e[k]]` with `π_e = EpochOrder.permutation(seed:epoch:count:)` over the
/// positions of `population` (the training IDs after the validation hold-out). The last partial batch
/// is kept by default (`dropLast: false`), as PyTorch's DataLoader does.
public struct EpochPlan: Sendable, Hashable {
    public let epoch: Int
    public let batchSize: Int
    public let dropLast: Bool
    /// Sample IDs in the order this epoch visits them.
    public let ids: [Int]

    /// - Parameters:
    ///   - population: the sample IDs eligible this epoch (e.g. `ValidationSplit.train`), any order;
    ///     the plan depends on its order, so pass the same array on resume.
    ///   - batchSize: ≥ 1.
    public init(population: [Int], seed: UInt64, epoch: Int, batchSize: Int, dropLast: Bool = false) {
        precondition(batchSize >= 1, "EpochPlan: batchSize must be ≥ 1")
        self.epoch = epoch
        self.batchSize = batchSize
        self.dropLast = dropLast
        let perm = EpochOrder.permutation(seed: seed, epoch: epoch, count: population.count)
        ids = perm.map { population[$0] }
    }

    /// Every ID of `0..<count`, shuffled for `epoch`.
    public init(count: Int, seed: UInt64, epoch: Int, batchSize: Int, dropLast: Bool = false) {
        self.init(population: Array(0..<count), seed: seed, epoch: epoch, batchSize: batchSize, dropLast: dropLast)
    }

    /// Rank `rank`'s plan of a data-parallel epoch over `size` ranks (docs/distributed.md §2):
    /// the rank owns the sample IDs of `population` with `id mod size == rank`, visits them in the
    /// permutation of (`seed`, `epoch`, `rank`) (`EpochOrder.permutation` with the rank folded into
    /// the seed), and keeps the first `m` of them, `m` the smallest shard's size (computed from
    /// `population`, the same on every rank), so every rank runs the same number of equal batches;
    /// a larger shard's surplus (`its size − m` samples) is skipped that epoch, different ones each
    /// epoch.
    /// - Precondition: `size ≥ 1`, `0 ≤ rank < size`, `batchSize ≥ 1`, IDs ≥ 0.
    public init(shardOf population: [Int], rank: Int, size: Int, seed: UInt64, epoch: Int, batchSize: Int) {
        precondition(size >= 1 && rank >= 0 && rank < size, "EpochPlan: rank \(rank) outside 0..<\(size)")
        precondition(batchSize >= 1, "EpochPlan: batchSize must be ≥ 1")
        var counts = [Int](repeating: 0, count: size)
        for id in population { counts[id % size] += 1 }
        let shard = population.filter { $0 % size == rank }
        var rankStream = SplitMix64.derived(seed: seed ^ EpochOrder.shardSalt, stream: UInt64(rank))
        let order = EpochOrder.permutation(seed: rankStream.next(), epoch: epoch, count: shard.count)
        self.epoch = epoch
        self.batchSize = batchSize
        self.dropLast = false
        ids = order.prefix(counts.min() ?? 0).map { shard[$0] }
    }

    /// A plan visiting `ids` in the given order (no shuffle), e.g. for evaluation.
    public init(orderedIDs: [Int], batchSize: Int, dropLast: Bool = false) {
        precondition(batchSize >= 1, "EpochPlan: batchSize must be ≥ 1")
        epoch = 0
        self.batchSize = batchSize
        self.dropLast = dropLast
        ids = orderedIDs
    }

    /// Number of batches (the partial last one counts unless `dropLast`).
    public var batchCount: Int {
        dropLast ? ids.count / batchSize : (ids.count + batchSize - 1) / batchSize
    }

    /// Number of samples the batches cover.
    public var sampleCount: Int { dropLast ? batchCount * batchSize : ids.count }

    /// IDs of batch `index` (`0..<batchCount`).
    public func batchIDs(_ index: Int) -> ArraySlice<Int> {
        precondition(index >= 0 && index < batchCount, "EpochPlan: batch \(index) out of 0..<\(batchCount)")
        let lo = index * batchSize
        return ids[lo..<min(lo + batchSize, ids.count)]
    }
}

/// A validation subset held out of the training set (never the test set), chosen from the seed.
///
/// Stratified: each class contributes in proportion to its size (largest-remainder rounding, ties to
/// the lower class), its members drawn by a seeded shuffle of that class's IDs. Both lists are sorted.
public struct ValidationSplit: Sendable, Hashable, Codable {
    /// IDs left for training, ascending.
    public let train: [Int]
    /// Held-out IDs, ascending.
    public let validation: [Int]

    /// Salt separating split streams from permutation and augmentation streams.
    static let streamSalt: UInt64 = 0x7370_6C69_7476_6131  // "splitva1"

    /// Holds out `validationCount` samples of `labels` (one label per ID, `0..<classCount`).
    public init(labels: [Int32], classCount: Int, validationCount: Int, seed: UInt64) {
        let n = labels.count
        precondition(validationCount >= 0 && validationCount <= n,
                     "ValidationSplit: validationCount \(validationCount) out of 0...\(n)")
        var members = [[Int]](repeating: [], count: classCount)
        for (id, l) in labels.enumerated() { members[Int(l)].append(id) }
        // Largest-remainder quotas: floor(v·n_c/n), then +1 for the largest remainders.
        var quota = [Int](repeating: 0, count: classCount)
        var remainders: [(remainder: Int, cls: Int)] = []
        var assigned = 0
        for c in 0..<classCount where n > 0 {
            let exact = validationCount * members[c].count
            quota[c] = exact / n
            assigned += quota[c]
            remainders.append((exact % n, c))
        }
        remainders.sort { $0.remainder != $1.remainder ? $0.remainder > $1.remainder : $0.cls < $1.cls }
        for k in 0..<(validationCount - assigned) { quota[remainders[k].cls] += 1 }

        var isValidation = [Bool](repeating: false, count: n)
        for c in 0..<classCount where quota[c] > 0 {
            var ids = members[c]
            var g = SplitMix64.derived(seed: seed ^ ValidationSplit.streamSalt, stream: UInt64(c))
            // Partial Fisher–Yates: the first quota[c] positions become a uniform random subset.
            for i in 0..<quota[c] {
                let j = i + g.nextInt(below: ids.count - i)
                ids.swapAt(i, j)
                isValidation[ids[i]] = true
            }
        }
        var train: [Int] = [], validation: [Int] = []
        train.reserveCapacity(n - validationCount)
        validation.reserveCapacity(validationCount)
        for id in 0..<n {
            if isValidation[id] { validation.append(id) } else { train.append(id) }
        }
        self.train = train
        self.validation = validation
    }

    /// Holds out `validationCount` samples of `dataset`.
    public init(dataset: Dataset, validationCount: Int, seed: UInt64) {
        self.init(labels: dataset.labels, classCount: dataset.classCount, validationCount: validationCount, seed: seed)
    }

    /// Holds out `fraction` (0…1, rounded to the nearest sample) of `dataset`.
    public init(dataset: Dataset, fraction: Double, seed: UInt64) {
        precondition(fraction >= 0 && fraction <= 1, "ValidationSplit: fraction \(fraction) out of [0, 1]")
        self.init(dataset: dataset, validationCount: Int((fraction * Double(dataset.count)).rounded()), seed: seed)
    }
}
