// BankTestSupport.swift: shared helpers of the MemoryBank tests: small configurations, PGD-like
// perturbations, a bank filled with known entries, and byte surgery on files (flip, patch + re-CRC).

import SystemIO
import Foundation
@testable import MemoryBank
import Tensors
import XCTest

enum BankFixtures {
    static let epsilon: Float = 8 / 255

    static func config(codec: BankCodec = .q8, norm: PerturbationNorm = .linf, sampleCount: Int = 10,
                       shape: [Int] = [3, 4, 5], window: Int = 1, stride: Int = 1) -> BankConfig {
        BankConfig(sampleCount: sampleCount, shape: shape, epsilon: epsilon, norm: norm, codec: codec,
                   window: window, stride: stride, createdBy: "{\"test\": true}",
                   startNoise: codec == .q8rcn ? startNoise : nil)
    }

    /// The start noise of every `q8rcn` fixture bank (TRADES' σ).
    static let startNoise = BankStartNoise(seed: 0x1234_5678_9ABC_DEF0, sigma: 0.001)

    /// A PGD-like δ: a 10-step sign walk of size ε/4 from a small random start, clipped to ±ε.
    static func pgdDelta(count: Int, seed: UInt64, epsilon: Float = epsilon) -> [Float] {
        var g = SplitMix64(seed: seed)
        var d = (0..<count).map { _ in (g.nextFloat() * 2 - 1) * epsilon * 0.05 }
        for _ in 0..<10 {
            for i in 0..<count {
                let step: Float = g.nextFloat() < 0.6 ? 1 : -1
                d[i] = min(epsilon, max(-epsilon, d[i] + step * epsilon / 4))
            }
        }
        return d
    }

    static func uniformDelta(count: Int, seed: UInt64, magnitude: Float = epsilon) -> [Float] {
        var g = SplitMix64(seed: seed)
        return (0..<count).map { _ in (g.nextFloat() * 2 - 1) * magnitude }
    }

    static func metadata(_ id: Int) -> EntryMetadata {
        EntryMetadata(label: Int32(id % 10), pY: Float(id) / 100, margin: -Float(id), loss: Float(id) * 0.5)
    }

    static func view(_ id: Int) -> ViewParameters { ViewParameters(dx: Int8(id % 9 - 4), dy: Int8(4 - id % 9), flip: id % 2 == 1) }

    static func options(sync: Bool = false, queueCapacity: Int = 64) -> Bank.Options {
        Bank.Options(queueCapacity: queueCapacity, writeBufferBytes: 4096, sync: sync)
    }

    /// Writes generations `generations` with entries for `ids`, δ = pgdDelta(seed: g·1000 + id).
    /// Returns the written δ by (generation, id).
    @discardableResult
    static func fill(_ bank: Bank, generations: [Int], ids: [Int]) throws -> [Int: [Int: [Float]]] {
        var written: [Int: [Int: [Float]]] = [:]
        for g in generations {
            try bank.beginGeneration(g)
            for id in ids {
                let d = pgdDelta(count: bank.config.elementCount, seed: UInt64(g * 1000 + id))
                try bank.append(id: id, delta: d, view: view(id), metadata: metadata(id))
                written[g, default: [:]][id] = d
            }
            try bank.sealGeneration()
        }
        return written
    }

    static func segmentURL(_ dir: URL, _ generation: Int) -> URL {
        dir.appendingPathComponent(BankLayout.segmentName(generation))
    }

    static func readBytes(_ url: URL) throws -> [UInt8] { [UInt8](try Data(contentsOf: url)) }

    static func writeBytes(_ bytes: [UInt8], _ url: URL) throws { try Data(bytes).write(to: url) }

    /// XORs one byte of a file with 0xFF.
    static func flipByte(at offset: Int, in url: URL) throws {
        var b = try readBytes(url)
        b[offset] ^= 0xFF
        try writeBytes(b, url)
    }

    /// Rewrites a segment's header through `change` and recomputes its checksum (the manifest's copy
    /// of the checksum is patched too, so only the intended change is seen).
    static func patchSegmentHeader(dir: URL, generation: Int, _ change: (inout [UInt8]) -> Void) throws {
        let url = segmentURL(dir, generation)
        var b = try readBytes(url)
        change(&b)
        let crc = CRC32C.checksum(Array(b[0..<124]))
        for i in 0..<4 { b[124 + i] = UInt8(truncatingIfNeeded: crc >> (8 * UInt32(i))) }
        try writeBytes(b, url)
        // Patch the manifest's copy of the header checksum and re-seal the manifest.
        let murl = dir.appendingPathComponent(BankLayout.manifestName)
        var m = try Manifest.decode(readBytes(murl), file: murl.path)
        for i in m.generations.indices where m.generations[i].generation == generation {
            m.generations[i].segmentHeaderChecksum = crc
        }
        try writeBytes(m.encode(), murl)
    }

    /// Re-computes a record's checksum after `change` (to test checks behind the CRC).
    static func patchRecord(dir: URL, generation: Int, id: Int, _ change: (inout [UInt8], Int) -> Void) throws {
        let url = segmentURL(dir, generation)
        var b = try readBytes(url)
        var r = ByteReader(b, offset: 88)
        let indexOffset = Int(r.readLE(UInt64.self))
        var e = ByteReader(b, offset: indexOffset + 8 * id)
        let offset = Int(e.readLE(UInt64.self))
        change(&b, offset)
        var h = ByteReader(b, offset: offset + 40)
        let stored = Int(h.readLE(UInt32.self))
        var crc = CRC32C()
        crc.update(b[offset..<(offset + 44)])
        crc.update(b[(offset + 48)..<(offset + 48 + stored)])
        for i in 0..<4 { b[offset + 44 + i] = UInt8(truncatingIfNeeded: crc.value >> (8 * UInt32(i))) }
        try writeBytes(b, url)
    }

    /// The absolute offset of a record (through the index).
    static func recordOffset(dir: URL, generation: Int, id: Int) throws -> Int {
        let b = try readBytes(segmentURL(dir, generation))
        var r = ByteReader(b, offset: 88)
        let indexOffset = Int(r.readLE(UInt64.self))
        var e = ByteReader(b, offset: indexOffset + 8 * id)
        return Int(e.readLE(UInt64.self))
    }
}

/// Asserts that `body` throws a MemoryBankError matching `predicate`; returns it.
@discardableResult
func assertBankError<T>(_ body: @autoclosure () throws -> T, _ message: String = "", file: StaticString = #filePath,
                        line: UInt = #line, _ predicate: (MemoryBankError) -> Bool) -> MemoryBankError? {
    do {
        _ = try body()
        XCTFail("expected a MemoryBankError. \(message)", file: file, line: line)
    } catch let e as MemoryBankError {
        XCTAssertTrue(predicate(e), "unexpected error: \(e). \(message)", file: file, line: line)
        XCTAssertTrue(e.description.contains("\nhint: "), "error without hint: \(e)", file: file, line: line)
        return e
    } catch {
        XCTFail("unexpected error type: \(error). \(message)", file: file, line: line)
    }
    return nil
}
