// MemoryStoreTests.swift: the two MemLoss memories against each other and their contracts: the K-window
// and stride semantics (which generation each slot reads, what is dropped), x′ rebuilt from the disk
// bank equals the in-RAM float32 example within the codec's bound (f32: to rounding), a damaged
// record is skipped and counted with its file, generation and sample named, and a bank out of step
// with the data order is an error, not silent garbage.

import Datasets
import Foundation
import Kernels
import MemoryBank
import Tensors
import Training
import XCTest
import _TestSupport

final class MemoryStoreTests: XCTestCase {
    /// The embedded MNIST subset, opened once.
    static let demo: Dataset = try! DataSource(parsing: "demo").open(.train)

    /// Adversarial-like examples for `ids` in epoch `epoch`: the augmented view plus a PGD-shaped δ
    /// (a few sign steps of ε/4 from a small uniform start, projected to the ε-ball and [0, 1]).
    struct Made {
        var views: [ViewParameters]
        var clean: Tensor
        var adversarial: Tensor
        var metadata: [EntryMetadata]
    }

    static func make(ids: [Int], epoch: Int, epsilon: Float, augmentation: AugmentationConfig) -> Made {
        let loader = BatchLoader(dataset: demo, augmentation: augmentation, seed: 5)
        let batch = loader.load(ids: ids, epoch: epoch)
        var rng = SplitMix64.derived(seed: 77, stream: UInt64(epoch))
        let x = batch.images.scalars
        var adv = x
        for j in adv.indices {
            var d = Float(rng.nextFloat() * 0.2 - 0.1) * epsilon
            for _ in 0..<3 { d += (rng.nextFloat() < 0.5 ? -1 : 1) * epsilon / 4 }
            d = min(max(d, -epsilon), epsilon)
            adv[j] = min(max(x[j] + d, 0), 1)
        }
        let meta = ids.enumerated().map { i, id in
            EntryMetadata(label: batch.labels[i], pY: Float(id % 97) / 97, margin: Float(id % 5) - 2, loss: 0.5)
        }
        return Made(views: batch.views, clean: batch.images, adversarial: Tensor(shape: batch.images.shape, values: adv),
                    metadata: meta)
    }

    /// Runs `epochs` epochs of a fixed 3-batch plan through both stores, recording made examples,
    /// and calls `check` with each batch's examples from both.
    private func runBoth(_ cfg: MemoryStoreConfig, epochs: Int, epsilon: Float = 0.3, augmentation: AugmentationConfig = .cifar,
                         directory: URL, check: (_ epoch: Int, _ ram: MemoryExamples, _ disk: MemoryExamples) throws -> Void) throws {
        var rc = cfg; rc.kind = .ram
        let ram = RAMMemoryStore(config: rc, sampleCount: Self.demo.count, shape: Self.demo.shape.dimensions)
        let disk = try DiskMemoryStore(config: cfg, directory: directory, dataset: Self.demo, epsilon: epsilon, norm: .linf,
                                       createdBy: "{}", keepThrough: nil, options: Bank.Options(sync: false))
        defer { disk.close() }
        for epoch in 0..<epochs {
            // Population 0..<40 in the epoch's own order; batches of 16, 16, 8.
            let plan = EpochPlan(population: Array(0..<40), seed: 3, epoch: epoch, batchSize: 16)
            try ram.beginEpoch(epoch, plan: plan)
            try disk.beginEpoch(epoch, plan: plan)
            for b in 0..<plan.batchCount {
                let ids = Array(plan.batchIDs(b))
                let r = try ram.next(ids: ids), d = try disk.next(ids: ids)
                try check(epoch, r, d)
                let made = Self.make(ids: ids, epoch: epoch, epsilon: epsilon, augmentation: augmentation)
                try ram.record(ids: ids, views: made.views, clean: made.clean, adversarial: made.adversarial, metadata: made.metadata)
                try disk.record(ids: ids, views: made.views, clean: made.clean, adversarial: made.adversarial, metadata: made.metadata)
            }
            let rr = try ram.endEpoch(), dr = try disk.endEpoch()
            XCTAssertEqual(rr.entriesWritten, 40)
            XCTAssertEqual(dr.entriesWritten, 40)
            XCTAssertEqual(rr.generations, dr.generations, "epoch \(epoch): both keep the same generations")
            XCTAssertGreaterThan(dr.generationBytes, 0)
        }
    }

    private func maxDifference(_ a: MemoryExamples, _ b: MemoryExamples) -> Float {
        let n = a.images.count / max(1, a.images.shape[0])
        let x = a.images.scalars, y = b.images.scalars
        var worst: Float = 0
        for r in 0..<(a.count * a.window) where a.present[r] {
            for j in 0..<n { worst = max(worst, abs(x[r * n + j] - y[r * n + j])) }
        }
        return worst
    }

    func test_diskBankRebuild_equalsRAMReference_withinTheCodecBound() throws {
        let tmp = TempDirectory("memstore-equal")
        for codec in [BankCodec.q8, .f32, .q4, .levels] {
            var worst: Float = 0, compared = 0
            try runBoth(MemoryStoreConfig(window: 1, codec: codec), epochs: 3, directory: tmp.path(codec.rawValue)) { epoch, r, d in
                XCTAssertEqual(r.present, Array(d.present.prefix(r.present.count)), "\(codec) epoch \(epoch): same presence")
                XCTAssertEqual(r.presentCount, epoch == 0 ? 0 : r.count, "K = 1: every sample has last epoch's example")
                for row in 0..<(r.count * r.window) where r.present[row] {
                    XCTAssertEqual(r.storedPY[row], d.storedPY[row])
                    XCTAssertEqual(r.storedMargin[row], d.storedMargin[row])
                }
                if r.presentCount > 0 { worst = max(worst, maxDifference(r, d)); compared += r.presentCount }
            }
            XCTAssertEqual(compared, 80, "\(codec): epochs 2 and 3 compared 40 samples each")
            // clamp is 1-Lipschitz, so |x′_disk − x′_ram| ≤ |δ̂ − δ| ≤ the codec bound (+ f32 rounding of the add).
            let bound = codec.errorBound(epsilon: 0.3) + 2e-7
            XCTAssertLessThanOrEqual(worst, bound, "\(codec): max |x′_disk − x′_ram| = \(worst), bound \(bound)")
            if codec == .q8 { XCTAssertGreaterThan(worst, 0, "q8 is lossy: the comparison must see a difference") }
        }
    }

    func test_windowAndStride_readTheRightGenerations_andDropTheRest() throws {
        let tmp = TempDirectory("memstore-window")
        // K = 2, s = 2: epoch e reads e−2 (slot 0) and e−4 (slot 1); the writer keeps [e+1−4, e].
        let cfg = MemoryStoreConfig(window: 2, stride: 2, codec: .f32)
        var seenSlots: [Int: [Int]] = [:]
        try runBoth(cfg, epochs: 6, directory: tmp.path("bank")) { epoch, r, d in
            var slots: [Int] = []
            for slot in 0..<2 where (0..<r.count).allSatisfy({ r.present[$0 * 2 + slot] }) { slots.append(slot) }
            XCTAssertEqual(r.present, Array(d.present.prefix(r.present.count)))
            seenSlots[epoch] = slots
            XCTAssertLessThanOrEqual(maxDifference(r, d), 2e-7)
        }
        XCTAssertEqual(seenSlots[0], [], "epoch 0: nothing remembered")
        XCTAssertEqual(seenSlots[1], [], "epoch 1 reads −1 and −3")
        XCTAssertEqual(seenSlots[2], [0], "epoch 2 reads generation 0 in slot 0")
        XCTAssertEqual(seenSlots[3], [0])
        XCTAssertEqual(seenSlots[4], [0, 1], "epoch 4 reads 2 and 0")
        XCTAssertEqual(seenSlots[5], [0, 1], "epoch 5 reads 3 and 1")
        // After sealing 5: epoch 6 reads {4, 2}, a redone epoch 5 reads {3, 1}; the writer keeps 1…5.
        let reader = try BankReader.open(at: tmp.path("bank"))
        XCTAssertEqual(reader.generations, [1, 2, 3, 4, 5])
    }

    func test_slotContents_areTheRightGeneration() throws {
        // The stored p_y identifies nothing per generation, so compare images: with K = 2, s = 1,
        // slot 1 in epoch 2 must equal what slot 0 held in epoch 1 (both generation 0).
        let tmp = TempDirectory("memstore-slots")
        var slot0AtEpoch1: [Int: [Float]] = [:]
        var checked = 0
        let n = Self.demo.shape.pixelCount
        let ram = RAMMemoryStore(config: MemoryStoreConfig(window: 2, kind: .ram), sampleCount: Self.demo.count,
                                 shape: Self.demo.shape.dimensions)
        _ = tmp
        for epoch in 0..<3 {
            let plan = EpochPlan(population: Array(0..<20), seed: 9, epoch: epoch, batchSize: 20)
            try ram.beginEpoch(epoch, plan: plan)
            let ids = Array(plan.batchIDs(0))
            let ex = try ram.next(ids: ids)
            let x = ex.images.count > 0 ? ex.images.scalars : []
            for (i, id) in ids.enumerated() {
                if epoch == 1 { XCTAssert(ex.present[i * 2]); slot0AtEpoch1[id] = Array(x[(i * 2 * n)..<((i * 2 + 1) * n)]) }
                if epoch == 2 {
                    XCTAssert(ex.present[i * 2 + 1])
                    XCTAssertEqual(Array(x[((i * 2 + 1) * n)..<((i * 2 + 2) * n)]), slot0AtEpoch1[id])
                    checked += 1
                }
            }
            let made = Self.make(ids: ids, epoch: epoch, epsilon: 0.3, augmentation: .cifar)
            try ram.record(ids: ids, views: made.views, clean: made.clean, adversarial: made.adversarial, metadata: made.metadata)
            _ = try ram.endEpoch()
        }
        XCTAssertEqual(checked, 20)
    }

    func test_damagedRecord_isSkippedCounted_andNamed() throws {
        let tmp = TempDirectory("memstore-corrupt")
        let dir = tmp.path("bank")
        let cfg = MemoryStoreConfig(window: 1, codec: .q8)
        let disk = try DiskMemoryStore(config: cfg, directory: dir, dataset: Self.demo, epsilon: 0.3, norm: .linf,
                                       createdBy: "{}", keepThrough: nil, options: Bank.Options(sync: false))
        let plan0 = EpochPlan(population: Array(0..<16), seed: 1, epoch: 0, batchSize: 16)
        try disk.beginEpoch(0, plan: plan0)
        let ids0 = Array(plan0.batchIDs(0))
        _ = try disk.next(ids: ids0)
        let made = Self.make(ids: ids0, epoch: 0, epsilon: 0.3, augmentation: .none)
        try disk.record(ids: ids0, views: made.views, clean: made.clean, adversarial: made.adversarial, metadata: made.metadata)
        _ = try disk.endEpoch()
        // Damage the payload of sample 7 in generation 0.
        let reader = try BankReader.open(at: dir)
        let segment = try XCTUnwrap(reader.segment(0))
        let offset = try XCTUnwrap(segment.recordOffset(of: 7))
        let url = URL(fileURLWithPath: segment.path)
        var bytes = try Data(contentsOf: url)
        bytes[offset + 60] ^= 0x5A
        try bytes.write(to: url)

        let plan1 = EpochPlan(population: Array(0..<16), seed: 1, epoch: 1, batchSize: 16)
        try disk.beginEpoch(1, plan: plan1)
        let ids1 = Array(plan1.batchIDs(0))
        let ex = try disk.next(ids: ids1)
        XCTAssertEqual(ex.corrupt, 1)
        XCTAssertEqual(ex.presentCount, 15)
        let row = try XCTUnwrap(ids1.firstIndex(of: 7))
        XCTAssertFalse(ex.present[row], "the damaged entry is never used")
        XCTAssertEqual(ex.problems.count, 1)
        let problem = ex.problems[0]
        XCTAssert(problem.contains(segment.path) && problem.contains("7"), problem)
        disk.close()
    }

    func test_bankOutOfStepWithTheData_isAnError() throws {
        let tmp = TempDirectory("memstore-sync")
        let disk = try DiskMemoryStore(config: MemoryStoreConfig(codec: .f32), directory: tmp.path("bank"), dataset: Self.demo,
                                       epsilon: 0.3, norm: .linf, createdBy: "{}", keepThrough: nil,
                                       options: Bank.Options(sync: false))
        defer { disk.close() }
        let plan = EpochPlan(population: Array(0..<8), seed: 1, epoch: 0, batchSize: 8)
        try disk.beginEpoch(0, plan: plan)
        let made = Self.make(ids: Array(0..<8), epoch: 0, epsilon: 0.3, augmentation: .none)
        _ = try disk.next(ids: Array(0..<8))
        try disk.record(ids: Array(0..<8), views: made.views, clean: made.clean, adversarial: made.adversarial, metadata: made.metadata)
        _ = try disk.endEpoch()
        let plan1 = EpochPlan(population: Array(0..<8), seed: 1, epoch: 1, batchSize: 8)
        try disk.beginEpoch(1, plan: plan1)
        XCTAssertThrowsError(try disk.next(ids: [100, 101])) { e in
            XCTAssert("\(e)".contains("out of step"), "\(e)")
        }
    }
}
