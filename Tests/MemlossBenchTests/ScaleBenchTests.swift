// ScaleBenchTests.swift: the out-of-core claim at test size: between N and 10·N samples the scale bench's
// peak RSS grows by less than a stated bound (what an O(N) float32 structure would add is far above it),
// its counters add up (entries written = N·K + samples trained, read = samples trained × K, nothing
// absent), the dataset file is reused when its header matches and rejected when it does not. Speed is
// never asserted.

import Datasets
import Foundation
import MemlossBench
import Training
import XCTest
import _TestSupport

final class ScaleBenchTests: XCTestCase {
    /// MNIST-shaped samples so the test can use SmallCNN (fast) with a real MemLoss epoch.
    static let shape = ImageShape(channels: 1, height: 28, width: 28)

    func config(n: Int, dir: TempDirectory) -> ScaleBenchConfig {
        var c = ScaleBenchConfig(sampleCount: n, window: 2, shape: ScaleBenchTests.shape,
                                 dataPath: dir.path("data-\(n).mlds").path, bankDirectory: dir.path("bank-\(n)").path)
        c.model = "smallcnn"
        c.width = 0.25
        c.epsilon = 0.3
        c.batchSize = 32
        c.steps = 3
        c.attackSteps = 1
        c.fillSteps = 2
        c.augmentation = .none
        c.sync = false  // durability is the bank's own tests' business; this one is about RAM and counts
        // Small residency budgets so file-backed RSS is bounded well below the test's bound (as the
        // defaults bound it at 128 + 256 MiB for the real sizes).
        c.datasetResidentBudget = 4 << 20
        c.bankResidentBudget = 4 << 20
        return c
    }

    /// Bounds between N = 2,000 and N = 20,000 (K = 2, 1×28×28). A single per-sample float32 image
    /// array (N·784·4 B) would add 56 MB, one per generation 113 MB; both bounds sit well below.
    ///
    /// Anonymous (heap) RSS, largest value sampled after every batch: 8 MiB. What legitimately grows
    /// with N is ≈ 40 B/sample (epoch order 8 + its permutation 8, segment index 8 + its sealed copy 8,
    /// labels 4, appended bitmap) ≈ 0.7 MB for the 18,000 extra samples, plus allocator noise.
    static let anonGrowthBound = 8 << 20
    /// Peak RSS (VmHWM, anonymous + file-backed): 48 MiB, below the 56 MB that one per-sample float32
    /// image array would add. File-backed RSS is mapped page cache, bounded by the residency budgets
    /// (4 MiB each here) plus their check granularity: a random read can map a whole large folio
    /// (≈ 1 MB measured), and the loader checks every 16 samples, so up to ≈ 16 MB past a budget, which
    /// at test size is most of the 15.7 MB dataset file (at N = 10⁶ it is 3 GB); the bank's segments
    /// (≈ 10 MB per generation here) have their own budget and the same overshoot. So ≈ 40 MiB of
    /// file-backed growth is legitimate at this size; a bound of 32 MiB failed once at 33.9 MiB on a
    /// fresh clone (VmHWM catches transients between the samples). The heap, which is what must not
    /// grow with N, has its own tight bound above.
    static let rssGrowthBound = 48 << 20

    func test_peakRSS_growsLessThanBound_from2kTo20kSamples_andCountersAddUp() throws {
        // VmHWM's bound is asserted only where the instrument works: the reset is verified (see
        // ProcessMemory.resetPeak) and a 48 MiB touch moves the peak by ≥ 40 MiB. The counters and the
        // sampled anonymous-RSS bound, which do not depend on VmHWM, are asserted everywhere.
        let peakUsable = peakInstrumentWorks()
        if !peakUsable {
            print("ScaleBenchTests: VmHWM cannot be reset or does not track here; its bound is not checked on this machine")
        }
        let dir = TempDirectory("scale-bench")
        var reports: [ScaleBenchReport] = []
        for n in [2_000, 20_000] {
            let c = config(n: n, dir: dir)
            let r = try ScaleBench.run(c)
            reports.append(r)
            let k = c.window
            XCTAssertFalse(r.dataset.reused)
            XCTAssertEqual(r.fill.entriesWritten, n * k, "entries written by the fill = N·K")
            XCTAssertEqual(r.epoch.steps, c.steps)
            XCTAssertEqual(r.epoch.samplesTrained, c.steps * c.batchSize)
            XCTAssertEqual(r.epoch.entriesRead, r.epoch.samplesTrained * k, "entries read = samples trained × K")
            XCTAssertEqual(r.epoch.entriesAbsent, 0)
            XCTAssertEqual(r.epoch.entriesCorrupt, 0)
            XCTAssertEqual(r.epoch.entriesWritten, r.epoch.samplesTrained)
            XCTAssertEqual(r.entriesWrittenTotal, n * k + r.epoch.samplesTrained, "entries written = N·generations + trained")
            XCTAssertEqual(r.bank.generationsAtEnd, Array(0...k), "retention keeps [g − K, g] after sealing g = K")
            XCTAssertEqual(r.bank.windowBytes, r.fill.generationBytes.reduce(0, +))
            XCTAssertLessThan(r.bank.fractionOfFloat32, 0.5, "the bank stores quantised δ, not float32 images")
            if peakUsable { XCTAssertGreaterThan(r.memory.peakRSS, 0) }
            if SystemStats.processStatus()["RssAnon"] != nil { XCTAssertGreaterThan(r.memory.rssAnonMaxSampled, 0) }
        }
        let anonGrowth = reports[1].memory.rssAnonMaxSampled - reports[0].memory.rssAnonMaxSampled
        XCTAssertLessThan(anonGrowth, ScaleBenchTests.anonGrowthBound,
                          "anonymous RSS grew by \(anonGrowth >> 20) MiB from N = 2,000 to 20,000")
        guard peakUsable else { return }
        let growth = reports[1].memory.peakRSS - reports[0].memory.peakRSS
        XCTAssertLessThan(growth, ScaleBenchTests.rssGrowthBound,
                          "peak RSS grew by \(growth >> 20) MiB from N = 2,000 to 20,000 "
                          + "(\(reports[0].memory.peakRSS >> 20) → \(reports[1].memory.peakRSS >> 20) MiB; at end anon "
                          + "\(reports[0].memory.rssAnonAtEnd >> 20) → \(reports[1].memory.rssAnonAtEnd >> 20) MiB, file "
                          + "\(reports[0].memory.rssFileAtEnd >> 20) → \(reports[1].memory.rssFileAtEnd >> 20) MiB)")
    }

    /// Whether VmHWM can be reset and sees a 48 MiB touch (peak moves by ≥ 40 MiB).
    func peakInstrumentWorks() -> Bool {
        guard SystemStats.resetPeakRSS() else { return false }
        let before = SystemStats.peakRSSBytes
        var probe = [UInt8](repeating: 1, count: 48 << 20)
        probe[probe.count - 1] = 2
        let moved = SystemStats.peakRSSBytes - before
        withExtendedLifetime(probe) {}
        return moved > 40 << 20
    }

    func test_dataset_isReusedWhenItsHeaderMatches_andRejectedOtherwise() throws {
        let dir = TempDirectory("scale-bench-reuse")
        var c = config(n: 600, dir: dir)
        c.window = 1
        c.steps = 1
        let first = try ScaleBench.run(c)
        XCTAssertFalse(first.dataset.reused)
        let second = try ScaleBench.run(c)
        XCTAssertTrue(second.dataset.reused)
        XCTAssertEqual(second.fill.entriesWritten, 600)
        XCTAssertEqual(second.epoch.entriesRead, second.epoch.samplesTrained)

        var other = c
        other.sampleCount = 700  // same file, another N
        XCTAssertThrowsError(try ScaleBench.run(other)) { error in
            guard case ScaleBenchError.datasetMismatch = error else { return XCTFail("expected datasetMismatch, got \(error)") }
        }
    }
}
