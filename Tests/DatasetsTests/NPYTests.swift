// NPYTests.swift: the NumPy .npy reader: NHWC and NCHW uint8 images (converted to CHW on read), N×H×W
// grey images, float32/float64 images in [0, 1] (quantized to a cached uint8 copy), integer labels of
// several dtypes, a file written by numpy itself; and the bad-input cases.

import Datasets
import Foundation
import XCTest
import _TestSupport

final class NPYTests: XCTestCase {
    let shape = ImageShape(channels: 3, height: 4, width: 5)

    /// NHWC bytes of `count` samples with the `Fixtures.pixel` pattern.
    func nhwc(_ count: Int) -> [UInt8] {
        var out: [UInt8] = []
        for n in 0..<count { for y in 0..<shape.height { for x in 0..<shape.width { for c in 0..<shape.channels {
            out.append(Fixtures.pixel(n, c, y, x))
        } } } }
        return out
    }

    func test_nhwcImages_areReadAsCHW_withInt64Labels() throws {
        let tmp = TempDirectory("npy")
        Fixtures.write(Fixtures.npy(descr: "|u1", shape: [3, 4, 5, 3], payload: nhwc(3)), to: tmp.path("x.npy"))
        Fixtures.write(Fixtures.npy(descr: "<i8", shape: [3], payload: Fixtures.int64LE([2, 0, 5])), to: tmp.path("y.npy"))
        let d = try Dataset.openNPY(images: tmp.path("x.npy").path, labels: tmp.path("y.npy").path)
        XCTAssertEqual(d.shape, shape)
        XCTAssertEqual(d.count, 3)
        XCTAssertEqual(d.labels, [2, 0, 5])
        XCTAssertEqual(d.classCount, 6)
        for id in 0..<3 { XCTAssertEqual(d.image(at: id), Fixtures.chw(id, shape)) }
        // One position by hand: NHWC byte ((n·H + y)·W + x)·C + c.
        XCTAssertEqual(d.image(at: 1)[2 * 20 + 3 * 5 + 4], nhwc(3)[((1 * 4 + 3) * 5 + 4) * 3 + 2])
    }

    func test_nchwImages_areReadAsIs_withUInt8AndInt32Labels() throws {
        let tmp = TempDirectory("npy")
        let chw = (0..<2).flatMap { Fixtures.chw($0, shape) }
        Fixtures.write(Fixtures.npy(descr: "|u1", shape: [2, 3, 4, 5], payload: chw), to: tmp.path("x.npy"))
        Fixtures.write(Fixtures.npy(descr: "|u1", shape: [2], payload: [1, 0]), to: tmp.path("y8.npy"))
        Fixtures.write(Fixtures.npy(descr: "<i4", shape: [2, 1], payload: [7, 0, 0, 0, 1, 0, 0, 0]), to: tmp.path("y32.npy"))
        let d = try Dataset.openNPY(images: tmp.path("x.npy").path, labels: tmp.path("y8.npy").path)
        XCTAssertEqual(d.shape, shape)
        for id in 0..<2 { XCTAssertEqual(d.image(at: id), Fixtures.chw(id, shape)) }
        let d32 = try Dataset.openNPY(images: tmp.path("x.npy").path, labels: tmp.path("y32.npy").path, classCount: 10)
        XCTAssertEqual(d32.labels, [7, 1])
        XCTAssertEqual(d32.classCount, 10)
    }

    func test_greyNHWImages_haveOneChannel() throws {
        let tmp = TempDirectory("npy")
        let g = ImageShape(channels: 1, height: 6, width: 7)
        Fixtures.write(Fixtures.npy(descr: "|u1", shape: [2, 6, 7], payload: Fixtures.chw(0, g) + Fixtures.chw(1, g)), to: tmp.path("x.npy"))
        Fixtures.write(Fixtures.npy(descr: "<i8", shape: [2], payload: Fixtures.int64LE([0, 1])), to: tmp.path("y.npy"))
        let d = try Dataset.openNPY(images: tmp.path("x.npy").path, labels: tmp.path("y.npy").path)
        XCTAssertEqual(d.shape, g)
        XCTAssertEqual(d.image(at: 1), Fixtures.chw(1, g))
    }

    func test_fileWrittenByNumpy_isReadWithItsHeaderPadding() throws {
        let tmp = TempDirectory("npy")
        Fixtures.write(Fixtures.decode(Fixtures.numpyNHWC), to: tmp.path("x.npy"))
        Fixtures.write(Fixtures.decode(Fixtures.numpyLabels), to: tmp.path("y.npy"))
        let d = try Dataset.openNPY(images: tmp.path("x.npy").path, labels: tmp.path("y.npy").path)
        XCTAssertEqual(d.shape, ImageShape(channels: 3, height: 4, width: 5))
        XCTAssertEqual(d.labels, [3, 7])
        for n in 0..<2 {
            let img = d.image(at: n)
            for c in 0..<3 { for y in 0..<4 { for x in 0..<5 {
                XCTAssertEqual(img[(c * 4 + y) * 5 + x], UInt8((100 * n + 20 * y + 4 * x + c) % 256))
            } } }
        }
    }

    func test_ambiguousAxisOrder_needsAnExplicitLayout() throws {
        let tmp = TempDirectory("npy")
        // 1×3×3×3: both axis 1 and axis 3 could be channels.
        Fixtures.write(Fixtures.npy(descr: "|u1", shape: [1, 3, 3, 3], payload: Array(0..<27)), to: tmp.path("x.npy"))
        Fixtures.write(Fixtures.npy(descr: "<i8", shape: [1], payload: Fixtures.int64LE([0])), to: tmp.path("y.npy"))
        assertDatasetError(try Dataset.openNPY(images: tmp.path("x.npy").path, labels: tmp.path("y.npy").path)) {
            if case let .unsupported(_, _, hint) = $0 { return hint.contains(":nhwc") } else { return false }
        }
        let nchw = try Dataset.openNPY(images: tmp.path("x.npy").path, labels: tmp.path("y.npy").path, layout: .nchw)
        XCTAssertEqual(nchw.image(at: 0), Array(0..<27))
        let nhwc = try Dataset.openNPY(images: tmp.path("x.npy").path, labels: tmp.path("y.npy").path, layout: .nhwc)
        XCTAssertEqual(nhwc.image(at: 0)[1], 3)  // channel 0, pixel (0, 1) = byte (0·3 + 1)·3 + 0
    }

    // MARK: - Bad input

    func test_wrongMagic_isRejected() throws {
        let tmp = TempDirectory("npy")
        Fixtures.write(Array("not numpy at all".utf8), to: tmp.path("x.npy"))
        Fixtures.write(Fixtures.npy(descr: "<i8", shape: [1], payload: Fixtures.int64LE([0])), to: tmp.path("y.npy"))
        assertDatasetError(try Dataset.openNPY(images: tmp.path("x.npy").path, labels: tmp.path("y.npy").path),
                           path: tmp.path("x.npy").path) {
            if case .badMagic = $0 { return true } else { return false }
        }
    }

    func test_float16AndBigEndianFloatImages_areUnsupportedWithAHint() throws {
        let tmp = TempDirectory("npy")
        Fixtures.write(Fixtures.npy(descr: "<i8", shape: [1], payload: Fixtures.int64LE([0])), to: tmp.path("y.npy"))
        for descr in ["<f2", ">f4"] {
            let width = descr == "<f2" ? 2 : 4
            Fixtures.write(Fixtures.npy(descr: descr, shape: [1, 2, 2], payload: [UInt8](repeating: 0, count: 4 * width)),
                           to: tmp.path("x.npy"))
            assertDatasetError(try Dataset.openNPY(images: tmp.path("x.npy").path, labels: tmp.path("y.npy").path)) {
                if case let .unsupported(_, feature, hint) = $0 {
                    return feature.contains(descr) && feature.contains("<f4") && hint.contains("uint8")
                }
                return false
            }
        }
    }

    // MARK: - Float images

    /// Runs `body` with `$MEMLOSS_CACHE_DIR` pointing at a fresh directory, which it returns.
    private func withCacheDirectory(_ tmp: TempDirectory, _ body: (URL) throws -> Void) rethrows {
        let cache = tmp.path("cache")
        setenv("MEMLOSS_CACHE_DIR", cache.path, 1)
        defer { unsetenv("MEMLOSS_CACHE_DIR") }
        try body(cache)
    }

    private func cacheFiles(_ cache: URL) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: cache.path)) ?? []).sorted()
    }

    func test_float32NHWCImages_exportedAsBytesOver255_giveBackTheSameBytes() throws {
        let tmp = TempDirectory("npy")
        try withCacheDirectory(tmp) { cache in
            // numpy: (images / 255).astype('<f4'), C order, fortran_order False.
            let payload = nhwc(3).flatMap { Fixtures.le32((Float($0) / 255).bitPattern) }
            Fixtures.write(Fixtures.npy(descr: "<f4", shape: [3, 4, 5, 3], payload: payload), to: tmp.path("x.npy"))
            Fixtures.write(Fixtures.npy(descr: "<i8", shape: [3], payload: Fixtures.int64LE([2, 0, 5])), to: tmp.path("y.npy"))
            let d = try Dataset.openNPY(images: tmp.path("x.npy").path, labels: tmp.path("y.npy").path)
            XCTAssertEqual(d.shape, shape)
            XCTAssertEqual(d.labels, [2, 0, 5])
            for id in 0..<3 { XCTAssertEqual(d.image(at: id), Fixtures.chw(id, shape), "sample \(id)") }
            XCTAssertEqual(cacheFiles(cache).count, 1, "one uint8 copy: \(cacheFiles(cache))")
            XCTAssertEqual(cacheFiles(cache).first?.hasSuffix(".u8"), true)
            // A second open maps the same copy.
            let again = try Dataset.openNPY(images: tmp.path("x.npy").path, labels: tmp.path("y.npy").path)
            XCTAssertEqual(again.image(at: 2), Fixtures.chw(2, shape))
            XCTAssertEqual(cacheFiles(cache).count, 1)
        }
    }

    func test_float64NCHWImages_areQuantizedAsRound255x_tiesToEven() throws {
        let tmp = TempDirectory("npy")
        try withCacheDirectory(tmp) { _ in
            // One 1×2×3 image: x → round(255·x): 0 → 0, 1 → 255, 0.5 → 127.5 → 128 (even),
            // 0.25 → 63.75 → 64, 0.002 → 0.51 → 1, 0.7 → 178.5 (the Double product) → 178 (even).
            let values: [Double] = [0, 1, 0.5, 0.25, 0.002, 0.7]
            Fixtures.write(Fixtures.npy(descr: "<f8", shape: [1, 1, 2, 3], payload: values.flatMap { Fixtures.le64($0.bitPattern) }),
                           to: tmp.path("x.npy"))
            Fixtures.write(Fixtures.npy(descr: "<i8", shape: [1], payload: Fixtures.int64LE([0])), to: tmp.path("y.npy"))
            let d = try Dataset.openNPY(images: tmp.path("x.npy").path, labels: tmp.path("y.npy").path, layout: .nchw)
            XCTAssertEqual(d.shape, ImageShape(channels: 1, height: 2, width: 3))
            XCTAssertEqual(d.image(at: 0), values.map { UInt8((255 * $0).rounded(.toNearestOrEven)) })
            XCTAssertEqual(d.image(at: 0), [0, 255, 128, 64, 1, 178])
        }
    }

    func test_floatImagesOutsideTheUnitInterval_orNaN_areRejectedNamingTheFirstBadElement() throws {
        let tmp = TempDirectory("npy")
        try withCacheDirectory(tmp) { cache in
            Fixtures.write(Fixtures.npy(descr: "<i8", shape: [2], payload: Fixtures.int64LE([0, 1])), to: tmp.path("y.npy"))
            // 2 samples of 2×2; the first bad value is element 5 (sample 1), a later one element 7.
            for (bad, text) in [(Double.nan, "nan"), (1.5, "1.5"), (-0.25, "-0.25")] {
                var values = [Double](repeating: 0.5, count: 8)
                values[5] = bad; values[7] = 2
                for descr in ["<f4", "<f8"] {
                    let payload = descr == "<f4" ? values.flatMap { Fixtures.le32(Float($0).bitPattern) }
                                                 : values.flatMap { Fixtures.le64($0.bitPattern) }
                    Fixtures.write(Fixtures.npy(descr: descr, shape: [2, 2, 2], payload: payload), to: tmp.path("x.npy"))
                    assertDatasetError(try Dataset.openNPY(images: tmp.path("x.npy").path, labels: tmp.path("y.npy").path),
                                       path: tmp.path("x.npy").path) {
                        guard case let .pixelOutOfRange(_, index, sample, found, expected) = $0 else { return false }
                        return index == 5 && sample == 1 && found == text && expected.contains("[0, 1]")
                    }
                    XCTAssertEqual(cacheFiles(cache).filter { !$0.hasPrefix(".") }, [], "no copy is left after \(descr) \(text)")
                }
            }
        }
    }

    func test_fortranOrder_isUnsupported() throws {
        let tmp = TempDirectory("npy")
        Fixtures.write(Fixtures.npy(descr: "|u1", shape: [1, 2, 2], fortran: true, payload: [1, 2, 3, 4]), to: tmp.path("x.npy"))
        Fixtures.write(Fixtures.npy(descr: "<i8", shape: [1], payload: Fixtures.int64LE([0])), to: tmp.path("y.npy"))
        assertDatasetError(try Dataset.openNPY(images: tmp.path("x.npy").path, labels: tmp.path("y.npy").path)) {
            if case let .unsupported(_, feature, _) = $0 { return feature.contains("fortran") } else { return false }
        }
    }

    func test_truncatedData_isTruncated() throws {
        let tmp = TempDirectory("npy")
        Fixtures.write(Fixtures.npy(descr: "|u1", shape: [3, 4, 5, 3], payload: Array(nhwc(3).dropLast(10))), to: tmp.path("x.npy"))
        Fixtures.write(Fixtures.npy(descr: "<i8", shape: [3], payload: Fixtures.int64LE([0, 1, 2])), to: tmp.path("y.npy"))
        assertDatasetError(try Dataset.openNPY(images: tmp.path("x.npy").path, labels: tmp.path("y.npy").path),
                           path: tmp.path("x.npy").path) {
            if case let .truncated(_, _, expected, actual) = $0 { return expected - actual == 10 } else { return false }
        }
    }

    func test_labelCountMismatch_isAnInconsistentSize() throws {
        let tmp = TempDirectory("npy")
        Fixtures.write(Fixtures.npy(descr: "|u1", shape: [3, 4, 5, 3], payload: nhwc(3)), to: tmp.path("x.npy"))
        Fixtures.write(Fixtures.npy(descr: "<i8", shape: [2], payload: Fixtures.int64LE([0, 1])), to: tmp.path("y.npy"))
        assertDatasetError(try Dataset.openNPY(images: tmp.path("x.npy").path, labels: tmp.path("y.npy").path),
                           path: tmp.path("y.npy").path) {
            if case let .inconsistentSize(_, field, _, _) = $0 { return field == "sample count" } else { return false }
        }
    }

    func test_negativeLabel_isOutOfRange() throws {
        let tmp = TempDirectory("npy")
        Fixtures.write(Fixtures.npy(descr: "|u1", shape: [2, 4, 5, 3], payload: nhwc(2)), to: tmp.path("x.npy"))
        Fixtures.write(Fixtures.npy(descr: "<i8", shape: [2], payload: Fixtures.int64LE([1, -1])), to: tmp.path("y.npy"))
        assertDatasetError(try Dataset.openNPY(images: tmp.path("x.npy").path, labels: tmp.path("y.npy").path),
                           path: tmp.path("y.npy").path) {
            if case let .labelOutOfRange(_, index, found, _) = $0 { return index == 1 && found.hasPrefix("-1") } else { return false }
        }
        Fixtures.write(Fixtures.npy(descr: "<i8", shape: [2], payload: Fixtures.int64LE([1, 12])), to: tmp.path("y.npy"))
        assertDatasetError(try Dataset.openNPY(images: tmp.path("x.npy").path, labels: tmp.path("y.npy").path, classCount: 10)) {
            if case .labelOutOfRange = $0 { return true } else { return false }
        }
    }

    func test_floatLabels_areUnsupported() throws {
        let tmp = TempDirectory("npy")
        Fixtures.write(Fixtures.npy(descr: "|u1", shape: [1, 4, 5, 3], payload: nhwc(1)), to: tmp.path("x.npy"))
        Fixtures.write(Fixtures.npy(descr: "<f8", shape: [1], payload: Fixtures.le64(1.0.bitPattern)), to: tmp.path("y.npy"))
        assertDatasetError(try Dataset.openNPY(images: tmp.path("x.npy").path, labels: tmp.path("y.npy").path)) {
            if case .unsupported = $0 { return true } else { return false }
        }
    }

    func test_gzippedNpy_isRejectedAsCompressed() throws {
        let tmp = TempDirectory("npy")
        Fixtures.write([0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 3], to: tmp.path("x.npy"))
        Fixtures.write(Fixtures.npy(descr: "<i8", shape: [1], payload: Fixtures.int64LE([0])), to: tmp.path("y.npy"))
        assertDatasetError(try Dataset.openNPY(images: tmp.path("x.npy").path, labels: tmp.path("y.npy").path)) {
            if case .compressed = $0 { return true } else { return false }
        }
    }
}
