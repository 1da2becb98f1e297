// BankBackpressureTests.swift: the bank's append blocking on a full writer queue (SystemIO's
// BoundedQueue) without losing or reordering entries.

import Foundation
@testable import MemoryBank
import _TestSupport
import XCTest

final class BankBackpressureTests: XCTestCase {
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
