// RetentionTests.swift: the writer's retention policy (docs/format/membank-v1.md §3.1): `.window` keeps
// exactly `[g − K·s, g]` after sealing g and deletes the rest, `.all` deletes nothing; the policy is the
// writer's runtime option, not stored, so a later writer with `.window` applies the window again.

import Foundation
@testable import MemoryBank
import Tensors
import XCTest
import _TestSupport

final class RetentionTests: XCTestCase {
    private func segmentFiles(_ dir: URL) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".mbs") }.sorted()
    }

    func test_windowRetention_deletesGenerationsOutsideTheWindow() throws {
        let dir = TempDirectory("retention-window")
        let bank = try Bank.create(at: dir.url, config: BankFixtures.config(window: 2, stride: 1), options: BankFixtures.options())
        try BankFixtures.fill(bank, generations: Array(0..<6), ids: [0, 3])
        bank.close()
        // After sealing 5 with K·s = 2: [3, 5].
        XCTAssertEqual(try BankReader.open(at: dir.url).generations, [3, 4, 5])
        XCTAssertEqual(try segmentFiles(dir.url), (3...5).map(BankLayout.segmentName))
    }

    func test_allRetention_keepsEveryGeneration_andEachStaysReadable() throws {
        let dir = TempDirectory("retention-all")
        var options = BankFixtures.options()
        options.retention = .all
        let bank = try Bank.create(at: dir.url, config: BankFixtures.config(window: 1, stride: 1), options: options)
        let written = try BankFixtures.fill(bank, generations: Array(0..<6), ids: [1, 4])
        bank.close()
        let reader = try BankReader.open(at: dir.url)
        XCTAssertEqual(reader.generations, Array(0..<6))
        XCTAssertEqual(try segmentFiles(dir.url), (0..<6).map(BankLayout.segmentName))
        for g in 0..<6 {
            for id in [1, 4] {
                let e = try XCTUnwrap(try reader.entry(id: id, generation: g))
                let d = try XCTUnwrap(written[g]?[id])
                let bound = BankCodec.q8.errorBound(epsilon: BankFixtures.epsilon)
                XCTAssert(zip(e.delta, d).allSatisfy { abs($0 - $1) <= bound }, "generation \(g), sample \(id)")
            }
        }
    }

    func test_retentionIsTheWritersOption_aWindowWriterAfterAnAllWriterTrimsAgain() throws {
        let dir = TempDirectory("retention-switch")
        var all = BankFixtures.options()
        all.retention = .all
        let config = BankFixtures.config(window: 1, stride: 2)
        do {
            let bank = try Bank.create(at: dir.url, config: config, options: all)
            try BankFixtures.fill(bank, generations: [0, 1, 2, 3], ids: [2])
            bank.close()
        }
        XCTAssertEqual(try BankReader.open(at: dir.url).generations, [0, 1, 2, 3])
        // The manifest is the same whatever the policy: reopening needs no option to match.
        let bank = try Bank.open(at: dir.url, options: BankFixtures.options())
        try BankFixtures.fill(bank, generations: [4], ids: [2])
        bank.close()
        XCTAssertEqual(try BankReader.open(at: dir.url).generations, [2, 3, 4], "K·s = 2: [g − 2, g]")
    }

    func test_retains_matchesRetainedRange_forWindow_andKeepsEverythingUpToG_forAll() {
        let config = BankFixtures.config(window: 2, stride: 3)
        for g in 0..<12 {
            for h in -8...12 {
                XCTAssertEqual(config.retains(h, afterSealing: g, retention: .window), config.retainedRange(afterSealing: g).contains(h))
                XCTAssertEqual(config.retains(h, afterSealing: g, retention: .all), h <= g)
            }
        }
    }
}

/// BankConfig.validate on shapes whose C·H·W overflows Int (the module builds -Ounchecked, so a plain
/// product would wrap to a small, "valid" number).
final class BankConfigOverflowTests: XCTestCase {
    func test_shapeWhoseProductOverflows_isAnInvalidConfig_notAWrappedSize() {
        let big = Int(UInt32.max)
        for shape in [[big, big, big], [big, big, 1], [1 << 31, 1 << 31, 4]] {
            let c = BankConfig(sampleCount: 10, shape: shape, epsilon: 0.3, norm: .linf)
            XCTAssertThrowsError(try c.validate(), "\(shape)") { e in
                guard case MemoryBankError.invalidConfig(let reason) = e else { return XCTFail("\(e)") }
                XCTAssertTrue(reason.contains("C·H·W"), reason)
            }
        }
        XCTAssertNoThrow(try BankConfig(sampleCount: 10, shape: [3, 32, 32], epsilon: 0.3, norm: .linf).validate())
    }
}
