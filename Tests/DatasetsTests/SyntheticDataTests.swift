// SyntheticDataTests.swift: the .mlds format (header layout, reader checks) and the synthetic-v1
// generator: deterministic from the seed, each sample reproducible on its own, learnable (a nearest
// class-mean classifier separates the classes), and conversion of another dataset to .mlds.

import Datasets
import Foundation
import XCTest
import _TestSupport

final class SyntheticDataTests: XCTestCase {
    let spec = SyntheticSpec(count: 300, shape: ImageShape(channels: 3, height: 16, width: 16), classCount: 10, seed: 42)

    func test_header_hasTheDocumentedFieldOffsets() throws {
        let tmp = TempDirectory("synth")
        let path = tmp.path("a.mlds").path
        try SyntheticGenerator(spec).write(to: path)
        let b = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        func le(_ o: Int, _ n: Int) -> UInt64 { (0..<n).reversed().reduce(0) { $0 << 8 | UInt64(b[o + $1]) } }
        XCTAssertEqual(Array(b[0..<8]), [0x4D, 0x4C, 0x44, 0x53, 0x0D, 0x0A, 0x1A, 0x0A])
        XCTAssertEqual(le(8, 2), 1)       // versionMajor
        XCTAssertEqual(le(10, 2), 0)      // versionMinor
        XCTAssertEqual(le(12, 4), 128)    // headerBytes
        XCTAssertEqual(le(16, 8), 300)    // count
        XCTAssertEqual(le(24, 4), 3)      // channels
        XCTAssertEqual(le(28, 4), 16)     // height
        XCTAssertEqual(le(32, 4), 16)     // width
        XCTAssertEqual(le(36, 4), 10)     // classCount
        XCTAssertEqual(le(40, 4), 1)      // generator = synthetic-v1
        XCTAssertEqual(le(48, 8), 42)     // seed
        XCTAssertEqual(le(56, 8), 128)    // labelsOffset
        XCTAssertEqual(le(64, 8), 4096)   // pixelsOffset = alignUp(128 + 300, 4096)
        XCTAssertEqual(b.count, 4096 + 300 * 768)
        XCTAssertEqual(b.count, spec.fileSize)
        let d = try Dataset.openMLDS(file: path)
        XCTAssertEqual(d.syntheticSeed, 42)
        XCTAssertEqual(Int(b[128 + 7]), d.label(at: 7))
        XCTAssertEqual(Array(b[(4096 + 5 * 768)..<(4096 + 6 * 768)]), d.image(at: 5))
    }

    func test_generation_isDeterministicFromTheSeed_andEachSampleCanBeGeneratedAlone() throws {
        let tmp = TempDirectory("synth")
        try SyntheticGenerator(spec).write(to: tmp.path("a.mlds").path)
        try SyntheticGenerator(spec).write(to: tmp.path("b.mlds").path)
        var other = spec
        other.seed = 43
        try SyntheticGenerator(other).write(to: tmp.path("c.mlds").path)
        let a = try Data(contentsOf: tmp.path("a.mlds")), b = try Data(contentsOf: tmp.path("b.mlds"))
        XCTAssertEqual(a, b)
        XCTAssertNotEqual(a.suffix(1000), try Data(contentsOf: tmp.path("c.mlds")).suffix(1000))
        let d = try Dataset.openMLDS(file: tmp.path("a.mlds").path)
        let generator = SyntheticGenerator(spec)
        for id in [0, 1, 150, 299] {
            let s = generator.sample(id)
            XCTAssertEqual(s.label, d.label(at: id))
            XCTAssertEqual(s.pixels, d.image(at: id))
        }
        // Not noise: pixels use most of the range but are not uniform.
        let img = d.image(at: 3)
        XCTAssertGreaterThan(Set(img).count, 50)
    }

    func test_syntheticClasses_areLearnableByANearestClassMean() throws {
        let tmp = TempDirectory("synth")
        let s = SyntheticSpec(count: 2000, shape: ImageShape(channels: 3, height: 16, width: 16), classCount: 10, seed: 7)
        let d = try Dataset.makeSynthetic(s, path: tmp.path("l.mlds").path)
        let n = s.shape.pixelCount
        var means = [[Double]](repeating: [Double](repeating: 0, count: n), count: 10)
        var counts = [Int](repeating: 0, count: 10)
        for id in 0..<1000 {
            let l = d.label(at: id)
            counts[l] += 1
            for (i, v) in d.image(at: id).enumerated() { means[l][i] += Double(v) }
        }
        XCTAssertTrue(counts.allSatisfy { $0 > 50 }, "labels cover every class: \(counts)")
        for k in 0..<10 { for i in 0..<n { means[k][i] /= Double(max(1, counts[k])) } }
        var correct = 0
        for id in 1000..<2000 {
            let img = d.image(at: id).map(Double.init)
            let predicted = (0..<10).min { a, b in
                zip(img, means[a]).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }
                    < zip(img, means[b]).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }
            }!
            if predicted == d.label(at: id) { correct += 1 }
        }
        XCTAssertGreaterThan(correct, 900, "nearest-mean accuracy \(correct)/1000")
    }

    func test_anyDataset_convertsToMLDS_withIdenticalImagesAndLabels() throws {
        let tmp = TempDirectory("synth")
        let root = Fixtures.writeCIFAR10(in: tmp.url)
        let cifar = try Dataset.openCIFAR10(directory: root.path, partition: .train)
        try cifar.writeMLDS(to: tmp.path("c.mlds").path)
        let converted = try Dataset.openMLDS(file: tmp.path("c.mlds").path)
        XCTAssertEqual(converted.count, cifar.count)
        XCTAssertEqual(converted.labels, cifar.labels)
        XCTAssertNil(converted.syntheticSeed)
        for id in 0..<cifar.count { XCTAssertEqual(converted.image(at: id), cifar.image(at: id)) }
    }

    func test_invalidSpec_isRejectedBeforeWriting() throws {
        let tmp = TempDirectory("synth")
        var bad = spec
        bad.classCount = 300
        assertDatasetError(try SyntheticGenerator(bad).write(to: tmp.path("x.mlds").path)) {
            if case let .invalidArgument(name, _, _) = $0 { return name == "classes" } else { return false }
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.path("x.mlds").path))
    }

    // MARK: - Bad input

    private func writeValid(_ tmp: TempDirectory) throws -> (String, [UInt8]) {
        let path = tmp.path("v.mlds").path
        try SyntheticGenerator(SyntheticSpec(count: 4, shape: ImageShape(channels: 1, height: 4, width: 4), classCount: 3, seed: 1))
            .write(to: path)
        return (path, Array(try Data(contentsOf: URL(fileURLWithPath: path))))
    }

    func test_wrongMagic_isRejected() throws {
        let tmp = TempDirectory("synth")
        var (path, b) = try writeValid(tmp)
        b[0] = 0x58
        Fixtures.write(b, to: URL(fileURLWithPath: path))
        assertDatasetError(try Dataset.openMLDS(file: path), path: path) {
            if case .badMagic = $0 { return true } else { return false }
        }
    }

    func test_truncatedPixels_areTruncated() throws {
        let tmp = TempDirectory("synth")
        let (path, b) = try writeValid(tmp)
        Fixtures.write(Array(b.dropLast(5)), to: URL(fileURLWithPath: path))
        assertDatasetError(try Dataset.openMLDS(file: path), path: path) {
            if case let .truncated(_, _, expected, actual) = $0 { return expected - actual == 5 } else { return false }
        }
    }

    func test_unknownMajorVersion_isUnsupported() throws {
        let tmp = TempDirectory("synth")
        var (path, b) = try writeValid(tmp)
        b[8] = 2
        Fixtures.write(b, to: URL(fileURLWithPath: path))
        assertDatasetError(try Dataset.openMLDS(file: path), path: path) {
            if case .unsupported = $0 { return true } else { return false }
        }
    }

    func test_countInconsistentWithFileSize_isAnInconsistentSize() throws {
        let tmp = TempDirectory("synth")
        let (path, b) = try writeValid(tmp)
        Fixtures.write(b + [0, 0, 0], to: URL(fileURLWithPath: path))
        assertDatasetError(try Dataset.openMLDS(file: path), path: path) {
            if case .inconsistentSize = $0 { return true } else { return false }
        }
    }

    func test_labelByteOutOfRange_isRejected() throws {
        let tmp = TempDirectory("synth")
        var (path, b) = try writeValid(tmp)
        b[128 + 2] = 3  // classCount is 3
        Fixtures.write(b, to: URL(fileURLWithPath: path))
        assertDatasetError(try Dataset.openMLDS(file: path), path: path) {
            if case let .labelOutOfRange(_, index, _, _) = $0 { return index == 2 } else { return false }
        }
    }
}
