// MemoryBenchDumpTests.swift: `memloss bench memory --dump-deltas` (MemlossBench/MemoryBench.swift): the
// δ of the last fill epoch and their clean images written as NumPy 1.0 `.npy` files of shape
// [count, C, H, W], header padded to 64 bytes, and δ + x inside the ε-ball and the [0, 1] box.

import Foundation
import MemlossBench
import XCTest
import _TestSupport

final class MemoryBenchDumpTests: XCTestCase {
    /// The float32 values and the header text of a `.npy` file written by the bench.
    private func readNPY(_ url: URL) throws -> (header: String, values: [Float]) {
        let bytes = [UInt8](try Data(contentsOf: url))
        XCTAssertEqual(Array(bytes[0..<8]), [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0])
        let length = Int(bytes[8]) | Int(bytes[9]) << 8
        XCTAssertEqual((10 + length) % 64, 0, "data aligned to 64")
        let header = String(decoding: bytes[10..<(10 + length)], as: UTF8.self)
        var values: [Float] = []
        var i = 10 + length
        while i + 4 <= bytes.count {
            let b = UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2]) << 16 | UInt32(bytes[i + 3]) << 24
            values.append(Float(bitPattern: b))
            i += 4
        }
        XCTAssertEqual(i, bytes.count)
        return (header, values)
    }

    func test_dumpDeltas_writesTheLastFillEpochsDeltaAndImages_asNPY() throws {
        let dir = TempDirectory("bench-memory-dump")
        var c = MemoryBenchConfig()
        c.width = 0.25
        c.batch = 8
        c.batches = 2
        c.attackSteps = 2
        c.codec = "q8rc"
        c.scratch = dir.url.path
        c.dumpDeltas = dir.url.appendingPathComponent("d.npy").path
        let r = try MemoryBench.run(c)
        XCTAssertEqual(r.codecs.map(\.codec), ["f32", "f16", "q8", "q4", "levels", "q8rc", "q8rcn"])
        let (dh, delta) = try readNPY(dir.url.appendingPathComponent("d.npy"))
        let (xh, images) = try readNPY(dir.url.appendingPathComponent("d-images.npy"))
        XCTAssertTrue(dh.hasPrefix("{'descr': '<f4', 'fortran_order': False, 'shape': (16, 1, 28, 28), }"), dh)
        XCTAssertEqual(dh, xh)
        XCTAssertEqual(delta.count, 16 * 784)
        XCTAssertEqual(images.count, delta.count)
        let eps = r.epsilon
        for i in 0..<delta.count {
            XCTAssertLessThanOrEqual(abs(delta[i]), eps * (1 + 1e-6), "δ[\(i)] outside the ε-ball")
            XCTAssertTrue(images[i] + delta[i] >= -1e-6 && images[i] + delta[i] <= 1 + 1e-6, "x + δ [\(i)] outside the box")
        }
        XCTAssertGreaterThan(delta.filter { $0 != 0 }.count, delta.count / 4, "a real attack moved the pixels")
    }
}
