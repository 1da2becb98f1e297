// DataSourceTests.swift: parsing data specs (every form, canonical strings that parse back, clear errors
// for bad specs), the embedded demo set, bare-path detection, and specs without a test set.

import Datasets
import Foundation
import XCTest
import _TestSupport

final class DataSourceTests: XCTestCase {
    func test_everySpecForm_parses_andItsCanonicalStringParsesBack() throws {
        let cases: [(String, DataSource)] = [
            ("demo", .demo),
            ("mnist:/data/mnist", .mnist(directory: "/data/mnist")),
            ("cifar10:/d/c10", .cifar10(directory: "/d/c10")),
            ("cifar100:/d/c100", .cifar100(directory: "/d/c100", labels: .fine)),
            ("cifar100:/d/c100:coarse", .cifar100(directory: "/d/c100", labels: .coarse)),
            ("svhn:/d/svhn", .svhn(directory: "/d/svhn")),
            ("npy:/a.npy,/b.npy", .npy(train: .init(images: "/a.npy", labels: "/b.npy"), test: nil, layout: .auto)),
            ("npy:/a.npy,/b.npy,/c.npy,/d.npy:nchw",
             .npy(train: .init(images: "/a.npy", labels: "/b.npy"), test: .init(images: "/c.npy", labels: "/d.npy"), layout: .nchw)),
            ("synthetic:/s.mlds", .synthetic(train: "/s.mlds", test: nil)),
            ("synthetic:/s.mlds,/t.mlds", .synthetic(train: "/s.mlds", test: "/t.mlds")),
        ]
        for (text, expected) in cases {
            let parsed = try DataSource(parsing: text)
            XCTAssertEqual(parsed, expected, text)
            XCTAssertEqual(try DataSource(parsing: parsed.description), parsed, parsed.description)
        }
    }

    func test_badSpecs_areRejectedWithTheSpecNamed() {
        for bad in ["", "cifar10:", "cifar100:/x:medium", "npy:/a.npy", "npy:/a,/b,/c", "npy:/a,/b:nhcw",
                    "imagenet:/x", "synthetic:", "/no/such/path"] {
            assertDatasetError(try DataSource(parsing: bad)) {
                if case let .badSpec(spec, _) = $0 { return spec == bad } else { return false }
            }
        }
    }

    func test_demo_opensTheEmbeddedMNISTSubset() throws {
        let train = try DataSource.demo.open(.train)
        let test = try DataSource.demo.open(.test)
        XCTAssertEqual(train.count, 4000)
        XCTAssertEqual(test.count, 1000)
        XCTAssertEqual(train.classCounts, [Int](repeating: 400, count: 10))
        XCTAssertTrue(train.name.contains("demo"))
        XCTAssertEqual(DataSource.demo.standardAugmentation, AugmentationConfig.none)
        XCTAssertTrue(FileManager.default.fileExists(atPath: DataSource.demoDirectory + "/ATTRIBUTION.md"))
    }

    func test_barePaths_areDetectedByLayout() throws {
        let tmp = TempDirectory("source")
        let cifar = Fixtures.writeCIFAR10(in: tmp.url)
        XCTAssertEqual(try DataSource(parsing: cifar.path), .cifar10(directory: cifar.path))
        XCTAssertEqual(try DataSource(parsing: tmp.url.path), .cifar10(directory: tmp.url.path))
        let mnist = tmp.path("mnist")
        try FileManager.default.createDirectory(at: mnist, withIntermediateDirectories: true)
        Fixtures.writeMNIST(in: mnist, prefix: "train", labels: [1])
        XCTAssertEqual(try DataSource(parsing: mnist.path), .mnist(directory: mnist.path))
        try SyntheticGenerator(SyntheticSpec(count: 2, shape: ImageShape(channels: 1, height: 2, width: 2), classCount: 2, seed: 0))
            .write(to: tmp.path("s.mlds").path)
        XCTAssertEqual(try DataSource(parsing: tmp.path("s.mlds").path), .synthetic(train: tmp.path("s.mlds").path, test: nil))
        XCTAssertEqual(try DataSource(parsing: tmp.path("s.mlds").path).open().count, 2)
    }

    func test_specWithoutTestFiles_throwsNoTestSet() throws {
        let tmp = TempDirectory("source")
        try SyntheticGenerator(SyntheticSpec(count: 2, shape: ImageShape(channels: 1, height: 2, width: 2), classCount: 2, seed: 0))
            .write(to: tmp.path("s.mlds").path)
        let source = try DataSource(parsing: "synthetic:" + tmp.path("s.mlds").path)
        XCTAssertFalse(source.hasTestSet)
        assertDatasetError(try source.open(.test)) {
            if case .noTestSet = $0 { return true } else { return false }
        }
    }

    func test_specPointingAtTheWrongFormat_namesTheFileAndTheExpectedFormat() throws {
        let tmp = TempDirectory("source")
        let root = Fixtures.writeCIFAR10(in: tmp.url)
        // A CIFAR batch given as a .npy image file, and a CIFAR directory given as MNIST.
        let batch = root.appendingPathComponent("data_batch_1.bin").path
        Fixtures.write(Fixtures.npy(descr: "<i8", shape: [1], payload: Fixtures.int64LE([0])), to: tmp.path("y.npy"))
        assertDatasetError(try DataSource(parsing: "npy:\(batch),\(tmp.path("y.npy").path)").open(), path: batch) {
            if case .badMagic = $0 { return true } else { return false }
        }
        assertDatasetError(try DataSource(parsing: "mnist:\(root.path)").open(),
                           path: root.appendingPathComponent("train-images-idx3-ubyte").path) {
            if case .fileNotFound = $0 { return true } else { return false }
        }
        assertDatasetError(try DataSource(parsing: "synthetic:\(batch)").open(), path: batch) {
            if case .badMagic = $0 { return true } else { return false }
        }
    }
}
