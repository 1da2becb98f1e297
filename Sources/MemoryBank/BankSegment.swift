// BankSegment.swift: one sealed generation mapped read-only: opening checks every header rule of
// docs/format/membank-v1.md §5 (magic, version, header/createdBy/index checksums, layout, agreement
// with the manifest) and then answers "where is sample id's record" in O(1) through the dense index.
// Decoding a record is BankSegment+Unsafe.swift.

import SystemIO

/// A sealed, validated segment. Immutable; safe to read from several threads (each with its own decoder).
public final class BankSegment: @unchecked Sendable {
    public let generation: Int
    public let path: String
    public let config: BankConfig
    /// Entries present in this generation.
    public let recordCount: Int
    /// Size of the segment file.
    public let fileBytes: Int
    let file: MappedFile
    let header: SegmentHeader
    /// The regions, checked against the file at open: the only source of offsets used after it.
    let layout: SegmentLayout
    var dataOffset: Int { layout.data.lowerBound }
    var indexOffset: Int { layout.index.lowerBound }

    /// Maps and validates `path` as the segment the manifest entry `expected` describes.
    init(path: String, expected: ManifestGeneration, manifestConfig: BankConfig) throws(MemoryBankError) {
        guard MappedFile.size(ofFileAt: path) != nil else { throw .segmentMissing(file: path, generation: expected.generation) }
        let file = try MappedFile(segmentAt: path)
        let header = try SegmentHeader.decode(fileSize: file.count, file: path) { file.bytes(at: $0, count: $1) }
        if header.headerChecksum != expected.segmentHeaderChecksum {
            throw .configMismatch(file: path, field: "header checksum", found: String(hex32: header.headerChecksum),
                                  expected: String(hex32: expected.segmentHeaderChecksum) + " (listed in the manifest)")
        }
        if file.count != expected.segmentBytes {
            throw .truncated(file: path, expectedBytes: expected.segmentBytes, actualBytes: file.count)
        }
        let layout = try header.layout(fileSize: file.count, file: path)
        if header.generation != UInt64(expected.generation) {
            throw .configMismatch(file: path, field: "generation", found: "\(header.generation)", expected: "\(expected.generation)")
        }
        let textOffset = layout.createdBy.lowerBound, textLength = layout.createdBy.count
        let textChecksum = file.checksum(at: textOffset, count: textLength)
        if textChecksum != header.createdByChecksum {
            throw .checksumMismatch(file: path, region: "createdBy", stored: header.createdByChecksum, computed: textChecksum)
        }
        let text = String(decoding: file.bytes(at: textOffset, count: textLength), as: UTF8.self)
        let config = try header.config(createdBy: text, file: path, startNoise: manifestConfig.startNoise)
        if let (field, found, wanted) = config.firstStructuralDifference(from: manifestConfig) {
            throw .configMismatch(file: path, field: field, found: found + " in the segment", expected: wanted + " in the manifest")
        }
        let indexChecksum = file.checksum(at: layout.index.lowerBound, count: layout.index.count)
        if indexChecksum != header.indexChecksum {
            throw .checksumMismatch(file: path, region: "index", stored: header.indexChecksum, computed: indexChecksum)
        }
        // Validation read the whole index (8·N bytes) through the mapping: drop those pages from RSS
        // now (the page cache keeps them) instead of carrying 8 MB per generation at N = 10⁶.
        file.releaseResidentPages()
        self.file = file
        self.header = header
        self.layout = layout
        self.path = path
        self.config = config
        generation = expected.generation
        recordCount = layout.recordCount
        fileBytes = file.count
    }

    /// The absolute offset of sample `id`'s record, or nil when absent (or `id` out of range). The
    /// value is as stored: `checkOffset` bounds it before the record is read.
    public func recordOffset(of id: Int) -> Int? {
        guard id >= 0 && id < layout.sampleCount else { return nil }
        let offset = file.uint64LE(at: indexOffset + 8 * id)
        return offset == 0 ? nil : Int(clamping: offset)
    }

    /// Drops the segment's mapped pages from resident memory (the page cache keeps them).
    public func releaseResidentPages() { file.releaseResidentPages() }

    /// True when this generation holds an entry for `id`.
    public func contains(id: Int) -> Bool { recordOffset(of: id) != nil }

    /// Checks an index entry's offset against the data region (spec §5.3).
    func checkOffset(_ offset: Int, id: Int) throws(MemoryBankError) {
        if offset % RecordHeader.alignment != 0 || offset < dataOffset || offset > indexOffset - RecordHeader.encodedByteCount {
            throw .corruptRecord(file: path, generation: generation, sampleID: id,
                                 reason: "index offset \(offset) outside the data region \(dataOffset)..<\(indexOffset) or misaligned")
        }
    }
}
