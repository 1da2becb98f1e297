// Manifest.swift: the bank's manifest (docs/format/membank-v1.md §4): the configuration and the list of
// live generations with their segment sizes and header checksums. Replaced atomically as a whole
// (Tensors.AtomicFile); this file only encodes and decodes it, bounding every count and size against
// the file's length first (`Manifest.layout`, §5.4).

import SystemIO
import Tensors

/// One live generation as the manifest records it.
struct ManifestGeneration: Equatable {
    var generation: Int
    /// Exact size of the sealed segment file.
    var segmentBytes: Int
    /// The segment's header checksum: ties the manifest to exactly that file.
    var segmentHeaderChecksum: UInt32
}

/// The manifest: configuration + live generations, ascending.
///
/// Layout: docs/format/membank-v1.md §4 (72-byte header, 24-byte generation entries, createdBy,
/// padding to 4, CRC32C of everything before it).
struct Manifest: Equatable {
    /// "MBANKMAN".
    static let magic: [UInt8] = [0x4D, 0x42, 0x41, 0x4E, 0x4B, 0x4D, 0x41, 0x4E]
    static let currentMajor: UInt16 = 1
    static let currentMinor: UInt16 = 1
    /// The v1.0 header; a `q8rcn` bank writes the v1.1 header (`noiseHeaderByteCount`) with its
    /// start noise, every other bank the v1.0 one (version 1.0), byte for byte as before.
    static let headerByteCount = 72
    static let noiseHeaderByteCount = 88
    static let entryByteCount = 24

    static let fieldOffsets: [(String, Int)] = [
        ("magic", 0), ("versionMajor", 8), ("versionMinor", 10), ("headerBytes", 12), ("sequence", 16),
        ("sampleCount", 24), ("shape", 32), ("epsilon", 48), ("codec", 52), ("norm", 53), ("window", 54),
        ("stride", 56), ("reserved0", 58), ("generationCount", 60), ("createdByLength", 64), ("reserved1", 68),
    ]
    /// v1.1's start noise (spec §4 `ManifestStartNoise`, bytes 72…87, read by `decode` for q8rcn only;
    /// dumps label it by name when the header is v1.1 and at least 88 bytes long).
    static let noiseFieldOffsets: [(String, Int)] = [
        ("noiseSeed", 72), ("noiseSigma", 80), ("noiseGenerator", 84), ("reserved2", 85),
    ]

    var sequence: UInt64
    var config: BankConfig
    var generations: [ManifestGeneration]

    func encode() -> [UInt8] {
        let text = Array(config.createdBy.utf8)
        let noise = config.startNoise
        let headerBytes = noise == nil ? Manifest.headerByteCount : Manifest.noiseHeaderByteCount
        var w = ByteWriter(capacity: headerBytes + generations.count * Manifest.entryByteCount + text.count + 8)
        w.write(Manifest.magic)
        w.writeLE(Manifest.currentMajor)
        w.writeLE(noise == nil ? UInt16(0) : Manifest.currentMinor)
        w.writeLE(UInt32(headerBytes))
        w.writeLE(sequence)
        w.writeLE(UInt64(config.sampleCount))
        for d in config.shape { w.writeLE(UInt32(d)) }
        w.writeLE(UInt32(1))
        w.writeLE(config.epsilon)
        w.writeLE(config.codec.code)
        w.writeLE(config.norm.code)
        w.writeLE(UInt16(config.window))
        w.writeLE(UInt16(config.stride))
        w.writeLE(UInt16(0))
        w.writeLE(UInt32(generations.count))
        w.writeLE(UInt32(text.count))
        w.writeLE(UInt32(0))
        if let noise {
            w.writeLE(noise.seed)
            w.writeLE(noise.sigma)
            w.writeLE(noise.generator)
            w.write([0, 0, 0])
        }
        assert(w.count == headerBytes, "Manifest: header layout drifted")
        for g in generations {
            w.writeLE(UInt64(g.generation))
            w.writeLE(UInt64(g.segmentBytes))
            w.writeLE(g.segmentHeaderChecksum)
            w.writeLE(UInt32(0))
        }
        w.write(text)
        w.pad(toMultipleOf: 4)
        w.writeLE(CRC32C.checksum(w.bytes))
        return w.bytes
    }

    /// Decodes and checks a manifest file's bytes (spec §4 reader actions, except the segment checks).
    static func decode(_ bytes: [UInt8], file: String) throws(MemoryBankError) -> Manifest {
        if bytes.count >= 8, Array(bytes[0..<8]) != magic {
            throw .badMagic(file: file, found: Array(bytes[0..<8]), expected: magic)
        }
        if bytes.count >= 12 {
            var r = ByteReader(bytes, offset: 8)
            let major: UInt16 = r.readLE()
            let minor: UInt16 = r.readLE()
            if major != currentMajor { throw .unsupportedMajor(file: file, found: major, minor: minor, reader: currentMajor) }
        }
        let minimum = headerByteCount + 4
        if bytes.count < minimum { throw .truncated(file: file, expectedBytes: minimum, actualBytes: bytes.count) }
        let layout = try Manifest.layout(bytes, file: file)
        var r = ByteReader(bytes, offset: 16)
        let sequence: UInt64 = r.readLE()
        let sampleCount: UInt64 = r.readLE()
        let shape: [UInt32] = (0..<4).map { _ in r.readLE() }
        let epsilon = r.readFloat()
        let codecCode: UInt8 = r.readLE()
        let normCode: UInt8 = r.readLE()
        let window: UInt16 = r.readLE()
        let stride: UInt16 = r.readLE()
        var crc = CRC32C()
        crc.update(bytes[0..<layout.checksumOffset])
        var tail = ByteReader(bytes, offset: layout.checksumOffset)
        let stored: UInt32 = tail.readLE()
        if stored != crc.value { throw .checksumMismatch(file: file, region: "manifest", stored: stored, computed: crc.value) }

        guard let codec = BankCodec(code: codecCode) else {
            throw .invalidField(file: file, field: "codec", value: "\(codecCode)", allowed: "1…7 (f32, f16, q8, q4, levels, q8rc, q8rcn)")
        }
        // The start noise (v1.1, q8rcn only): bytes 72…87 of a header of at least 88 bytes.
        var startNoise: BankStartNoise?
        if codec == .q8rcn {
            if layout.entries.lowerBound < noiseHeaderByteCount {
                throw .invalidField(file: file, field: "headerBytes", value: "\(layout.entries.lowerBound)",
                                    allowed: "≥ \(noiseHeaderByteCount) for codec q8rcn (its start noise is in bytes 72…87)")
            }
            var n = ByteReader(bytes, offset: headerByteCount)
            let seed: UInt64 = n.readLE()
            let sigma = n.readFloat()
            let generator: UInt8 = n.readLE()
            startNoise = BankStartNoise(generator: generator, seed: seed, sigma: sigma)
        }
        guard let norm = PerturbationNorm(code: normCode) else {
            throw .invalidField(file: file, field: "norm", value: "\(normCode)", allowed: "1 (L∞), 2 (L2)")
        }
        try SegmentHeader.checkShape(shape, file: file)
        let text = String(decoding: bytes[layout.createdBy], as: UTF8.self)
        let config = BankConfig(sampleCount: Int(clamping: sampleCount), shape: shape[0..<3].map { Int($0) },
                                epsilon: epsilon, norm: norm, codec: codec, window: Int(window), stride: Int(stride),
                                createdBy: text, startNoise: startNoise)
        do {
            try config.validate()
        } catch {
            throw .invalidField(file: file, field: "configuration", value: "\(config.structuralFields())",
                                allowed: "\(error)".split(separator: "\n").first.map(String.init) ?? "")
        }
        r.seek(to: layout.entries.lowerBound)
        var generations: [ManifestGeneration] = []
        generations.reserveCapacity(layout.generationCount)  // bounded: the entries are inside the file
        for _ in 0..<layout.generationCount {
            let g: UInt64 = r.readLE()
            let size: UInt64 = r.readLE()
            let checksum: UInt32 = r.readLE()
            r.skip(4)
            if let last = generations.last, UInt64(last.generation) >= g {
                throw .invalidField(file: file, field: "generations", value: "\(last.generation) then \(g)",
                                    allowed: "strictly ascending generation numbers")
            }
            if g > UInt64(Int.max / 2) || size > 1 << 50 {
                throw .invalidField(file: file, field: "generation entry", value: "\(g) (\(size) bytes)",
                                    allowed: "generation < 2⁶², segment size < 2⁵⁰")
            }
            generations.append(ManifestGeneration(generation: Int(g), segmentBytes: Int(size), segmentHeaderChecksum: checksum))
        }
        return Manifest(sequence: sequence, config: config, generations: generations)
    }

    /// The regions of a manifest file, checked against its length before anything is read from them
    /// (spec §4 and §5.4): `headerBytes`, `generationCount` and `createdByLength` bounded, then the exact
    /// size `alignUp(headerBytes + 24·G + createdByLength, 4) + 4` compared with the file's.
    /// - Precondition: `bytes.count ≥ 76` (checked by `decode`).
    static func layout(_ bytes: [UInt8], file: String) throws(MemoryBankError) -> ManifestLayout {
        var r = ByteReader(bytes, offset: 12)
        let headerBytes: UInt32 = r.readLE()
        r.seek(to: 60)
        let count: UInt32 = r.readLE()
        let textLength: UInt32 = r.readLE()
        if headerBytes < UInt32(headerByteCount) || headerBytes % 8 != 0 || headerBytes > 1 << 20 {
            throw .invalidField(file: file, field: "headerBytes", value: "\(headerBytes)", allowed: "≥ 72, ≤ 2²⁰, a multiple of 8")
        }
        // Both bounds keep the size arithmetic far from overflow; the exact size check then puts every
        // region inside the file before anything is read from it.
        if count > 1 << 24 {
            throw .invalidField(file: file, field: "generationCount", value: "\(count)", allowed: "≤ 2²⁴ (file of \(bytes.count) bytes)")
        }
        if textLength > UInt32(BankConfig.maximumCreatedByBytes) {
            throw .invalidField(file: file, field: "createdByLength", value: "\(textLength)",
                                allowed: "≤ \(BankConfig.maximumCreatedByBytes) (file of \(bytes.count) bytes)")
        }
        let entriesEnd = Int(headerBytes) + Int(count) * entryByteCount
        let expected = alignUp(entriesEnd + Int(textLength), to: 4) + 4
        if bytes.count != expected { throw .truncated(file: file, expectedBytes: expected, actualBytes: bytes.count) }
        return ManifestLayout(entries: Int(headerBytes)..<entriesEnd, generationCount: Int(count),
                              createdBy: entriesEnd..<(entriesEnd + Int(textLength)), checksumOffset: expected - 4)
    }

    /// The largest file `layout` can accept (header ≤ 2²⁰, ≤ 2²⁴ entries, the longest createdBy,
    /// padding and checksum): readers refuse larger files before reading them.
    static let maximumFileBytes = (1 << 20) + (1 << 24) * entryByteCount + BankConfig.maximumCreatedByBytes + 8

    /// For `membank dump`: the entry and createdBy regions of any bytes (≥ 72), clamped into the file
    /// (entries: as many whole ones as fit before the last 4 bytes).
    static func bestEffortRegions(_ bytes: [UInt8]) -> (entries: Range<Int>, createdBy: Range<Int>) {
        var r = ByteReader(bytes, offset: 12)
        let headerBytes = Int(r.readLE(UInt32.self))
        r.seek(to: 60)
        let count = Int(r.readLE(UInt32.self)), textLength = Int(r.readLE(UInt32.self))
        let limit = max(headerByteCount, bytes.count - 4)
        let start = min(max(headerByteCount, headerBytes), limit)
        let entriesEnd = start + min(count, (limit - start) / entryByteCount) * entryByteCount
        return (start..<entriesEnd, entriesEnd..<(entriesEnd + min(textLength, limit - entriesEnd)))
    }
}

/// A manifest's regions after `Manifest.layout` checked them against the file.
struct ManifestLayout: Equatable {
    /// `headerBytes..<headerBytes + 24·generationCount`.
    let entries: Range<Int>
    let generationCount: Int
    let createdBy: Range<Int>
    /// Where the final CRC32C is: the file's last 4 bytes.
    let checksumOffset: Int
}
