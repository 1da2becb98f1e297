// PrefetchRingTests.swift: the generic prefetch ring on its own (no images, no bank): items arrive in
// order, the producer never runs more than `depth` ahead, a slot is refilled only after release, a kept
// element is a value, cancel stops and joins, a fill error reaches the consumer after the earlier
// items, resume starts at `first`, and the consumer's wait is measured.

import Foundation
import SystemIO
import XCTest

final class PrefetchRingTests: XCTestCase {
    struct Boom: Error, Equatable { let item: Int }

    /// A ring of `[Int]` slots where item i is filled as `[i, i²]`.
    func squares(_ count: Int, depth: Int, first: Int = 0, delay: TimeInterval = 0) -> PrefetchRing<[Int]> {
        PrefetchRing(itemCount: count, depth: depth, first: first, threadName: "test.ring", makeSlot: { [] },
                     fill: { i, slot in
                         if delay > 0 { Thread.sleep(forTimeInterval: delay) }
                         slot = [i, i * i]
                     })
    }

    func test_items_arriveInOrder_andTheStreamEnds() throws {
        let ring = squares(10, depth: 3)
        var seen: [[Int]] = []
        while let item = try ring.next() { seen.append(item) }
        XCTAssertEqual(seen, (0..<10).map { [$0, $0 * $0] })
        XCTAssertNil(try ring.next(), "stays at the end")
        let s = ring.statistics
        XCTAssertEqual(s.batchesDelivered, 10)
        XCTAssertEqual(s.batchesProduced, 10)
    }

    func test_producer_stopsAtDepth_untilTheConsumerReleasesASlot() throws {
        let ring = squares(10, depth: 3)
        let deadline = Date().addingTimeInterval(5)
        while ring.readyCount < 3 && Date() < deadline { Thread.sleep(forTimeInterval: 0.005) }
        Thread.sleep(forTimeInterval: 0.05)
        XCTAssertEqual(ring.readyCount, 3)
        XCTAssertEqual(ring.slotFillCounts, [1, 1, 1], "no slot is refilled while every slot is full")
        XCTAssertEqual(try ring.next(), [0, 0])
        Thread.sleep(forTimeInterval: 0.05)
        XCTAssertEqual(ring.slotFillCounts, [1, 1, 1], "the slot handed out is still in use")
        XCTAssertEqual(try ring.next(), [1, 1])  // releases slot 0
        while ring.slotFillCounts[0] < 2 && Date() < deadline { Thread.sleep(forTimeInterval: 0.005) }
        XCTAssertEqual(ring.slotFillCounts, [2, 1, 1])
        XCTAssertEqual(ring.statistics.peakReady, 3)
        XCTAssertGreaterThan(ring.statistics.producerBlockedSeconds, 0)
    }

    func test_wrappedRing_reusesEachSlot_andAKeptElementIsAValue() throws {
        let ring = PrefetchRing<[Int]>(itemCount: 7, depth: 2, threadName: "test.ring", makeSlot: { [0] },
                                       fill: { i, slot in slot[0] = i })  // mutates the slot in place
        let kept = try XCTUnwrap(ring.next())
        var rest: [Int] = []
        while let item = try ring.next() { rest.append(item[0]) }
        XCTAssertEqual(kept, [0], "refilling slot 0 later did not change the element the consumer kept")
        XCTAssertEqual(rest, Array(1..<7))
        XCTAssertEqual(ring.slotFillCounts, [4, 3])
    }

    func test_emptyRing_consumerWaits_andTheWaitIsMeasured() throws {
        let ring = squares(2, depth: 2, delay: 0.1)
        XCTAssertEqual(try ring.next(), [0, 0])
        XCTAssertGreaterThan(ring.statistics.consumerWaitSeconds, 0.05)
        XCTAssertGreaterThan(ring.statistics.producerBusySeconds, 0.05)
    }

    func test_fillError_reachesTheConsumer_afterTheEarlierItems_once() throws {
        let ring = PrefetchRing<Int>(itemCount: 10, depth: 3, threadName: "test.ring", makeSlot: { -1 },
                                     fill: { i, slot in
                                         if i == 4 { throw Boom(item: i) }
                                         slot = i
                                     })
        for i in 0..<4 { XCTAssertEqual(try ring.next(), i) }
        XCTAssertThrowsError(try ring.next()) { XCTAssertEqual($0 as? Boom, Boom(item: 4)) }
        XCTAssertNil(try ring.next(), "after the error the stream ends")
        XCTAssertEqual(ring.statistics.batchesProduced, 4)
    }

    func test_cancel_stopsTheProducer_isIdempotent_andEndsTheStream() throws {
        let ring = squares(1000, depth: 2, delay: 0.001)
        XCTAssertEqual(try ring.next(), [0, 0])
        ring.cancel()
        ring.cancel()
        XCTAssertNil(try ring.next())
        let produced = ring.statistics.batchesProduced
        Thread.sleep(forTimeInterval: 0.05)
        XCTAssertEqual(ring.statistics.batchesProduced, produced, "the producer thread has exited")
        XCTAssertLessThan(produced, 10)
    }

    func test_deinitWithoutConsuming_joinsTheThread() {
        let done = expectation(description: "deinit returns")
        DispatchQueue.global().async {
            var ring: PrefetchRing<[Int]>? = self.squares(100, depth: 2)
            _ = ring
            ring = nil
            done.fulfill()
        }
        wait(for: [done], timeout: 5)
    }

    func test_resume_startsAtTheFirstItem() throws {
        let ring = squares(6, depth: 4, first: 3)
        var seen: [Int] = []
        while let item = try ring.next() { seen.append(item[0]) }
        XCTAssertEqual(seen, [3, 4, 5])
        let empty = squares(6, depth: 2, first: 6)
        XCTAssertNil(try empty.next())
    }
}
