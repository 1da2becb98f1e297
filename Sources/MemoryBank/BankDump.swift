// BankDump.swift: annotated hexdumps of a segment or manifest, one line per field (the listing of
// `membank dump --raw` and of the worked example in docs/format/membank-v1.md §10, which a test checks
// against the golden files). Best effort on damaged files: it stops where the bytes run out.

import Foundation
import Tensors

/// Annotated hexdumps. Each line is `OFFSET  HEX BYTES  annotation`, with at most 16 bytes per line;
/// concatenating the hex of every line gives back the file exactly.
public enum BankDump {
    /// Annotated dump of a segment file's bytes.
    public static func segment(_ bytes: [UInt8]) -> String {
        var out = Listing(bytes: bytes)
        let headerFields = fieldSpans(SegmentHeader.fieldOffsets, total: SegmentHeader.encodedByteCount)
        out.fields(headerFields, base: 0, describe: describeHeaderField)
        guard bytes.count >= SegmentHeader.encodedByteCount else { return out.text }
        var r = ByteReader(bytes, offset: 72)
        let textLength = Int(r.readLE(UInt32.self))
        r.seek(to: 80)
        let dataOffset = Int(r.readLE(UInt64.self))
        let indexOffset = Int(r.readLE(UInt64.self))
        let indexBytes = Int(r.readLE(UInt64.self))
        let textEnd = min(bytes.count, SegmentHeader.encodedByteCount + textLength)
        out.chunked(from: SegmentHeader.encodedByteCount, to: textEnd) { s, e in "createdBy " + quoted(bytes[s..<e]) }
        out.chunked(from: textEnd, to: min(bytes.count, dataOffset)) { _, _ in "padding to dataOffset" }
        var offset = dataOffset
        let dataEnd = min(bytes.count, indexOffset == 0 ? bytes.count : indexOffset)
        while offset + RecordHeader.encodedByteCount <= dataEnd {
            let h = RecordHeader.decode(Array(bytes[offset..<(offset + RecordHeader.encodedByteCount)]))
            out.fields(fieldSpans(RecordHeader.fieldOffsets, total: RecordHeader.encodedByteCount), base: offset) { name, raw in
                "record[\(h.sampleID)].\(name)" + describeRecordField(name, raw)
            }
            let payloadStart = offset + Int(h.headerBytes)
            let payloadEnd = min(dataEnd, payloadStart + Int(h.storedBytes))
            out.chunked(from: offset + RecordHeader.encodedByteCount, to: min(payloadStart, dataEnd)) { _, _ in "record header extension" }
            out.chunked(from: payloadStart, to: payloadEnd) { s, e in
                var note = "record[\(h.sampleID)] payload\(h.isLZ4 ? " (LZ4)" : "")"
                if h.codec == BankCodec.q8.code && !h.isLZ4 && e - s <= 16 {
                    note += ": q8 levels " + bytes[s..<e].map { "\(Int8(bitPattern: $0))" }.joined(separator: " ")
                }
                return note
            }
            let next = min(dataEnd, alignUp(payloadEnd, to: RecordHeader.alignment))
            out.chunked(from: payloadEnd, to: next) { _, _ in "padding to 8" }
            if next <= offset { break }
            offset = next
        }
        out.chunked(from: offset, to: dataEnd) { _, _ in indexOffset == 0 ? "unsealed data" : "padding to indexOffset" }
        if indexOffset > 0 {
            var id = 0
            var p = indexOffset
            while p + 8 <= min(bytes.count, indexOffset + indexBytes) {
                var e = ByteReader(bytes, offset: p)
                let value = e.readLE(UInt64.self)
                out.line(p, 8, "index[\(id)] = \(value)\(value == 0 ? " (absent)" : "")")
                p += 8
                id += 1
            }
            out.chunked(from: p, to: bytes.count) { _, _ in "trailing bytes" }
        }
        return out.text
    }

    /// Annotated dump of a manifest file's bytes.
    public static func manifest(_ bytes: [UInt8]) -> String {
        var out = Listing(bytes: bytes)
        out.fields(fieldSpans(Manifest.fieldOffsets, total: Manifest.headerByteCount), base: 0, describe: describeManifestField)
        guard bytes.count >= Manifest.headerByteCount else { return out.text }
        var r = ByteReader(bytes, offset: 60)
        let count = Int(r.readLE(UInt32.self))
        let textLength = Int(r.readLE(UInt32.self))
        var p = Manifest.headerByteCount
        for i in 0..<count where p + Manifest.entryByteCount <= bytes.count {
            let spans = [("generation", 0, 8), ("segmentBytes", 8, 8), ("segmentHeaderChecksum", 16, 4), ("reserved", 20, 4)]
            out.fields(spans, base: p) { name, raw in "generations[\(i)].\(name)" + describeInteger(name, raw) }
            p += Manifest.entryByteCount
        }
        let textEnd = min(bytes.count, p + textLength)
        out.chunked(from: p, to: textEnd) { s, e in "createdBy " + quoted(bytes[s..<e]) }
        let checksumAt = max(textEnd, bytes.count - 4)
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
                let note = describe(name, Array(bytes[start..<end]))
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
