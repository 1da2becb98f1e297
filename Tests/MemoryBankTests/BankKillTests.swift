// BankKillTests.swift: a real process writing a bank is killed (SIGKILL, SystemIO.FaultPoint) at each
// durable step of a mid-epoch checkpoint, of a seal and of a resume (docs/format/membank-v1.md §3.2);
// resuming from the checkpoint's mark then always recovers every record up to it, and the generation
// sealed after the rest of the epoch is byte-identical to an uninterrupted run's. The child is this
// test binary re-run on `test_child_runsTheScenario`.

import Foundation
import SystemIO
@testable import MemoryBank
import _TestSupport
import XCTest

final class BankKillTests: XCTestCase {
    typealias S = ResumeScenario

    /// Runs in the child only: phase "write" (the scenario: checkpoint, rest of the epoch, seal) or
    /// "resume" (open with the mark in MEMLOSS_BANK_CHILD_MARK, rest of the epoch, seal).
    func test_child_runsTheScenario() throws {
        let env = ProcessInfo.processInfo.environment
        guard let path = env["MEMLOSS_BANK_CHILD_DIR"] else { return }
        let url = URL(fileURLWithPath: path)
        if env["MEMLOSS_BANK_CHILD_PHASE"] == "resume" {
            let mark = try JSONDecoder().decode(OpenGenerationMark.self, from: Data((env["MEMLOSS_BANK_CHILD_MARK"] ?? "").utf8))
            let bank = try Bank.open(at: url, options: S.options(sync: true), resuming: mark)
            try S.append(bank, S.order[S.checkpointAfter...])
            try bank.sealGeneration()
        } else {
            let (bank, _) = try S.begin(at: url, sync: true)
            try S.append(bank, S.order[S.checkpointAfter...])
            try bank.sealGeneration()
        }
    }

    private func runChild(dir: URL, phase: String, mark: OpenGenerationMark? = nil, killAt: String?, log: String? = nil) throws -> Process.TerminationReason {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
        p.arguments = ["MemoryBankTests.BankKillTests/test_child_runsTheScenario"]
        var e = ProcessInfo.processInfo.environment
        e["MEMLOSS_BANK_CHILD_DIR"] = dir.path
        e["MEMLOSS_BANK_CHILD_PHASE"] = phase
        if let mark { e["MEMLOSS_BANK_CHILD_MARK"] = String(decoding: try JSONEncoder().encode(mark), as: UTF8.self) }
        e["MEMLOSS_KILL_AT"] = killAt
        e["MEMLOSS_FAULT_LOG"] = log
        p.environment = e
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        return p.terminationReason
    }

    /// Resumes in this process, finishes the epoch, and compares with the uninterrupted run.
    private func assertResumesExactly(_ dir: URL, mark: OpenGenerationMark, reference: [UInt8], _ label: String) throws {
        let bank = try Bank.open(at: dir, options: S.options(sync: true), resuming: mark)
        let report = try XCTUnwrap(bank.resumeReport, label)
        XCTAssertTrue(report.isIntact, "\(label): \(report)")
        try S.append(bank, S.order[S.checkpointAfter...])
        try bank.sealGeneration()
        bank.close()
        XCTAssertTrue(try BankFixtures.readBytes(BankFixtures.segmentURL(dir, S.generation)) == reference, "\(label): segment differs")
        XCTAssertTrue(BankReader.verify(at: dir).isIntact, label)
    }

    func test_killAtEveryCheckpointSealAndResumePoint_resumesByteIdentically() throws {
        #if os(Linux)
        let straight = try S.straight(checkpoint: true)
        let mark = try XCTUnwrap(straight.mark)

        // An uninterrupted child passes exactly these points (generations 0 and 1 are sealed first).
        let root = TempDirectory("bank-kill")
        let log = root.path("points").path
        XCTAssertEqual(try runChild(dir: root.path("clean"), phase: "write", killAt: nil, log: log), .exit)
        let seal = ["bank.seal.afterSegmentSync", "bank.seal.afterRename", "bank.seal.afterManifest", "bank.seal.afterRetention"]
        XCTAssertEqual(try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").map(String.init),
                       seal + seal + ["bank.checkpoint.afterSync"] + seal)
        XCTAssertTrue(try BankFixtures.readBytes(BankFixtures.segmentURL(root.path("clean"), S.generation)) == straight.bytes)

        // Killed while writing: at the checkpoint and at every step of generation 2's seal.
        for point in ["bank.checkpoint.afterSync#1"] + seal.map({ $0 + "#3" }) {
            let dir = root.path("write-\(point)")
            XCTAssertEqual(try runChild(dir: dir, phase: "write", killAt: point), .uncaughtSignal, point)
            try assertResumesExactly(dir, mark: mark, reference: straight.bytes, point)
        }

        // Killed while resuming, from an open segment and from a sealed, listed one.
        for (state, points) in [("bank.checkpoint.afterSync#1", ["bank.resume.afterTruncate", "bank.resume.afterCleanup"]),
                                ("bank.seal.afterRetention#3", ["bank.resume.afterManifest", "bank.resume.afterTruncate",
                                                                "bank.resume.afterCleanup"])] {
            for point in points {
                let label = "\(state) then \(point)"
                let dir = root.path("resume-\(state)-\(point)")
                XCTAssertEqual(try runChild(dir: dir, phase: "write", killAt: state), .uncaughtSignal, label)
                XCTAssertEqual(try runChild(dir: dir, phase: "resume", mark: mark, killAt: point), .uncaughtSignal, label)
                try assertResumesExactly(dir, mark: mark, reference: straight.bytes, label)
            }
        }
        #endif
    }
}
