// BoundedQueueTests.swift: the writer's bounded queue: FIFO order, backpressure (a full queue blocks the
// producer until the consumer takes), close semantics, and waitUntilIdle; and the bank's append
// blocking on a full queue without losing or reordering entries.

import Foundation
@testable import MemoryBank
import _TestSupport
import XCTest

final class BoundedQueueTests: XCTestCase {
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
        let processed = FailureBox()  // reused as a lock-protected flag
        let done = ExitSignal()
        Thread {
            while let x = q.take() {
                Thread.sleep(forTimeInterval: 0.01)
                if x == 9 { processed.set(.writerClosed) }
                q.taskDone()
            }
            done.signal()
        }.start()
        for x in 0..<10 { q.put(x) }
        q.waitUntilIdle()
        XCTAssertEqual(processed.value, .writerClosed, "the last element was processed before waitUntilIdle returned")
        q.close()
        done.wait()
    }

    func test_bankAppend_withATinyQueue_appliesBackpressure_andKeepsEveryEntry() throws {
        let dir = TempDirectory("bank-backpressure")
        let config = BankFixtures.config(codec: .levels, sampleCount: 400, shape: [3, 32, 32])
        let bank = try Bank.create(at: dir.url, config: config, options: BankFixtures.options(queueCapacity: 1))
        try bank.beginGeneration(0)
        // Generate first, so appends come faster than the thread encodes.
        let written = (0..<400).map { BankFixtures.pgdDelta(count: config.elementCount, seed: UInt64($0)) }
        for id in 0..<400 {
            try bank.append(id: id, delta: written[id], view: BankFixtures.view(id), metadata: BankFixtures.metadata(id))
        }
        let summary = try bank.sealGeneration()
        XCTAssertEqual(summary.records, 400)
        XCTAssertEqual(bank.statistics.entriesAppended, 400)
        XCTAssertEqual(bank.statistics.peakQueued, 1)
        XCTAssertGreaterThan(bank.statistics.appendBlockedSeconds, 0, "appends waited for the encoder thread")
        let reader = try bank.reader()
        for id in stride(from: 0, to: 400, by: 37) {
            let e = try XCTUnwrap(reader.entry(id: id, generation: 0))
            assertClose(e.delta, written[id], atol: config.epsilon / 254 * 1.001, rtol: 0)
            XCTAssertEqual(e.info.metadata, BankFixtures.metadata(id))
        }
    }
}
