// SegmentHeader.swift: the segment header (docs/format/membank-v1.md §5.1): one struct whose field order is
// the byte order on disk, its encoder, its validating decoder, and `SegmentLayout`, the file's regions
// checked against its length (§5.4), which is all the reader trusts. Not here: records (RecordHeader.swift), the
// manifest (Manifest.swift), file access (SystemIO.MappedFile, MappedFile+Bank.swift).

import SystemIO
import Tensors

/// The 128-byte header at the start of every segment file.
///
/// Layout: docs/format/membank-v1.md §5.1. Field order here equals byte order on disk;
/// `fieldOffsets` lists each field's offset and `HeaderTests` checks them against the encoder.
struct SegmentHeader: Equatable {
    /// "MBANKSEG".
    static let magic: [UInt8] = [0x4D, 0x42, 0x41, 0x4E, 0x4B, 0x53, 0x45, 0x47]
    static let currentMajor: UInt16 = 1
    static let currentMinor: UInt16 = 0
    /// Size of the v1.0 header; `headerBytes` may be larger in later minor versions.
    static let encodedByteCount = 128
    /// Alignment of the data region and of the index.
    static let regionAlignment = 64
    /// `flags` bit 0: the segment was sealed (index and header final).
    static let sealedFlag: UInt32 = 1

    /// (field, byte offset) in on-disk order; the checksum is the last 4 bytes of `headerBytes`.
    static let fieldOffsets: [(String, Int)] = [
        ("magic", 0), ("versionMajor", 8), ("versionMinor", 10), ("headerBytes", 12), ("flags", 16),
        ("codec", 20), ("norm", 21), ("window", 22), ("stride", 24), ("reserved0", 26), ("epsilon", 28),
        ("shape", 32), ("sampleCount", 48), ("generation", 56), ("createdByOffset", 64),
        ("createdByLength", 72), ("createdByChecksum", 76), ("dataOffset", 80), ("indexOffset", 88),
        ("indexBytes", 96), ("recordCount", 104), ("indexChecksum", 112), ("reserved1", 116),
        ("reserved2", 120), ("headerChecksum", 124),
    ]

    var versionMajor = SegmentHeader.currentMajor
    var versionMinor = SegmentHeader.currentMinor
    var headerBytes = UInt32(SegmentHeader.encodedByteCount)
    var flags: UInt32 = 0
    var codec: UInt8
    var norm: UInt8
    var window: UInt16
    var stride: UInt16
    var epsilon: Float
    /// C, H, W, 1.
    var shape: [UInt32]
    var sampleCount: UInt64
    var generation: UInt64
    var createdByOffset: UInt64
    var createdByLength: UInt32
    var createdByChecksum: UInt32
    var dataOffset: UInt64
    var indexOffset: UInt64 = 0
    var indexBytes: UInt64 = 0
    var recordCount: UInt64 = 0
    var indexChecksum: UInt32 = 0
    /// As read from the file (computed by `encode`).
    var headerChecksum: UInt32 = 0

    /// A fresh (unsealed) header for `config` and `generation`.
    init(config: BankConfig, generation: Int) {
        codec = config.codec.code
        norm = config.norm.code
        window = UInt16(config.window)
        stride = UInt16(config.stride)
        epsilon = config.epsilon
        shape = config.shape.map { UInt32($0) } + [1]
        sampleCount = UInt64(config.sampleCount)
        self.generation = UInt64(generation)
        createdByOffset = UInt64(SegmentHeader.encodedByteCount)
        let text = Array(config.createdBy.utf8)
        createdByLength = UInt32(text.count)
        createdByChecksum = CRC32C.checksum(text)
        dataOffset = UInt64(alignUp(SegmentHeader.encodedByteCount + text.count, to: SegmentHeader.regionAlignment))
    }

    var isSealed: Bool { flags & SegmentHeader.sealedFlag != 0 }

    /// The 128 header bytes with `headerChecksum` = CRC32C of bytes [0, 124).
    func encode() -> [UInt8] {
        var w = ByteWriter(capacity: SegmentHeader.encodedByteCount)
        w.write(SegmentHeader.magic)
        w.writeLE(versionMajor)
        w.writeLE(versionMinor)
        w.writeLE(UInt32(SegmentHeader.encodedByteCount))
        w.writeLE(flags)
        w.writeLE(codec)
        w.writeLE(norm)
        w.writeLE(window)
        w.writeLE(stride)
        w.writeLE(UInt16(0))
        w.writeLE(epsilon)
        for d in shape { w.writeLE(d) }
        w.writeLE(sampleCount)
        w.writeLE(generation)
        w.writeLE(createdByOffset)
        w.writeLE(createdByLength)
        w.writeLE(createdByChecksum)
        w.writeLE(dataOffset)
        w.writeLE(indexOffset)
        w.writeLE(indexBytes)
        w.writeLE(recordCount)
        w.writeLE(indexChecksum)
        w.writeLE(UInt32(0))
        w.writeLE(UInt32(0))
        assert(w.count == SegmentHeader.encodedByteCount - 4, "SegmentHeader: field layout drifted")
        w.writeLE(CRC32C.checksum(w.bytes))
        return w.bytes
    }

    /// Decodes and checks the header of `file` (spec §5.1 reader actions, except the comparison with
    /// the manifest and the region checks, which need context: `layout(fileSize:file:)`).
    /// - Parameters:
    ///   - read: returns `count` bytes at `offset` (the caller guarantees they exist).
    ///   - fileSize: the file's size in bytes.
    static func decode(fileSize: Int, file: String,
                       read: (_ offset: Int, _ count: Int) -> [UInt8]) throws(MemoryBankError) -> SegmentHeader {
        if fileSize >= 8 {
            let m = read(0, 8)
            if m != magic { throw .badMagic(file: file, found: m, expected: magic) }
        }
        if fileSize >= 12 {
            var r = ByteReader(read(8, 4))
            let major: UInt16 = r.readLE()
            let minor: UInt16 = r.readLE()
            if major != currentMajor { throw .unsupportedMajor(file: file, found: major, minor: minor, reader: currentMajor) }
        }
        if fileSize < encodedByteCount { throw .truncated(file: file, expectedBytes: encodedByteCount, actualBytes: fileSize) }
        var r = ByteReader(read(0, encodedByteCount), offset: 12)
        let headerBytes: UInt32 = r.readLE()
        if headerBytes < UInt32(encodedByteCount) || headerBytes % 8 != 0 || headerBytes > 1 << 20 {
            throw .invalidField(file: file, field: "headerBytes", value: "\(headerBytes)",
                                allowed: "≥ \(encodedByteCount), a multiple of 8")
        }
        let hb = Int(headerBytes)
        if fileSize < hb { throw .truncated(file: file, expectedBytes: hb, actualBytes: fileSize) }
        let full = hb == encodedByteCount ? r.bytes : read(0, hb)
        var crc = CRC32C()
        crc.update(full[0..<(hb - 4)])
        var tail = ByteReader(full, offset: hb - 4)
        let stored: UInt32 = tail.readLE()
        if stored != crc.value {
            throw .checksumMismatch(file: file, region: "header", stored: stored, computed: crc.value)
        }
        var h = SegmentHeader.fields(of: r.bytes)
        h.headerChecksum = stored
        return h
    }

    /// Every field of the first 128 bytes of `bytes` as stored, without any check (the decoder above
    /// and `membank dump`, which lists damaged headers too). `headerChecksum` is the stored value.
    /// - Precondition: `bytes.count ≥ 128`.
    static func fields(of bytes: [UInt8]) -> SegmentHeader {
        precondition(bytes.count >= encodedByteCount, "SegmentHeader.fields: \(bytes.count) bytes")
        var r = ByteReader(bytes, offset: 8)
        let versionMajor: UInt16 = r.readLE()
        let versionMinor: UInt16 = r.readLE()
        let headerBytes: UInt32 = r.readLE()
        let flags: UInt32 = r.readLE()
        let codec: UInt8 = r.readLE()
        let norm: UInt8 = r.readLE()
        let window: UInt16 = r.readLE()
        let stride: UInt16 = r.readLE()
        r.skip(2)
        let epsilon = r.readFloat()
        let shape: [UInt32] = (0..<4).map { _ in r.readLE() }
        var h = SegmentHeader(raw: (codec, norm, window, stride, epsilon, shape))
        h.versionMajor = versionMajor
        h.versionMinor = versionMinor
        h.headerBytes = headerBytes
        h.flags = flags
        h.sampleCount = r.readLE()
        h.generation = r.readLE()
        h.createdByOffset = r.readLE()
        h.createdByLength = r.readLE()
        h.createdByChecksum = r.readLE()
        h.dataOffset = r.readLE()
        h.indexOffset = r.readLE()
        h.indexBytes = r.readLE()
        h.recordCount = r.readLE()
        h.indexChecksum = r.readLE()
        r.skip(8)
        h.headerChecksum = r.readLE()
        return h
    }

    private init(raw: (UInt8, UInt8, UInt16, UInt16, Float, [UInt32])) {
        (codec, norm, window, stride, epsilon, shape) = raw
        sampleCount = 0
        generation = 0
        createdByOffset = 0
        createdByLength = 0
        createdByChecksum = 0
        dataOffset = 0
    }

    /// The configuration this header describes; `invalidField` for values outside the allowed ones.
    /// A segment does not carry the start noise of `q8rcn` (spec §5.1): `startNoise` is the
    /// manifest's, taken as given.
    func config(createdBy: String, file: String, startNoise: BankStartNoise? = nil) throws(MemoryBankError) -> BankConfig {
        guard let c = BankCodec(code: codec) else {
            throw .invalidField(file: file, field: "codec", value: "\(codec)",
                                allowed: "1…7 (f32, f16, q8, q4, levels, q8rc, q8rcn); a newer minor version may add codecs: upgrade")
        }
        guard let n = PerturbationNorm(code: norm) else {
            throw .invalidField(file: file, field: "norm", value: "\(norm)", allowed: "1 (L∞), 2 (L2)")
        }
        try SegmentHeader.checkShape(shape, file: file)
        let config = BankConfig(sampleCount: Int(clamping: sampleCount), shape: shape[0..<3].map { Int($0) },
                                epsilon: epsilon, norm: n, codec: c, window: Int(window), stride: Int(stride),
                                createdBy: createdBy, startNoise: c == .q8rcn ? startNoise : nil)
        do {
            try config.validate()
        } catch {
            throw .invalidField(file: file, field: "configuration", value: "\(config.structuralFields())",
                                allowed: "\(error)".split(separator: "\n").first.map(String.init) ?? "")
        }
        return config
    }

    /// Checks a stored `shape` (C, H, W, 1) before anything multiplies it: each of C, H, W ≥ 1 and their
    /// product ≤ `BankConfig.maximumElementCount`, computed without overflow (this module is built
    /// with -Ounchecked: an overflowing product would wrap silently, and buffers be sized from it).
    static func checkShape(_ shape: [UInt32], file: String) throws(MemoryBankError) {
        if shape[3] != 1 { throw .invalidField(file: file, field: "shape[3]", value: "\(shape[3])", allowed: "1") }
        var product: UInt64 = 1
        for d in shape[0..<3] {
            let (p, overflow) = product.multipliedReportingOverflow(by: UInt64(d))
            if d == 0 || overflow || p > UInt64(BankConfig.maximumElementCount) {
                throw .invalidField(file: file, field: "shape", value: shape.map(String.init).joined(separator: "×"),
                                    allowed: "C, H, W ≥ 1 with C·H·W ≤ \(BankConfig.maximumElementCount)")
            }
            product = p
        }
    }

    /// The regions of a sealed segment, each checked against `fileSize` (spec §5.1 and §5.4, reader
    /// validation). All arithmetic is done on the stored 64-bit values before any conversion to `Int`,
    /// so no field can overflow, and every bound is known before anything is read or allocated.
    /// - Throws: `invalidField` naming `file`, the field, its value and the bound; `truncated` when the
    ///   file size differs from `indexOffset + indexBytes`.
    func layout(fileSize: Int, file: String) throws(MemoryBankError) -> SegmentLayout {
        func bad(_ field: String, _ value: UInt64, _ allowed: String) -> MemoryBankError {
            .invalidField(file: file, field: field, value: "\(value)", allowed: allowed)
        }
        let size = UInt64(max(0, fileSize))
        if !isSealed {
            throw .invalidField(file: file, field: "flags", value: "\(flags)", allowed: "bit 0 (sealed) set in a final segment")
        }
        let hb = UInt64(headerBytes)  // ≤ 2²⁰ and ≤ the file size: checked by `decode`
        if createdByOffset != hb { throw bad("createdByOffset", createdByOffset, "\(hb) (= headerBytes)") }
        if createdByLength > UInt32(BankConfig.maximumCreatedByBytes) || hb + UInt64(createdByLength) > size {
            throw bad("createdByLength", UInt64(createdByLength),
                      "≤ \(BankConfig.maximumCreatedByBytes) and createdByOffset + createdByLength ≤ the file size \(size)")
        }
        let expectedData = UInt64(alignUp(Int(hb) + Int(createdByLength), to: SegmentHeader.regionAlignment))
        if dataOffset != expectedData || dataOffset > size {
            throw bad("dataOffset", dataOffset, "alignUp(createdByOffset + createdByLength, 64) = \(expectedData), ≤ the file size \(size)")
        }
        if sampleCount < 1 || sampleCount > UInt64(UInt32.max) || sampleCount > (size - dataOffset) / 8 {
            throw bad("sampleCount", sampleCount, "1…\(UInt32.max), with the 8·sampleCount-byte index inside the file of \(size) bytes")
        }
        if indexBytes != 8 * sampleCount {
            throw bad("indexBytes", indexBytes, "8 × sampleCount = \(8 * sampleCount)")
        }
        if indexOffset < dataOffset || indexOffset % UInt64(SegmentHeader.regionAlignment) != 0 || indexOffset > size - indexBytes {
            throw bad("indexOffset", indexOffset,
                      "a multiple of 64 in dataOffset (\(dataOffset))…file size − indexBytes (\(size - indexBytes)); file size \(size)")
        }
        if indexOffset + indexBytes != size {
            throw .truncated(file: file, expectedBytes: Int(indexOffset + indexBytes), actualBytes: fileSize)
        }
        let dataBytes = indexOffset - dataOffset
        if recordCount > sampleCount || recordCount > dataBytes / UInt64(RecordHeader.encodedByteCount) {
            throw bad("recordCount", recordCount,
                      "≤ sampleCount (\(sampleCount)) and ≤ the \(dataBytes / UInt64(RecordHeader.encodedByteCount)) records of 48+ bytes that fit in the data region")
        }
        return SegmentLayout(fileSize: fileSize, createdBy: Int(hb)..<(Int(hb) + Int(createdByLength)),
                             data: Int(dataOffset)..<Int(indexOffset), index: Int(indexOffset)..<fileSize,
                             sampleCount: Int(sampleCount), recordCount: Int(recordCount))
    }

    /// The regions `membank dump` lists for a header no reader accepts (unsealed, damaged): the same
    /// fields as `layout`, each clamped into the file instead of checked. `index` is nil unless the
    /// header is sealed and its index lies inside the file.
    func bestEffortRegions(fileSize: Int) -> (createdBy: Range<Int>, data: Range<Int>, index: Range<Int>?) {
        let size = UInt64(max(0, fileSize))
        func clamp(_ v: UInt64) -> Int { Int(min(v, size)) }
        let textStart = min(UInt64(SegmentHeader.encodedByteCount), size)
        let textEnd = max(textStart, min(size, textStart + UInt64(createdByLength)))
        let dataStart = max(clamp(dataOffset), Int(textEnd))
        guard isSealed, indexOffset >= UInt64(dataStart), indexOffset <= size, indexBytes <= size - indexOffset else {
            return (Int(textStart)..<Int(textEnd), dataStart..<fileSize, nil)
        }
        let indexEnd = Int(indexOffset + indexBytes / 8 * 8)
        return (Int(textStart)..<Int(textEnd), dataStart..<Int(indexOffset), Int(indexOffset)..<indexEnd)
    }
}

/// A segment's regions after `SegmentHeader.layout` checked them against the file: every range lies
/// inside `0..<fileSize`, in the order createdBy ≤ data ≤ index, and `index.count == 8·sampleCount`.
/// The reader trusts these values and reads nothing else from the header's offset fields.
struct SegmentLayout: Equatable {
    let fileSize: Int
    let createdBy: Range<Int>
    /// `dataOffset..<indexOffset`: where records may lie.
    let data: Range<Int>
    /// `indexOffset..<indexOffset + 8·sampleCount` (the end of the file).
    let index: Range<Int>
    let sampleCount: Int
    let recordCount: Int
}
