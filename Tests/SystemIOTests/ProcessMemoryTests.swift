// ProcessMemoryTests.swift: the one /proc reader: the statm and "kB" parsers on fixed text, and on Linux
// the live figures: RSS fields present, file-backed RSS grows when a mapped file is touched and falls
// back when its pages are dropped, the page cache is reported, and the peak can be reset.

import Foundation
import SystemIO
import XCTest
import _TestSupport

final class ProcessMemoryTests: XCTestCase {
    func test_parsers_readTheDocumentedFields() {
        XCTAssertEqual(ProcessMemory.parseStatmSharedPages(Array("1234 567 89 10 0 300 0\n".utf8)), 89)
        XCTAssertEqual(ProcessMemory.parseStatmSharedPages(Array("1 2 3".utf8)), 3, "no trailing newline")
        XCTAssertNil(ProcessMemory.parseStatmSharedPages(Array("1 2".utf8)))
        XCTAssertNil(ProcessMemory.parseStatmSharedPages([UInt8]()))
        let status = ProcessMemory.parseKilobyteFields("Name:\tswift\nVmHWM:\t  2048 kB\nVmRSS:\t1024 kB\nThreads:\t4\n")
        XCTAssertEqual(status, ["VmHWM": 2048 * 1024, "VmRSS": 1024 * 1024])
    }

    /// A reset counts only when the status read after it shows it: a kernel that takes the write and
    /// keeps the lifetime peak, or reports no VmHWM, must not pass for one that reset.
    func test_peakWasReset_acceptsOnlyAPeakNearTheCurrentRSS() {
        let mib = 1 << 20
        XCTAssertTrue(ProcessMemory.peakWasReset(["VmHWM": 100 * mib, "VmRSS": 100 * mib]))
        XCTAssertTrue(ProcessMemory.peakWasReset(["VmHWM": 100 * mib + ProcessMemory.resetSlack, "VmRSS": 100 * mib]))
        XCTAssertFalse(ProcessMemory.peakWasReset(["VmHWM": 900 * mib, "VmRSS": 100 * mib]), "the peak was kept")
        XCTAssertFalse(ProcessMemory.peakWasReset(["VmRSS": 100 * mib]), "no VmHWM")
        XCTAssertFalse(ProcessMemory.peakWasReset(["VmHWM": 0, "VmRSS": 0]))
        XCTAssertFalse(ProcessMemory.peakWasReset([:]))
    }

    func test_liveFigures_onLinux() throws {
        #if os(Linux)
        let status = ProcessMemory.status()
        XCTAssertGreaterThan(status["VmRSS"] ?? 0, 0)
        XCTAssertNotNil(status["RssFile"])
        XCTAssertGreaterThan(ProcessMemory.currentResidentBytes, 0)
        XCTAssertGreaterThanOrEqual(ProcessMemory.peakResidentBytes, ProcessMemory.currentResidentBytes / 2)
        XCTAssertNotNil(ProcessMemory.pageCacheBytes)

        // Touch 32 MiB of a mapped file: file-backed RSS must grow by most of it, and fall when dropped.
        let dir = TempDirectory("procmem")
        let path = dir.path("big.bin").path
        try AtomicFile.replace([UInt8](repeating: 7, count: 32 << 20), atPath: path)
        let f = try MappedFile(path: path)
        let before = try XCTUnwrap(ProcessMemory.residentFileBytes())
        var sum = 0
        for offset in stride(from: 0, to: f.count, by: 4096) { sum &+= Int(f.byte(at: offset)) }
        XCTAssertEqual(sum, 7 * (f.count / 4096))
        let touched = try XCTUnwrap(ProcessMemory.residentFileBytes())
        XCTAssertGreaterThan(touched - before, 16 << 20, "statm's file-backed RSS sees the touched pages")
        f.releaseResidentPages()
        let released = try XCTUnwrap(ProcessMemory.residentFileBytes())
        XCTAssertLessThan(released, touched - (16 << 20), "dropping the pages lowers it again")

        // Where the reset reports success, it really did reset: the peak sits near the current RSS.
        if ProcessMemory.resetPeak() {
            XCTAssertLessThanOrEqual(ProcessMemory.peakResidentBytes,
                                     ProcessMemory.currentResidentBytes + ProcessMemory.resetSlack + (8 << 20))
        }
        #else
        throw XCTSkip("/proc is Linux-only")
        #endif
    }
}
