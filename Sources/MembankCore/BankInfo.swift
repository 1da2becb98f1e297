// BankInfo.swift: `membank info`: what a bank holds and what it costs on disk: generations, entries
// per generation, codec, ε, norm, shape, window, bytes on disk, bytes per entry, compression ratio
// against float32, and the training settings recorded in createdBy. Every record is decoded once to
// learn its stored size (EntryInfo), so info also reads the whole bank.

import Foundation
import MemoryBank
import Tensors

/// Size figures of one generation.
public struct GenerationInfo: Codable, Equatable, Sendable {
    public var generation: Int
    public var entries: Int
    /// Size of the segment file.
    public var segmentBytes: Int
    /// Σ over records of alignUp(48 + storedBytes, 8): header, payload and padding (spec §6, v1.0).
    public var recordBytes: Int
    /// Σ storedBytes (payloads as stored, after LZ4) and Σ rawBytes (before LZ4).
    public var payloadBytes: Int
    public var rawPayloadBytes: Int
    /// Records whose payload is an LZ4 block.
    public var lz4Entries: Int
    /// Values the codec clamped at encode time.
    public var clampedValues: Int
    /// Damaged records skipped (not counted in `entries` or the byte figures).
    public var damagedEntries: Int
}

/// Everything `membank info` reports.
public struct BankInfo: Codable, Equatable, Sendable {
    public var path: String
    public var sampleCount: Int
    /// [C, H, W] and n = C·H·W.
    public var shape: [Int]
    public var elementCount: Int
    public var epsilon: Double
    public var norm: String
    public var codec: String
    public var window: Int
    public var stride: Int
    public var generations: [GenerationInfo]
    public var entries: Int
    /// manifest.mbm plus every live segment.
    public var bytesOnDisk: Int
    /// bytesOnDisk / entries (everything included: headers, index, createdBy copies, manifest).
    public var bytesPerEntry: Double?
    /// Σ recordBytes / entries, and Σ payloadBytes / entries.
    public var recordBytesPerEntry: Double?
    public var payloadBytesPerEntry: Double?
    /// 4·n: one float32 perturbation.
    public var float32BytesPerEntry: Int
    /// float32BytesPerEntry / bytesPerEntry (the whole bank) and / payloadBytesPerEntry (the codec).
    public var compressionRatio: Double?
    public var payloadCompressionRatio: Double?
    /// The training settings the writer recorded (JSON when it is JSON, else the text).
    public var createdBy: JSONValue
    /// The attack's start noise of a `q8rcn` bank (manifest v1.1, spec §4 and §7.6), named as the
    /// manifest fields; nil (absent from the JSON) for every other codec.
    public var noiseSeed: UInt64? = nil
    public var noiseSigma: Double? = nil
    public var noiseGenerator: Int? = nil

    /// Reads the sizes of every live generation of `bank`.
    /// - Throws: `.bank(corruptRecord…)` at the first damaged record.
    public static func compute(_ bank: InspectedBank) throws(MembankError) -> BankInfo {
        let c = bank.config
        var generations: [GenerationInfo] = []
        for g in bank.generations {
            var info = GenerationInfo(generation: g, entries: 0, segmentBytes: bank.reader.segment(g)?.fileBytes ?? 0,
                                      recordBytes: 0, payloadBytes: 0, rawPayloadBytes: 0, lz4Entries: 0, clampedValues: 0,
                                      damagedEntries: 0)
            info.damagedEntries = try bank.forEachEntry(in: g) { (_: Int, _: [Float], e: EntryInfo) throws(MembankError) in
                info.entries += 1
                info.recordBytes += (recordHeaderBytes + e.storedBytes + 7) & ~7
                info.payloadBytes += e.storedBytes
                info.rawPayloadBytes += e.rawBytes
                info.lz4Entries += e.lz4 ? 1 : 0
                info.clampedValues += e.clampedCount
            }.count
            generations.append(info)
        }
        let manifest = URL(fileURLWithPath: bank.path).appendingPathComponent("manifest.mbm").path
        let manifestBytes = (try? FileManager.default.attributesOfItem(atPath: manifest)[.size] as? Int) ?? 0
        let entries = generations.reduce(0) { $0 + $1.entries }
        let onDisk = manifestBytes + generations.reduce(0) { $0 + $1.segmentBytes }
        let float32 = 4 * c.elementCount
        func per(_ total: Int) -> Double? { entries == 0 ? nil : Double(total) / Double(entries) }
        let perEntry = per(onDisk), payload = per(generations.reduce(0) { $0 + $1.payloadBytes })
        return BankInfo(
            path: bank.path, sampleCount: c.sampleCount, shape: c.shape, elementCount: c.elementCount,
            epsilon: Double(c.epsilon), norm: c.norm.rawValue, codec: c.codec.rawValue, window: c.window, stride: c.stride,
            generations: generations, entries: entries, bytesOnDisk: onDisk, bytesPerEntry: perEntry,
            recordBytesPerEntry: per(generations.reduce(0) { $0 + $1.recordBytes }), payloadBytesPerEntry: payload,
            float32BytesPerEntry: float32, compressionRatio: perEntry.map { Double(float32) / $0 },
            payloadCompressionRatio: payload.flatMap { $0 > 0 ? Double(float32) / $0 : nil }, createdBy: bank.createdBy,
            noiseSeed: c.startNoise?.seed, noiseSigma: c.startNoise.map { Double($0.sigma) },
            noiseGenerator: c.startNoise.map { Int($0.generator) })
    }

    /// The record header size of format v1.0 (spec §6).
    static let recordHeaderBytes = 48

    /// The human report.
    public var text: String {
        var out = "bank \(path)\n"
        out += "  format        membank v1 (\(generations.count) live generation\(generations.count == 1 ? "" : "s"))\n"
        out += "  samples       N = \(group(sampleCount)) IDs, shape \(shape.map(String.init).joined(separator: "×")) (n = \(group(elementCount)) values)\n"
        out += "  attack        ε = \(fmt(epsilon)) (\(norm))\n"
        out += "  codec         \(codec)\n"
        if let noiseSeed, let noiseSigma, let noiseGenerator {
            let name = noiseGenerator == Int(StartNoise.irwinHall12) ? "Irwin–Hall 12" : "unknown"
            out += "  start noise   noiseSeed 0x\(String(noiseSeed, radix: 16, uppercase: true)), noiseSigma σ = \(fmt(noiseSigma)), "
                + "noiseGenerator \(noiseGenerator) (\(name))\n"
        }
        out += "  window        K = \(window), stride s = \(stride)\n"
        out += "  entries       \(group(entries))\n"
        out += "  on disk       \(bytes(bytesOnDisk))\n"
        if let b = bytesPerEntry, let r = recordBytesPerEntry, let p = payloadBytesPerEntry {
            out += "  per entry     \(String(format: "%.1f", b)) B on disk, \(String(format: "%.1f", r)) B record, "
                + "\(String(format: "%.1f", p)) B payload (float32: \(group(float32BytesPerEntry)) B)\n"
        }
        if let ratio = compressionRatio {
            out += "  compression   \(String(format: "%.2f", ratio))× vs float32 on disk"
                + (payloadCompressionRatio.map { String(format: ", %.2f× payload only", $0) } ?? "") + "\n"
        }
        out += "generations\n"
        out += Table(header: ["generation", "entries", "segment", "record B/entry", "payload B/entry", "LZ4", "clamped"],
                     rows: generations.map { g in
                         let n = Double(max(1, g.entries))
                         return [String(g.generation), group(g.entries), group(g.segmentBytes),
                                 String(format: "%.1f", Double(g.recordBytes) / n), String(format: "%.1f", Double(g.payloadBytes) / n),
                                 percent(Double(g.lz4Entries) / n), group(g.clampedValues)]
                     }).render()
        for g in generations { out += InspectedBank.skippedNote(g.damagedEntries, in: g.generation) }
        out += "created by\n"
        out += createdBy.outline().joined(separator: "\n") + "\n"
        return out
    }
}
