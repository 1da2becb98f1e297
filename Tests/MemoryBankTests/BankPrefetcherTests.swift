// BankPrefetcherTests.swift: the bank prefetcher's ring: batches arrive in order with the same δ, views
// and metadata as direct reads, absent slots are zero and unmarked; ring states empty, full and wrapped;
// a slot is never refilled while the consumer holds it; producer errors reach the consumer in order;
// cancel is idempotent and ends the stream; a makeImages hook's x′ is held as `images` (not in
// `deltas`), and every refill of the reused buffer decodes fresh δ.

import Foundation
@testable import MemoryBank
import Tensors
import _TestSupport
import XCTest

final class BankPrefetcherTests: XCTestCase {
    private var dir: TempDirectory!
    private var reader: BankReader!
    private var written: [Int: [Int: [Float]]] = [:]
    private let n = 60  // 3×4×5

    override func setUpWithError() throws {
        dir = TempDirectory("bank-prefetch")
        let bank = try Bank.create(at: dir.url, config: BankFixtures.config(codec: .levels, sampleCount: 40, window: 2, stride: 1),
                                   options: BankFixtures.options())
        // Generation 1 holds even IDs, generation 2 every ID below 30.
        written = try BankFixtures.fill(bank, generations: [1], ids: Array(stride(from: 0, to: 40, by: 2)))
        written.merge(try BankFixtures.fill(bank, generations: [2], ids: Array(0..<30))) { a, _ in a }
        reader = try bank.reader()
        bank.close()
    }

    private func batches(_ count: Int, size: Int) -> [[Int]] {
        (0..<count).map { b in (0..<size).map { (b * 7 + $0 * 3) % 40 } }
    }

    func test_batches_matchDirectReads_slotForSlot() throws {
        let plan = batches(6, size: 5) + [[39, 38]]  // a short last batch
        let prefetcher = BankPrefetcher(reader: reader, epoch: 3, batches: plan, depth: 2)
        var index = 0
        while let batch = try prefetcher.next() {
            XCTAssertEqual(batch.index, index)
            XCTAssertEqual(batch.ids, plan[index])
            XCTAssertEqual(batch.generations, [2, 1])
            XCTAssertEqual(batch.deltas.shape, [5, 2, 3, 4, 5])
            let values = batch.deltas.scalars
            for (i, id) in batch.ids.enumerated() {
                for (k, g) in [2, 1].enumerated() {
                    let slice = Array(values[((i * 2 + k) * n)..<((i * 2 + k + 1) * n)])
                    if let expected = try reader.entry(id: id, generation: g) {
                        XCTAssertTrue(batch.isPresent(i, slot: k))
                        XCTAssertEqual(slice, expected.delta, "batch \(index) id \(id) g \(g)")
                        XCTAssertEqual(batch.views[i * 2 + k], BankFixtures.view(id))
                        XCTAssertEqual(batch.metadata[i * 2 + k], BankFixtures.metadata(id))
                    } else {
                        XCTAssertFalse(batch.isPresent(i, slot: k))
                        XCTAssertEqual(slice, [Float](repeating: 0, count: n))
                    }
                }
            }
            for i in batch.count..<batch.capacity {
                XCTAssertFalse(batch.isPresent(i, slot: 0))
                XCTAssertEqual(Array(values[(i * 2 * n)..<((i + 1) * 2 * n)]), [Float](repeating: 0, count: 2 * n))
            }
            index += 1
        }
        XCTAssertEqual(index, plan.count)
        let s = prefetcher.statistics
        XCTAssertEqual(s.batchesDelivered, plan.count)
        XCTAssertEqual(s.entriesDecoded + s.entriesAbsent, plan.reduce(0) { $0 + $1.count } * 2)
        XCTAssertGreaterThan(s.entriesDecoded, 0)
        XCTAssertGreaterThanOrEqual(s.consumerWaitSeconds, 0)
        XCTAssertNil(try prefetcher.next(), "stays at the end")
    }

    func test_makeImages_holdsItsResultAsImages_andEveryRefillDecodesFreshDeltas() throws {
        // The hook stands in for the trainer's x′ = clamp(view(x) + δ, 0, 1): here x′ = δ + 1 where
        // present, −1 where absent, so a refill that started from last batch's x′ instead of fresh δ shows.
        let plan = batches(7, size: 4)
        let prefetcher = BankPrefetcher(
            reader: reader, generations: reader.windowGenerations(forEpoch: 3), batchCount: plan.count, batchCapacity: 4,
            depth: 2, makeImages: { batch, buffer in
                XCTAssertEqual(batch.deltas.shape, [0], "the hook owns δ's buffer while it runs")
                var v = buffer.scalars
                for r in 0..<(batch.capacity * batch.window) {
                    for j in 0..<batch.elementCount { v[r * batch.elementCount + j] = batch.present[r] ? v[r * batch.elementCount + j] + 1 : -1 }
                }
                buffer = Tensor(shape: buffer.shape, values: v)
            }, batchIDs: { plan[$0] })
        var index = 0
        while let batch = try prefetcher.next() {
            XCTAssertEqual(batch.deltas.shape, [0], "δ's buffer now holds x′")
            let images = try XCTUnwrap(batch.images, "batch \(index) has x′")
            XCTAssertEqual(images.shape, [4, 2, 3, 4, 5])
            let values = images.scalars
            for (i, id) in batch.ids.enumerated() {
                for (k, g) in [2, 1].enumerated() {
                    let slice = Array(values[((i * 2 + k) * n)..<((i * 2 + k + 1) * n)])
                    if let expected = try reader.entry(id: id, generation: g) {
                        XCTAssertEqual(slice, expected.delta.map { $0 + 1 }, "batch \(index) id \(id) g \(g)")
                    } else {
                        XCTAssertEqual(slice, [Float](repeating: -1, count: n), "batch \(index) id \(id) g \(g)")
                    }
                }
            }
            index += 1
        }
        XCTAssertEqual(index, plan.count)
        XCTAssertEqual(prefetcher.slotFillCounts, [4, 3], "both slots were refilled after their x′ was handed out")
        let plain = BankPrefetcher(reader: reader, epoch: 3, batches: plan, depth: 2)
        XCTAssertNil(try XCTUnwrap(plain.next()).images, "no hook, no x′")
    }

    func test_emptyPlan_endsAtOnce_andMissingGenerationsGiveEmptySlots() throws {
        let empty = BankPrefetcher(reader: reader, epoch: 3, batches: [], depth: 2)
        XCTAssertNil(try empty.next())
        let early = BankPrefetcher(reader: reader, epoch: 1, batches: [[0, 1]], depth: 1)  // reads generations 0 and −1
        let batch = try XCTUnwrap(early.next())
        XCTAssertEqual(batch.generations, [nil, nil])
        XCTAssertEqual(batch.presentCount, 0)
        XCTAssertEqual(early.statistics.entriesAbsent, 4)
    }

    func test_ring_fillsUp_wrapsAround_andNeverRefillsASlotInUse() throws {
        let plan = batches(7, size: 4)
        let prefetcher = BankPrefetcher(reader: reader, epoch: 3, batches: plan, depth: 3)
        // Full: without a consumer the producer fills all 3 slots and stops.
        let deadline = Date().addingTimeInterval(5)
        while prefetcher.readyCount < 3 && Date() < deadline { Thread.sleep(forTimeInterval: 0.005) }
        XCTAssertEqual(prefetcher.readyCount, 3)
        Thread.sleep(forTimeInterval: 0.05)
        XCTAssertEqual(prefetcher.slotFillCounts, [1, 1, 1], "nothing is overwritten while full")

        // Hold batch 0 (slot 0): slot 0 must not be refilled while it is in use.
        let held = try XCTUnwrap(prefetcher.next())
        let heldValues = held.deltas.scalars
        Thread.sleep(forTimeInterval: 0.05)
        XCTAssertEqual(prefetcher.slotFillCounts, [1, 1, 1])
        XCTAssertEqual(prefetcher.readyCount, 2)

        // Releasing it (asking for the next) lets batch 3 wrap into slot 0; the held value is intact.
        var seen = [held.index]
        while let b = try prefetcher.next() { seen.append(b.index) }
        XCTAssertEqual(seen, Array(0..<7))
        XCTAssertEqual(prefetcher.slotFillCounts, [3, 2, 2])
        XCTAssertEqual(held.deltas.scalars, heldValues, "a batch kept by the consumer is never overwritten")
        XCTAssertEqual(prefetcher.statistics.peakReady, 3)
    }

    func test_producerError_reachesTheConsumer_afterEarlierBatches() throws {
        let plan = [[0, 1], [2, 3], [4, 99], [5, 6]]  // 99 is outside 0..<40
        let prefetcher = BankPrefetcher(reader: reader, epoch: 3, batches: plan, depth: 2)
        XCTAssertEqual(try prefetcher.next()?.index, 0)
        XCTAssertEqual(try prefetcher.next()?.index, 1)
        assertBankError(try prefetcher.next()) { $0 == .sampleOutOfRange(id: 99, sampleCount: 40) }
        XCTAssertNil(try prefetcher.next())
    }

    func test_cancel_isIdempotent_andEndsTheStream() throws {
        let prefetcher = BankPrefetcher(reader: reader, epoch: 3, batches: batches(50, size: 8), depth: 2)
        XCTAssertNotNil(try prefetcher.next())
        prefetcher.cancel()
        prefetcher.cancel()
        XCTAssertNil(try prefetcher.next())
        XCTAssertLessThan(prefetcher.statistics.batchesProduced, 50)
    }

    func test_residentBudget_releasesMappedPages_withoutChangingTheData() throws {
        let plan = batches(6, size: 5)
        let reference = BankPrefetcher(reader: reader, epoch: 3, batches: plan, depth: 2, residentBudget: 0)
        let releasing = BankPrefetcher(reader: reader, epoch: 3, batches: plan, depth: 2, residentBudget: 1)
        while let a = try reference.next() {
            let b = try XCTUnwrap(releasing.next())
            XCTAssertEqual(a.deltas, b.deltas)
            XCTAssertEqual(a.present, b.present)
        }
        XCTAssertEqual(reference.statistics.residentReleases, 0)
        XCTAssertEqual(releasing.statistics.residentReleases, 6)
    }

    func test_resumeMidEpoch_startsAtFirstBatch() throws {
        let plan = batches(5, size: 3)
        let prefetcher = BankPrefetcher(reader: reader, epoch: 3, batches: plan, depth: 2, firstBatch: 3)
        XCTAssertEqual(try prefetcher.next()?.index, 3)
        XCTAssertEqual(try prefetcher.next()?.index, 4)
        XCTAssertNil(try prefetcher.next())
    }
}
