// SVHNTests.swift: the SVHN MATLAB v5 reader: hand-written uncompressed and (stored-block) compressed
// files, files written by scipy (uncompressed, and zlib with dynamic Huffman), column-major X converted
// to CHW, label 10 → digit 0; and the bad-input cases.

import Datasets
import Foundation
import XCTest
import _TestSupport

final class SVHNTests: XCTestCase {
    let shape = ImageShape(channels: 3, height: 32, width: 32)

    /// Inflated copies go to a per-process cache directory, removed after each test.
    let cacheDirectory = NSTemporaryDirectory() + "memloss-test-cache-\(getpid())"

    override func setUp() {
        super.setUp()
        setenv("MEMLOSS_CACHE_DIR", cacheDirectory, 1)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: cacheDirectory)
        unsetenv("MEMLOSS_CACHE_DIR")
        super.tearDown()
    }

    private func checkPattern(_ d: Dataset, count: Int, file: StaticString = #filePath, line: UInt = #line) {
        for id in 0..<count {
            XCTAssertEqual(d.image(at: id), Fixtures.chw(id, d.shape), "image \(id)", file: file, line: line)
        }
    }

    func test_uncompressedMat_convertsColumnMajorXToCHW_andLabel10ToDigit0() throws {
        let tmp = TempDirectory("svhn")
        Fixtures.write(Fixtures.svhnMat(labels: [1, 10, 5]), to: tmp.path("train_32x32.mat"))
        Fixtures.write(Fixtures.svhnMat(labels: [9]), to: tmp.path("test_32x32.mat"))
        let d = try Dataset.openSVHN(directory: tmp.url.path, partition: .train)
        XCTAssertEqual(d.count, 3)
        XCTAssertEqual(d.shape, shape)
        XCTAssertEqual(d.labels, [1, 0, 5])
        XCTAssertEqual(d.format, .svhn)
        checkPattern(d, count: 3)
        // One pixel by hand: X(y+1, x+1, c+1, n+1) in MATLAB = byte y + 32x + 1024c + 3072n of X's data.
        let raw = Fixtures.svhnX(shape, count: 3)
        XCTAssertEqual(d.image(at: 2)[1 * 1024 + 4 * 32 + 30], raw[4 + 32 * 30 + 1024 * 1 + 3072 * 2])
        XCTAssertEqual(try Dataset.openSVHN(directory: tmp.url.path, partition: .test).labels, [9])
    }

    func test_labelsStoredAsUInt8_likeMATLABCompactStorage_areRead() throws {
        let tmp = TempDirectory("svhn")
        Fixtures.write(Fixtures.svhnMat(labels: [10, 2], compactLabels: true), to: tmp.path("a.mat"))
        let d = try Dataset.openSVHN(file: tmp.path("a.mat").path)
        XCTAssertEqual(d.labels, [0, 2])
        checkPattern(d, count: 2)
    }

    func test_compressedElements_storedBlocks_areInflatedToAMappedCache() throws {
        let tmp = TempDirectory("svhn")
        Fixtures.write(Fixtures.svhnMat(labels: [4, 10, 7, 1], compress: true), to: tmp.path("c.mat"))
        let d = try Dataset.openSVHN(file: tmp.path("c.mat").path)
        XCTAssertEqual(d.labels, [4, 0, 7, 1])
        checkPattern(d, count: 4)
        XCTAssertTrue(d.files[0].contains("memloss-test-cache"), "maps the inflated copy: \(d.files)")
        // A second open reuses the cached copy.
        XCTAssertEqual(try Dataset.openSVHN(file: tmp.path("c.mat").path).files, d.files)
    }

    func test_scipyCompressedMat_dynamicHuffman_matchesTheGeneratingFormula() throws {
        let tmp = TempDirectory("svhn")
        Fixtures.write(Fixtures.decode(Fixtures.scipyCompressedSVHN), to: tmp.path("s.mat"))
        let d = try Dataset.openSVHN(file: tmp.path("s.mat").path)
        XCTAssertEqual(d.count, 2)
        XCTAssertEqual(d.labels, [0, 3])
        for n in 0..<2 {
            let img = d.image(at: n)
            for c in 0..<3 { for y in 0..<32 { for x in 0..<32 {
                let expected = UInt8(((y * y + 3 * x + 17 * c + 29 * n) % 11) * 23)
                if img[(c * 32 + y) * 32 + x] != expected {
                    return XCTFail("sample \(n) c \(c) y \(y) x \(x): \(img[(c * 32 + y) * 32 + x]) != \(expected)")
                }
            } } }
        }
    }

    func test_scipyUncompressedMat_8x8_matchesTheGeneratingFormula() throws {
        let tmp = TempDirectory("svhn")
        Fixtures.write(Fixtures.decode(Fixtures.scipyUncompressedSVHN), to: tmp.path("u.mat"))
        let d = try Dataset.openSVHN(file: tmp.path("u.mat").path)
        XCTAssertEqual(d.shape, ImageShape(channels: 3, height: 8, width: 8))
        XCTAssertEqual(d.labels, [1, 0])
        for n in 0..<2 {
            let img = d.image(at: n)
            for c in 0..<3 { for y in 0..<8 { for x in 0..<8 {
                XCTAssertEqual(img[(c * 8 + y) * 8 + x], UInt8((7 * y + 13 * x + 31 * c + 53 * n) % 256))
            } } }
        }
    }

    // MARK: - Bad input

    func test_notAMatFile_isBadMagic() throws {
        let tmp = TempDirectory("svhn")
        Fixtures.write(Array(repeating: 0x41, count: 200), to: tmp.path("x.mat"))
        assertDatasetError(try Dataset.openSVHN(file: tmp.path("x.mat").path), path: tmp.path("x.mat").path) {
            if case .badMagic = $0 { return true } else { return false }
        }
    }

    func test_matV73HDF5_isUnsupportedWithAHint() throws {
        let tmp = TempDirectory("svhn")
        Fixtures.write(Fixtures.matHeader(text: "MATLAB 7.3 MAT-file, Platform: GLNXA64, HDF5 schema 1.00 ."), to: tmp.path("h.mat"))
        assertDatasetError(try Dataset.openSVHN(file: tmp.path("h.mat").path), path: tmp.path("h.mat").path) {
            if case let .unsupported(_, feature, _) = $0 { return feature.contains("7.3") } else { return false }
        }
    }

    func test_bigEndianMat_isUnsupported() throws {
        let tmp = TempDirectory("svhn")
        Fixtures.write(Fixtures.matHeader(endian: "MI"), to: tmp.path("b.mat"))
        assertDatasetError(try Dataset.openSVHN(file: tmp.path("b.mat").path)) {
            if case .unsupported = $0 { return true } else { return false }
        }
    }

    func test_truncatedX_isTruncated() throws {
        let tmp = TempDirectory("svhn")
        let bytes = Fixtures.svhnMat(labels: [1, 2])
        Fixtures.write(Array(bytes.prefix(128 + 3000)), to: tmp.path("t.mat"))
        assertDatasetError(try Dataset.openSVHN(file: tmp.path("t.mat").path), path: tmp.path("t.mat").path) {
            if case .truncated = $0 { return true } else { return false }
        }
        Fixtures.write(Array(bytes.prefix(100)), to: tmp.path("t.mat"))
        assertDatasetError(try Dataset.openSVHN(file: tmp.path("t.mat").path)) {
            if case .truncated = $0 { return true } else { return false }
        }
    }

    func test_missingVariableY_isAWrongFormat() throws {
        let tmp = TempDirectory("svhn")
        let x = Fixtures.matrix(name: "X", arrayClass: Fixtures.mxUINT8, dims: [32, 32, 3, 1], dataType: Fixtures.miUINT8,
                                data: Fixtures.svhnX(shape, count: 1))
        Fixtures.write(Fixtures.matHeader() + x, to: tmp.path("m.mat"))
        assertDatasetError(try Dataset.openSVHN(file: tmp.path("m.mat").path), path: tmp.path("m.mat").path) {
            if case let .wrongFormat(_, expected, _) = $0 { return expected.contains("'y'") } else { return false }
        }
    }

    func test_labelOutOfRange_zeroOrEleven_isRejected() throws {
        let tmp = TempDirectory("svhn")
        for bad in [0.0, 11.0, 2.5] {
            Fixtures.write(Fixtures.svhnMat(labels: [3, bad]), to: tmp.path("l.mat"))
            assertDatasetError(try Dataset.openSVHN(file: tmp.path("l.mat").path), path: tmp.path("l.mat").path) {
                if case let .labelOutOfRange(_, index, _, expected) = $0 { return index == 1 && expected.contains("1...10") }
                return false
            }
        }
    }

    func test_labelCountDifferentFromImageCount_isAnInconsistentSize() throws {
        let tmp = TempDirectory("svhn")
        let x = Fixtures.matrix(name: "X", arrayClass: Fixtures.mxUINT8, dims: [32, 32, 3, 2], dataType: Fixtures.miUINT8,
                                data: Fixtures.svhnX(shape, count: 2))
        let y = Fixtures.matrix(name: "y", arrayClass: Fixtures.mxDOUBLE, dims: [3, 1], dataType: Fixtures.miDOUBLE,
                                data: [1.0, 2, 3].flatMap { Fixtures.le64($0.bitPattern) })
        Fixtures.write(Fixtures.matHeader() + x + y, to: tmp.path("n.mat"))
        assertDatasetError(try Dataset.openSVHN(file: tmp.path("n.mat").path)) {
            if case let .inconsistentSize(_, field, _, _) = $0 { return field == "y dimensions" } else { return false }
        }
    }

    func test_xDimensionsDisagreeingWithItsData_isAnInconsistentSize() throws {
        let tmp = TempDirectory("svhn")
        let x = Fixtures.matrix(name: "X", arrayClass: Fixtures.mxUINT8, dims: [32, 32, 3, 2], dataType: Fixtures.miUINT8,
                                data: Fixtures.svhnX(shape, count: 1))
        let y = Fixtures.matrix(name: "y", arrayClass: Fixtures.mxDOUBLE, dims: [2, 1], dataType: Fixtures.miDOUBLE,
                                data: [1.0, 2].flatMap { Fixtures.le64($0.bitPattern) })
        Fixtures.write(Fixtures.matHeader() + x + y, to: tmp.path("d.mat"))
        assertDatasetError(try Dataset.openSVHN(file: tmp.path("d.mat").path)) {
            // Checked where the MAT-file is parsed (MATFile), for every numeric variable.
            if case let .inconsistentSize(_, field, _, _) = $0 { return field.hasPrefix("data size of 'X'") } else { return false }
        }
    }

    func test_corruptZlibData_isAWrongFormatNamingTheElement() throws {
        let tmp = TempDirectory("svhn")
        var bytes = Fixtures.svhnMat(labels: [1], compress: true)
        bytes[bytes.count - 60] ^= 0xFF  // inside y's stored block: the Adler-32 check fails
        Fixtures.write(bytes, to: tmp.path("z.mat"))
        assertDatasetError(try Dataset.openSVHN(file: tmp.path("z.mat").path), path: tmp.path("z.mat").path) {
            if case let .wrongFormat(_, expected, _) = $0 { return expected.contains("zlib") } else { return false }
        }
    }
}
