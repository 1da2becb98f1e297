// ReaderBoundsTests.swift: the checks every dataset reader makes on the offsets, counts and sizes it
// reads from a file (docs/datasets.md "What the readers check"): the two bugs of issue 14 (an `.npy`
// dict that is never closed; a zlib bomb inside an SVHN `.mat`), header fields whose products
// overflow, zero-sized images, and the dataset cache leaving nothing behind on failure.

@testable import Datasets
import Foundation
import XCTest
import _TestSupport

final class ReaderBoundsTests: XCTestCase {
    /// Cache copies (inflated MAT-files, quantized floats) go to a per-test directory.
    var cacheDirectory = ""

    override func setUp() {
        super.setUp()
        cacheDirectory = NSTemporaryDirectory() + "memloss-bounds-cache-\(getpid())-\(UUID().uuidString)"
        setenv("MEMLOSS_CACHE_DIR", cacheDirectory, 1)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: cacheDirectory)
        unsetenv("MEMLOSS_CACHE_DIR")
        super.tearDown()
    }

    /// Files left in the cache directory (none if it does not exist).
    private func cacheContents() -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: cacheDirectory)) ?? []
    }

    /// A v1.0 `.npy` with a verbatim header text (padded with spaces, then "\n") and a payload.
    private func npy(header: String, payload: [UInt8]) -> [UInt8] {
        var dict = header
        while (10 + dict.utf8.count + 1) % 64 != 0 { dict += " " }
        dict += "\n"
        let len = dict.utf8.count
        return [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(len & 0xFF), UInt8(len >> 8)] + Array(dict.utf8) + payload
    }

    private func writeLabels(_ tmp: TempDirectory, count: Int) -> String {
        let url = tmp.path("y.npy")
        Fixtures.write(Fixtures.npy(descr: "<i8", shape: [count], payload: Fixtures.int64LE([Int](repeating: 0, count: count))), to: url)
        return url.path
    }

    // MARK: - .npy

    func test_npyDictWithoutClosingBrace_isRefused_namingTheFile() {
        let tmp = TempDirectory("bounds")
        let x = tmp.path("x.npy")
        Fixtures.write(npy(header: "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 3, 4), ", payload: [UInt8](repeating: 7, count: 24)), to: x)
        let y = writeLabels(tmp, count: 2)
        assertDatasetError(try Dataset.openNPY(images: x.path, labels: y), path: x.path) { e in
            if case .wrongFormat(_, _, let found) = e { return found.contains("'}'") }
            return false
        }
    }

    func test_npyDictSyntax_isParsedFully_notSearchedForKeys() {
        let tmp = TempDirectory("bounds")
        let y = writeLabels(tmp, count: 2)
        let payload = [UInt8](repeating: 7, count: 24)
        let bad = [
            "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 3, 4), 'extra': 1}",   // unknown key
            "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 3, 4), 'shape': (2, 3, 4)}",  // duplicate
            "{'descr': '|u1' 'fortran_order': False, 'shape': (2, 3, 4)}",                // missing comma
            "{'descr': '|u1', 'fortran_order': Falsey, 'shape': (2, 3, 4)}",              // not a bool
            "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 3 4)}",                // tuple syntax
            "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 1L2)}",                // not an integer
            "{'descr': '|u1', 'fortran_order': False}",                                   // missing shape
            "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 3, 4)} junk",          // text after the dict
            "x{'descr': '|u1', 'fortran_order': False, 'shape': (2, 3, 4)}",              // text before the dict
        ]
        for (k, header) in bad.enumerated() {
            let x = tmp.path("x\(k).npy")
            Fixtures.write(npy(header: header, payload: payload), to: x)
            assertDatasetError(try Dataset.openNPY(images: x.path, labels: y), path: x.path) { e in
                if case .wrongFormat = e { return true }
                return false
            }
        }
        // The same dict, well formed and with the tolerated variations, opens.
        for (k, header) in ["{'descr': '|u1', 'fortran_order': False, 'shape': (2, 3, 4), }",
                            "{\"shape\": (2,3,4,), \"fortran_order\": False, \"descr\": \"|u1\"}",
                            "{'descr':'|u1','fortran_order':False,'shape':(2L, 3L, 4L)}"].enumerated() {
            let x = tmp.path("ok\(k).npy")
            Fixtures.write(npy(header: header, payload: payload), to: x)
            XCTAssertNoThrow(try Dataset.openNPY(images: x.path, labels: y), header)
        }
    }

    func test_npyShapeWhoseProductOverflows_isRefusedWithoutATrap() {
        let tmp = TempDirectory("bounds")
        let y = writeLabels(tmp, count: 2)
        for shape in ["(2, 4611686018427387904, 4)", "(0, 4611686018427387904, 4611686018427387904)",
                      "(2, 99999999999999999999999, 4)", "(2, 3, 1152921504606846976)"] {
            let x = tmp.path("x.npy")
            Fixtures.write(npy(header: "{'descr': '<f8', 'fortran_order': False, 'shape': \(shape), }", payload: [1, 2, 3]), to: x)
            assertDatasetError(try Dataset.openNPY(images: x.path, labels: y), path: x.path) { _ in true }
        }
    }

    func test_npyImagesWithAZeroSizedAxis_areRefused() {
        let tmp = TempDirectory("bounds")
        let y = writeLabels(tmp, count: 2)
        let x = tmp.path("x.npy")
        Fixtures.write(Fixtures.npy(descr: "|u1", shape: [2, 0, 4], payload: []), to: x)
        assertDatasetError(try Dataset.openNPY(images: x.path, labels: y), path: x.path) { e in
            if case .inconsistentSize(_, let field, _, _) = e { return field.contains("image") }
            return false
        }
    }

    // MARK: - MAT / zlib

    func test_zlibBombInAMatFile_isRefusedAtTheDeclaredSize_andLeavesNoCacheFile() throws {
        let tmp = TempDirectory("bounds")
        let mat = tmp.path("bomb.mat")
        // Declares a 1 KiB miMATRIX, inflates to 32 MiB of zeros.
        Fixtures.write(Fixtures.matBomb(declaredBytes: 1024, inflatedBytes: 32 << 20), to: mat)
        XCTAssertLessThan(try Data(contentsOf: mat).count, 300_000)
        assertDatasetError(try Dataset.openSVHN(file: mat.path), path: mat.path) { e in
            e.description.contains("1032 bytes")  // 8-byte tag + the 1024 bytes it declares
        }
        XCTAssertEqual(cacheContents(), [], "a refused inflation must leave nothing in MEMLOSS_CACHE_DIR")
    }

    func test_inflater_stopsAtItsOutputLimit_beforePassingMoreToTheSink() throws {
        let z = Fixtures.zlibZeroRun(prefix: [1, 2, 3, 0], zeroRun: 8 << 20)
        var delivered = 0
        XCTAssertThrowsError(try z.withUnsafeBytes { raw in
            try Inflater.inflateZlib(raw, limit: InflateLimit(maximumBytes: 100_000)) { _, n in delivered += n }
        }) { error in
            XCTAssertTrue("\(error)".contains("100000"), "\(error)")
        }
        XCTAssertLessThanOrEqual(delivered, 100_000)
        // The limit read from the output's own first bytes (a container tag) tightens the cap.
        delivered = 0
        let limit = InflateLimit(maximumBytes: 1 << 30, prefixBytes: 4) { prefix in Int(prefix[0]) * 1000 }
        XCTAssertThrowsError(try z.withUnsafeBytes { raw in
            try Inflater.inflateZlib(raw, limit: limit) { _, n in delivered += n }
        })
        XCTAssertLessThanOrEqual(delivered, 1000)
        // Within the limit, the whole stream comes out.
        let small = Fixtures.zlibZeroRun(prefix: [9, 0], zeroRun: 5000)
        var out: [UInt8] = []
        let r = try small.withUnsafeBytes { raw in
            try Inflater.inflateZlib(raw, limit: InflateLimit(maximumBytes: 5002)) { b, n in out += b[0..<n] }
        }
        XCTAssertEqual(r.produced, 5002)
        XCTAssertEqual(out, [9] + [UInt8](repeating: 0, count: 5001))
    }

    func test_matElementInflatingToLessThanItDeclares_isRefused_andLeavesNoCacheFile() {
        let tmp = TempDirectory("bounds")
        let mat = tmp.path("short.mat")
        Fixtures.write(Fixtures.matBomb(declaredBytes: 4096, inflatedBytes: 64), to: mat)
        assertDatasetError(try Dataset.openSVHN(file: mat.path), path: mat.path) { _ in true }
        XCTAssertEqual(cacheContents(), [])
    }

    func test_matDeclaringMoreThanDEFLATECanProduce_isRefusedBeforeInflating() {
        let tmp = TempDirectory("bounds")
        let mat = tmp.path("huge.mat")
        // 16 MiB declared by a stream of a few dozen bytes: above DEFLATE's 1032:1 maximum.
        Fixtures.write(Fixtures.matBomb(declaredBytes: 0x00FF_FFF0, inflatedBytes: 64), to: mat)
        assertDatasetError(try Dataset.openSVHN(file: mat.path), path: mat.path) { e in
            e.description.contains("1032")
        }
        XCTAssertEqual(cacheContents(), [])
    }

    func test_matWithNegativeOrOverflowingDimensions_isRefusedWithoutATrap() {
        let tmp = TempDirectory("bounds")
        // 0xFFFF_FFE0 is −32 as the file's int32.
        for dims in [[32, 0xFFFF_FFE0, 3, 1], [0x7FFF_FFFF, 0x7FFF_FFFF, 0x7FFF_FFFF, 4], [32, 32, 0, 2]] {
            let x = Fixtures.matrix(name: "X", arrayClass: Fixtures.mxUINT8, dims: dims, dataType: Fixtures.miUINT8, data: [1, 2, 3])
            let y = Fixtures.matrix(name: "y", arrayClass: Fixtures.mxDOUBLE, dims: [1, 1], dataType: Fixtures.miDOUBLE,
                                    data: Fixtures.le64(Double(1).bitPattern))
            let mat = tmp.path("dims.mat")
            Fixtures.write(Fixtures.matHeader() + x + y, to: mat)
            assertDatasetError(try Dataset.openSVHN(file: mat.path), path: mat.path) { _ in true }
        }
    }

    func test_svhnLabelThatIsInfinite_isRefusedWithoutATrap() {
        let tmp = TempDirectory("bounds")
        let s = ImageShape(channels: 3, height: 2, width: 2)
        let x = Fixtures.matrix(name: "X", arrayClass: Fixtures.mxUINT8, dims: [2, 2, 3, 1], dataType: Fixtures.miUINT8,
                                data: Fixtures.svhnX(s, count: 1))
        let y = Fixtures.matrix(name: "y", arrayClass: Fixtures.mxDOUBLE, dims: [1, 1], dataType: Fixtures.miDOUBLE,
                                data: Fixtures.le64(Double.infinity.bitPattern))
        let mat = tmp.path("inf.mat")
        Fixtures.write(Fixtures.matHeader() + x + y, to: mat)
        assertDatasetError(try Dataset.openSVHN(file: mat.path), path: mat.path) { e in
            if case .labelOutOfRange(_, _, let found, _) = e { return found == "inf" }
            return false
        }
    }

    // MARK: - IDX

    func test_idxWithZeroRowsOrColumns_isRefused() {
        let tmp = TempDirectory("bounds")
        let images = tmp.path("i"), labels = tmp.path("l")
        Fixtures.write(Fixtures.idx(dims: [3, 0, 5], payload: []), to: images)
        Fixtures.write(Fixtures.idx(typeCode: 0x08, dims: [3], payload: [0, 1, 2]), to: labels)
        assertDatasetError(try Dataset.openIDX(images: images.path, labels: labels.path), path: images.path) { e in
            if case .inconsistentSize(_, let field, _, _) = e { return field.contains("image") }
            return false
        }
    }

    // MARK: - Cache

    func test_datasetCacheWrite_removesItsTemporary_onAnyError() throws {
        struct Boom: Error {}
        let target = (cacheDirectory as NSString).appendingPathComponent("copy.u8")
        XCTAssertThrowsError(try DatasetCache.write(target) { out in
            try out.append([1, 2, 3])
            throw Boom()
        }) { XCTAssertTrue($0 is Boom) }
        XCTAssertEqual(cacheContents(), [])
        try DatasetCache.write(target) { out in try out.append([1, 2, 3]) }
        XCTAssertEqual(cacheContents(), ["copy.u8"])
    }

    func test_datasetCacheWrite_removesStaleTemporariesOfDeadWriters() throws {
        let target = (cacheDirectory as NSString).appendingPathComponent("copy.u8")
        try FileManager.default.createDirectory(atPath: cacheDirectory, withIntermediateDirectories: true)
        // A pid that cannot be running (above Linux's pid_max limit of 2^22).
        let stale = target + ".partial-99999999"
        _ = FileManager.default.createFile(atPath: stale, contents: Data([1]))
        try DatasetCache.write(target) { out in try out.append([4]) }
        XCTAssertEqual(cacheContents(), ["copy.u8"])
    }
}

extension ReaderBoundsTests {
    /// The `regress-*` MAT mutants the fuzz target found (before the fix each left its inflated copy in
    /// the cache while being refused) are refused, naming the file, with nothing left in the cache.
    func test_fuzzRegressionMutants_ofMatFiles_areRefused_andLeaveNoCacheFile() throws {
        let dir = Fuzz.corpusDirectory(target: "DatasetsTests", name: "mat")
        let mutants = try Fuzz.loadCorpus(dir).filter { $0.name.hasPrefix("regress-") }
        XCTAssertGreaterThanOrEqual(mutants.count, 2)
        let tmp = TempDirectory("bounds")
        for m in mutants {
            let url = tmp.path(m.name)
            Fixtures.write(m.bytes, to: url)
            assertDatasetError(try Dataset.openSVHN(file: url.path), path: url.path) { _ in true }
            XCTAssertEqual(cacheContents(), [], m.name)
        }
    }
}
