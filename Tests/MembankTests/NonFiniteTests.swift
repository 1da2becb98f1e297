// NonFiniteTests.swift: `membank` on banks whose records carry NaN/∞ behind a valid record checksum
// (the fault-injection finding of issue 14: `stats` trapped, `verify`, `info` and `export` accepted
// the bank). A small f32 bank is written through the public API, then one payload value or one
// metadata field is overwritten and the record's CRC32C recomputed.

import Foundation
import MembankCore
import MemoryBank
import SystemIO
import XCTest
import _TestSupport

final class NonFiniteTests: XCTestCase {
    private var dir: TempDirectory!
    private var bank: URL { dir.url.appendingPathComponent("bank") }

    override func setUpWithError() throws {
        dir = TempDirectory("membank-nonfinite")
        let config = BankConfig(sampleCount: 4, shape: [1, 2, 3], epsilon: 0.25, norm: .linf, codec: .f32,
                                window: 1, stride: 1, createdBy: "{\"test\": true}")
        let b = try Bank.create(at: bank, config: config, options: Bank.Options(queueCapacity: 8, writeBufferBytes: 4096, sync: false))
        try b.beginGeneration(0)
        for id in 0..<3 {
            let delta = (0..<6).map { Float(($0 + id) % 5 - 2) * 0.1 }
            try b.append(id: id, delta: delta, view: .identity,
                         metadata: EntryMetadata(label: Int32(id), pY: 0.5, margin: Float(id) - 1, loss: 1))
        }
        try b.sealGeneration()
        b.close()
    }

    /// Overwrites 4 bytes at `field` (relative to record `id`'s start) with `value`, fixes the record CRC.
    private func patchRecord(id: Int, field: Int, value: Float) throws {
        let url = MembankTestSupport.segmentURL(bank, 0)
        var b = [UInt8](try Data(contentsOf: url))
        let offset = MembankTestSupport.recordOffset(b, id: id)
        for k in 0..<4 { b[offset + field + k] = UInt8(truncatingIfNeeded: value.bitPattern >> UInt32(8 * k)) }
        let stored = Int(MembankTestSupport.le(b, offset + 40, 4))
        var crc = CRC32C()
        crc.update(b[offset..<(offset + 44)])
        crc.update(b[(offset + 48)..<(offset + 48 + stored)])
        for k in 0..<4 { b[offset + 44 + k] = UInt8(truncatingIfNeeded: crc.value >> UInt32(8 * k)) }
        try Data(b).write(to: url)
    }

    func test_nanDelta_statsSkipAndCountIt_verifyNamesIt() throws {
        try patchRecord(id: 1, field: 48 + 4 * 3, value: .nan)
        let inspected = try InspectedBank.open(bank.path)
        let stats = try BankStatistics.compute(inspected, generation: 0)
        XCTAssertEqual(stats.entries, 2)
        XCTAssertTrue(BankStatistics.text(stats).contains("skipped 1 damaged"), BankStatistics.text(stats))

        let report = VerifyReport.run(path: bank.path)
        XCTAssertFalse(report.intact)
        XCTAssertEqual(report.problems.count, 1, "\(report.problems)")
        XCTAssertEqual(report.problems.first?.generation, 0)
        XCTAssertEqual(report.problems.first?.sample, 1)
        XCTAssertTrue(report.problems.first?.message.contains("δ[3]") ?? false, report.text)

        let export = try BankExport.collect(inspected, generation: 0)
        XCTAssertEqual(export.ids, [0, 2])
        XCTAssertTrue(try BankInfo.compute(inspected).text.contains("skipped 1 damaged"))
    }

    func test_nanDelta_theBinaryExitsWithAnErrorOrCounts_neverASignal() throws {
        try patchRecord(id: 0, field: 48, value: .nan)
        for command in [["stats", bank.path], ["verify", bank.path], ["info", bank.path], ["stats", bank.path, "--json"],
                        ["diff", bank.path, "--all"], ["diff", bank.path, "0"],
                        ["export", bank.path, "--npy", dir.url.appendingPathComponent("d.npy").path]] {
            let r = try MembankTestSupport.run(command)
            XCTAssertTrue([0, 1].contains(r.status), "\(command): status \(r.status), stderr \(r.err)")
            if r.status != 0 && command[0] != "verify" {
                XCTAssertTrue(r.err.contains("\nhint: "), "\(command): \(r.err)")
            }
        }
    }

    func test_nonFiniteMetadata_verifyNamesTheField_statsLeaveItOutOfTheSummaries() throws {
        try patchRecord(id: 2, field: 16, value: .nan)  // pY
        let report = VerifyReport.run(path: bank.path)
        XCTAssertFalse(report.intact)
        XCTAssertEqual(report.problems.map(\.sample), [2])
        XCTAssertTrue(report.problems.first?.message.contains("pY") ?? false, report.text)

        let stats = try BankStatistics.compute(try InspectedBank.open(bank.path), generation: 0)
        XCTAssertEqual(stats.entries, 3)
        XCTAssertEqual(stats.pY.count, 2)
        XCTAssertNoThrow(try JSONEncoder().encode(stats), "stats --json must stay encodable")
        XCTAssertTrue(BankStatistics.text(stats).contains("non-finite"), BankStatistics.text(stats))
    }

    /// `info --json` prints createdBy; a non-finite number there used to make JSONEncoder throw.
    func test_nonFiniteCreatedByNumber_encodesAsAString() throws {
        let data = try JSONEncoder().encode(JSONValue.array([.number(.infinity), .number(.nan), .number(2)]))
        XCTAssertEqual(String(decoding: data, as: UTF8.self), "[\"inf\",\"nan\",2]")
    }
}
