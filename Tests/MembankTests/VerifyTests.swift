// VerifyTests.swift: `membank verify` passes on the intact fixture bank (exit status 0) and fails on
// a flipped byte in one record's payload, naming the file, the generation and the sample (exit
// status 1), both through MembankCore and through the built binary.

import Foundation
import MembankCore
import MemoryBank
import XCTest
import _TestSupport

final class VerifyTests: XCTestCase {
    func test_intactBank_verifies_withExitStatus0() throws {
        let report = VerifyReport.run(path: MembankFixture.shared.bank.path)
        XCTAssertTrue(report.intact, report.text)
        XCTAssertEqual(report.problems, [])
        XCTAssertEqual(report.generations, MembankFixture.generations)
        XCTAssertEqual(report.recordsChecked, MembankFixture.generations.reduce(0) { $0 + MembankFixture.ids(generation: $1).count })
        let r = try MembankTestSupport.run(["verify", MembankFixture.shared.bank.path])
        XCTAssertEqual(r.status, 0, r.out + r.err)
        XCTAssert(r.out.contains("intact"), r.out)
    }

    func test_flippedPayloadByte_failsVerify_namingFileGenerationAndSample() throws {
        let dir = TempDirectory("membank-verify")
        let bank = try MembankFixture.copy(into: dir)
        let segment = MembankTestSupport.segmentURL(bank, 1)
        var bytes = [UInt8](try Data(contentsOf: segment))
        let offset = MembankTestSupport.recordOffset(bytes, id: 5)
        XCTAssertGreaterThan(offset, 0)
        bytes[offset + 48 + 3] ^= 0x01  // one bit of the payload of sample 5
        try Data(bytes).write(to: segment)

        let report = VerifyReport.run(path: bank.path)
        XCTAssertFalse(report.intact)
        XCTAssertEqual(report.problems.count, 1, report.text)
        let p = try XCTUnwrap(report.problems.first)
        XCTAssertEqual(p.kind, "corruptRecord")
        XCTAssertEqual(p.generation, 1)
        XCTAssertEqual(p.sample, 5)
        XCTAssertEqual(p.file.map { ($0 as NSString).lastPathComponent }, "gen-0000000001.mbs")
        XCTAssertEqual(report.recordsChecked, MembankFixture.generations.reduce(0) { $0 + MembankFixture.ids(generation: $1).count } - 1)

        let r = try MembankTestSupport.run(["verify", bank.path])
        XCTAssertEqual(r.status, 1, r.out + r.err)
        XCTAssert(r.out.contains("gen-0000000001.mbs") && r.out.contains("generation 1") && r.out.contains("sample 5"), r.out)
        let j = try MembankTestSupport.run(["verify", bank.path, "--json"])
        XCTAssertEqual(j.status, 1)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(j.out.utf8)) as? [String: Any])
        XCTAssertEqual(json["intact"] as? Bool, false)
        let problems = try XCTUnwrap(json["problems"] as? [[String: Any]])
        XCTAssertEqual(problems.first?["sample"] as? Int, 5)
        XCTAssertEqual(problems.first?["generation"] as? Int, 1)
    }

    func test_flippedIndexByte_failsVerify_namingTheSegment() throws {
        let dir = TempDirectory("membank-verify-index")
        let bank = try MembankFixture.copy(into: dir)
        let segment = MembankTestSupport.segmentURL(bank, 2)
        var bytes = [UInt8](try Data(contentsOf: segment))
        let indexOffset = Int(MembankTestSupport.le(bytes, 88, 8))
        bytes[indexOffset + 8 * 3] ^= 0x08
        try Data(bytes).write(to: segment)
        let report = VerifyReport.run(path: bank.path)
        XCTAssertFalse(report.intact)
        XCTAssertEqual(report.problems.first?.kind, "checksumMismatch", report.text)
        XCTAssertEqual(report.problems.first?.generation, 2)
        XCTAssertEqual(try MembankTestSupport.run(["verify", bank.path]).status, 1)
    }

    func test_missingBank_failsVerify() throws {
        let report = VerifyReport.run(path: "/nonexistent/membank-bank")
        XCTAssertFalse(report.intact)
        XCTAssert(report.problems.first?.message.contains("/nonexistent/membank-bank") ?? false)
        XCTAssertEqual(try MembankTestSupport.run(["verify", "/nonexistent/membank-bank"]).status, 1)
    }
}
