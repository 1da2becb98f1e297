// ReaderFuzzTests.swift: fuzz targets of the dataset readers (docs/fuzzing.md): the committed corpora
// in Fuzz/{npy,idx,mat,cifar} and seeded mutants of them, each written to a file and opened through
// the public reader (`.npy` and IDX files in both roles, images and labels). Every input must open,
// with every image readable, or be refused with a `DatasetError` that names the file and ends in a
// hint; a trap fails the run. A refused `.mat` must leave no cache file. Also the corpus generator and
// its check against the committed bytes; `regress-*` corpus files are mutants that once failed.

@testable import Datasets
import Foundation
import Tensors
import XCTest
import _TestSupport

final class ReaderFuzzTests: XCTestCase {
    /// Mutants per corpus file in the default suite (docs/fuzzing.md "Targets").
    static let defaultIterations = ["npy": 250, "idx": 400, "mat": 300, "cifar": 400]

    var cacheDirectory = ""
    var work: TempDirectory!
    /// Mutants get fresh names, so a cache copy keyed by (path, size, mtime) is never reused across mutants.
    var serial = 0

    override func setUp() {
        super.setUp()
        work = TempDirectory("fuzz")
        cacheDirectory = work.path("cache").path
        setenv("MEMLOSS_CACHE_DIR", cacheDirectory, 1)
    }

    override func tearDown() {
        unsetenv("MEMLOSS_CACHE_DIR")
        work = nil
        super.tearDown()
    }

    // MARK: - Driver

    /// With MEMLOSS_FUZZ_ARTIFACTS=DIR, a mutant that fails a check (not a trap: the log names those)
    /// is written to DIR, ready to be committed as a `regress-*` corpus file.
    func keep(_ bytes: [UInt8], _ name: String) {
        guard let dir = ProcessInfo.processInfo.environment["MEMLOSS_FUZZ_ARTIFACTS"], !dir.isEmpty else { return }
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: (dir as NSString).appendingPathComponent("\(name)-\(serial)"), contents: Data(bytes))
    }

    /// Writes `bytes` to a fresh file and returns its path.
    func file(_ bytes: [UInt8], _ suffix: String) -> String {
        serial += 1
        let url = work.path("m\(serial)\(suffix)")
        _ = FileManager.default.createFile(atPath: url.path, contents: Data(bytes))
        return url.path
    }

    /// Runs `open`; an opened dataset has every image and one augmented view read. A refusal must be a
    /// `DatasetError` naming one of `paths` with a hint line. Returns whether it opened.
    @discardableResult
    func attempt(_ paths: [String], _ open: () throws -> Dataset) -> Bool {
        do {
            let d = try open()
            XCTAssertEqual(d.labels.count, d.count)
            for id in 0..<d.count {
                XCTAssertEqual(d.image(at: id).count, d.shape.pixelCount)
                XCTAssertTrue(d.labels[id] >= 0 && Int(d.labels[id]) < d.classCount)
            }
            if d.count > 0 { _ = d.renderView(id: d.count - 1, view: .identity) }
            return true
        } catch let e as DatasetError {
            let text = e.description
            XCTAssertTrue(paths.contains { text.contains($0) }, "refusal names none of \(paths): \(text)")
            XCTAssertTrue(text.split(separator: "\n").last?.hasPrefix("hint:") == true, "no hint line: \(text)")
            return false
        } catch {
            XCTFail("not a DatasetError: \(error)")
            return false
        }
    }

    func corpus(_ name: String) throws -> [(name: String, bytes: [UInt8])] {
        let c = try Fuzz.loadCorpus(Fuzz.corpusDirectory(target: "DatasetsTests", name: name))
        XCTAssertFalse(c.isEmpty, "corpus \(name) missing: run test_committedCorpora_equalTheGenerator with MEMLOSS_WRITE_CORPUS=1")
        return c
    }

    /// Runs the target `name` and checks that some mutants still open (else the driver tests nothing).
    func run(_ name: String, _ body: ([UInt8]) -> Bool) throws {
        let c = try corpus(name)
        for input in c where !input.name.hasPrefix("regress-") { XCTAssertTrue(body(input.bytes), "corpus file \(input.name) must open") }
        var opened = 0
        let n = Fuzz.run(name: name, corpus: c, iterations: Fuzz.iterations(default: Self.defaultIterations[name]!)) { bytes in
            if body(bytes) { opened += 1 }
            if serial % 64 == 0 { try? FileManager.default.removeItem(atPath: cacheDirectory) }
        }
        XCTAssertGreaterThan(opened, c.count, "\(name): no mutant opens; the corpus or the mutator is broken")
        XCTAssertGreaterThan(n, c.count)
    }

    // MARK: - Targets

    func test_fuzz_npyReader_neverTraps() throws {
        let images = file(Self.npyImages, ".npy"), labels = file(Self.npyLabels, ".npy")
        try run("npy") { bytes in
            let m = file(bytes, ".npy")
            let asImages = attempt([m, labels]) { try Dataset.openNPY(images: m, labels: labels) }
            let asLabels = attempt([images, m]) { try Dataset.openNPY(images: images, labels: m) }
            return asImages || asLabels
        }
    }

    func test_fuzz_idxReader_neverTraps() throws {
        let images = file(Fixtures.idx(dims: [2, 5, 4], payload: (0..<2).flatMap { Fixtures.chw($0, Self.idxShape) }), "")
        let labels = file(Fixtures.idx(dims: [2], payload: [3, 7]), "")
        try run("idx") { bytes in
            let m = file(bytes, "")
            let asImages = attempt([m, labels]) { try Dataset.openIDX(images: m, labels: labels) }
            let asLabels = attempt([images, m]) { try Dataset.openIDX(images: images, labels: m) }
            return asImages || asLabels
        }
    }

    func test_fuzz_matReader_neverTraps_andLeavesNoCacheFileWhenItRefuses() throws {
        try run("mat") { bytes in
            let m = file(bytes, ".mat")
            let before = (try? FileManager.default.contentsOfDirectory(atPath: cacheDirectory)) ?? []
            let opened = attempt([m]) { try Dataset.openSVHN(file: m) }
            let after = (try? FileManager.default.contentsOfDirectory(atPath: cacheDirectory)) ?? []
            if !opened && Set(after) != Set(before) {
                XCTFail("a refused .mat left a cache file: \(Set(after).subtracting(before))")
                keep(bytes, "mat-cache-left")
            }
            return opened
        }
    }

    func test_fuzz_cifarReader_neverTraps() throws {
        try run("cifar") { bytes in
            let m = file(bytes, ".bin")
            return attempt([m]) {
                try Dataset.openCIFARFiles([m], format: .cifar10, labelBytes: 1, labelIndex: 0, classCount: 10,
                                           officialRecords: 10_000, name: "fuzz")
            }
        }
    }

    // MARK: - Corpus

    static let idxShape = ImageShape(channels: 1, height: 5, width: 4)
    static let npyShape = ImageShape(channels: 3, height: 4, width: 5)
    /// uint8 NHWC (2, 4, 5, 3).
    static var npyImages: [UInt8] { Fixtures.decode(Fixtures.numpyNHWC) }
    /// int64 (2,).
    static var npyLabels: [UInt8] { Fixtures.decode(Fixtures.numpyLabels) }

    /// The generated corpora, by target: small valid files in each layout the reader accepts.
    static func corpusFiles() -> [String: [(name: String, bytes: [UInt8])]] {
        let chw = (0..<2).flatMap { Fixtures.chw($0, npyShape) }
        let floats = chw.flatMap { Fixtures.le32(Float(Double($0) / 255).bitPattern) }
        let small = ImageShape(channels: 3, height: 8, width: 8)
        return [
            "npy": [
                ("images-f4-nchw.npy", Fixtures.npy(descr: "<f4", shape: [2, 3, 4, 5], payload: floats)),
                ("images-u1-nhw.npy", Fixtures.npy(descr: "|u1", shape: [2, 5, 4], payload: (0..<2).flatMap { Fixtures.chw($0, idxShape) })),
                ("labels-u1-n1.npy", Fixtures.npy(descr: "|u1", shape: [2, 1], payload: [4, 1])),
                ("numpy-images-u1-nhwc.npy", npyImages),
                ("numpy-labels-i8.npy", npyLabels),
            ],
            "idx": [
                ("images-idx3-ubyte", Fixtures.idx(dims: [2, 5, 4], payload: (0..<2).flatMap { Fixtures.chw($0 + 5, idxShape) })),
                ("labels-idx1-ubyte", Fixtures.idx(dims: [2], payload: [9, 0])),
            ],
            "mat": [
                ("compact-labels.mat", Fixtures.svhnMat(shape: small, labels: [3, 10], compactLabels: true)),
                ("scipy-uncompressed.mat", Fixtures.decode(Fixtures.scipyUncompressedSVHN)),
                ("scipy-zlib-dynamic-huffman.mat", Fixtures.decode(Fixtures.scipyCompressedSVHN)),
                ("uncompressed.mat", Fixtures.svhnMat(shape: small, labels: [1, 10])),
                ("zlib-stored.mat", Fixtures.svhnMat(shape: small, labels: [2, 5], compress: true)),
            ],
            "cifar": [
                ("two-records.bin", Fixtures.cifar10Records(labels: [6, 9], firstID: 0)),
            ],
        ]
    }

    /// The committed corpora hold exactly the generator's files (plus `regress-*` mutants that once
    /// failed a target; they are fed to it like the others but need not open).
    /// MEMLOSS_WRITE_CORPUS=1 rewrites them instead.
    func test_committedCorpora_equalTheGenerator() throws {
        for (target, files) in Self.corpusFiles() {
            let dir = Fuzz.corpusDirectory(target: "DatasetsTests", name: target)
            if ProcessInfo.processInfo.environment["MEMLOSS_WRITE_CORPUS"] == "1" {
                try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
                for f in files { try Data(f.bytes).write(to: dir.appendingPathComponent(f.name)) }
            }
            let committed = try Fuzz.loadCorpus(dir).filter { !$0.name.hasPrefix("regress-") }
            let expected = files.sorted { $0.name < $1.name }
            XCTAssertEqual(committed.map(\.name), expected.map(\.name), target)
            for (c, g) in zip(committed, expected) { XCTAssertEqual(c.bytes, g.bytes, "\(target)/\(c.name)") }
        }
    }
}
