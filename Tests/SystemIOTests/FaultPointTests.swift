// FaultPointTests.swift: a fault point is inert without its variables; with MEMLOSS_FAULT_LOG a child
// process logs every point it passes; with MEMLOSS_KILL_AT=name#n it dies by SIGKILL at the n-th hit.
// The child is this test binary re-run on one test that only hits points.

import Foundation
import SystemIO
import XCTest

final class FaultPointTests: XCTestCase {
    /// Runs in the child: three hits of "a", one of "b".
    func test_child_hitsPoints() {
        guard ProcessInfo.processInfo.environment["MEMLOSS_FAULT_CHILD"] != nil else { return }
        for _ in 0..<3 { FaultPoint.hit("test.a") }
        FaultPoint.hit("test.b")
        print("child finished")
    }

    private func runChild(_ env: [String: String]) throws -> (status: Int32, reason: Process.TerminationReason) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
        #if os(Linux)
        p.arguments = ["SystemIOTests.FaultPointTests/test_child_hitsPoints"]
        #endif
        var e = ProcessInfo.processInfo.environment
        e["MEMLOSS_FAULT_CHILD"] = "1"
        for (k, v) in env { e[k] = v }
        p.environment = e
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        return (p.terminationStatus, p.terminationReason)
    }

    func test_inertWithoutVariables() {
        if ProcessInfo.processInfo.environment["MEMLOSS_KILL_AT"] == nil {
            FaultPoint.hit("test.inert")  // must return
            XCTAssertFalse(FaultPoint.isActive)
        }
    }

    func test_log_listsEveryHit_andKillAt_diesAtTheChosenOccurrence() throws {
        #if os(Linux)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("faultpoint-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let log = dir.appendingPathComponent("log").path
        let clean = try runChild(["MEMLOSS_FAULT_LOG": log])
        XCTAssertEqual(clean.reason, .exit)
        XCTAssertEqual(try String(contentsOfFile: log, encoding: .utf8), "test.a\ntest.a\ntest.a\ntest.b\n")

        let log2 = dir.appendingPathComponent("log2").path
        let killed = try runChild(["MEMLOSS_FAULT_LOG": log2, "MEMLOSS_KILL_AT": "test.a#2"])
        XCTAssertEqual(killed.reason, .uncaughtSignal)
        XCTAssertEqual(killed.status, SIGKILL)
        XCTAssertEqual(try String(contentsOfFile: log2, encoding: .utf8), "test.a\ntest.a\n")
        #endif
    }
}
