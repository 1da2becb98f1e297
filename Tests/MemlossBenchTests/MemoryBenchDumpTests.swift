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

    /// A seconds-long bench: SmallCNN ×0.25 on the embedded MNIST, 2 batches of 8, 2 attack steps.
    private func tinyConfig(codec: String, window: Int = 1, scratch dir: TempDirectory) -> MemoryBenchConfig {
        var c = MemoryBenchConfig()
        c.width = 0.25
        c.batch = 8
        c.batches = 2
        c.attackSteps = 2
        c.window = window
        c.codec = codec
        c.scratch = dir.url.path
        return c
    }

    func test_dumpDeltas_writesTheLastFillEpochsDeltaAndImages_asNPY() throws {
        let dir = TempDirectory("bench-memory-dump")
        var c = tinyConfig(codec: "q8rc", scratch: dir)
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
        let side = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: dir.url.appendingPathComponent("d-meta.json"))) as? [String: Any])
        let ids = try XCTUnwrap(side["sampleIDs"] as? [Int])
        XCTAssertEqual(ids.count, 16)
        XCTAssertEqual(Set(ids), Set(0..<16), "the population is the first batches × batch samples, each once per epoch")
        XCTAssertEqual(side["generation"] as? Int, 0)
        XCTAssertEqual(side["perSampleStartNoise"] as? Bool, false)
        XCTAssertNil(side["noiseSeed"], "no per-sample noise, no seed")
    }

    /// `--codec q8rcn` stores δ with the regenerated start noise taken out, so it needs the per-sample
    /// start; without it the bench refuses with a message naming the flag, and with it the disk bank is
    /// a real q8rcn bank whose entries are smaller than q8's by the codec table's
    /// saving and whose mem term matches the float32 RAM store's.
    func test_q8rcnDiskBank_needsPerSampleStartNoise_andRunsWithIt() throws {
        let dir = TempDirectory("bench-memory-q8rcn")
        var c = tinyConfig(codec: "q8rcn", window: 2, scratch: dir)
        XCTAssertThrowsError(try MemoryBench.run(c)) { error in
            XCTAssertTrue("\(error)".contains("--per-sample-start-noise"), "\(error)")
        }
        c.perSampleStartNoise = true
        let r = try MemoryBench.run(c)
        XCTAssertEqual(r.codec, "q8rcn")
        XCTAssertGreaterThan(r.bankBytesPerEntry, 0)
        // A generation file also holds an index slot for every dataset sample, so compare against the
        // same run with a q8 bank: the per-entry saving is the codec table's q8 − q8rcn record size.
        c.codec = "q8"
        let q8Run = try MemoryBench.run(c)
        let q8 = try XCTUnwrap(r.codecs.first { $0.codec == "q8" }), q8rcn = try XCTUnwrap(r.codecs.first { $0.codec == "q8rcn" })
        let saving = q8.bytesPerEntry - q8rcn.bytesPerEntry
        XCTAssertGreaterThan(saving, 0)
        XCTAssertEqual(q8Run.bankBytesPerEntry - r.bankBytesPerEntry, saving, accuracy: saving * 0.5,
                       "the disk bank's entries are q8rcn records (q8 run \(q8Run.bankBytesPerEntry), q8rcn run \(r.bankBytesPerEntry))")
        XCTAssertLessThan(r.memTermMeanAbsDifference, 1e-2 * max(1, abs(r.memTermMean)), "disk (q8rcn) and RAM (f32) terms agree")
    }
}
