// BoundedQueue.swift: a bounded blocking FIFO between threads on NSCondition (systems.md §7, recipe
// R9), with task accounting so a producer can wait until everything it queued was processed, and the
// exit flag a thread raises when it ends (Thread has no join). Used by the bank writer (caller →
// encoder thread). No knowledge of what the elements are.

import Foundation

/// A fixed-capacity FIFO: `put` blocks while full (backpressure), `take` blocks while empty.
///
/// Contract:
/// - `put` returns false (and drops the element) once the queue is closed.
/// - `take` returns nil once the queue is closed **and** empty: elements queued before `close` are
///   still delivered.
/// - Every element taken must be followed by one `taskDone()`; `waitUntilIdle()` returns when every
///   element ever put has been marked done.
/// - Time spent blocked in `put` is added to `producerBlockedSeconds`.
public final class BoundedQueue<Element>: @unchecked Sendable {
    public let capacity: Int
    private var buffer: [Element?]
    private var head = 0
    private var stored = 0
    private var unfinished = 0
    private var closed = false
    private let condition = NSCondition()
    private var blockedSeconds = 0.0
    private var peak = 0

    public init(capacity: Int) {
        precondition(capacity >= 1, "BoundedQueue: capacity must be ≥ 1")
        self.capacity = capacity
        buffer = Array(repeating: nil, count: capacity)
    }

    /// Appends `element`, blocking while the queue is full. Returns false if the queue is closed.
    @discardableResult
    public func put(_ element: Element) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        if stored == capacity && !closed {
            let start = DispatchTime.now().uptimeNanoseconds
            while stored == capacity && !closed { condition.wait() }
            blockedSeconds += Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
        }
        if closed { return false }
        buffer[(head + stored) % capacity] = element
        stored += 1
        unfinished += 1
        peak = max(peak, stored)
        condition.broadcast()
        return true
    }

    /// Removes the oldest element, blocking while the queue is empty and open; nil when closed and empty.
    public func take() -> Element? {
        condition.lock()
        defer { condition.unlock() }
        while stored == 0 && !closed { condition.wait() }
        if stored == 0 { return nil }
        let element = buffer[head]
        buffer[head] = nil
        head = (head + 1) % capacity
        stored -= 1
        condition.broadcast()
        return element
    }

    /// Marks one taken element as processed.
    public func taskDone() {
        condition.lock()
        unfinished -= 1
        assert(unfinished >= 0, "BoundedQueue: taskDone without a matching put")
        condition.broadcast()
        condition.unlock()
    }

    /// Blocks until every element put so far has been taken and marked done.
    public func waitUntilIdle() {
        condition.lock()
        while unfinished > 0 { condition.wait() }
        condition.unlock()
    }

    /// Refuses further `put`s and wakes every waiter. Idempotent.
    public func close() {
        condition.lock()
        closed = true
        condition.broadcast()
        condition.unlock()
    }

    /// Elements waiting (a snapshot).
    public var count: Int {
        condition.lock()
        defer { condition.unlock() }
        return stored
    }

    public var producerBlockedSeconds: Double {
        condition.lock()
        defer { condition.unlock() }
        return blockedSeconds
    }

    /// Largest number of waiting elements seen.
    public var peakCount: Int {
        condition.lock()
        defer { condition.unlock() }
        return peak
    }
}

/// A flag a thread sets when it exits, and others wait for (Thread has no join).
public final class ExitSignal: @unchecked Sendable {
    private let condition = NSCondition()
    private var done = false

    public init() {}

    public func signal() {
        condition.lock()
        done = true
        condition.broadcast()
        condition.unlock()
    }

    public func wait() {
        condition.lock()
        while !done { condition.wait() }
        condition.unlock()
    }
}
