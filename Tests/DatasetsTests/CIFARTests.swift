// CIFARTests.swift: CIFAR-10 and CIFAR-100 binary readers on tiny files written in the official
// layouts: IDs run through data_batch_1..5 in order, pixels are CHW (R, G, B planes), CIFAR-100 fine and
// coarse labels; and the bad-input cases (truncated record, label out of range, missing batch).

import Datasets
import Foundation
import XCTest
import _TestSupport

final class CIFARTests: XCTestCase {
    func test_cifar10_concatenatesTheFiveBatchesInOrder_withPixelsAndLabelsAtKnownPositions() throws {
        let tmp = TempDirectory("cifar10")
        _ = Fixtures.writeCIFAR10(in: tmp.url, perBatch: [2, 3, 1, 2, 2], testCount: 3)
        // The parent directory is accepted too (it contains cifar-10-batches-bin/).
        let d = try Dataset.openCIFAR10(directory: tmp.url.path, partition: .train)
        XCTAssertEqual(d.count, 10)
        XCTAssertEqual(d.shape, ImageShape(channels: 3, height: 32, width: 32))
        XCTAssertEqual(d.format, .cifar10)
        XCTAssertEqual(d.files.count, 5)
        XCTAssertTrue(d.files[2].hasSuffix("data_batch_3.bin"))
        for id in 0..<10 {
            XCTAssertEqual(d.label(at: id), id % 10)
            let img = d.image(at: id)
            XCTAssertEqual(img, Fixtures.chw(id, d.shape), "image \(id)")
            // Red plane first, then green at +1024, blue at +2048.
            XCTAssertEqual(img[0], Fixtures.pixel(id, 0, 0, 0))
            XCTAssertEqual(img[1024 + 5 * 32 + 7], Fixtures.pixel(id, 1, 5, 7))
            XCTAssertEqual(img[2048 + 31 * 32 + 31], Fixtures.pixel(id, 2, 31, 31))
        }
        // Sample 5 is the first record of data_batch_3 (2 + 3 records before it).
        let t = d.imageTensor(at: 5)
        XCTAssertEqual(t[1, 5, 7], Float(Fixtures.pixel(5, 1, 5, 7)) / 255)

        let test = try Dataset.openCIFAR10(directory: tmp.url.appendingPathComponent("cifar-10-batches-bin").path, partition: .test)
        XCTAssertEqual(test.count, 3)
        XCTAssertEqual(test.labels, [0, 3, 6])
        XCTAssertEqual(test.image(at: 2), Fixtures.chw(1002, test.shape))
    }

    func test_cifar100_readsFineByDefaultAndCoarseOnRequest() throws {
        let tmp = TempDirectory("cifar100")
        let root = tmp.url.appendingPathComponent("cifar-100-binary")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        Fixtures.write(Fixtures.cifar100Records(coarse: [19, 0, 7], fine: [99, 42, 0], firstID: 0), to: root.appendingPathComponent("train.bin"))
        Fixtures.write(Fixtures.cifar100Records(coarse: [3], fine: [55], firstID: 500), to: root.appendingPathComponent("test.bin"))
        let fine = try Dataset.openCIFAR100(directory: tmp.url.path, partition: .train)
        XCTAssertEqual(fine.classCount, 100)
        XCTAssertEqual(fine.labels, [99, 42, 0])
        let coarse = try Dataset.openCIFAR100(directory: root.path, partition: .train, labels: .coarse)
        XCTAssertEqual(coarse.classCount, 20)
        XCTAssertEqual(coarse.labels, [19, 0, 7])
        for id in 0..<3 { XCTAssertEqual(fine.image(at: id), Fixtures.chw(id, fine.shape)) }
        let test = try Dataset.openCIFAR100(directory: root.path, partition: .test, labels: .coarse)
        XCTAssertEqual(test.labels, [3])
        XCTAssertEqual(test.image(at: 0)[2048 + 100], Fixtures.chw(500, test.shape)[2048 + 100])
    }

    // MARK: - Bad input

    func test_cifar10PartialLastRecord_isTruncated() throws {
        let tmp = TempDirectory("cifar10")
        let root = Fixtures.writeCIFAR10(in: tmp.url)
        let batch = root.appendingPathComponent("data_batch_4.bin")
        Fixtures.write(Array(try Data(contentsOf: batch).dropLast(100)), to: batch)
        assertDatasetError(try Dataset.openCIFAR10(directory: root.path, partition: .train), path: batch.path) {
            if case let .truncated(_, _, expected, actual) = $0 { return expected == 2 * 3073 && actual == 2 * 3073 - 100 }
            return false
        }
    }

    func test_cifar10LabelOutOfRange_namesFileAndSample() throws {
        let tmp = TempDirectory("cifar10")
        let root = Fixtures.writeCIFAR10(in: tmp.url, perBatch: [2, 3, 1, 2, 2])
        let batch = root.appendingPathComponent("data_batch_2.bin")
        var bytes = Array(try Data(contentsOf: batch))
        bytes[3073] = 10  // second record of batch 2 = sample ID 3
        Fixtures.write(bytes, to: batch)
        assertDatasetError(try Dataset.openCIFAR10(directory: root.path, partition: .train), path: batch.path) {
            if case let .labelOutOfRange(_, index, found, expected) = $0 { return index == 3 && found == "10" && expected == "0...9" }
            return false
        }
    }

    func test_cifar100CoarseLabelOutOfRange_isRejected() throws {
        let tmp = TempDirectory("cifar100")
        Fixtures.write(Fixtures.cifar100Records(coarse: [20], fine: [1], firstID: 0), to: tmp.path("train.bin"))
        Fixtures.write(Fixtures.cifar100Records(coarse: [1], fine: [1], firstID: 0), to: tmp.path("test.bin"))
        XCTAssertNoThrow(try Dataset.openCIFAR100(directory: tmp.url.path, partition: .train, labels: .fine))
        assertDatasetError(try Dataset.openCIFAR100(directory: tmp.url.path, partition: .train, labels: .coarse)) {
            if case .labelOutOfRange = $0 { return true } else { return false }
        }
    }

    func test_missingBatchFile_isNamed() throws {
        let tmp = TempDirectory("cifar10")
        let root = Fixtures.writeCIFAR10(in: tmp.url)
        let batch = root.appendingPathComponent("data_batch_3.bin")
        try FileManager.default.removeItem(at: batch)
        assertDatasetError(try Dataset.openCIFAR10(directory: root.path, partition: .train), path: batch.path) {
            if case .fileNotFound = $0 { return true } else { return false }
        }
    }

    func test_cifarDirectoryThatIsAFile_isAWrongFormat() throws {
        let tmp = TempDirectory("cifar10")
        Fixtures.write([1, 2, 3], to: tmp.path("file"))
        assertDatasetError(try Dataset.openCIFAR10(directory: tmp.path("file").path, partition: .train)) {
            if case .wrongFormat = $0 { return true } else { return false }
        }
    }
}
