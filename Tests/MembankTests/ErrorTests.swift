// ErrorTests.swift: clear errors, non-zero exit status and no stack trace for a missing bank, a bank
// of an unknown major version, an ID out of range, a generation the bank does not hold, a sample
// absent from a generation, and a data set that does not fit.

import Foundation
import MembankCore
import MemoryBank
import SystemIO
import XCTest
import _TestSupport

final class ErrorTests: XCTestCase {
    private func assertFails(_ args: [String], mentions: [String], line: UInt = #line) throws {
        let r = try MembankTestSupport.run(args)
        XCTAssertEqual(r.status, 1, r.out + r.err, line: line)
        for m in mentions { XCTAssert(r.err.contains(m), "stderr lacks '\(m)': \(r.err)", line: line) }
        XCTAssert(r.err.contains("hint:"), r.err, line: line)
        XCTAssertFalse(r.err.contains("Fatal error") || r.err.contains("Stack dump"), r.err, line: line)
    }

    func test_missingBank_namesThePath() throws {
        XCTAssertThrowsError(try InspectedBank.open("/nonexistent/run/bank")) { e in
            XCTAssertEqual(e as? MembankError, .bankMissing(path: "/nonexistent/run/bank", reason: "no such file or directory"))
        }
        try assertFails(["info", "/nonexistent/run/bank"], mentions: ["/nonexistent/run/bank", "no such file"])
        let dir = TempDirectory("membank-empty")
        try assertFails(["stats", dir.url.path], mentions: [dir.url.path, "manifest.mbm"])
    }

    func test_unknownMajorVersion_saysFoundAndSupported() throws {
        let dir = TempDirectory("membank-version")
        let bank = try MembankFixture.copy(into: dir)
        let manifest = bank.appendingPathComponent("manifest.mbm")
        var b = [UInt8](try Data(contentsOf: manifest))
        b[8] = 2  // versionMajor (u16 LE at offset 8), then re-seal the manifest checksum
        let crc = CRC32C.checksum(Array(b[0..<(b.count - 4)]))
        for i in 0..<4 { b[b.count - 4 + i] = UInt8(truncatingIfNeeded: crc >> (8 * UInt32(i))) }
        try Data(b).write(to: manifest)
        XCTAssertThrowsError(try InspectedBank.open(bank.path)) { e in
            guard case .bank(.unsupportedMajor(_, let found, _, let reader))? = e as? MembankError else { return XCTFail("\(e)") }
            XCTAssertEqual(found, 2)
            XCTAssertEqual(reader, 1)
        }
        try assertFails(["info", bank.path], mentions: ["manifest.mbm", "format version 2.0", "supports 1.x"])
        XCTAssertEqual(try MembankTestSupport.run(["verify", bank.path]).status, 1)
    }

    func test_idOutOfRange_namesTheIDAndTheValidRange() throws {
        let b = try InspectedBank.open(MembankFixture.shared.bank.path)
        XCTAssertThrowsError(try b.entry(id: 4000, generation: 3)) { e in
            XCTAssertEqual(e as? MembankError, .idOutOfRange(id: 4000, sampleCount: 4000))
            XCTAssert("\(e)".contains("[0, 4000)"), "\(e)")
        }
        let dir = TempDirectory("membank-range")
        try assertFails(["show", MembankFixture.shared.bank.path, "4000", "--png", dir.path("x.png").path],
                        mentions: ["sample ID 4000", "[0, 4000)"])
        try assertFails(["diff", MembankFixture.shared.bank.path, "--", "-1"], mentions: ["sample ID -1", "[0, 4000)"])
        try assertFails(["render", MembankFixture.shared.bank.path, "--ids", "1,99999", "--png", dir.path("y.png").path],
                        mentions: ["99999"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.path("x.png").path))
    }

    func test_missingGeneration_absentEntry_andBadDataSet() throws {
        let path = MembankFixture.shared.bank.path
        let dir = TempDirectory("membank-misc")
        try assertFails(["stats", path, "--generation", "9"], mentions: ["generation 9", "0, 1, 2, 3"])
        try assertFails(["show", path, "20", "--generation", "2", "--png", dir.path("a.png").path],
                        mentions: ["sample 20 has no entry in generation 2", "0, 1, 3"])
        try assertFails(["show", path, "200", "--png", dir.path("b.png").path], mentions: ["sample 200", "nor in any"])
        try assertFails(["show", path, "1", "--png", dir.path("c.png").path, "--data", "cifar10:/nonexistent/cifar"],
                        mentions: ["/nonexistent/cifar"])
        try assertFails(["export", path, "--generation", "5", "--npy", dir.path("d.npy").path], mentions: ["generation 5"])
        try assertFails(["diff", path], mentions: ["a sample ID or --all"])
    }
}
