// IDXTests.swift: the MNIST IDX reader on the real mnist-5k files (pixels and labels checked against
// the raw bytes read independently), on tiny hand-written IDX files, and on every bad-input case.

import Datasets
import Foundation
import Tensors
import XCTest
import _TestSupport

final class IDXTests: XCTestCase {
    // MARK: - Real data

    func test_realMNIST5k_trainAndTestHaveTheDocumentedCountsAndBalancedClasses() throws {
        let (dir, shared) = Fixtures.mnist5k
        if !shared { print("note: ../shared/datasets/mnist-5k not found; using the embedded copy at \(dir)") }
        let train = try Dataset.openMNIST(directory: dir, partition: .train)
        let test = try Dataset.openMNIST(directory: dir, partition: .test)
        XCTAssertEqual(train.count, 4000)
        XCTAssertEqual(test.count, 1000)
        XCTAssertEqual(train.shape, ImageShape(channels: 1, height: 28, width: 28))
        XCTAssertEqual(train.classCount, 10)
        XCTAssertEqual(train.classCounts, [Int](repeating: 400, count: 10))
        XCTAssertEqual(test.classCounts, [Int](repeating: 100, count: 10))
        XCTAssertEqual(train.format, .idx)
    }

    func test_realMNIST5k_pixelsAndLabelsEqualTheRawFileBytesAtKnownPositions() throws {
        let (dir, _) = Fixtures.mnist5k
        let d = try Dataset.openMNIST(directory: dir, partition: .train)
        let rawImages = Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/train-images-idx3-ubyte")))
        let rawLabels = Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/train-labels-idx1-ubyte")))
        // Header fields, read independently (big-endian).
        func be32(_ b: [UInt8], _ o: Int) -> Int { Int(b[o]) << 24 | Int(b[o + 1]) << 16 | Int(b[o + 2]) << 8 | Int(b[o + 3]) }
        XCTAssertEqual(be32(rawImages, 0), 2051)
        XCTAssertEqual(be32(rawLabels, 0), 2049)
        XCTAssertEqual(be32(rawImages, 4), 4000)
        for id in [0, 1, 17, 1234, 2999, 3999] {
            let expected = Array(rawImages[(16 + id * 784)..<(16 + (id + 1) * 784)])
            XCTAssertEqual(d.image(at: id), expected, "image \(id)")
            XCTAssertEqual(d.label(at: id), Int(rawLabels[8 + id]), "label \(id)")
            // Float view = byte / 255 at a few pixels, including the centre (y 14, x 14).
            let t = d.imageTensor(at: id)
            XCTAssertEqual(t.shape, [1, 28, 28])
            for (y, x) in [(0, 0), (14, 14), (20, 9), (27, 27)] {
                XCTAssertEqual(t[0, y, x], Float(rawImages[16 + id * 784 + y * 28 + x]) / 255)
            }
        }
        // Digits are not blank: the centre region of every sampled image has ink.
        XCTAssertGreaterThan(d.image(at: 0).filter { $0 > 128 }.count, 20)
    }

    func test_embeddedDemo_isByteIdenticalToTheSharedCopy() throws {
        guard let shared = Fixtures.sharedMNIST5k else { throw XCTSkip("../shared/datasets not present") }
        for name in ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"] {
            let a = try Data(contentsOf: URL(fileURLWithPath: shared + "/" + name))
            let b = try Data(contentsOf: URL(fileURLWithPath: DataSource.demoDirectory + "/" + name))
            XCTAssertEqual(a, b, name)
        }
    }

    // MARK: - Tiny files

    func test_tinyIDX_readsPixelsAndLabelsAtKnownPositions() throws {
        let tmp = TempDirectory("idx")
        let labels: [UInt8] = [3, 0, 9, 9, 1]
        Fixtures.writeMNIST(in: tmp.url, prefix: "train", labels: labels, height: 5, width: 4)
        Fixtures.writeMNIST(in: tmp.url, prefix: "t10k", labels: [2, 2], height: 5, width: 4)
        let d = try Dataset.openMNIST(directory: tmp.url.path, partition: .train)
        XCTAssertEqual(d.count, 5)
        XCTAssertEqual(d.shape, ImageShape(channels: 1, height: 5, width: 4))
        XCTAssertEqual(d.labels, [3, 0, 9, 9, 1])
        XCTAssertEqual(d.classCounts[9], 2)
        for id in 0..<5 {
            let img = d.image(at: id)
            XCTAssertEqual(img[2 * 4 + 3], Fixtures.pixel(id, 0, 2, 3))
            XCTAssertEqual(img, Fixtures.chw(id, d.shape))
        }
        let t = try Dataset.openMNIST(directory: tmp.url.path, partition: .test)
        XCTAssertEqual(t.count, 2)
        XCTAssertEqual(t.label(at: 1), 2)
    }

    func test_genericIDX_infersTheClassCountFromTheLargestLabel() throws {
        let tmp = TempDirectory("idx")
        let (i, l) = Fixtures.writeMNIST(in: tmp.url, prefix: "x", labels: [0, 4, 2])
        let d = try Dataset.openIDX(images: i.path, labels: l.path)
        XCTAssertEqual(d.classCount, 5)
    }

    // MARK: - Bad input

    func test_gzipFile_isRejectedWithAHintToDecompress() throws {
        let tmp = TempDirectory("idx")
        let (i, l) = Fixtures.writeMNIST(in: tmp.url, prefix: "train", labels: [1])
        Fixtures.write([0x1F, 0x8B, 0x08, 0x00, 0, 0, 0, 0], to: i)
        assertDatasetError(try Dataset.openIDX(images: i.path, labels: l.path), path: i.path) {
            if case .compressed(_, "gzip") = $0 { return $0.description.contains("gunzip") }
            return false
        }
    }

    func test_missingFileWithAGzSibling_pointsAtTheGzFile() throws {
        let tmp = TempDirectory("idx")
        let (i, _) = Fixtures.writeMNIST(in: tmp.url, prefix: "train", labels: [1])
        let gz = tmp.path("train-images-idx3-ubyte.gz")
        try FileManager.default.moveItem(at: i, to: gz)
        Fixtures.write([0x1F, 0x8B, 8, 0], to: gz)
        assertDatasetError(try Dataset.openMNIST(directory: tmp.url.path, partition: .train), path: gz.path) {
            if case .compressed = $0 { return true } else { return false }
        }
    }

    func test_missingFile_isNamedWithWhatWasExpected() throws {
        let tmp = TempDirectory("idx")
        assertDatasetError(try Dataset.openMNIST(directory: tmp.url.path, partition: .test),
                           path: tmp.url.appendingPathComponent("t10k-images-idx3-ubyte").path) {
            if case let .fileNotFound(_, expected) = $0 { return expected.contains("IDX") } else { return false }
        }
        assertDatasetError(try Dataset.openMNIST(directory: tmp.path("nope").path, partition: .train)) {
            if case .fileNotFound = $0 { return true } else { return false }
        }
    }

    func test_wrongMagic_isRejected() throws {
        let tmp = TempDirectory("idx")
        let (i, l) = Fixtures.writeMNIST(in: tmp.url, prefix: "train", labels: [1])
        var bytes = Array(try Data(contentsOf: i))
        bytes[2] = 0x0D  // float data
        Fixtures.write(bytes, to: i)
        assertDatasetError(try Dataset.openIDX(images: i.path, labels: l.path), path: i.path) {
            if case .badMagic = $0 { return true } else { return false }
        }
    }

    func test_labelsFileGivenAsImages_isAWrongFormat() throws {
        let tmp = TempDirectory("idx")
        let (_, l) = Fixtures.writeMNIST(in: tmp.url, prefix: "train", labels: [1])
        assertDatasetError(try Dataset.openIDX(images: l.path, labels: l.path), path: l.path) {
            if case .wrongFormat = $0 { return true } else { return false }
        }
    }

    func test_truncatedImages_reportExpectedAndActualSize() throws {
        let tmp = TempDirectory("idx")
        let (i, l) = Fixtures.writeMNIST(in: tmp.url, prefix: "train", labels: [1, 2, 3], height: 5, width: 4)
        let bytes = Array(try Data(contentsOf: i))
        Fixtures.write(Array(bytes.dropLast(7)), to: i)
        assertDatasetError(try Dataset.openIDX(images: i.path, labels: l.path), path: i.path) {
            if case let .truncated(_, _, expected, actual) = $0 { return expected == 16 + 60 && actual == 16 + 53 }
            return false
        }
        Fixtures.write([0, 0, 8, 3, 0, 0], to: i)
        assertDatasetError(try Dataset.openIDX(images: i.path, labels: l.path), path: i.path) {
            if case .truncated = $0 { return true } else { return false }
        }
    }

    func test_trailingBytes_areAnInconsistentSize() throws {
        let tmp = TempDirectory("idx")
        let (i, l) = Fixtures.writeMNIST(in: tmp.url, prefix: "train", labels: [1])
        Fixtures.write(Array(try Data(contentsOf: i)) + [1, 2, 3], to: i)
        assertDatasetError(try Dataset.openIDX(images: i.path, labels: l.path), path: i.path) {
            if case .inconsistentSize = $0 { return true } else { return false }
        }
    }

    func test_labelCountDifferentFromImageCount_isAnInconsistentSize() throws {
        let tmp = TempDirectory("idx")
        let (i, l) = Fixtures.writeMNIST(in: tmp.url, prefix: "train", labels: [1, 2, 3])
        Fixtures.write(Fixtures.idx(dims: [2], payload: [1, 2]), to: l)
        assertDatasetError(try Dataset.openIDX(images: i.path, labels: l.path), path: l.path) {
            if case let .inconsistentSize(_, field, found, _) = $0 { return field == "sample count" && found == "2" }
            return false
        }
    }

    func test_mnistLabelOutOfRange_isRejectedWithItsIndex() throws {
        let tmp = TempDirectory("idx")
        Fixtures.writeMNIST(in: tmp.url, prefix: "train", labels: [1, 10, 3])
        assertDatasetError(try Dataset.openMNIST(directory: tmp.url.path, partition: .train),
                           path: tmp.path("train-labels-idx1-ubyte").path) {
            if case let .labelOutOfRange(_, index, found, _) = $0 { return index == 1 && found == "10" }
            return false
        }
    }

    func test_emptyFile_isTruncated() throws {
        let tmp = TempDirectory("idx")
        let (i, l) = Fixtures.writeMNIST(in: tmp.url, prefix: "train", labels: [1])
        Fixtures.write([], to: i)
        assertDatasetError(try Dataset.openIDX(images: i.path, labels: l.path), path: i.path) {
            if case .truncated = $0 { return true } else { return false }
        }
    }
}
