// Assertions.swift: numeric test helpers shared by every test target: closeness checks that print
// the first mismatches side by side (llm.c's check_tensor), and a temporary directory.

import Foundation
import Tensors
import XCTest

/// Asserts |a − b| ≤ atol + rtol·|b| elementwise; on failure reports the first 5 mismatches and the
/// max absolute difference.
public func assertClose(_ actual: [Float], _ expected: [Float], atol: Float = 1e-5, rtol: Float = 1e-4,
                        _ message: @autoclosure () -> String = "",
                        file: StaticString = #filePath, line: UInt = #line) {
    guard actual.count == expected.count else {
        XCTFail("assertClose: count \(actual.count) vs expected \(expected.count). \(message())", file: file, line: line)
        return
    }
    var maxDiff: Float = 0
    var bad: [String] = []
    var badCount = 0
    for i in 0..<actual.count {
        let d = abs(actual[i] - expected[i])
        if !(d <= atol + rtol * abs(expected[i])) {
            badCount += 1
            if bad.count < 5 { bad.append("  [\(i)] got \(actual[i]) expected \(expected[i]) (diff \(d))") }
        }
        if d > maxDiff || d.isNaN { maxDiff = d }
    }
    if badCount > 0 {
        XCTFail("assertClose: \(badCount)/\(actual.count) mismatches, max |diff| \(maxDiff) (atol \(atol), rtol \(rtol)). \(message())\n"
                + bad.joined(separator: "\n"), file: file, line: line)
    }
}

/// Tensor form of `assertClose`; also checks shapes.
public func assertClose(_ actual: Tensor, _ expected: Tensor, atol: Float = 1e-5, rtol: Float = 1e-4,
                        _ message: @autoclosure () -> String = "",
                        file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(actual.shape, expected.shape, "shape mismatch. \(message())", file: file, line: line)
    assertClose(actual.scalars, expected.scalars, atol: atol, rtol: rtol, message(), file: file, line: line)
}

/// Largest absolute elementwise difference.
public func maxAbsDifference(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count)
    var m: Float = 0
    for i in 0..<a.count { m = max(m, abs(a[i] - b[i])) }
    return m
}

/// `max |a − b| / max |b|`: the difference relative to the tensor's scale (elementwise relative
/// differences are meaningless where a ReLU or a cancellation leaves values near zero).
public func relativeDifference(_ a: Tensor, _ b: Tensor) -> Float {
    precondition(a.shape == b.shape, "relativeDifference: \(a.shape) vs \(b.shape)")
    let scale = b.scalars.reduce(Float(0)) { max($0, abs($1)) }
    return maxAbsDifference(a.scalars, b.scalars) / max(scale, .leastNormalMagnitude)
}

/// A fresh directory under the system temporary directory, removed on `remove()` or deinit.
public final class TempDirectory {
    public let url: URL
    public init(_ label: String = "memloss-test") {
        url = FileManager.default.temporaryDirectory
            .appendingPathComponent("\(label)-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    public func path(_ name: String) -> URL { url.appendingPathComponent(name) }
    public func remove() { try? FileManager.default.removeItem(at: url) }
    deinit { remove() }
}

/// `count` values drawn from U(low, high) with a seeded generator.
public func seededUniform(_ count: Int, low: Float = -1, high: Float = 1, seed: UInt64) -> [Float] {
    var g = SplitMix64(seed: seed)
    return (0..<count).map { _ in low + (high - low) * g.nextFloat() }
}
