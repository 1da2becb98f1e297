// BoundedQueueTests.swift: the writer's bounded queue: FIFO order, backpressure (a full queue blocks the
// producer until the consumer takes), close semantics, and waitUntilIdle. (The bank's append blocking
// on a full queue is MemoryBankTests/BankBackpressureTests.swift.)

import Foundation
import SystemIO
import XCTest

final class BoundedQueueTests: XCTestCase {
    /// A flag set on one thread and read on another.
    final class LockedFlag: @unchecked Sendable {
        private let lock = NSLock()
        private var flag = false
        func set() { lock.lock(); flag = true; lock.unlock() }
        var value: Bool { lock.lock(); defer { lock.unlock() }; return flag }
    }

    func test_fullQueue_blocksTheProducer_untilTheConsumerTakes() {
        let q = BoundedQueue<Int>(capacity: 2)
        XCTAssertTrue(q.put(1))
        XCTAssertTrue(q.put(2))
        let third = expectation(description: "third put returns")
        let producerDone = ExitSignal()
        Thread {
            q.put(3)
            third.fulfill()
            producerDone.signal()
        }.start()
        Thread.sleep(forTimeInterval: 0.1)
        XCTAssertEqual(q.count, 2, "the third put is blocked")
        XCTAssertEqual(q.take(), 1)
        wait(for: [third], timeout: 2)
        producerDone.wait()
        XCTAssertEqual(q.take(), 2)
        XCTAssertEqual(q.take(), 3)
        XCTAssertGreaterThan(q.producerBlockedSeconds, 0.05)
        XCTAssertEqual(q.peakCount, 2)
    }

    func test_close_deliversQueuedElements_thenNil_andRefusesPuts() {
        let q = BoundedQueue<Int>(capacity: 4)
        q.put(7)
        q.close()
        XCTAssertFalse(q.put(8))
        XCTAssertEqual(q.take(), 7)
        XCTAssertNil(q.take())
        let blocked = BoundedQueue<Int>(capacity: 1)
        let woke = expectation(description: "take wakes on close")
        Thread {
            XCTAssertNil(blocked.take())
            woke.fulfill()
        }.start()
        Thread.sleep(forTimeInterval: 0.05)
        blocked.close()
        wait(for: [woke], timeout: 2)
    }

    func test_waitUntilIdle_returnsOnceEveryElementIsDone() {
        let q = BoundedQueue<Int>(capacity: 3)
        let processed = LockedFlag()
        let done = ExitSignal()
        Thread {
            while let x = q.take() {
                Thread.sleep(forTimeInterval: 0.01)
                if x == 9 { processed.set() }
                q.taskDone()
            }
            done.signal()
        }.start()
        for x in 0..<10 { q.put(x) }
        q.waitUntilIdle()
        XCTAssertTrue(processed.value, "the last element was processed before waitUntilIdle returned")
        q.close()
        done.wait()
    }
}
