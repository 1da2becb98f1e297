// BenchTests.swift: the bank and memory benches at test size (MemlossBench/BankBench.swift,
// MemoryBench.swift) and their δ generator (SurrogatePGD.swift): δ stay in the ε-ball and the [0, 1] box
// and are a pure function of the seed, each flavour differs, the reports' counters add up (every codec on
// every flavour, K·n entries read back, decode error within each codec's bound), and the disk bank's
// MemLoss term matches the RAM memory's. Speed is never asserted.

import Foundation
import MemlossBench
import MemoryBank
import Tensors
import Training
import XCTest
import _TestSupport

final class BenchTests: XCTestCase {
    func test_surrogatePGD_staysInTheBallAndBox_andIsAPureFunctionOfTheSeed() {
        let shape = [3, 8, 8], eps: Float = 8 / 255
        var imageRNG = SplitMix64(seed: 3)
        let images = SurrogatePGD.smoothImages(count: 5, shape: shape, rng: &imageRNG)
        let x = images.scalars
        XCTAssert(x.allSatisfy { $0 >= 0 && $0 <= 1 })
        var seen: [[Float]] = []
        let cases: [(SurrogatePGD.Direction, SurrogatePGD.Start)] = [
            (.scorer, .zero), (.scorer, .gaussian(std: 0.001)), (.scorer, .uniform), (.signFlips(probability: 0.25), .zero)]
        for (direction, start) in cases {
            let attack = SurrogatePGD(shape: shape, epsilon: eps, steps: 4, hidden: 6, direction: direction, seed: 9)
            var r1 = SplitMix64(seed: 11), r2 = SplitMix64(seed: 11)
            let d = attack.perturb(images, start: start, rng: &r1).scalars
            XCTAssertEqual(d, attack.perturb(images, start: start, rng: &r2).scalars, "same seed, same δ")
            for i in 0..<d.count {
                XCTAssertLessThanOrEqual(abs(d[i]), eps * (1 + 1e-5), "\(direction) \(start): |δ| ≤ ε")
                XCTAssert(x[i] + d[i] >= -1e-6 && x[i] + d[i] <= 1 + 1e-6, "\(direction) \(start): x + δ in [0, 1]")
            }
            XCTAssertGreaterThan(d.filter { abs($0) > eps / 2 }.count, d.count / 4, "\(direction) \(start): the steps move δ")
            XCTAssertFalse(seen.contains(d), "\(direction) \(start) gives its own δ")
            seen.append(d)
        }
    }

    func test_bankBench_reportsEveryCodecOnEveryFlavour_andReadsBackWhatItWrote() throws {
        let dir = TempDirectory("bench-bank")
        var c = BankBenchConfig()
        c.samples = 40
        c.batch = 16
        c.window = 2
        c.scratch = dir.url.path
        let r = try BankBench.run(c)
        XCTAssertEqual(r.flavours.map(\.flavour), BankBench.Flavour.allCases.map(\.rawValue))
        XCTAssertEqual(r.codecs.count, BankBench.Flavour.allCases.count * BankCodec.allCases.count)
        for f in r.codecs {
            XCTAssertLessThanOrEqual(f.maxAbsError, f.errorBound * (1 + 1e-4) + 1e-7, "\(f.flavour) \(f.codec)")
            XCTAssertGreaterThan(f.bytesPerEntry, 0)
        }
        XCTAssertEqual(r.bank.map(\.codec), ["q8", "levels", "f32"])
        for b in r.bank {
            XCTAssertEqual(b.readEntries, c.samples * c.window, "\(b.codec): K generations of n entries read back")
            XCTAssertEqual(b.readBatches, 3)
        }
        XCTAssertEqual(r.float32ImageBytes, 3 * 32 * 32 * 4)
        XCTAssertEqual(BankBench.generate(count: 3, flavour: .trades, config: c),
                       BankBench.generate(count: 3, flavour: .trades, config: c))
        var bad = c
        bad.samples = 0
        XCTAssertThrowsError(try BankBench.run(bad)) { e in XCTAssert("\(e)".contains("samples"), "\(e)") }
    }

    func test_memoryBench_diskAndRAMGiveTheSameTerm_andCountersAddUp() throws {
        let dir = TempDirectory("bench-memory")
        var c = MemoryBenchConfig()
        c.width = 0.25
        c.batch = 16
        c.batches = 2
        c.attackSteps = 1
        c.window = 1
        c.codec = "f32"  // lossless: the two stores must give the same term
        c.scratch = dir.url.path
        let r = try MemoryBench.run(c)
        XCTAssertEqual(r.batches, 2)
        XCTAssertEqual(r.epsilon, 0.3, "1-channel data: ε = 0.3")
        XCTAssertEqual(r.entriesReadPerStep, Double(c.batch * c.window))
        XCTAssertGreaterThan(r.memTermMean, 0)
        XCTAssertLessThan(r.memTermMeanAbsDifference, 1e-4 * max(r.memTermMean, 1), "f32 disk bank = RAM memory")
        XCTAssertEqual(r.codecs.count, BankCodec.allCases.count)
        var bad = c
        bad.codec = "q7"
        XCTAssertThrowsError(try MemoryBench.run(bad)) { e in XCTAssert("\(e)".contains("q7"), "\(e)") }
    }
}
