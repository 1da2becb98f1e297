// Prefetcher.swift: the data prefetcher: SystemIO's PrefetchRing (one dedicated producer thread
// filling a bounded ring of pre-allocated batch slots along a known order, systems.md §7, recipe R9)
// with `Batch` slots filled by a `BatchLoader` along an `EpochPlan`.
// Not here: the ring mechanics (SystemIO/PrefetchRing.swift), what a batch contains (Batch.swift)
// or which order (EpochOrder.swift).

import Foundation
import SystemIO
import Tensors

/// Loads batches `firstBatch..<batchCount` on a background thread, at most `depth` ahead.
///
/// Contract:
/// - It owns one background `Thread`, started by `init`.
/// - It keeps `depth` pre-allocated batch slots (a ring); the producer fills slot `b % depth` with
///   batch `b` only once the consumer has released it.
/// - `next()` returns batches strictly in order and releases the slot of the batch it returned
///   before (the consumer gives a slot back by asking for the next batch). A returned `Batch` is a
///   value: keeping it longer is safe, the slot's tensor is then copied on refill instead of reused.
/// - An error thrown by the producer is rethrown by the `next()` that reaches the failed batch
///   (after every earlier batch was delivered); later calls return nil.
/// - `cancel()` is idempotent, stops the producer after its current batch and joins the thread;
///   `deinit` cancels. After cancellation `next()` returns nil.
/// - `statistics` reports how long the consumer waited inside `next()` (the data-wait of a run).
public final class Prefetcher: @unchecked Sendable {
    /// Counters for reports and benches (the ring's: batches delivered and produced, consumer wait,
    /// producer busy and blocked seconds, peak ready slots).
    public typealias Statistics = PrefetchStatistics

    let ring: PrefetchRing<Batch>
    public var depth: Int { ring.depth }
    public var batchCount: Int { ring.itemCount }
    public var firstBatch: Int { ring.first }

    /// A prefetcher over `firstBatch..<batchCount` with a custom fill function.
    /// - Parameters:
    ///   - depth: ring slots, ≥ 1 (2–4 is enough: systems.md §7).
    ///   - makeSlot: allocates one slot (called `depth` times, on the caller's thread).
    ///   - fill: fills batch `index` into a slot, on the producer thread; may throw.
    /// - Precondition: `depth ≥ 1`, `0 ≤ firstBatch ≤ batchCount` (checked by the ring).
    public init(batchCount: Int, depth: Int = 3, firstBatch: Int = 0, makeSlot: () -> Batch,
                fill: @escaping @Sendable (_ index: Int, _ batch: inout Batch) throws -> Void) {
        ring = PrefetchRing(itemCount: batchCount, depth: depth, first: firstBatch, threadName: "memloss.prefetch",
                            makeSlot: makeSlot, fill: fill)
    }

    /// A prefetcher over the batches of `plan`, loaded (read + augmented) by `loader`, starting at
    /// batch `firstBatch` (to resume mid-epoch).
    public convenience init(loader: BatchLoader, plan: EpochPlan, depth: Int = 3, firstBatch: Int = 0) {
        let capacity = plan.batchSize
        let shape = loader.dataset.shape
        self.init(batchCount: plan.batchCount, depth: depth, firstBatch: firstBatch,
                  makeSlot: { Batch(capacity: capacity, shape: shape) },
                  fill: { index, batch in
                      loader.load(ids: plan.batchIDs(index), epoch: plan.epoch, index: index, into: &batch)
                  })
    }

    deinit { cancel() }

    /// The next batch in order, or nil at the end (or after `cancel()`). Blocks while the producer
    /// is behind; that time is added to `statistics.consumerWaitSeconds`.
    /// - Throws: the producer's error, once, when the consumer reaches the batch that failed.
    public func next() throws -> Batch? { try ring.next() }

    /// Stops the producer after its current batch and waits for its thread to exit. Idempotent.
    public func cancel() { ring.cancel() }

    /// A snapshot of the counters.
    public var statistics: Statistics { ring.statistics }

    /// Number of filled slots not yet handed out (a snapshot).
    public var readyCount: Int { ring.readyCount }
}
