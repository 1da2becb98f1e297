// PrefetcherTests.swift: the bounded prefetch ring: order equal to the known permutation and batches equal
// to direct loading, ring empty / full / wrapped, cancellation mid-epoch, producer errors reaching the
// consumer, resume from a batch index, kept batches never overwritten, consumer wait measured.

import Foundation
import Tensors
import XCTest
import _TestSupport
@testable import Datasets

final class PrefetcherTests: XCTestCase {
    struct Boom: Error, Equatable { let batch: Int }

    /// A slot of 1 sample × 1×1×1 and a fill that records the batch index.
    func tinySlot() -> Batch { Batch(capacity: 1, shape: ImageShape(channels: 1, height: 1, width: 1)) }

    func test_batches_followTheEpochPermutation_andEqualDirectLoading() throws {
        let tmp = TempDirectory("prefetch")
        let d = try Dataset.makeSynthetic(SyntheticSpec(count: 203, shape: ImageShape(channels: 3, height: 8, width: 8),
                                                        classCount: 5, seed: 3), path: tmp.path("s.mlds").path)
        let loader = BatchLoader(dataset: d, augmentation: .cifar, seed: 3)
        let plan = EpochPlan(count: d.count, seed: 3, epoch: 2, batchSize: 16)
        let p = Prefetcher(loader: loader, plan: plan, depth: 3)
        var ids: [Int] = []
        var index = 0
        while let b = try p.next() {
            XCTAssertEqual(b.index, index)
            XCTAssertEqual(b.epoch, 2)
            let direct = loader.load(ids: plan.batchIDs(index), epoch: 2, index: index)
            XCTAssertEqual(b.ids, direct.ids)
            XCTAssertEqual(b.labels, direct.labels)
            XCTAssertEqual(b.views, direct.views)
            XCTAssertEqual(b.images, direct.images)
            ids += b.ids
            index += 1
        }
        XCTAssertEqual(index, 13)  // 12 full batches + 11 samples
        XCTAssertEqual(ids, plan.ids)
        XCTAssertEqual(ids, EpochOrder.permutation(seed: 3, epoch: 2, count: 203))
        XCTAssertNil(try p.next())
        XCTAssertEqual(p.statistics.batchesDelivered, 13)
    }

    func test_emptyRing_consumerWaitsForTheProducer_andTheWaitIsMeasured() throws {
        let gate = DispatchSemaphore(value: 0)
        let p = Prefetcher(batchCount: 2, depth: 2, makeSlot: tinySlot) { index, batch in
            if index == 0 { gate.wait() }
            batch.index = index
        }
        XCTAssertEqual(p.readyCount, 0)
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.15) { gate.signal() }
        let b = try p.next()
        XCTAssertEqual(b?.index, 0)
        XCTAssertGreaterThan(p.statistics.consumerWaitSeconds, 0.1)
        XCTAssertEqual(try p.next()?.index, 1)
        XCTAssertNil(try p.next())
    }

    func test_fullRing_producerStopsAtDepthUntilTheConsumerReleasesASlot() throws {
        let p = Prefetcher(batchCount: 10, depth: 3, makeSlot: tinySlot) { index, batch in batch.index = index }
        let deadline = Date().addingTimeInterval(5)
        while p.readyCount < 3 && Date() < deadline { Thread.sleep(forTimeInterval: 0.005) }
        Thread.sleep(forTimeInterval: 0.05)
        XCTAssertEqual(p.readyCount, 3)
        XCTAssertEqual(p.statistics.batchesProduced, 3, "producer must block on a full ring")
        _ = try p.next()  // slot 0 in use: still nothing free
        Thread.sleep(forTimeInterval: 0.05)
        XCTAssertEqual(p.statistics.batchesProduced, 3)
        _ = try p.next()  // releases slot 0 → batch 3 can be filled
        while p.statistics.batchesProduced < 4 && Date() < deadline { Thread.sleep(forTimeInterval: 0.005) }
        Thread.sleep(forTimeInterval: 0.05)
        XCTAssertEqual(p.statistics.batchesProduced, 4)
        XCTAssertEqual(p.statistics.peakReady, 3)
        p.cancel()
    }

    func test_wrappedRing_deliversEveryBatchInOrder_andReusesEachSlot() throws {
        let depth = 3, count = 3 * depth + 1
        let p = Prefetcher(batchCount: count, depth: depth, makeSlot: tinySlot) { index, batch in
            batch.index = index
            batch.ids = [index * 10]
        }
        var seen: [Int] = []
        while let b = try p.next() {
            seen.append(b.index)
            XCTAssertEqual(b.ids, [b.index * 10])
        }
        XCTAssertEqual(seen, Array(0..<count))
        // Each slot was filled ⌈count / depth⌉ or ⌊count / depth⌋ times (generation counters).
        XCTAssertEqual(p.ring.slotFillCounts, [4, 3, 3])
    }

    func test_keptBatch_isNeverOverwrittenByALaterFill() throws {
        let tmp = TempDirectory("prefetch")
        let d = try Dataset.makeSynthetic(SyntheticSpec(count: 64, shape: ImageShape(channels: 1, height: 4, width: 4),
                                                        classCount: 3, seed: 1), path: tmp.path("k.mlds").path)
        let loader = BatchLoader(dataset: d, augmentation: .none, seed: 1)
        let plan = EpochPlan(count: 64, seed: 1, epoch: 0, batchSize: 4)
        let p = Prefetcher(loader: loader, plan: plan, depth: 1)
        let first = try XCTUnwrap(p.next())
        let copy = first.images.copy()
        var later: [Batch] = []
        while let b = try p.next() { later.append(b) }
        XCTAssertEqual(later.count, 15)
        XCTAssertEqual(first.images, copy)
        XCTAssertEqual(first.ids, Array(plan.batchIDs(0)))
    }

    func test_cancelMidEpoch_stopsTheProducer_isIdempotent_andEndsTheStream() throws {
        let p = Prefetcher(batchCount: 1000, depth: 2, makeSlot: tinySlot) { index, batch in
            Thread.sleep(forTimeInterval: 0.002)
            batch.index = index
        }
        XCTAssertEqual(try p.next()?.index, 0)
        XCTAssertEqual(try p.next()?.index, 1)
        p.cancel()
        p.cancel()
        let produced = p.statistics.batchesProduced
        XCTAssertLessThanOrEqual(produced, 2 + 2 + 1)
        Thread.sleep(forTimeInterval: 0.05)
        XCTAssertEqual(p.statistics.batchesProduced, produced, "no production after cancel")
        XCTAssertNil(try p.next())
    }

    func test_deinitWithoutConsuming_joinsTheThread() {
        var p: Prefetcher? = Prefetcher(batchCount: 100, depth: 2, makeSlot: tinySlot) { index, batch in batch.index = index }
        let start = Date()
        p = nil
        XCTAssertNil(p)
        XCTAssertLessThan(Date().timeIntervalSince(start), 2)
    }

    func test_producerError_reachesTheConsumer_afterTheEarlierBatches() throws {
        let p = Prefetcher(batchCount: 10, depth: 3, makeSlot: tinySlot) { index, batch in
            if index == 4 { throw Boom(batch: index) }
            batch.index = index
        }
        for i in 0..<4 { XCTAssertEqual(try p.next()?.index, i) }
        XCTAssertThrowsError(try p.next()) { XCTAssertEqual($0 as? Boom, Boom(batch: 4)) }
        XCTAssertNil(try p.next())
        XCTAssertEqual(p.statistics.batchesProduced, 4)
    }

    func test_resumeFromABatchIndex_continuesTheSameOrder() throws {
        let tmp = TempDirectory("prefetch")
        let d = try Dataset.makeSynthetic(SyntheticSpec(count: 50, shape: ImageShape(channels: 1, height: 4, width: 4),
                                                        classCount: 2, seed: 9), path: tmp.path("r.mlds").path)
        let loader = BatchLoader(dataset: d, augmentation: .cifar, seed: 9)
        let plan = EpochPlan(count: 50, seed: 9, epoch: 1, batchSize: 8)
        let p = Prefetcher(loader: loader, plan: plan, depth: 2, firstBatch: 4)
        var indices: [Int] = [], ids: [Int] = []
        while let b = try p.next() {
            indices.append(b.index)
            ids += b.ids
            XCTAssertEqual(b.images, loader.load(ids: plan.batchIDs(b.index), epoch: 1).images)
        }
        XCTAssertEqual(indices, [4, 5, 6])
        XCTAssertEqual(ids, Array(plan.ids[32...]))
    }

    func test_emptyPlan_endsImmediately() throws {
        let p = Prefetcher(batchCount: 0, depth: 2, makeSlot: tinySlot) { _, _ in XCTFail("no fill expected") }
        XCTAssertNil(try p.next())
    }
}
