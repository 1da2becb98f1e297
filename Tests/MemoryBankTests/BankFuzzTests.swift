// BankFuzzTests.swift: the fuzz targets of the bank's own parsers (docs/fuzzing.md): (a) a segment
// opened as the readers open it, every entry decoded, plus its `membank dump` listing; (b) the
// manifest decoder and its listing. Half the mutants get their checksums repaired (BankFixup) so the
// structural checks behind the CRCs are reached. The committed corpus is Tests/MemoryBankTests/Fuzz/
// {segment,manifest}: `seed-*` files written by `test_writeCorpus` (MEMLOSS_FUZZ_WRITE_CORPUS=1),
// `regress-*` files that once crashed or misled a reader (issue 14; regress-shape-overflow.mbs was
// found by this target: C·H·W overflowed and the decoder sized its buffers from the wrapped product;
// regress-q8rcn-generation-huge.mbs too: a q8rcn record of a generation ≥ 2³² trapped in StartNoise).
// A segment does not carry q8rcn's start noise (spec §5.1): the target supplies the one the seed bank
// was written with (BankFixtures.startNoise), as the manifest would, so q8rcn records are decoded.

import Foundation
@testable import MemoryBank
import Tensors
import _TestSupport
import XCTest

final class BankFuzzTests: XCTestCase {
    /// Mutants per corpus file in the default suite (a few seconds in a debug build).
    static let defaultSegmentMutants = 100
    static let defaultManifestMutants = 300

    private var dir: TempDirectory!

    override func setUp() {
        dir = TempDirectory("bank-fuzz")
    }

    // MARK: - (a) segment

    func test_fuzz_segmentReaderAndRecordDecoding_neverTrap() throws {
        let corpus = try Fuzz.loadCorpus(Fuzz.corpusDirectory(target: "MemoryBankTests", name: "segment"))
        XCTAssertGreaterThanOrEqual(corpus.count, 5)
        var opened = 0, decoded = 0, q8rcnDecoded = 0, q8rcnRefused = 0
        let executions = Fuzz.run(name: "segment", corpus: corpus, iterations: Fuzz.iterations(default: Self.defaultSegmentMutants)) { bytes in
            let input = bytes.count % 2 == 0 ? BankFixup.segment(bytes) : bytes
            let r = exerciseSegment(input)
            opened += r.opened ? 1 : 0
            decoded += r.decoded
            if r.codec == .q8rcn { q8rcnDecoded += r.decoded; q8rcnRefused += r.refused }
        }
        XCTAssertGreaterThan(opened, executions / 20, "too few mutants reach the record decoder: \(opened)/\(executions)")
        XCTAssertGreaterThan(decoded, 0)
        XCTAssertGreaterThan(q8rcnDecoded, 0, "q8rcn mutants must reach the q8rcn decoder (seed-q8rcn-linf.mbs)")
        XCTAssertGreaterThan(q8rcnRefused, 0, "some damaged q8rcn records must be refused (with a record-level error)")
    }

    /// Opens `bytes` as segment `gen-…1.mbs` would be (the manifest entry taken from the file itself,
    /// so only the segment's own checks can reject it), decodes every entry, and dumps it.
    private func exerciseSegment(_ bytes: [UInt8]) -> (opened: Bool, decoded: Int, refused: Int, codec: BankCodec?) {
        // Written first: after a crash, the temporary directory holds the mutant that caused it.
        let url = dir.url.appendingPathComponent("gen-0000000001.mbs")
        guard (try? Data(bytes).write(to: url)) != nil else { return (false, 0, 0, nil) }
        let text = BankDump.segment(bytes)
        if bytes.count < 1 << 24 {
            XCTAssertEqual(BankDump.bytes(fromListing: text), bytes, "the dump must list every byte once")
        }
        guard bytes.count >= SegmentHeader.encodedByteCount else { return (false, 0, 0, nil) }
        let fields = SegmentHeader.fields(of: bytes)
        guard let config = try? fields.config(createdBy: "", file: "fuzz", startNoise: BankFixtures.startNoise) else { return (false, 0, 0, nil) }
        let expected = ManifestGeneration(generation: Int(clamping: fields.generation), segmentBytes: bytes.count,
                                          segmentHeaderChecksum: fields.headerChecksum)
        let segment: BankSegment
        do {
            segment = try BankSegment(path: url.path, expected: expected, manifestConfig: config)
        } catch {
            XCTAssertTrue(error.description.contains("\nhint: "), "\(error)")
            return (false, 0, 0, config.codec)
        }
        XCTAssertLessThanOrEqual(segment.layout.index.upperBound, bytes.count)
        let decoder = RecordDecoder(config: config)
        var delta = [Float](repeating: 0, count: config.elementCount)
        var decoded = 0, refused = 0
        for id in 0..<config.sampleCount where segment.contains(id: id) {
            do {
                if try SingleSegmentDecode(segment: segment, decoder: decoder).decode(id: id, into: &delta) != nil {
                    decoded += 1
                    XCTAssertTrue(delta.allSatisfy(\.isFinite), "a decoded δ must be finite (id \(id))")
                }
            } catch {
                refused += 1
                XCTAssertTrue(error.isRecordLevel, "record decoding threw a non-record error: \(error)")
                XCTAssertTrue(error.description.contains("\nhint: "), "a refused record names a hint: \(error)")
            }
        }
        return (true, decoded, refused, config.codec)
    }

    // MARK: - (b) manifest

    func test_fuzz_manifestDecoder_neverTraps() throws {
        let corpus = try Fuzz.loadCorpus(Fuzz.corpusDirectory(target: "MemoryBankTests", name: "manifest"))
        XCTAssertGreaterThanOrEqual(corpus.count, 3)
        var accepted = 0
        let executions = Fuzz.run(name: "manifest", corpus: corpus, iterations: Fuzz.iterations(default: Self.defaultManifestMutants)) { bytes in
            let input = bytes.count % 2 == 0 ? BankFixup.manifest(bytes) : bytes
            let text = BankDump.manifest(input)
            XCTAssertEqual(BankDump.bytes(fromListing: text), input, "the dump must list every byte once")
            do throws(MemoryBankError) {
                let m = try Manifest.decode(input, file: "fuzz.mbm")
                accepted += 1
                XCTAssertLessThanOrEqual(m.generations.count * Manifest.entryByteCount, input.count)
                let again = try Manifest.decode(m.encode(), file: "re")
                XCTAssertEqual(again, m, "a decoded manifest re-encodes to itself")
            } catch {
                XCTAssertTrue(error.description.contains("\nhint: "), "\(error)")
            }
        }
        XCTAssertGreaterThan(accepted, executions / 50, "too few mutants are accepted: \(accepted)/\(executions)")
    }

    // MARK: - Corpus

    /// Every `seed-*` file is a valid file of its kind; `regress-*` files are refused with an error.
    func test_corpus_seedsAreValid_regressionsAreRefused() throws {
        for kind in ["segment", "manifest"] {
            for (name, bytes) in try Fuzz.loadCorpus(Fuzz.corpusDirectory(target: "MemoryBankTests", name: kind)) {
                XCTAssertLessThanOrEqual(bytes.count, 8192, "\(name): corpus files stay small")
                let valid: Bool
                if kind == "manifest" {
                    valid = (try? Manifest.decode(bytes, file: name)) != nil
                } else {
                    valid = exerciseSegment(bytes).opened && BankReader.verifySegmentBytes(bytes, in: dir.url)
                }
                XCTAssertEqual(valid, name.hasPrefix("seed-"), "\(kind)/\(name)")
            }
        }
    }

    /// Writes the seed corpus from small fixture banks (run once; the files are committed).
    func test_writeCorpus() throws {
        guard ProcessInfo.processInfo.environment["MEMLOSS_FUZZ_WRITE_CORPUS"] == "1" else {
            throw XCTSkip("set MEMLOSS_FUZZ_WRITE_CORPUS=1 to rewrite Tests/MemoryBankTests/Fuzz/*/seed-*")
        }
        let root = Fuzz.corpusDirectory(target: "MemoryBankTests", name: "segment").deletingLastPathComponent()
        for kind in ["segment", "manifest"] {
            try FileManager.default.createDirectory(at: root.appendingPathComponent(kind), withIntermediateDirectories: true)
        }
        let variants: [(String, BankCodec, PerturbationNorm)] = [
            ("q8-linf", .q8, .linf), ("f32-linf", .f32, .linf), ("f16-l2", .f16, .l2), ("q4-linf", .q4, .linf),
            ("levels-l2", .levels, .l2), ("q8rc-linf", .q8rc, .linf), ("q8rcn-linf", .q8rcn, .linf),
        ]
        for (name, codec, norm) in variants {
            let bankDir = dir.url.appendingPathComponent(name)
            let config = BankFixtures.config(codec: codec, norm: norm, sampleCount: 6, shape: [3, 4, 5], window: 2)
            let bank = try Bank.create(at: bankDir, config: config, options: BankFixtures.options())
            if codec == .q8rcn {
                // δ started from the bank's own noise, so the records use the noise-relative trees.
                for g in [0, 1] {
                    try bank.beginGeneration(g)
                    for id in [0, 2, 3, 5] {
                        let d = Q8rcnCodecTests.noiseStartedDelta(shape: [3, 4, 5], noise: BankFixtures.startNoise, generation: g,
                                                                  id: id, seed: UInt64(g * 1000 + id))
                        try bank.append(id: id, delta: d, view: BankFixtures.view(id), metadata: BankFixtures.metadata(id))
                    }
                    try bank.sealGeneration()
                }
            } else {
                try BankFixtures.fill(bank, generations: [0, 1], ids: [0, 2, 3, 5])
            }
            bank.close()
            try Data(contentsOf: BankFixtures.segmentURL(bankDir, 1))
                .write(to: root.appendingPathComponent("segment/seed-\(name).mbs"))
            try Data(contentsOf: bankDir.appendingPathComponent(BankLayout.manifestName))
                .write(to: root.appendingPathComponent("manifest/seed-\(name).mbm"))
        }
        // The mutants of issue 14's fault-injection run, kept as regressions.
        func load(_ path: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: root.appendingPathComponent(path))) }
        func save(_ b: [UInt8], _ path: String) throws { try Data(b).write(to: root.appendingPathComponent(path)) }
        func put(_ v: UInt64, _ at: Int, _ width: Int, _ b: inout [UInt8]) {
            for k in 0..<width { b[at + k] = UInt8(truncatingIfNeeded: v >> UInt64(8 * k)) }
        }
        var huge = try load("segment/seed-q8-linf.mbs")
        put(0xFFFF_FFFF_FFFF_FFF0, 80, 8, &huge)  // dataOffset, checksum left stale (dump segfaulted)
        try save(huge, "segment/regress-dataoffset-huge.mbs")
        var overflow = try load("segment/seed-q8-linf.mbs")
        put(1 << 60, 48, 8, &overflow)  // sampleCount, with indexBytes = 8·sampleCount past Int.max
        put(1 << 63, 96, 8, &overflow)
        try save(BankFixup.segment(overflow), "segment/regress-indexbytes-overflow.mbs")
        var unsealed = try load("segment/seed-levels-l2.mbs")
        put(0, 16, 4, &unsealed)  // an unsealed `.tmp` segment: flags 0, no index yet
        put(0, 88, 8, &unsealed)
        put(0, 96, 8, &unsealed)
        try save(BankFixup.segment(Array(unsealed.prefix(unsealed.count - 48))), "segment/regress-unsealed-tmp.mbs")
        // δ[1] = NaN behind a valid record CRC (stats trapped): an f32 record of random values, so that
        // it is stored without LZ4 and the NaN lands in the payload as written.
        let nanDir = dir.url.appendingPathComponent("nan")
        let nanConfig = BankFixtures.config(codec: .f32, sampleCount: 3, shape: [3, 4, 5])
        let nanBank = try Bank.create(at: nanDir, config: nanConfig, options: BankFixtures.options())
        try nanBank.beginGeneration(0)
        for id in 0..<2 { try nanBank.append(id: id, delta: BankFixtures.uniformDelta(count: 60, seed: UInt64(id)), view: .identity, metadata: .zero) }
        try nanBank.sealGeneration()
        nanBank.close()
        var nan = [UInt8](try Data(contentsOf: BankFixtures.segmentURL(nanDir, 0)))
        let first = Int(BankFixup.le(nan, Int(BankFixup.le(nan, 88, 8)!), 8)!)
        XCTAssertEqual(nan[first + 5] & RecordHeader.lz4Flag, 0, "the record must be stored raw")
        put(UInt64(Float.nan.bitPattern), first + 48 + 4, 4, &nan)
        try save(BankFixup.segment(nan), "segment/regress-nan-delta-f32.mbs")
        // A q8rcn segment claiming generation 2⁴⁰ (found by this target in a MEMLOSS_CHECKED run: the
        // decoder asked StartNoise for a generation ≥ 2³² and trapped; now a corrupt record).
        var farGeneration = try load("segment/seed-q8rcn-linf.mbs")
        put(1 << 40, 56, 8, &farGeneration)
        try save(BankFixup.segment(farGeneration), "segment/regress-q8rcn-generation-huge.mbs")
        var count = try load("manifest/seed-q8-linf.mbm")
        put(0xFFFF_FFFF, 60, 4, &count)  // generationCount (dump looped 2³² times)
        try save(BankFixup.manifest(count), "manifest/regress-generationcount-huge.mbm")
    }
}

extension BankReader {
    /// True when `bytes`, written as the only segment of a bank with a manifest made for it, verifies
    /// intact (corpus check: seeds are fully valid, records included).
    static func verifySegmentBytes(_ bytes: [UInt8], in directory: URL) -> Bool {
        guard bytes.count >= SegmentHeader.encodedByteCount else { return false }
        let fields = SegmentHeader.fields(of: bytes)
        let bank = directory.appendingPathComponent("verify-\(fields.headerChecksum)")
        try? FileManager.default.createDirectory(at: bank, withIntermediateDirectories: true)
        guard let config = try? fields.config(createdBy: "", file: "corpus", startNoise: BankFixtures.startNoise),
              (try? Data(bytes).write(to: bank.appendingPathComponent(BankLayout.segmentName(Int(fields.generation))))) != nil
        else { return false }
        let m = Manifest(sequence: 1, config: config, generations: [
            ManifestGeneration(generation: Int(fields.generation), segmentBytes: bytes.count, segmentHeaderChecksum: fields.headerChecksum),
        ])
        guard (try? Data(m.encode()).write(to: bank.appendingPathComponent(BankLayout.manifestName))) != nil else { return false }
        return verify(at: bank).isIntact
    }
}
