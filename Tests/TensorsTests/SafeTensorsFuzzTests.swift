// SafeTensorsFuzzTests.swift: the safetensors reader's fuzz target (docs/fuzzing.md): the committed
// corpus in Fuzz/safetensors and seeded mutants of it through `SafeTensorsFile.decode` and the typed
// accessors; every input must decode or throw a `SafeTensorsError` with a hint, never trap. Also the
// regression test for shapes whose products overflow, and the corpus generator.

import Foundation
import Tensors
import XCTest
import _TestSupport

final class SafeTensorsFuzzTests: XCTestCase {
    static let corpusDirectory = Fuzz.corpusDirectory(target: "TensorsTests", name: "safetensors")

    /// Mutants per corpus file in the default suite (docs/fuzzing.md "Targets").
    static let defaultIterations = 5000

    /// Decodes one input and touches every value the reader returns.
    static func exercise(_ bytes: [UInt8]) -> Bool {
        do {
            let file = try SafeTensorsFile.decode(bytes, source: "fuzz.safetensors")
            for e in file.entries {
                XCTAssertEqual(e.bytes.count, e.elementCount * e.dtype.byteSize, e.name)
                if e.dtype == .f32 { _ = try e.tensor() }
                if e.dtype == .i64 { _ = try e.int64Values() }
            }
            return true
        } catch {
            let text = "\(error)"
            XCTAssertTrue(text.contains("fuzz.safetensors") || text.hasPrefix("entry "), "error does not name the file: \(text)")
            XCTAssertTrue(text.split(separator: "\n").last?.hasPrefix("hint:") == true, "no hint line: \(text)")
            return false
        }
    }

    func test_fuzz_safetensorsReader_neverTraps() throws {
        let corpus = try Fuzz.loadCorpus(Self.corpusDirectory)
        XCTAssertGreaterThanOrEqual(corpus.count, 3, "corpus missing: run test_committedCorpus_equalsTheGenerator with MEMLOSS_WRITE_CORPUS=1")
        for input in corpus where !input.name.hasPrefix("regress-") {
            XCTAssertTrue(Self.exercise(input.bytes), "corpus file \(input.name) must decode")
        }
        var accepted = 0
        let n = Fuzz.run(name: "safetensors", corpus: corpus, iterations: Fuzz.iterations(default: Self.defaultIterations)) { bytes in
            if Self.exercise(bytes) { accepted += 1 }
        }
        XCTAssertGreaterThan(n, corpus.count)
        XCTAssertGreaterThan(accepted, corpus.count, "no mutant decodes: the mutator or the corpus is broken")
    }

    func test_shapeWhoseNonZeroProductOverflows_isRefused_evenForAZeroSizeTensor() {
        for shape in ["[0, 4611686018427387904, 4611686018427387904]", "[4294967296, 4294967296, 0]"] {
            var h = Array(#"{"w":{"dtype":"F32","shape":\#(shape),"data_offsets":[0,0]}}"#.utf8)
            h += repeatElement(UInt8(ascii: " "), count: (8 - h.count % 8) % 8)
            let bytes = (0..<8).map { UInt8(truncatingIfNeeded: UInt64(h.count) >> (8 * UInt64($0))) } + h
            XCTAssertThrowsError(try SafeTensorsFile.decode(bytes, source: "t.safetensors"), shape) { error in
                guard case .invalidField(_, "w", "shape", _, _)? = error as? SafeTensorsError else { return XCTFail("\(error)") }
            }
        }
    }

    /// The corpus generator: a file with metadata, F32 and I64 entries; a zero-size tensor beside
    /// other dtypes; a file without entries.
    static func corpusFiles() -> [(name: String, bytes: [UInt8])] {
        let weights = SafeTensorsFile(metadata: ["format": "pt", "epoch": "3"], entries: [
            SafeTensorsEntry(name: "conv.weight", tensor: Tensor(shape: [4, 1, 3, 3], values: (0..<36).map { Float($0) / 8 - 2 })),
            SafeTensorsEntry(name: "conv.bias", tensor: Tensor(shape: [4], values: [0.5, -0.25, 1, 0])),
            SafeTensorsEntry(name: "bn.num_batches_tracked", int64Scalars: [12]),
            SafeTensorsEntry(name: "fc.weight", tensor: Tensor(shape: [2, 8], values: (0..<16).map { Float($0) })),
        ])
        let mixed = SafeTensorsFile(entries: [
            SafeTensorsEntry(name: "empty", dtype: .f32, shape: [0, 3], bytes: []),
            SafeTensorsEntry(name: "step", int64Scalars: [1, 2, 3], shape: [3]),
            SafeTensorsEntry(name: "mask", dtype: .u8, shape: [5], bytes: [1, 0, 1, 1, 0]),
            SafeTensorsEntry(name: "half", dtype: .f16, shape: [2], bytes: [0, 0x3C, 0, 0xC0]),
        ])
        return [("mixed-dtypes.safetensors", mixed.encoded()), ("no-entries.safetensors", SafeTensorsFile(metadata: ["note": "none"]).encoded()),
                ("weights.safetensors", weights.encoded())]
    }

    /// The committed corpus holds exactly the generator's files (plus `regress-*` mutants that once failed).
    /// MEMLOSS_WRITE_CORPUS=1 rewrites them instead.
    func test_committedCorpus_equalsTheGenerator() throws {
        let dir = Self.corpusDirectory
        if ProcessInfo.processInfo.environment["MEMLOSS_WRITE_CORPUS"] == "1" {
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            for f in Self.corpusFiles() { try Data(f.bytes).write(to: dir.appendingPathComponent(f.name)) }
        }
        let committed = try Fuzz.loadCorpus(dir).filter { !$0.name.hasPrefix("regress-") }
        XCTAssertEqual(committed.map(\.name), Self.corpusFiles().map(\.name))
        for (c, g) in zip(committed, Self.corpusFiles()) { XCTAssertEqual(c.bytes, g.bytes, c.name) }
    }
}
