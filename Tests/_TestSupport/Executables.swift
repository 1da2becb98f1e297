// Executables.swift: finding and running a product executable (`memloss`, `membank`) built beside the
// test bundle, for the tests that check what a user sees: exit status, stdout, stderr.

import Foundation
import XCTest

public enum BuiltExecutable {
    /// The executable `name` built next to the test bundle (SwiftPM puts products and the bundle in
    /// the same build directory).
    public static func url(_ name: String) -> URL {
        let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [dir, dir.deletingLastPathComponent()] {
            let u = candidate.appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: u.path) { return u }
        }
        return Bundle.main.bundleURL.appendingPathComponent(name)
    }

    /// Runs `name args…` to completion; returns the exit status, stdout and stderr.
    public static func run(_ name: String, _ args: [String], file: StaticString = #filePath,
                           line: UInt = #line) throws -> (status: Int32, out: String, err: String) {
        let binary = url(name)
        XCTAssert(FileManager.default.isExecutableFile(atPath: binary.path), "\(name) not found at \(binary.path)",
                  file: file, line: line)
        let p = Process()
        p.executableURL = binary
        p.arguments = args
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }
}
