// Prefetcher.swift: one dedicated producer thread fills a bounded ring of pre-allocated batch slots
// along a known order, ahead of the consumer (systems.md §7, recipe R9; ffcv's batches_ahead).
// Blocking reads and page faults happen on that thread, never on the Swift concurrency pool.
// Not here: what a batch contains (Batch.swift) or which order (EpochOrder.swift).

import Foundation
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
    /// Counters for reports and benches.
    public struct Statistics: Sendable, Codable, Equatable {
        /// Batches handed to the consumer.
        public var batchesDelivered = 0
        /// Batches the producer finished.
        public var batchesProduced = 0
        /// Seconds the consumer spent blocked in `next()` waiting for a batch.
        public var consumerWaitSeconds = 0.0
        /// Seconds the producer spent filling batches (reading + augmenting).
        public var producerBusySeconds = 0.0
        /// Seconds the producer spent blocked because every slot was full or in use.
        public var producerBlockedSeconds = 0.0
        /// Largest number of filled, not yet consumed slots seen.
        public var peakReady = 0
    }

    enum SlotState: Equatable { case free, filling, ready, inUse }

    /// The shared state between the producer thread and the consumer, guarded by `condition`.
    final class Ring: @unchecked Sendable {
        let condition = NSCondition()
        var slots: [Batch?]
        var states: [SlotState]
        /// Fill count per slot (the debug generation counter of style.md §9.10).
        var generations: [Int]
        var inUse: Int?
        var nextToConsume: Int
        var cancelled = false
        var producerExited = false
        var error: Error?
        var errorDelivered = false
        var statistics = Statistics()
        var readyCount = 0

        init(slots: [Batch], firstBatch: Int) {
            self.slots = slots
            states = Array(repeating: .free, count: slots.count)
            generations = Array(repeating: 0, count: slots.count)
            nextToConsume = firstBatch
        }
    }

    public let depth: Int
    public let batchCount: Int
    public let firstBatch: Int
    let ring: Ring
    private let thread: Thread

    /// A prefetcher over `firstBatch..<batchCount` with a custom fill function.
    /// - Parameters:
    ///   - depth: ring slots, ≥ 1 (2–4 is enough: systems.md §7).
    ///   - makeSlot: allocates one slot (called `depth` times, on the caller's thread).
    ///   - fill: fills batch `index` into a slot, on the producer thread; may throw.
    public init(batchCount: Int, depth: Int = 3, firstBatch: Int = 0, makeSlot: () -> Batch,
                fill: @escaping @Sendable (_ index: Int, _ batch: inout Batch) throws -> Void) {
        precondition(depth >= 1, "Prefetcher: depth must be ≥ 1")
        precondition(firstBatch >= 0 && firstBatch <= batchCount, "Prefetcher: firstBatch \(firstBatch) out of 0...\(batchCount)")
        self.depth = depth
        self.batchCount = batchCount
        self.firstBatch = firstBatch
        let ring = Ring(slots: (0..<depth).map { _ in makeSlot() }, firstBatch: firstBatch)
        self.ring = ring
        thread = Thread {
            Prefetcher.produce(ring: ring, range: firstBatch..<batchCount, fill: fill)
        }
        thread.name = "memloss.prefetch"
        thread.start()
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

    // MARK: - Consumer side

    /// The next batch in order, or nil at the end (or after `cancel()`). Blocks while the producer
    /// is behind; that time is added to `statistics.consumerWaitSeconds`.
    /// - Throws: the producer's error, once, when the consumer reaches the batch that failed.
    public func next() throws -> Batch? {
        let r = ring
        r.condition.lock()
        defer { r.condition.unlock() }
        if let previous = r.inUse {
            r.states[previous] = .free
            r.inUse = nil
            r.condition.broadcast()
        }
        if r.cancelled || r.nextToConsume >= batchCount { return nil }
        let slot = (r.nextToConsume - firstBatch) % depth
        if r.states[slot] != .ready {
            let start = DispatchTime.now().uptimeNanoseconds
            while r.states[slot] != .ready && !r.producerExited && !r.cancelled { r.condition.wait() }
            r.statistics.consumerWaitSeconds += Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
        }
        guard r.states[slot] == .ready else {
            if let e = r.error, !r.errorDelivered {
                r.errorDelivered = true
                throw e
            }
            return nil
        }
        r.states[slot] = .inUse
        r.inUse = slot
        r.readyCount -= 1
        r.nextToConsume += 1
        r.statistics.batchesDelivered += 1
        return r.slots[slot]!
    }

    /// Stops the producer after its current batch and waits for its thread to exit. Idempotent.
    public func cancel() {
        let r = ring
        r.condition.lock()
        if !r.cancelled {
            r.cancelled = true
            r.condition.broadcast()
        }
        if Thread.current !== thread {
            while !r.producerExited { r.condition.wait() }
        }
        r.condition.unlock()
    }

    /// A snapshot of the counters.
    public var statistics: Statistics {
        ring.condition.lock()
        defer { ring.condition.unlock() }
        return ring.statistics
    }

    /// Number of filled slots not yet handed out (a snapshot).
    public var readyCount: Int {
        ring.condition.lock()
        defer { ring.condition.unlock() }
        return ring.readyCount
    }

    // MARK: - Producer side

    private static func produce(ring r: Ring, range: Range<Int>,
                                fill: (_ index: Int, _ batch: inout Batch) throws -> Void) {
        let depth = r.slots.count
        defer {
            r.condition.lock()
            r.producerExited = true
            r.condition.broadcast()
            r.condition.unlock()
        }
        for index in range {
            let slot = (index - range.lowerBound) % depth
            r.condition.lock()
            if r.states[slot] != .free && !r.cancelled {
                let start = DispatchTime.now().uptimeNanoseconds
                while r.states[slot] != .free && !r.cancelled { r.condition.wait() }
                r.statistics.producerBlockedSeconds += Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
            }
            if r.cancelled {
                r.condition.unlock()
                return
            }
            // Take the slot's batch out so the fill below mutates the only ring reference.
            var batch = r.slots[slot]!
            r.slots[slot] = nil
            r.states[slot] = .filling
            r.condition.unlock()

            let start = DispatchTime.now().uptimeNanoseconds
            var failure: Error?
            do { try fill(index, &batch) } catch { failure = error }
            let busy = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9

            r.condition.lock()
            r.slots[slot] = batch
            r.statistics.producerBusySeconds += busy
            if let failure {
                r.states[slot] = .free
                r.error = failure
                r.condition.unlock()
                return
            }
            assert(r.states[slot] == .filling, "Prefetcher: slot \(slot) changed state while filling")
            r.states[slot] = .ready
            r.generations[slot] += 1
            r.readyCount += 1
            r.statistics.peakReady = max(r.statistics.peakReady, r.readyCount)
            r.statistics.batchesProduced += 1
            r.condition.broadcast()
            r.condition.unlock()
        }
    }
}
