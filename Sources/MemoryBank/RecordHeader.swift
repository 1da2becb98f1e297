// RecordHeader.swift: the 48-byte record header that precedes every payload (docs/format/membank-v1.md §6):
// field layout, encoder, raw decoder, and `RecordLayout`, the record's extent checked against the bytes
// before the index's end (§5.4). Index offsets are checked in BankSegment; payload codecs are in
// RecordCodec*.swift.

import Tensors

/// The fixed header of one record (one sample's entry in one generation).
///
/// Layout: docs/format/membank-v1.md §6. Field order equals byte order on disk.
struct RecordHeader: Equatable {
    static let encodedByteCount = 48
    /// Offset of `checksum`; the record CRC covers bytes [0, 44), then [48, headerBytes + storedBytes):
    /// every byte of the record but the checksum field and the trailing padding.
    static let checksumOffset = 44
    /// Records start at multiples of 8.
    static let alignment = 8
    /// `flags` bit 0: the payload is one LZ4 block.
    static let lz4Flag: UInt8 = 1
    static let knownFlags: UInt8 = lz4Flag

    static let fieldOffsets: [(String, Int)] = [
        ("sampleID", 0), ("codec", 4), ("flags", 5), ("headerBytes", 6), ("view", 8), ("label", 12), ("pY", 16),
        ("margin", 20), ("loss", 24), ("scale", 28), ("clampedCount", 32), ("rawBytes", 36), ("storedBytes", 40),
        ("checksum", 44),
    ]

    var sampleID: UInt32
    var codec: UInt8
    var flags: UInt8
    var headerBytes = UInt16(RecordHeader.encodedByteCount)
    var view: [UInt8]
    var label: Int32
    var pY: Float
    var margin: Float
    var loss: Float
    var scale: Float
    var clampedCount: UInt32
    var rawBytes: UInt32
    var storedBytes: UInt32
    var checksum: UInt32 = 0

    var isLZ4: Bool { flags & RecordHeader.lz4Flag != 0 }

    /// Appends the 48 header bytes with `checksum` as stored in the struct.
    func encode(into w: inout ByteWriter) {
        w.writeLE(sampleID)
        w.writeLE(codec)
        w.writeLE(flags)
        w.writeLE(headerBytes)
        w.write(view)
        w.writeLE(label)
        w.writeLE(pY)
        w.writeLE(margin)
        w.writeLE(loss)
        w.writeLE(scale)
        w.writeLE(clampedCount)
        w.writeLE(rawBytes)
        w.writeLE(storedBytes)
        w.writeLE(checksum)
    }

    /// Decodes the first 48 bytes of `bytes` (no validation).
    static func decode(_ bytes: [UInt8]) -> RecordHeader {
        var r = ByteReader(bytes)
        let id: UInt32 = r.readLE()
        let codec: UInt8 = r.readLE()
        let flags: UInt8 = r.readLE()
        let headerBytes: UInt16 = r.readLE()
        let view = r.readBytes(4)
        let label: Int32 = r.readLE()
        let pY = r.readFloat(), margin = r.readFloat(), loss = r.readFloat(), scale = r.readFloat()
        let clamped: UInt32 = r.readLE()
        let raw: UInt32 = r.readLE()
        let stored: UInt32 = r.readLE()
        let checksum: UInt32 = r.readLE()
        return RecordHeader(sampleID: id, codec: codec, flags: flags, headerBytes: headerBytes, view: view, label: label,
                            pY: pY, margin: margin, loss: loss, scale: scale, clampedCount: clamped, rawBytes: raw,
                            storedBytes: stored, checksum: checksum)
    }

    /// This record's extent checked against the `available` bytes from its start to the end of the
    /// data region (spec §6 reader actions, §5.4): the one place a record's size fields are bounded.
    /// - Returns: the layout, or the reason it does not fit (the caller wraps it in `corruptRecord`).
    func layout(available: Int) -> Result<RecordLayout, RecordLayout.Failure> {
        let hb = Int(headerBytes), stored = Int(storedBytes)
        if available < RecordHeader.encodedByteCount {
            return .failure(.init(reason: "record header of 48 bytes runs past the data region (\(available) bytes left)"))
        }
        if hb < RecordHeader.encodedByteCount || hb % 8 != 0 {
            return .failure(.init(reason: "record headerBytes \(hb), allowed ≥ 48 and a multiple of 8"))
        }
        if hb + stored > available {
            return .failure(.init(reason: "headerBytes \(hb) + storedBytes \(stored) runs past the data region (\(available) bytes left)"))
        }
        return .success(RecordLayout(headerBytes: hb, payload: hb..<(hb + stored), rawBytes: Int(rawBytes),
                                     end: min(available, alignUp(hb + stored, to: RecordHeader.alignment))))
    }

    var metadata: EntryMetadata { EntryMetadata(label: label, pY: pY, margin: margin, loss: loss) }
    var entryView: ViewParameters { ViewParameters(bytes: view) }
}

/// A record's regions relative to its start, after `RecordHeader.layout(available:)` checked them:
/// `payload.upperBound ≤ end ≤ available`.
struct RecordLayout: Equatable {
    struct Failure: Error, Equatable { let reason: String }
    let headerBytes: Int
    /// `headerBytes..<headerBytes + storedBytes`.
    let payload: Range<Int>
    /// The payload size after LZ4 decoding, as stored (the codec checks it against its maximum).
    let rawBytes: Int
    /// The end of the record's padding to 8 (clamped to the bytes available).
    let end: Int
}
