// PrefetchRing.swift: the one prefetch ring (systems.md §7, recipe R9; ffcv's batches_ahead): a
// dedicated producer thread fills `depth` pre-allocated slots along a known sequence of work items
// (batch indices), ahead of one consumer, with wait statistics, cancellation and error propagation.
// Datasets.Prefetcher (images) and MemoryBank.BankPrefetcher (memory entries) are built on it.
// Blocking reads and page faults happen on that thread, never on the Swift concurrency pool.
// Not here: what a slot holds or how it is filled (the users' `fill` closures).

import Foundation

/// Counters of a prefetch ring, for reports and benches.
public struct PrefetchStatistics: Sendable, Codable, Equatable {
    /// Items (batches) handed to the consumer.
    public var batchesDelivered = 0
    /// Items the producer finished.
    public var batchesProduced = 0
    /// Seconds the consumer spent blocked in `next()` waiting for an item (the data-wait of a run).
    public var consumerWaitSeconds = 0.0
    /// Seconds the producer spent filling items.
    public var producerBusySeconds = 0.0
    /// Seconds the producer spent blocked because every slot was full or in use.
    public var producerBlockedSeconds = 0.0
    /// Largest number of filled, not yet consumed slots seen.
    public var peakReady = 0

    public init() {}
}

/// Fills items `first..<itemCount` on a background thread, at most `depth` ahead of the consumer.
///
/// Contract:
/// - It owns one background `Thread`, started by `init`, and `depth` pre-allocated slots (made by
///   `makeSlot` on the caller's thread); item `i` goes to slot `(i − first) % depth`, only once the
///   consumer released that slot.
/// - `next()` returns items strictly in order and releases the slot of the item it returned before
///   (the consumer gives a slot back by asking for the next item). A returned element is a value:
///   keeping it longer is safe (a copy-on-write payload is then copied on refill instead of reused).
/// - An error thrown by `fill` is rethrown by the `next()` that reaches the failed item, after every
///   earlier item was delivered; later calls return nil. The producer stops at the failure.
/// - `cancel()` is idempotent, stops the producer after its current item and joins its thread;
///   `deinit` cancels. After cancellation `next()` returns nil.
/// - `statistics` reports the consumer's wait and the producer's busy and blocked time.
public final class PrefetchRing<Element>: @unchecked Sendable {
    enum SlotState: Equatable { case free, filling, ready, inUse }

    /// State shared by the producer thread and the consumer, guarded by `condition`.
    final class State: @unchecked Sendable {
        let condition = NSCondition()
        var slots: [Element?]
        var states: [SlotState]
        /// Fills per slot (the debug generation counter of style.md §9.10).
        var fills: [Int]
        var inUse: Int?
        var nextToConsume: Int
        var cancelled = false
        var producerExited = false
        var error: Error?
        var errorDelivered = false
        var readyCount = 0
        var statistics = PrefetchStatistics()

        init(slots: [Element], first: Int) {
            self.slots = slots
            states = Array(repeating: .free, count: slots.count)
            fills = Array(repeating: 0, count: slots.count)
            nextToConsume = first
        }
    }

    /// Ring slots.
    public let depth: Int
    /// One past the last item.
    public let itemCount: Int
    /// The first item filled (resuming mid-sequence).
    public let first: Int
    private let state: State
    private let thread: Thread

    /// A ring over items `first..<itemCount`.
    /// - Parameters:
    ///   - depth: ring slots, ≥ 1 (2–4 is enough: systems.md §7).
    ///   - threadName: the producer thread's name (seen in debuggers and `top -H`).
    ///   - makeSlot: allocates one slot (called `depth` times, on the caller's thread).
    ///   - fill: fills item `index` into a slot, on the producer thread; may throw.
    /// - Precondition: `depth ≥ 1`, `0 ≤ first ≤ itemCount` (programming errors of the caller).
    public init(itemCount: Int, depth: Int, first: Int = 0, threadName: String, makeSlot: () -> Element,
                fill: @escaping @Sendable (_ index: Int, _ slot: inout Element) throws -> Void) {
        precondition(depth >= 1, "PrefetchRing: depth must be ≥ 1")
        precondition(first >= 0 && first <= itemCount, "PrefetchRing: first item \(first) out of 0...\(itemCount)")
        self.depth = depth
        self.itemCount = itemCount
        self.first = first
        let state = State(slots: (0..<depth).map { _ in makeSlot() }, first: first)
        self.state = state
        thread = Thread {
            PrefetchRing.produce(state, range: first..<itemCount, fill: fill)
        }
        thread.name = threadName
        thread.start()
    }

    deinit { cancel() }

    // MARK: - Consumer side

    /// The next item in order, or nil at the end (or after `cancel()`). Blocks while the producer is
    /// behind; that time is added to `statistics.consumerWaitSeconds`.
    /// - Throws: the producer's error, once, when the consumer reaches the item that failed.
    public func next() throws -> Element? {
        let r = state
        r.condition.lock()
        defer { r.condition.unlock() }
        if let previous = r.inUse {
            r.states[previous] = .free
            r.inUse = nil
            r.condition.broadcast()
        }
        if r.cancelled || r.nextToConsume >= itemCount { return nil }
        let slot = (r.nextToConsume - first) % depth
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

    /// Stops the producer after its current item and waits for its thread to exit. Idempotent.
    public func cancel() {
        let r = state
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
    public var statistics: PrefetchStatistics { locked { $0.statistics } }

    /// Filled slots not yet handed out (a snapshot).
    public var readyCount: Int { locked { $0.readyCount } }

    /// How many times each slot was filled (tests: slots are reused only after release).
    public var slotFillCounts: [Int] { locked { $0.fills } }

    private func locked<R>(_ body: (State) -> R) -> R {
        state.condition.lock()
        defer { state.condition.unlock() }
        return body(state)
    }

    // MARK: - Producer side

    private static func produce(_ r: State, range: Range<Int>, fill: (_ index: Int, _ slot: inout Element) throws -> Void) {
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
            // Take the element out so the fill mutates the only ring reference (no copy unless the
            // consumer still holds the previous value of this slot).
            var element = r.slots[slot]!
            r.slots[slot] = nil
            r.states[slot] = .filling
            r.condition.unlock()

            let start = DispatchTime.now().uptimeNanoseconds
            var failure: Error?
            do { try fill(index, &element) } catch { failure = error }
            let busy = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9

            r.condition.lock()
            r.slots[slot] = element
            r.statistics.producerBusySeconds += busy
            if let failure {
                r.states[slot] = .free
                r.error = failure
                r.condition.broadcast()
                r.condition.unlock()
                return
            }
            assert(r.states[slot] == .filling, "PrefetchRing: slot \(slot) changed state while filling")
            r.states[slot] = .ready
            r.fills[slot] += 1
            r.readyCount += 1
            r.statistics.peakReady = max(r.statistics.peakReady, r.readyCount)
            r.statistics.batchesProduced += 1
            r.condition.broadcast()
            r.condition.unlock()
        }
    }
}
