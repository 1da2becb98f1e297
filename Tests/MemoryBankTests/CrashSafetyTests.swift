// CrashSafetyTests.swift: a writer stopped at each point of the sealing sequence (docs/format/
// membank-v1.md §3 crash table) leaves the previous manifest and its generations readable; the
// unsealed or unlisted files are ignored by readers and deleted by the next writer open.

import Foundation
@testable import MemoryBank
import _TestSupport
import XCTest

final class CrashSafetyTests: XCTestCase {
    private func crash(at point: Bank.CrashPoint, file: StaticString = #filePath, line: UInt = #line) throws {
        let dir = TempDirectory("bank-crash")
        let config = BankFixtures.config(codec: .levels, window: 1)  // keeps [g − 1, g]: sealing 2 drops 0
        let bank = try Bank.create(at: dir.url, config: config, options: BankFixtures.options(sync: true))
        let written = try BankFixtures.fill(bank, generations: [0, 1], ids: [0, 4, 5])
        try bank.beginGeneration(2)
        for id in [0, 4] {
            try bank.append(id: id, delta: BankFixtures.pgdDelta(count: config.elementCount, seed: 99), view: .identity, metadata: .zero)
        }
        bank.crashPoint = point
        assertBankError(try bank.sealGeneration(), file: file, line: line) { $0 == .simulatedCrash(point: point.rawValue) }
        assertBankError(try bank.beginGeneration(3), file: file, line: line) { $0 == .writerClosed }

        // Readers follow the manifest only.
        let reader = try BankReader.open(at: dir.url)
        let expectedLive = point == .afterManifest ? [1, 2] : [0, 1]
        XCTAssertEqual(reader.generations, expectedLive, "\(point)", file: file, line: line)
        for g in [0, 1] where expectedLive.contains(g) {
            for id in [0, 4, 5] {
                let e = try XCTUnwrap(reader.entry(id: id, generation: g), file: file, line: line)
                assertClose(e.delta, written[g]![id]!, atol: config.epsilon / 254 * 1.001, rtol: 0, file: file, line: line)
            }
        }
        let verification = BankReader.verify(at: dir.url)
        XCTAssertTrue(verification.isIntact, "\(verification.problems)", file: file, line: line)
        let leftover = point == .beforeSeal ? BankLayout.segmentName(2) + ".tmp"
            : point == .afterSegmentRename ? BankLayout.segmentName(2) : BankLayout.segmentName(0)
        XCTAssertEqual(verification.ignoredFiles, [leftover], "\(point)", file: file, line: line)

        // The next writer deletes the leftover and carries on.
        let reopened = try Bank.open(at: dir.url, options: BankFixtures.options(sync: true))
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.url.appendingPathComponent(leftover).path), file: file, line: line)
        XCTAssertEqual(reopened.generations, expectedLive, file: file, line: line)
        try reopened.beginGeneration(3)
        try reopened.append(id: 1, delta: BankFixtures.pgdDelta(count: config.elementCount, seed: 5), view: .identity, metadata: .zero)
        try reopened.sealGeneration()
        XCTAssertEqual(reopened.generations, [2, 3].filter { $0 == 3 || expectedLive.contains($0) }, file: file, line: line)
        XCTAssertTrue(BankReader.verify(at: dir.url).ignoredFiles.isEmpty, file: file, line: line)
    }

    func test_crashWhileWritingRecords_leavesThePreviousGenerationsReadable() throws { try crash(at: .beforeSeal) }

    func test_crashBetweenSegmentRenameAndManifest_discardsTheOrphanOnReopen() throws { try crash(at: .afterSegmentRename) }

    func test_crashAfterManifest_beforeDeletion_deletesTheStaleGenerationOnReopen() throws { try crash(at: .afterManifest) }

    func test_strayManifestTemporary_isIgnored_andRemovedOnOpen() throws {
        let dir = TempDirectory("bank-crash-manifest")
        let bank = try Bank.create(at: dir.url, config: BankFixtures.config(), options: BankFixtures.options())
        try BankFixtures.fill(bank, generations: [0], ids: [1])
        bank.close()
        let tmp = dir.url.appendingPathComponent(BankLayout.manifestName + ".tmp")
        try Data([1, 2, 3]).write(to: tmp)  // a half-written replacement
        XCTAssertEqual(try BankReader.open(at: dir.url).generations, [0])
        _ = try Bank.open(at: dir.url, options: BankFixtures.options())
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.path))
    }
}
