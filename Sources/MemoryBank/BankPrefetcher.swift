// BankPrefetcher.swift: decodes the memory entries of an epoch's known batch order on SystemIO's
// PrefetchRing (one dedicated thread, a bounded ring of pre-allocated batch slots) ahead of the trainer
// (design.md §3; systems.md §7, R9). A slot holds δ for B samples × K window slots, a presence mask,
// the views and metadata, and — when the consumer gives a `makeImages` hook — x′ built from δ.
// Not here: the ring mechanics (SystemIO/PrefetchRing.swift); rendering views, which needs the dataset
// (the hook is Training's).

import Foundation
import SystemIO
import Tensors

/// The memory entries of one batch: for sample `i` of the batch and window slot `k` (k = 0 reads
/// generation `e − s`, k = K−1 reads `e − K·s`), δ, whether it exists, its view and metadata.
public struct MemoryBatch: Sendable {
    /// Position of the batch in the epoch order.
    public var index: Int
    /// The batch's sample IDs (at most `capacity`).
    public var ids: [Int]
    /// Rows allocated (the batch size B).
    public let capacity: Int
    /// Window slots K.
    public let window: Int
    /// C·H·W.
    public let elementCount: Int
    /// The generation slot k reads, nil when it does not exist (then every entry of the slot is absent).
    /// A quarantined generation keeps its number: every entry of its slot is skipped as damaged.
    public var generations: [Int?]
    /// δ as decoded, `[capacity, K, C, H, W]`; absent entries and rows past `count` are zero. Empty
    /// (shape `[0]`) once the prefetcher's `makeImages` hook turned this buffer into `images`.
    public var deltas: Tensor
    /// x′ = clamp(view(x) + δ, 0, 1) as `[capacity, K, C, H, W]`, built in δ's buffer on the producer
    /// thread by the prefetcher's `makeImages` hook (absent entries: whatever the hook wrote there,
    /// read only where `present`); nil without a hook.
    public var images: Tensor?
    /// `present[i·K + k]`: the entry of sample i in slot k was found and decoded.
    public var present: [Bool]
    /// `views[i·K + k]`, meaningful where present.
    public var views: [ViewParameters]
    /// `metadata[i·K + k]`, meaningful where present.
    public var metadata: [EntryMetadata]
    /// Damaged entries that were skipped (their `present` is false): the trainer counts them
    /// (design.md §4: skip the sample's memory term, never crash, never use garbage).
    public var problems: [MemoryBankError]

    public var count: Int { ids.count }

    public func isPresent(_ i: Int, slot k: Int) -> Bool { present[i * window + k] }

    /// Entries found in this batch.
    public var presentCount: Int { present.reduce(0) { $0 + ($1 ? 1 : 0) } }

    /// An empty slot of the ring.
    public init(capacity: Int, window: Int, shape: [Int]) {
        let n = shape.reduce(1, *)
        index = -1
        ids = []
        self.capacity = capacity
        self.window = window
        elementCount = n
        generations = Array(repeating: nil, count: window)
        deltas = Tensor(zeros: [capacity, window] + shape)
        images = nil
        present = Array(repeating: false, count: capacity * window)
        views = Array(repeating: .identity, count: capacity * window)
        metadata = Array(repeating: .zero, count: capacity * window)
        problems = []
    }
}

/// Decodes batches `firstBatch..<batchCount` of memory entries on a background thread, at most
/// `depth` ahead of the consumer.
///
/// Contract:
/// - It owns one background `Thread`, started by `init`, and `depth` pre-allocated `MemoryBatch`
///   slots (a ring); batch `b` goes to slot `(b − firstBatch) % depth` once the consumer released it.
/// - `next()` returns batches strictly in order and releases the slot of the batch it returned
///   before. A returned batch is a value: keeping it longer is safe (the slot's tensor is then
///   copied on refill instead of reused).
/// - A damaged entry is skipped and listed in `MemoryBatch.problems` (policy `.skip`, the default),
///   or fails the batch (`.fail`). A failure of the producer is rethrown by the `next()` that
///   reaches the failed batch, after every earlier batch; later calls return nil.
/// - `cancel()` is idempotent, stops the producer after its current batch and joins its thread;
///   `deinit` cancels. After cancellation `next()` returns nil.
/// - RAM: `depth × B × K × C·H·W × 4` bytes of δ (x′ reuses δ's buffer), independent of N (design.md §4).
public final class BankPrefetcher: @unchecked Sendable {
    public enum CorruptEntryPolicy: Sendable {
        /// Mark the entry absent and list the error in the batch (training policy).
        case skip
        /// Fail the batch: `next()` throws the error.
        case fail
    }

    public struct Statistics: Sendable, Equatable {
        public var batchesDelivered = 0
        public var batchesProduced = 0
        /// Entries decoded / absent / skipped as damaged.
        public var entriesDecoded = 0
        public var entriesAbsent = 0
        public var entriesCorrupt = 0
        /// Payload bytes read from the mappings (stored, i.e. compressed, sizes).
        public var storedBytesRead = 0
        /// Seconds the consumer spent blocked in `next()` (the bank-wait of a run).
        public var consumerWaitSeconds = 0.0
        /// Seconds the producer spent decoding.
        public var producerBusySeconds = 0.0
        /// Seconds the producer waited for a free slot.
        public var producerBlockedSeconds = 0.0
        /// Largest number of filled, unconsumed slots seen.
        public var peakReady = 0
        /// Times the mapped pages were dropped from RSS (`residentBudget`).
        public var residentReleases = 0
    }

    let ring: PrefetchRing<MemoryBatch>
    public var depth: Int { ring.depth }
    public var batchCount: Int { ring.itemCount }
    public var firstBatch: Int { ring.first }
    /// The decode counters the ring does not keep, added once a batch is complete.
    private let tally = FillTally()

    /// A prefetcher over the batches `firstBatch..<batchCount` whose IDs `batchIDs(b)` gives.
    /// - Parameters:
    ///   - reader: the bank snapshot to read (must include the window's generations).
    ///   - generations: the generation of each window slot, K values (`reader.windowGenerations(forEpoch:)`).
    ///   - batchCapacity: B, the largest batch.
    ///   - depth: ring slots ≥ 1 (2–4 is enough, systems.md §7).
    ///   - residentBudget: after this many payload bytes read (+ 4 KiB per entry), or once the
    ///     process's file-backed RSS grew by this much (measured on Linux: large folios make a random
    ///     read map far more than it reads), the reader's mapped pages are dropped from RSS
    ///     (`BankReader.releaseResidentPages`), so file-backed RSS stays bounded however large the
    ///     bank (the page cache keeps the data). 0 = never.
    ///   - makeImages: called on the producer thread with each filled batch and its δ buffer
    ///     `[B, K, C, H, W]`; it must leave x′ = clamp(view(x) + δ, 0, 1) in that buffer (in place, no
    ///     second buffer), which the batch then holds as `images` (and `deltas` is emptied). The
    ///     trainer renders the views there, so the rebuild overlaps the compute. A thrown error fails
    ///     the batch like a decode error.
    ///   - batchIDs: the sample IDs of batch `b` (called on the producer thread).
    public init(reader: BankReader, generations: [Int?], batchCount: Int, batchCapacity: Int, depth: Int = 3,
                firstBatch: Int = 0, corruptEntries: CorruptEntryPolicy = .skip,
                residentBudget: Int = BankPrefetcher.defaultResidentBudget,
                makeImages: (@Sendable (_ batch: MemoryBatch, _ buffer: inout Tensor) throws -> Void)? = nil,
                batchIDs: @escaping @Sendable (Int) -> [Int]) {
        precondition(batchCapacity >= 1 && !generations.isEmpty, "BankPrefetcher: need B ≥ 1 and K ≥ 1")
        let shape = reader.config.shape
        let filler = BatchFiller(reader: reader, generations: generations, policy: corruptEntries, residentBudget: residentBudget)
        let tally = self.tally
        ring = PrefetchRing(itemCount: batchCount, depth: depth, first: firstBatch, threadName: "memloss.bank-prefetch",
                            makeSlot: { MemoryBatch(capacity: batchCapacity, window: generations.count, shape: shape) },
                            fill: { index, batch in
                                let counts = try filler.fill(index: index, ids: batchIDs(index), into: &batch)
                                if let makeImages {
                                    var buffer = Tensor(zeros: [0])
                                    swap(&buffer, &batch.deltas)
                                    try makeImages(batch, &buffer)
                                    batch.images = buffer
                                }
                                tally.add(counts)
                            })
    }

    /// A prefetcher over explicit batches of IDs, reading the window of `epoch`.
    public convenience init(reader: BankReader, epoch: Int, batches: [[Int]], depth: Int = 3, firstBatch: Int = 0,
                            corruptEntries: CorruptEntryPolicy = .skip, residentBudget: Int = BankPrefetcher.defaultResidentBudget) {
        self.init(reader: reader, generations: reader.windowGenerations(forEpoch: epoch), batchCount: batches.count,
                  batchCapacity: max(1, batches.map(\.count).max() ?? 1), depth: depth, firstBatch: firstBatch,
                  corruptEntries: corruptEntries, residentBudget: residentBudget, batchIDs: { batches[$0] })
    }

    /// 32 MiB of payload read, or of file-backed RSS growth, between two releases of the mapped pages
    /// (256 MiB before the growth was measured: at N = 10⁶ that held ≈ 250 MiB of RSS for no gain in
    /// bank-wait, docs/scale.md §4).
    public static let defaultResidentBudget = 32 << 20

    deinit { cancel() }

    /// The next batch in order, or nil at the end or after `cancel()`. Blocks while the producer is
    /// behind; that time is added to `statistics.consumerWaitSeconds`.
    /// - Throws: the producer's error, once, when the consumer reaches the batch that failed.
    public func next() throws -> MemoryBatch? { try ring.next() }

    /// Stops the producer after its current batch and waits for its thread to exit. Idempotent.
    public func cancel() { ring.cancel() }

    /// A snapshot of the counters: the ring's, and the decode counts of every batch produced.
    public var statistics: Statistics {
        let r = ring.statistics
        let c = tally.total
        var s = Statistics()
        s.batchesDelivered = r.batchesDelivered
        s.batchesProduced = r.batchesProduced
        s.consumerWaitSeconds = r.consumerWaitSeconds
        s.producerBusySeconds = r.producerBusySeconds
        s.producerBlockedSeconds = r.producerBlockedSeconds
        s.peakReady = r.peakReady
        s.entriesDecoded = c.decoded
        s.entriesAbsent = c.absent
        s.entriesCorrupt = c.corrupt
        s.storedBytesRead = c.storedBytes
        s.residentReleases = c.releases
        return s
    }

    /// Filled slots not yet handed out (a snapshot).
    public var readyCount: Int { ring.readyCount }

    /// How many times each ring slot was filled (tests: slots are reused only after release).
    var slotFillCounts: [Int] { ring.slotFillCounts }
}

/// The sum of the `FillCounts` of the batches produced so far (written by the producer, read by
/// `statistics`).
final class FillTally: @unchecked Sendable {
    private let lock = NSLock()
    private var sum = FillCounts()

    func add(_ c: FillCounts) {
        lock.lock()
        sum.decoded += c.decoded
        sum.absent += c.absent
        sum.corrupt += c.corrupt
        sum.storedBytes += c.storedBytes
        sum.releases += c.releases
        lock.unlock()
    }

    var total: FillCounts {
        lock.lock()
        defer { lock.unlock() }
        return sum
    }
}

/// Per-batch counts reported by the filler.
struct FillCounts {
    var decoded = 0
    var absent = 0
    var corrupt = 0
    var storedBytes = 0
    var releases = 0
}
