// Q8rcnCodecTests.swift: the `q8rcn` codec of docs/format/membank-v1.md §7.6 and the start noise it
// regenerates (Tensors.StartNoise, §7.6). The generator pinned to the spec's values and its moments;
// the codec bit-identical to q8 on every kind of δ (also with the wrong noise, which only costs
// bytes), smaller than q8rc on δ made from the noise; the manifest carrying the noise (v1.1) and a
// bank round trip; the golden records (Fixtures/golden-q8rcn-records.bin) and the spec's listing of the first; damaged payloads behind a
// valid CRC (every truncation, a mutation sweep): a typed error or valid levels, never a trap.

import Foundation
import SystemIO
@testable import MemoryBank
import Tensors
import _TestSupport
import XCTest

final class Q8rcnCodecTests: XCTestCase {
    private let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/golden-q8rcn-records.bin")

    private func encode(_ config: BankConfig, _ delta: [Float], id: Int = 3, generation: Int = 5) -> ([UInt8], RecordStatistics) {
        let encoder = RecordEncoder(config: config)
        var w = ByteWriter()
        let stats = encoder.appendRecord(id: id, generation: generation, delta: delta, view: BankFixtures.view(id),
                                         metadata: BankFixtures.metadata(id), to: &w)
        return (w.bytes, stats)
    }

    private func decode(_ config: BankConfig, _ record: [UInt8], id: Int = 3, generation: Int = 5) throws -> [Float] {
        let decoder = RecordDecoder(config: config)
        var out = [Float](repeating: .nan, count: config.elementCount)
        _ = try decoder.decode(record: record, id: id, into: &out, file: "f", generation: generation)
        return out
    }

    /// A 10-step sign-PGD-like δ (α = ε/4, clipped at ±ε, spatially correlated signs flipped with
    /// probability 0.3 per step, so about half the values stay interior) started from
    /// σ·z of `noise` at (generation, id), as the attack with a per-sample start makes it.
    static func noiseStartedDelta(shape: [Int], noise: BankStartNoise, generation: Int, id: Int, seed: UInt64,
                                  epsilon e: Float = BankFixtures.epsilon) -> [Float] {
        let z = StartNoise(seed: noise.seed).unit(epoch: generation, sampleID: id, count: shape.reduce(1, *))
        var g = SplitMix64(seed: seed)
        let (c, h, w) = (shape[0], shape[1], shape[2])
        let waves = (0..<4).map { _ in (g.nextFloat() * 0.8, g.nextFloat() * 0.8, g.nextFloat() * 6.3) }
        var delta = [Float](repeating: 0, count: c * h * w)
        for ch in 0..<c {
            for y in 0..<h {
                for x in 0..<w {
                    let i = (ch * h + y) * w + x
                    var d = noise.sigma * z[i]
                    let field = waves.reduce(Float(ch)) { $0 + sin($1.0 * Float(x) + $1.1 * Float(y) + $1.2) }
                    for _ in 0..<10 {
                        let up = (field > 0) != (g.nextFloat() < 0.3)
                        d = min(max(d + (up ? e / 4 : -e / 4), -e), e)
                    }
                    delta[i] = d
                }
            }
        }
        return delta
    }

    // MARK: - The start noise

    func test_startNoise_matchesTheSpecsValues_isPerSample_andHasGaussianMoments() {
        let noise = StartNoise(seed: 1)
        let z = noise.unit(epoch: 2, sampleID: 3, count: 4)
        // docs/format/membank-v1.md §7.6 lists these (seed 1, epoch 2, sample 3).
        XCTAssertEqual(z.map(\.bitPattern), Self.specNoiseBits, "StartNoise values \(z)")
        XCTAssertEqual(noise.unit(epoch: 2, sampleID: 3, count: 4), z, "deterministic")
        XCTAssertNotEqual(noise.unit(epoch: 2, sampleID: 4, count: 4), z)
        XCTAssertNotEqual(noise.unit(epoch: 3, sampleID: 3, count: 4), z)
        XCTAssertNotEqual(StartNoise(seed: 2).unit(epoch: 2, sampleID: 3, count: 4), z)
        // A prefix of a longer fill is the shorter fill.
        XCTAssertEqual(Array(noise.unit(epoch: 2, sampleID: 3, count: 100).prefix(4)), z)
        let many = noise.unit(epoch: 0, sampleID: 7, count: 200_000).map(Double.init)
        let mean = many.reduce(0, +) / Double(many.count)
        let variance = many.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(many.count)
        XCTAssertEqual(mean, 0, accuracy: 0.01)
        XCTAssertEqual(variance, 1, accuracy: 0.02)
        XCTAssertLessThanOrEqual(many.map(abs).max()!, 786_420.0 / 131_072.0)
        let within1 = Double(many.filter { abs($0) < 1 }.count) / Double(many.count)
        XCTAssertEqual(within1, 0.6827, accuracy: 0.01, "P(|z| < 1) as for N(0, 1)")
        // The batch tensor is the per-sample rows.
        let t = noise.unitTensor(epoch: 2, ids: [9, 3], sampleShape: [1, 2, 2])
        XCTAssertEqual(t.shape, [2, 1, 2, 2])
        XCTAssertEqual(Array(t.scalars[4..<8]), z)
    }

    /// z_0…z_3 of StartNoise(seed: 1) at epoch 2, sample 3 (the spec's table), as bit patterns.
    static let specNoiseBits: [UInt32] = [0xBF14_8B00, 0xBF65_8500, 0x3FD0_9580, 0x3FCB_D580]

    // MARK: - The codec

    func test_q8rcn_isBitIdenticalToQ8_onEveryKindOfDelta_evenWithTheWrongNoise() throws {
        let shapes = [[1, 1, 1], [1, 2, 2], [3, 8, 9], [1, 28, 28], [3, 32, 32]]
        for norm in PerturbationNorm.allCases {
            for shape in shapes {
                let n = shape.reduce(1, *)
                let q8 = BankFixtures.config(codec: .q8, norm: norm, shape: shape)
                let rcn = BankFixtures.config(codec: .q8rcn, norm: norm, shape: shape)
                var wrong = rcn
                wrong.startNoise?.seed ^= 1
                var g = SplitMix64(seed: UInt64(n))
                let e = BankFixtures.epsilon
                let cases: [(String, [Float])] = [
                    ("pgd", BankFixtures.pgdDelta(count: n, seed: 1)),
                    ("uniform", BankFixtures.uniformDelta(count: n, seed: 2)),
                    ("noise-started", Self.noiseStartedDelta(shape: shape, noise: BankFixtures.startNoise, generation: 5, id: 3, seed: 3)),
                    ("attack", Q8rcCodecTests.attackShapedDelta(shape: shape, seed: 3)),
                    ("signs", (0..<n).map { _ in g.nextFloat() < 0.5 ? e : -e }),
                    ("zeros", [Float](repeating: 0, count: n)),
                    ("clamped", (0..<n).map { i in Float(i % 5 - 2) * e }),
                ]
                for (name, delta) in cases {
                    let reference = try decode(q8, encode(q8, delta).0).map(\.bitPattern)
                    for config in [rcn, wrong] {
                        let (b, stats) = encode(config, delta)
                        XCTAssertEqual(try decode(config, b).map(\.bitPattern), reference, "\(norm) \(shape) \(name)")
                        XCTAssertLessThanOrEqual(stats.rawBytes, RecordCodec.q8rcHeaderBytes + n, "never more than q8 + 4 bytes")
                        XCTAssertFalse(stats.lz4)
                    }
                }
            }
        }
    }

    func test_q8rcn_needsTheRecordsGenerationAndID_andCodesNoiseStartedDeltasSmallerThanQ8rc() throws {
        let shape = [3, 32, 32]
        let rcn = BankFixtures.config(codec: .q8rcn, shape: shape), rc = BankFixtures.config(codec: .q8rc, shape: shape)
        var savings = 0
        for id in 0..<4 {
            let delta = Self.noiseStartedDelta(shape: shape, noise: BankFixtures.startNoise, generation: 5, id: id, seed: UInt64(id))
            let (record, stats) = encode(rcn, delta, id: id)
            let (_, plain) = encode(rc, delta, id: id)
            XCTAssertEqual(stats.layout, RecordCodec.q8rcCodedLayout)
            savings += plain.rawBytes - stats.rawBytes
            XCTAssertLessThan(stats.rawBytes, plain.rawBytes, "id \(id): knowing the noise must pay")
            // Decoded under another generation the noise differs: a typed error or other levels, never δ.
            do {
                let other = try decode(rcn, record, id: id, generation: 6)
                XCTAssertNotEqual(other.map(\.bitPattern), try decode(rcn, record, id: id).map(\.bitPattern))
            } catch let error as MemoryBankError {
                guard case .corruptRecord = error else { return XCTFail("unexpected \(error)") }
            }
        }
        XCTAssertGreaterThan(savings / 4, 100, "bytes saved per entry against q8rc")
    }

    func test_config_requiresTheStartNoiseExactlyForQ8rcn() {
        var config = BankFixtures.config(codec: .q8rcn)
        XCTAssertNoThrow(try config.validate())
        config.startNoise = nil
        assertBankError(try config.validate()) { if case .invalidConfig(let r) = $0 { return r.contains("startNoise") }; return false }
        config.startNoise = BankStartNoise(generator: 2, seed: 1, sigma: 0.001)
        assertBankError(try config.validate()) { if case .invalidConfig(let r) = $0 { return r.contains("generator 2") }; return false }
        config.startNoise = BankStartNoise(seed: 1, sigma: .nan)
        assertBankError(try config.validate()) { if case .invalidConfig(let r) = $0 { return r.contains("σ") }; return false }
        var q8 = BankFixtures.config(codec: .q8)
        q8.startNoise = BankFixtures.startNoise
        assertBankError(try q8.validate()) { if case .invalidConfig(let r) = $0 { return r.contains("only stored with codec q8rcn") }; return false }
    }

    /// The noise is defined for generations below 2³² only (spec §7.6): a record that claims a later
    /// generation (a damaged segment header) is a corrupt record, and the writer never opens one.
    func test_aGenerationOf2To32OrMore_isACorruptRecordWhenRead_andTheWriterRefusesIt() throws {
        let config = BankFixtures.config(codec: .q8rcn, shape: [3, 8, 8])
        let delta = Self.noiseStartedDelta(shape: [3, 8, 8], noise: BankFixtures.startNoise, generation: 5, id: 3, seed: 1)
        let (record, stats) = encode(config, delta)
        XCTAssertEqual(stats.layout, RecordCodec.q8rcCodedLayout)
        // The last generation with noise: decoded under its (other) noise, other levels or a malformed stream.
        do {
            _ = try decode(config, record, generation: (1 << 32) - 1)
        } catch let error as MemoryBankError {
            guard case .corruptRecord(_, _, _, let reason) = error, !reason.contains("2³²") else { return XCTFail("\(error)") }
        }
        for generation in [1 << 32, 1 << 40, Int.max] {
            assertBankError(try decode(config, record, generation: generation), "generation \(generation)") {
                if case .corruptRecord(_, _, _, let reason) = $0 { return reason.contains("2³²") }
                return false
            }
        }
        let dir = TempDirectory("bank-q8rcn-far-generation")
        let bank = try Bank.create(at: dir.url, config: BankFixtures.config(codec: .q8rcn, sampleCount: 4, shape: [3, 8, 8]),
                                   options: BankFixtures.options())
        defer { bank.close() }
        assertBankError(try bank.beginGeneration(1 << 32)) { if case .invalidConfig(let r) = $0 { return r.contains("2³²") }; return false }
        XCTAssertNoThrow(try bank.beginGeneration((1 << 32) - 1))
    }

    // MARK: - The manifest carries the noise

    func test_manifest_v1_1_roundTripsTheStartNoise_otherCodecsKeepTheV1_0Header() throws {
        let config = BankFixtures.config(codec: .q8rcn, window: 2)
        let manifest = Manifest(sequence: 3, config: config, generations: [ManifestGeneration(generation: 4, segmentBytes: 999, segmentHeaderChecksum: 7)])
        let bytes = manifest.encode()
        XCTAssertEqual(Array(bytes[10..<12]), [1, 0], "versionMinor 1")
        XCTAssertEqual(Array(bytes[12..<16]), [88, 0, 0, 0], "headerBytes 88")
        XCTAssertEqual(try Manifest.decode(bytes, file: "m"), manifest)
        let q8 = Manifest(sequence: 3, config: BankFixtures.config(codec: .q8), generations: []).encode()
        XCTAssertEqual(Array(q8[10..<16]), [0, 0, 72, 0, 0, 0], "a q8 bank writes the v1.0 header")
        // A q8rcn manifest whose header stops at 72 bytes has no noise: refused, naming the field.
        var short = Array(q8[0..<q8.count - 4])
        short[52] = 7
        let crc = CRC32C.checksum(short)
        short += (0..<4).map { UInt8(truncatingIfNeeded: crc >> (8 * $0)) }
        assertBankError(try Manifest.decode(short, file: "m")) {
            if case .invalidField(_, let field, _, let allowed) = $0 { return field == "headerBytes" && allowed.contains("q8rcn") }
            return false
        }
    }

    func test_bank_writesAndReadsQ8rcnEntries_throughTheManifestsNoise() throws {
        let dir = TempDirectory("bank-q8rcn")
        let shape = [3, 8, 8], count = 6
        let config = BankFixtures.config(codec: .q8rcn, sampleCount: count, shape: shape, window: 2)
        let rows = (0..<count).map { Self.noiseStartedDelta(shape: shape, noise: BankFixtures.startNoise, generation: 1, id: $0, seed: UInt64($0)) }
        do {
            let bank = try Bank.create(at: dir.url, config: config, options: BankFixtures.options())
            try bank.beginGeneration(1)
            let ids = Array(0..<count)
            try bank.append(ids: ids, deltas: Tensor(shape: [count] + shape, values: rows.flatMap { $0 }),
                            views: ids.map(BankFixtures.view), metadata: ids.map(BankFixtures.metadata))
            _ = try bank.sealGeneration()
            bank.close()
        }
        let reader = try BankReader.open(at: dir.url)
        XCTAssertEqual(reader.config.startNoise, BankFixtures.startNoise)
        let q8 = BankFixtures.config(codec: .q8, sampleCount: count, shape: shape)
        for (id, d) in rows.enumerated() {
            let out = try XCTUnwrap(try reader.entry(id: id, generation: 1)).delta
            XCTAssertEqual(out.map(\.bitPattern), try decode(q8, encode(q8, d, id: id).0, id: id).map(\.bitPattern), "id \(id)")
        }
        XCTAssertTrue(BankReader.verify(at: dir.url).isIntact)
    }

    // MARK: - Golden records

    /// Three records of shape 2×3×4, ε = 8/255, L∞, generation 5, the fixtures' noise: a δ started
    /// from the noise (layout 0), zeros (layout 0) and a spread-out δ (layout 1).
    static func goldenRecords() -> ([UInt8], [[Float]]) {
        let config = BankFixtures.config(codec: .q8rcn, shape: [2, 3, 4])
        let started = noiseStartedDelta(shape: [2, 3, 4], noise: BankFixtures.startNoise, generation: 5, id: 0, seed: 8)
        let zeros = [Float](repeating: 0, count: 24)
        let spread = (0..<24).map { i in Float((i * 37) % 255 - 127) * (BankFixtures.epsilon / 127) }
        let encoder = RecordEncoder(config: config)
        var w = ByteWriter()
        for (id, d) in [started, zeros, spread].enumerated() {
            _ = encoder.appendRecord(id: id, generation: 5, delta: d, view: BankFixtures.view(id), metadata: BankFixtures.metadata(id), to: &w)
        }
        return (w.bytes, [started, zeros, spread])
    }

    func test_goldenRecords_matchTheCommittedBytes_andDecodeToTheQ8Levels() throws {
        let (bytes, deltas) = Self.goldenRecords()
        if ProcessInfo.processInfo.environment["MEMBANK_REGENERATE_GOLDEN"] == "1" { try Data(bytes).write(to: fixture) }
        let committed = [UInt8](try Data(contentsOf: fixture))
        XCTAssertEqual(bytes, committed, "q8rcn records differ from Fixtures/golden-q8rcn-records.bin")
        let rcn = BankFixtures.config(codec: .q8rcn, shape: [2, 3, 4]), q8 = BankFixtures.config(codec: .q8, shape: [2, 3, 4])
        var offset = 0
        for (id, d) in deltas.enumerated() {
            let length = try XCTUnwrap(Q8rcCodecTests.recordLength(committed, at: offset))
            let record = Array(committed[offset..<(offset + length)])
            XCTAssertEqual(record[4], 7, "codec byte")
            XCTAssertEqual(record[48], id == 2 ? 1 : 0, "layout: coded, coded, direct")
            XCTAssertEqual(try decode(rcn, record, id: id).map(\.bitPattern), try decode(q8, encode(q8, d, id: id).0, id: id).map(\.bitPattern))
            offset += length
        }
        XCTAssertEqual(offset, committed.count)
    }

    private var spec: URL {
        fixture.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("docs/format/membank-v1.md")
    }

    /// The §7.6 worked example for the first golden record: its levels, the noise bases b_j (shown as
    /// the signed f) and halves h_j that the decoder regenerates, and the payload bytes, 16 per line.
    static func specListing(record: [UInt8], levels: [Int8], shape: [Int], generation: Int, id: Int) -> String {
        let (c, h, w) = (shape[0], shape[1], shape[2])
        let noise = BankFixtures.startNoise
        let scale = BankFixtures.epsilon / 127
        let z = StartNoise(seed: noise.seed).unit(epoch: generation, sampleID: id, count: c * h * w)
        var bases = [UInt8](repeating: 0, count: z.count), halves = [UInt8](repeating: 0, count: z.count)
        z.withUnsafeBufferPointer { zp in
            LevelCoder.noiseBases(unit: zp.baseAddress!, count: z.count, sigma: noise.sigma, scale: scale, bases: &bases, halves: &halves)
        }
        func planes(_ label: String, _ values: [Int]) -> String {
            (0..<c).map { ch in
                (ch == 0 ? label.padding(toLength: 9, withPad: " ", startingAt: 0) : String(repeating: " ", count: 9)) + "c=\(ch): "
                    + (0..<h).map { y in (0..<w).map { x in String(values[(ch * h + y) * w + x]) }.joined(separator: " ") }
                        .joined(separator: " / ")
                    .replacingOccurrences(of: "-", with: "−") + "\n"
            }.joined()
        }
        func u32(_ at: Int) -> Int { (0..<4).reduce(0) { $0 | Int(record[at + $1]) << (8 * $1) } }
        let raw = u32(36), stored = u32(40)  // rawBytes, storedBytes (equal: q8rcn never sets LZ4)
        let stream = Array(record[52..<(48 + stored)])
        var text = "sample \(id), generation \(generation), shape \(c)×\(h)×\(w), ε = 8/255 (scale ε/127), L∞, "
            + "noiseSeed 0x\(String(noise.seed, radix: 16, uppercase: true)), σ = \(noise.sigma)\n"
        text += planes("levels", levels.map(Int.init))
        text += planes("b (f)", bases.map { Int(Int8(bitPattern: $0)) })
        text += planes("h", halves.map(Int.init))
        func hex(_ bytes: ArraySlice<UInt8>) -> String { bytes.map { String(format: "%02X", $0) }.joined(separator: " ") }
        func line(_ bytes: ArraySlice<UInt8>, _ note: String) -> String {
            let h = hex(bytes)
            return note.isEmpty ? "         " + h + "\n" : "         " + h.padding(toLength: max(h.count, 47), withPad: " ", startingAt: 0) + "  " + note + "\n"
        }
        text += "payload  " + hex(record[48..<52]).padding(toLength: 47, withPad: " ", startingAt: 0) + "  layout 0 (coded), reserved\n"
        for start in stride(from: 0, to: stream.count, by: 16) {
            let note = start == 0 ? "stream (\(stream.count) bytes; \(raw) raw bytes, record \(record.count) B)" : ""
            text += line(stream[start..<min(stream.count, start + 16)], note)
        }
        return text
    }

    func test_specWorkedExample_listsTheFirstGoldenRecord_levelsBasesAndBytes() throws {
        let committed = [UInt8](try Data(contentsOf: fixture))
        let length = try XCTUnwrap(Q8rcCodecTests.recordLength(committed, at: 0))
        let record = Array(committed[0..<length])
        XCTAssertEqual(record[48], 0, "the listed record is coded (layout 0)")
        let config = BankFixtures.config(codec: .q8rcn, shape: [2, 3, 4])
        let levels = try decode(config, record, id: 0).map { Int8(($0 / (BankFixtures.epsilon / 127)).rounded()) }
        let listing = "```\n" + Self.specListing(record: record, levels: levels, shape: [2, 3, 4], generation: 5, id: 0) + "```\n"
        var text = try String(contentsOf: spec, encoding: .utf8)
        let begin = "<!-- golden-q8rcn:begin -->\n", end = "<!-- golden-q8rcn:end -->"
        var range: Range<String.Index> {
            get throws { try XCTUnwrap(text.range(of: begin)).upperBound..<XCTUnwrap(text.range(of: end)).lowerBound }
        }
        if ProcessInfo.processInfo.environment["MEMBANK_REGENERATE_GOLDEN"] == "1" {
            text.replaceSubrange(try range, with: listing)
            try text.write(to: spec, atomically: true, encoding: .utf8)
        }
        let documented = String(text[try range])
        XCTAssertEqual(documented, listing, "docs/format/membank-v1.md §7.6 worked example ≠ Fixtures/golden-q8rcn-records.bin")
        // The payload bytes as a reader of the spec sees them: the hex after "payload", line by line.
        let payloadLines = documented.split(separator: "\n").drop { !$0.hasPrefix("payload") }.prefix { !$0.hasPrefix("```") }
        let listed = payloadLines.flatMap { line in
            line.dropFirst(9).prefix(47).split(separator: " ").compactMap { UInt8($0, radix: 16) }
        }
        XCTAssertEqual(listed, Array(record[48..<(48 + Int(record[40]))]), "listed payload bytes ≠ the golden record's")
    }

    // MARK: - Damaged payloads behind a valid checksum

    private func assertTypedErrorOrValidLevels(_ config: BankConfig, _ record: [UInt8], _ message: String) {
        do {
            let out = try decode(config, record)
            for v in out where !(abs(v) <= config.epsilon) { XCTFail("\(message): decoded \(v) outside ±L·scale"); return }
        } catch let error as MemoryBankError {
            switch error {
            case .corruptRecord, .unsupportedRecord: break
            default: XCTFail("\(message): unexpected error \(error)")
            }
        } catch {
            XCTFail("\(message): untyped error \(error)")
        }
    }

    func test_damagedPayloads_everyTruncationAndAMutationSweep_giveATypedErrorOrValidLevels() throws {
        let shape = [3, 16, 16]
        let config = BankFixtures.config(codec: .q8rcn, shape: shape)
        let delta = Self.noiseStartedDelta(shape: shape, noise: BankFixtures.startNoise, generation: 5, id: 3, seed: 4)
        let (record, stats) = encode(config, delta)
        XCTAssertEqual(stats.layout, RecordCodec.q8rcCodedLayout)
        let payload = Array(record[48..<(48 + stats.storedBytes)])
        for cut in 0..<payload.count {
            let damaged = Q8rcCodecTests.reseal(record, payload: Array(payload[0..<cut]))
            assertBankError(try decode(config, damaged), "truncated to \(cut)") { if case .corruptRecord = $0 { return true }; return false }
        }
        assertBankError(try decode(config, Q8rcCodecTests.reseal(record, payload: payload + [0]))) { if case .corruptRecord = $0 { return true }; return false }
        for i in 0..<payload.count {
            for m: UInt8 in [0x01, 0x80, 0xFF] {
                var p = payload
                p[i] ^= m
                assertTypedErrorOrValidLevels(config, Q8rcCodecTests.reseal(record, payload: p), "byte \(i) ^ \(m)")
            }
        }
        var badLayout = payload
        badLayout[0] = 7
        assertBankError(try decode(config, Q8rcCodecTests.reseal(record, payload: badLayout))) { if case .unsupportedRecord = $0 { return true }; return false }
        var g = SplitMix64(seed: 98)
        for length in 0..<64 {
            let p = [0, 0, 0, 0] + (0..<length).map { _ in UInt8(truncatingIfNeeded: g.next()) }
            assertTypedErrorOrValidLevels(config, Q8rcCodecTests.reseal(record, payload: p), "random stream of \(length)")
        }
    }
}
