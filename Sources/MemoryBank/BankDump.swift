// BankDump.swift: annotated hexdumps of a segment or manifest, one line per field (the listing of
// `membank dump --raw` and of the worked example in docs/format/membank-v1.md §10, which a test checks
// against the golden files). Any bytes are accepted: region bounds come from the validated layouts
// (SegmentHeader.layout, RecordHeader.layout, Manifest.bestEffortRegions), clamped into the file.

import Foundation
import Tensors

/// Annotated hexdumps. Each line is `OFFSET  HEX BYTES  annotation`, with at most 16 bytes per line;
/// concatenating the hex of every line gives back the file exactly.
public enum BankDump {
    /// Annotated dump of a segment file's bytes: any bytes at all (a damaged, unsealed or foreign file
    /// too). Region bounds come from `SegmentHeader.layout` when the header passes it, else from
    /// `SegmentHeader.bestEffortRegions` (clamped into the file); records are listed while their own
    /// `RecordHeader.layout` fits, the rest of a region as unparsed bytes. Every byte is listed once,
    /// in order; the work is proportional to the file's size, never to a header field.
    public static func segment(_ bytes: [UInt8]) -> String {
        var out = Listing(bytes: bytes)
        let headerFields = fieldSpans(SegmentHeader.fieldOffsets, total: SegmentHeader.encodedByteCount)
        out.fields(headerFields, base: 0, describe: describeHeaderField)
        guard bytes.count >= SegmentHeader.encodedByteCount else { return out.text }
        let h = SegmentHeader.fields(of: bytes)
        let regions: (createdBy: Range<Int>, data: Range<Int>, index: Range<Int>?)
        var note = ""
        do {
            let layout = try h.layout(fileSize: bytes.count, file: "")
            regions = (layout.createdBy, layout.data, layout.index)
        } catch {
            regions = h.bestEffortRegions(fileSize: bytes.count)
            if case .invalidField(_, let field, _, _) = error { note = " (\(field) not valid: regions clamped to the file)" }
        }
        out.chunked(from: SegmentHeader.encodedByteCount, to: regions.createdBy.lowerBound) { _, _ in "header extension" }
        out.chunked(from: regions.createdBy.lowerBound, to: regions.createdBy.upperBound) { s, e in "createdBy " + quoted(bytes[s..<e]) }
        out.chunked(from: regions.createdBy.upperBound, to: regions.data.lowerBound) { _, _ in "padding to dataOffset" }
        var offset = regions.data.lowerBound
        let dataEnd = regions.data.upperBound
        while offset + RecordHeader.encodedByteCount <= dataEnd {
            let h = RecordHeader.decode(Array(bytes[offset..<(offset + RecordHeader.encodedByteCount)]))
            guard case .success(let r) = h.layout(available: dataEnd - offset) else { break }
            out.fields(fieldSpans(RecordHeader.fieldOffsets, total: RecordHeader.encodedByteCount), base: offset) { name, raw in
                "record[\(h.sampleID)].\(name)" + describeRecordField(name, raw)
            }
            out.chunked(from: offset + RecordHeader.encodedByteCount, to: offset + r.headerBytes) { _, _ in "record header extension" }
            out.chunked(from: offset + r.payload.lowerBound, to: offset + r.payload.upperBound) { s, e in
                var note = "record[\(h.sampleID)] payload\(h.isLZ4 ? " (LZ4)" : "")"
                if h.codec == BankCodec.q8.code && !h.isLZ4 && e - s <= 16 {
                    note += ": q8 levels " + bytes[s..<e].map { "\(Int8(bitPattern: $0))" }.joined(separator: " ")
                }
                return note
            }
            out.chunked(from: offset + r.payload.upperBound, to: offset + r.end) { _, _ in "padding to 8" }
            offset += r.end  // r.end ≥ 48: always advances
        }
        out.chunked(from: offset, to: dataEnd) { _, _ in
            regions.index == nil ? "unsealed or unparsed data\(note)" : "padding to indexOffset"
        }
        guard let index = regions.index else { return out.text }
        var p = index.lowerBound
        while p + 8 <= index.upperBound {
            var e = ByteReader(bytes, offset: p)
            let value = e.readLE(UInt64.self)
            out.line(p, 8, "index[\((p - index.lowerBound) / 8)] = \(value)\(value == 0 ? " (absent)" : "")")
            p += 8
        }
        out.chunked(from: p, to: bytes.count) { _, _ in "trailing bytes" }
        return out.text
    }

    /// Annotated dump of a manifest file's bytes (any bytes). The generation entries listed are those
    /// that fit in the file, however large `generationCount` is.
    public static func manifest(_ bytes: [UInt8]) -> String {
        var out = Listing(bytes: bytes)
        out.fields(fieldSpans(Manifest.fieldOffsets, total: Manifest.headerByteCount), base: 0, describe: describeManifestField)
        guard bytes.count >= Manifest.headerByteCount else { return out.text }
        let regions = Manifest.bestEffortRegions(bytes)
        var extensionStart = Manifest.headerByteCount
        // v1.1's start noise (spec §4), named when the header says v1.1 and holds it.
        var minor = ByteReader(bytes, offset: 10)
        if minor.readLE(UInt16.self) >= 1 && regions.entries.lowerBound >= Manifest.noiseHeaderByteCount {
            out.fields(fieldSpans(Manifest.noiseFieldOffsets, total: Manifest.noiseHeaderByteCount), base: 0,
                       describe: describeManifestField)
            extensionStart = Manifest.noiseHeaderByteCount
        }
        out.chunked(from: extensionStart, to: regions.entries.lowerBound) { _, _ in "header extension" }
        var p = regions.entries.lowerBound
        let spans = [("generation", 0, 8), ("segmentBytes", 8, 8), ("segmentHeaderChecksum", 16, 4), ("reserved", 20, 4)]
        while p + Manifest.entryByteCount <= regions.entries.upperBound {
            let i = (p - regions.entries.lowerBound) / Manifest.entryByteCount
            out.fields(spans, base: p) { name, raw in "generations[\(i)].\(name)" + describeInteger(name, raw) }
            p += Manifest.entryByteCount
        }
        let checksumAt = max(p, bytes.count - 4)
        let textEnd = min(checksumAt, max(p, regions.createdBy.upperBound))
        out.chunked(from: p, to: textEnd) { s, e in "createdBy " + quoted(bytes[s..<e]) }
        out.chunked(from: textEnd, to: checksumAt) { _, _ in "padding to 4" }
        out.chunked(from: checksumAt, to: bytes.count) { _, _ in "checksum" + describeInteger("checksum", Array(bytes[checksumAt...])) }
        return out.text
    }

    /// The file bytes a listing describes (the hex columns concatenated; annotations ignored).
    /// Lines that do not start with a hex offset are skipped.
    public static func bytes(fromListing listing: String) -> [UInt8]? {
        var result: [UInt8] = []
        for line in listing.split(separator: "\n") {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            guard let first = parts.first, first.count == 6, let offset = Int(first, radix: 16) else { continue }
            if offset != result.count { return nil }
            for token in parts.dropFirst() {
                guard token.count == 2, let byte = UInt8(token, radix: 16) else { break }
                result.append(byte)
            }
        }
        return result
    }

    // MARK: - Helpers

    /// The text in quotes, cut at 40 characters (the hex column has all of it).
    private static func quoted(_ bytes: ArraySlice<UInt8>) -> String {
        let text = String(decoding: bytes, as: UTF8.self)
        return "\"" + (text.count > 40 ? text.prefix(40) + "…" : text) + "\""
    }

    /// (name, offset, length) from (name, offset) pairs in order.
    private static func fieldSpans(_ offsets: [(String, Int)], total: Int) -> [(String, Int, Int)] {
        offsets.enumerated().map { i, f in (f.0, f.1, (i + 1 < offsets.count ? offsets[i + 1].1 : total) - f.1) }
    }

    private static func describeHeaderField(_ name: String, _ raw: [UInt8]) -> String {
        switch name {
        case "magic": return "magic " + describeBytes(raw).split(separator: " ").suffix(1).joined()
        case "epsilon": return "epsilon \(Float(bitPattern: le(raw, UInt32.self)))"
        case "shape": return "shape " + (0..<4).map { "\(le(Array(raw[(4 * $0)..<(4 * $0 + 4)]), UInt32.self))" }.joined(separator: "×")
        case "codec": return "codec \(raw[0]) (\(BankCodec(code: raw[0])?.rawValue ?? "unknown"))"
        case "norm": return "norm \(raw[0]) (\(PerturbationNorm(code: raw[0])?.rawValue ?? "unknown"))"
        case "flags": return "flags \(le(raw, UInt32.self))\(le(raw, UInt32.self) & 1 == 1 ? " (sealed)" : "")"
        default: return name + describeInteger(name, raw)
        }
    }

    private static func describeManifestField(_ name: String, _ raw: [UInt8]) -> String {
        switch name {
        case "magic", "epsilon", "shape", "codec", "norm": return describeHeaderField(name, raw)
        case "noiseSeed": return "noiseSeed 0x" + String(le(raw, UInt64.self), radix: 16, uppercase: true)
        case "noiseSigma": return "noiseSigma \(Float(bitPattern: le(raw, UInt32.self)))"
        case "noiseGenerator":
            return "noiseGenerator \(raw[0]) (\(raw[0] == StartNoise.irwinHall12 ? "Irwin–Hall 12" : "unknown"))"
        default: return name + describeInteger(name, raw)
        }
    }

    private static func describeRecordField(_ name: String, _ raw: [UInt8]) -> String {
        switch name {
        case "pY", "margin", "loss", "scale": return " \(Float(bitPattern: le(raw, UInt32.self)))"
        case "label": return " \(Int32(bitPattern: le(raw, UInt32.self)))"
        case "view": return " dx \(Int8(bitPattern: raw[0])), dy \(Int8(bitPattern: raw[1])), flip \(raw[2]), \(raw[3])"
        case "codec": return " \(raw[0]) (\(BankCodec(code: raw[0])?.rawValue ?? "unknown"))"
        case "flags": return " \(raw[0])\(raw[0] & 1 == 1 ? " (LZ4)" : " (raw)")"
        default: return describeInteger(name, raw)
        }
    }

    private static func describeInteger(_ name: String, _ raw: [UInt8]) -> String {
        var v: UInt64 = 0
        for (i, b) in raw.prefix(8).enumerated() { v |= UInt64(b) << UInt64(8 * i) }
        if name.lowercased().contains("checksum") { return " " + String(hex32: UInt32(truncatingIfNeeded: v)) }
        return " \(v)"
    }

    private static func le<T: FixedWidthInteger>(_ raw: [UInt8], _: T.Type) -> T {
        var r = ByteReader(raw)
        return r.readLE(T.self)
    }

    /// Accumulates listing lines.
    private struct Listing {
        let bytes: [UInt8]
        var text = ""

        mutating func line(_ offset: Int, _ length: Int, _ note: String) {
            let end = min(bytes.count, offset + length)
            guard offset < end else { return }
            let hex = bytes[offset..<end].map { String(format2Hex: $0) }.joined(separator: " ")
            let digits = String(offset, radix: 16, uppercase: true)
            let padded = hex + String(repeating: " ", count: max(1, 48 - hex.count))
            let full = String(repeating: "0", count: max(0, 6 - digits.count)) + digits + "  " + padded + " " + note
            text += String(full.reversed().drop(while: { $0 == " " }).reversed()) + "\n"
        }

        /// One line per field (fields longer than 16 bytes are split).
        mutating func fields(_ spans: [(String, Int, Int)], base: Int, describe: (String, [UInt8]) -> String) {
            for (name, offset, length) in spans {
                let start = base + offset
                let end = min(bytes.count, start + length)
                guard start < end else { return }
                // A field cut by the end of the file is shown, not decoded.
                let note = end - start < length ? "\(name) (cut by the end of the file)" : describe(name, Array(bytes[start..<end]))
                var p = start
                while p < end {
                    line(p, min(16, end - p), p == start ? note : "")
                    p += 16
                }
            }
        }

        /// Lines of 16 bytes for [start, end), annotated on the first.
        mutating func chunked(from start: Int, to end: Int, _ note: (Int, Int) -> String) {
            guard start < end else { return }
            let first = note(start, end)
            var p = start
            while p < end {
                line(p, min(16, end - p), p == start ? first : "")
                p += 16
            }
        }
    }
}
