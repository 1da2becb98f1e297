// RecordCodec+Unsafe.swift: encodes one perturbation into a complete record (header, payload, padding)
// and decodes a record from mapped memory into a caller's float buffer, checking everything the spec
// asks a reader to check (docs/format/membank-v1.md §6–§7). Quantisation and bit packing are the
// Kernels.Quantize kernels; compression is LZ4+Unsafe.swift. Each encoder/decoder owns its scratch
// buffers and is used by one thread at a time.

import SystemIO
import Kernels
import Tensors

/// Encodes records for one bank configuration. Not thread-safe: one per writer thread.
final class RecordEncoder {
    let config: BankConfig
    let elementCount: Int
    private var levels: [Int8]
    private var indices: [UInt8]
    private var raw: [UInt8]
    private var alternative: [UInt8]
    private var compressed: [UInt8]
    private var compressedAlternative: [UInt8]
    private var counts = [Int32](repeating: 0, count: 256)
    private var table = [UInt8](repeating: 0, count: 256)
    /// `q8rc` scratch: the neighbour class of every element and the model's probabilities.
    private var classes: [UInt8] = []
    private var probabilities: [UInt16] = []
    /// `q8rcn` scratch: the unit start noise, its bases and halves (spec §7.6), the flag modes.
    private var noise: [Float] = []
    private var bases: [UInt8] = []
    private var halves: [UInt8] = []
    private var modes: [UInt8] = []
    /// Test hook: encode every `levels` record in this layout (raw, or LZ4 if it pays).
    var forcedLevelsLayout: Int?

    init(config: BankConfig) {
        precondition(1.littleEndian == 1, "MemoryBank: big-endian hosts are not supported")
        precondition(config.codec != .q8rcn || config.startNoise != nil, "RecordEncoder: q8rcn needs config.startNoise")
        self.config = config
        elementCount = config.elementCount
        let maxRaw = RecordCodec.maximumRawBytes(config.codec, elementCount: elementCount)
        levels = [Int8](repeating: 0, count: elementCount)
        indices = [UInt8](repeating: 0, count: elementCount)
        raw = [UInt8](repeating: 0, count: maxRaw)
        alternative = [UInt8](repeating: 0, count: maxRaw)
        compressed = [UInt8](repeating: 0, count: maxRaw)
        compressedAlternative = [UInt8](repeating: 0, count: maxRaw)
        if config.codec == .q8rc || config.codec == .q8rcn {
            classes = [UInt8](repeating: 0, count: elementCount)
            probabilities = [UInt16](repeating: 0, count: max(LevelModel.probabilityCount, NoiseLevelModel.probabilityCount))
        }
        if config.codec == .q8rcn {
            noise = [Float](repeating: 0, count: elementCount)
            bases = [UInt8](repeating: 0, count: elementCount)
            halves = [UInt8](repeating: 0, count: elementCount)
            modes = [UInt8](repeating: 0, count: elementCount)
        }
    }

    /// Appends the record of sample `id` of `generation` (header + payload + zero padding to 8) to
    /// `out`. Only `q8rcn` uses the generation (its start noise is a function of it).
    /// - Precondition: `delta` holds `elementCount` finite values (the writer checks finiteness).
    func appendRecord(id: Int, generation: Int = 0, delta: UnsafePointer<Float>, view: ViewParameters, metadata: EntryMetadata,
                      to out: inout ByteWriter) -> RecordStatistics {
        let n = elementCount
        var stats = RecordStatistics()
        let scale = RecordCodec.scale(config: config) { Quantize.maxAbs(delta, count: n) }
        var rawCount = 0
        // The payload to store: (bytes, count, lz4) picked among the candidates below.
        var choice = 0  // 0 raw, 1 compressed
        var storedCount = 0

        if let limit = config.codec.levelLimit {
            levels.withUnsafeMutableBufferPointer { q in
                if scale > 0 {
                    stats.clampedCount = Quantize.levels(output: q.baseAddress!, input: delta, count: n, scale: scale, limit: limit)
                } else {
                    q.update(repeating: 0)  // L2 with δ = 0: every level is 0
                }
            }
        }

        switch config.codec {
        case .f32:
            rawCount = 4 * n
            raw.withUnsafeMutableBytes { r in r.baseAddress!.copyMemory(from: delta, byteCount: 4 * n) }
        case .f16:
            rawCount = 2 * n
            raw.withUnsafeMutableBytes { r in
                Quantize.halfFromFloat(output: r.baseAddress!.assumingMemoryBound(to: UInt16.self), input: delta, count: n)
            }
        case .q8:
            rawCount = n
            raw.withUnsafeMutableBytes { r in levels.withUnsafeBytes { q in r.baseAddress!.copyMemory(from: q.baseAddress!, byteCount: n) } }
        case .q4:
            rawCount = (n + 1) / 2
            raw.withUnsafeMutableBufferPointer { r in
                levels.withUnsafeBufferPointer { q in Quantize.packNibbles(output: r.baseAddress!, levels: q.baseAddress!, count: n) }
            }
        case .levels:
            return appendLevelsRecord(id: id, scale: scale, view: view, metadata: metadata, stats: stats, to: &out)
        case .q8rc, .q8rcn:
            return appendQ8rcRecord(id: id, generation: generation, scale: scale, view: view, metadata: metadata, stats: stats, to: &out)
        }

        if let c = compress(raw, count: rawCount, into: &compressed, capacity: RecordCodec.lz4Capacity(rawBytes: rawCount)) {
            choice = 1
            storedCount = c
        } else {
            storedCount = rawCount
        }
        stats.rawBytes = rawCount
        stats.storedBytes = storedCount
        stats.lz4 = choice != 0
        let payload = choice == 0 ? raw : compressed
        writeRecord(id: id, scale: scale, view: view, metadata: metadata, payload: payload, stats: &stats, to: &out)
        return stats
    }

    /// The `levels` codec (spec §7.4): palette of the q8 levels present + minimal-width indices, packed,
    /// as bit planes, or the int8 levels directly, with LZ4 where it pays; the smallest stored candidate wins.
    private func appendLevelsRecord(id: Int, scale: Float, view: ViewParameters, metadata: EntryMetadata,
                                    stats initial: RecordStatistics, to out: inout ByteWriter) -> RecordStatistics {
        let n = elementCount
        var stats = initial
        for k in 0..<256 { counts[k] = 0 }
        levels.withUnsafeBufferPointer { q in
            counts.withUnsafeMutableBufferPointer { c in Quantize.histogram(counts: c.baseAddress!, levels: q.baseAddress!, count: n) }
        }
        var palette: [UInt8] = []
        for k in 1..<256 where counts[k] > 0 {  // bin 0 (−128) never occurs: levels are clamped to ±127
            table[k] = UInt8(palette.count)
            palette.append(UInt8(bitPattern: Int8(k - 128)))
        }
        if palette.isEmpty { palette = [0] }  // n = 0 cannot happen (n ≥ 1); keeps P ≥ 1 regardless
        let p = palette.count
        let b = RecordCodec.bitWidth(paletteCount: p)
        levels.withUnsafeBufferPointer { q in
            indices.withUnsafeMutableBufferPointer { ix in
                table.withUnsafeBufferPointer { t in Quantize.mapLevels(output: ix.baseAddress!, levels: q.baseAddress!, count: n, table: t.baseAddress!) }
            }
        }
        func build(layout: Int, into buffer: inout [UInt8]) -> Int {
            let size = RecordCodec.levelsRawBytes(paletteCount: p, layout: layout, elementCount: n)
            let direct = layout == RecordCodec.directLayout
            buffer[0] = direct ? 0 : UInt8(p)
            buffer[1] = direct ? 8 : UInt8(b)
            buffer[2] = UInt8(layout)
            buffer[3] = 0
            if !direct { for j in 0..<p { buffer[4 + j] = palette[j] } }
            let streamStart = RecordCodec.levelsHeaderBytes + (direct ? 0 : p)
            buffer.withUnsafeMutableBufferPointer { o in
                indices.withUnsafeBufferPointer { ix in
                    switch layout {
                    case 0: Quantize.packBits(output: o.baseAddress! + streamStart, indices: ix.baseAddress!, count: n, bitWidth: b)
                    case 1: Quantize.packBitPlanes(output: o.baseAddress! + streamStart, indices: ix.baseAddress!, count: n, bitWidth: b)
                    default:
                        levels.withUnsafeBytes { q in
                            UnsafeMutableRawPointer(o.baseAddress! + streamStart).copyMemory(from: q.baseAddress!, byteCount: n)
                        }
                    }
                }
            }
            return size
        }
        // Candidates in order: packed raw; packed + LZ4; planes + LZ4 (b ≥ 2); direct + LZ4 (b ≥ 1).
        // The best so far lives in `raw` (packed raw) or `compressed` (every LZ4 winner is moved there).
        let first = forcedLevelsLayout ?? 0
        let packedCount = build(layout: first, into: &raw)
        var best = (inRaw: true, stored: packedCount, raw: packedCount, layout: first)
        if let c = compress(raw, count: packedCount, into: &compressed, capacity: RecordCodec.lz4Capacity(rawBytes: packedCount)) {
            best = (false, c, packedCount, first)
        }
        for layout in [1, 2] where forcedLevelsLayout == nil && ((layout == 1 && b >= 2) || (layout == 2 && b >= 1)) {
            let size = build(layout: layout, into: &alternative)
            let capacity = min(RecordCodec.lz4Capacity(rawBytes: size), best.stored - 1)
            if let c = compress(alternative, count: size, into: &compressedAlternative, capacity: capacity) {
                swap(&compressed, &compressedAlternative)
                best = (false, c, size, layout)
            }
        }
        stats.rawBytes = best.raw
        stats.storedBytes = best.stored
        stats.lz4 = !best.inRaw
        stats.paletteCount = p
        stats.bitWidth = b
        stats.layout = best.layout
        writeRecord(id: id, scale: scale, view: view, metadata: metadata, payload: best.inRaw ? raw : compressed, stats: &stats, to: &out)
        return stats
    }

    /// The `q8rc` codec (spec §7.5): the q8 levels range-coded under the context model of
    /// LevelCoder+Unsafe.swift (layout 0), or stored directly (layout 1) when the coded stream would be
    /// longer than n bytes. Never LZ4: the coded stream does not compress, and the direct layout is
    /// the fallback of incompressible entries.
    /// `q8rcn` (spec §7.6) is the same payload with the relative model, the start noise of
    /// (generation, id) regenerated from `config.startNoise`.
    private func appendQ8rcRecord(id: Int, generation: Int, scale: Float, view: ViewParameters, metadata: EntryMetadata,
                                  stats initial: RecordStatistics, to out: inout ByteWriter) -> RecordStatistics {
        let n = elementCount, header = RecordCodec.q8rcHeaderBytes
        let shape = (c: config.shape[0], h: config.shape[1], w: config.shape[2])
        var stats = initial
        let coded: Int?
        if config.codec == .q8rcn, let startNoise = config.startNoise {
            fillNoiseBases(startNoise, generation: generation, id: id, scale: scale,
                           noise: &noise, bases: &bases, halves: &halves)
            coded = levels.withUnsafeBufferPointer { q in
                bases.withUnsafeBufferPointer { b in
                    halves.withUnsafeBufferPointer { hv in
                        classes.withUnsafeMutableBufferPointer { k in
                            modes.withUnsafeMutableBufferPointer { m in
                                probabilities.withUnsafeMutableBufferPointer { p in
                                    raw.withUnsafeMutableBufferPointer { r in
                                        LevelCoder.encodeRelative(levels: q.baseAddress!, bases: b.baseAddress!, halves: hv.baseAddress!,
                                                                  shape: shape, limit: 127, classes: k.baseAddress!, modes: m.baseAddress!,
                                                                  probabilities: p.baseAddress!, output: r.baseAddress! + header, capacity: n)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        } else {
            coded = levels.withUnsafeBufferPointer { q in
                classes.withUnsafeMutableBufferPointer { k in
                    probabilities.withUnsafeMutableBufferPointer { p in
                        raw.withUnsafeMutableBufferPointer { r in
                            LevelCoder.encode(levels: q.baseAddress!, shape: shape, limit: 127, classes: k.baseAddress!,
                                              probabilities: p.baseAddress!, output: r.baseAddress! + header, capacity: n)
                        }
                    }
                }
            }
        }
        raw[1] = 0; raw[2] = 0; raw[3] = 0
        if let coded {
            raw[0] = UInt8(RecordCodec.q8rcCodedLayout)
            stats.rawBytes = header + coded
            stats.layout = RecordCodec.q8rcCodedLayout
        } else {
            raw[0] = UInt8(RecordCodec.q8rcDirectLayout)
            raw.withUnsafeMutableBytes { r in levels.withUnsafeBytes { q in (r.baseAddress! + header).copyMemory(from: q.baseAddress!, byteCount: n) } }
            stats.rawBytes = header + n
            stats.layout = RecordCodec.q8rcDirectLayout
        }
        stats.storedBytes = stats.rawBytes
        stats.lz4 = false
        writeRecord(id: id, scale: scale, view: view, metadata: metadata, payload: raw, stats: &stats, to: &out)
        return stats
    }

    private func compress(_ source: [UInt8], count: Int, into destination: inout [UInt8], capacity: Int) -> Int? {
        source.withUnsafeBytes { s in
            destination.withUnsafeMutableBytes { d in
                LZ4.compress(s.baseAddress!, count: count, into: d.baseAddress!, capacity: min(capacity, d.count))
            }
        }
    }

    /// Header (checksum 0), payload, checksum patched in, zero padding to 8.
    private func writeRecord(id: Int, scale: Float, view: ViewParameters, metadata: EntryMetadata, payload: [UInt8],
                             stats: inout RecordStatistics, to out: inout ByteWriter) {
        let start = out.count
        let header = RecordHeader(sampleID: UInt32(id), codec: config.codec.code, flags: stats.lz4 ? RecordHeader.lz4Flag : 0,
                                  view: view.bytes, label: metadata.label, pY: metadata.pY, margin: metadata.margin,
                                  loss: metadata.loss, scale: scale, clampedCount: UInt32(stats.clampedCount),
                                  rawBytes: UInt32(stats.rawBytes), storedBytes: UInt32(stats.storedBytes))
        header.encode(into: &out)
        out.write(payload[0..<stats.storedBytes])
        var crc = CRC32C()
        crc.update(out.bytes[start..<(start + RecordHeader.checksumOffset)])
        crc.update(out.bytes[(start + RecordHeader.encodedByteCount)..<(start + RecordHeader.encodedByteCount + stats.storedBytes)])
        out.setLE(crc.value, at: start + RecordHeader.checksumOffset)
        out.pad(toMultipleOf: RecordHeader.alignment)
        stats.recordBytes = out.count - start
    }
}

/// What a decoded record carried besides δ.
public struct EntryInfo: Sendable, Equatable {
    public var view: ViewParameters
    public var metadata: EntryMetadata
    /// The quantisation step used (0 for f32/f16).
    public var scale: Float
    /// Values clamped at encode time.
    public var clampedCount: Int
    /// Payload bytes on disk and after LZ4 decoding.
    public var storedBytes: Int
    public var rawBytes: Int
    public var lz4: Bool
}

/// Decodes records of one configuration. Not thread-safe: one per reading thread.
final class RecordDecoder {
    let config: BankConfig
    let elementCount: Int
    private let maximumRaw: Int
    private var raw: [UInt8]
    private var levels: [Int8]
    private var indices: [UInt8]
    private var values = [Float](repeating: 0, count: 256)
    private var classes: [UInt8] = []
    private var probabilities: [UInt16] = []
    private var noise: [Float] = []
    private var bases: [UInt8] = []
    private var halves: [UInt8] = []
    private var modes: [UInt8] = []
    /// The record being decoded (q8rcn regenerates its start noise from them).
    private var currentGeneration = 0
    private var currentID = 0

    init(config: BankConfig) {
        precondition(config.codec != .q8rcn || config.startNoise != nil, "RecordDecoder: q8rcn needs config.startNoise")
        self.config = config
        elementCount = config.elementCount
        maximumRaw = RecordCodec.maximumRawBytes(config.codec, elementCount: elementCount)
        raw = [UInt8](repeating: 0, count: maximumRaw)
        levels = [Int8](repeating: 0, count: elementCount)
        indices = [UInt8](repeating: 0, count: elementCount)
        if config.codec == .q8rc || config.codec == .q8rcn {
            classes = [UInt8](repeating: 0, count: elementCount)
            probabilities = [UInt16](repeating: 0, count: max(LevelModel.probabilityCount, NoiseLevelModel.probabilityCount))
        }
        if config.codec == .q8rcn {
            noise = [Float](repeating: 0, count: elementCount)
            bases = [UInt8](repeating: 0, count: elementCount)
            halves = [UInt8](repeating: 0, count: elementCount)
            modes = [UInt8](repeating: 0, count: elementCount)
        }
    }

    /// Decodes the record at `record` (within a mapping; `available` bytes up to the index) into
    /// `output` (`elementCount` floats).
    /// - Throws: `corruptRecord` / `unsupportedRecord` naming `file`, `generation` and `id`.
    func decode(record: UnsafeRawPointer, available: Int, id: Int, into output: UnsafeMutablePointer<Float>,
                file: String, generation: Int) throws(MemoryBankError) -> EntryInfo {
        func corrupt(_ reason: String) -> MemoryBankError {
            .corruptRecord(file: file, generation: generation, sampleID: id, reason: reason)
        }
        func unsupported(_ reason: String) -> MemoryBankError {
            .unsupportedRecord(file: file, generation: generation, sampleID: id, reason: reason)
        }
        if available < RecordHeader.encodedByteCount { throw corrupt("record header runs past the data region") }
        let h = RecordHeader.decode(Array(UnsafeRawBufferPointer(start: record, count: RecordHeader.encodedByteCount)))
        if Int(h.sampleID) != id { throw corrupt("record holds sample \(h.sampleID), the index points here for \(id)") }
        let layout: RecordLayout
        switch h.layout(available: available) {
        case .success(let l): layout = l
        case .failure(let f): throw corrupt(f.reason)
        }
        let hb = layout.headerBytes, stored = layout.payload.count, rawCount = layout.rawBytes
        var crc = CRC32C()
        crc.update(raw: UnsafeRawBufferPointer(start: record, count: RecordHeader.checksumOffset))
        // Everything after the checksum field: header extensions of later minor versions, then the payload.
        crc.update(raw: UnsafeRawBufferPointer(start: record + RecordHeader.encodedByteCount,
                                               count: hb - RecordHeader.encodedByteCount + stored))
        if crc.value != h.checksum {
            throw corrupt("record checksum \(String(hex32: h.checksum)), computed \(String(hex32: crc.value))")
        }
        if h.codec != config.codec.code {
            if BankCodec(code: h.codec) == nil {
                throw .unsupportedRecord(file: file, generation: generation, sampleID: id, reason: "unknown codec \(h.codec)")
            }
            throw corrupt("record codec \(h.codec), the segment's is \(config.codec.code)")
        }
        if h.flags & ~RecordHeader.knownFlags != 0 {
            throw .unsupportedRecord(file: file, generation: generation, sampleID: id,
                                     reason: "unknown record flags 0x\(String(h.flags, radix: 16))")
        }
        if rawCount > maximumRaw { throw corrupt("rawBytes \(rawCount) exceeds the codec's maximum \(maximumRaw)") }
        if let expected = RecordCodec.fixedRawBytes(config.codec, elementCount: elementCount), rawCount != expected {
            throw corrupt("rawBytes \(rawCount), the codec needs \(expected)")
        }
        try checkScale(h.scale, corrupt: corrupt)

        let failure: MemoryBankError?
        currentGeneration = generation
        currentID = id
        if h.isLZ4 {
            let decoded = raw.withUnsafeMutableBytes { r in
                LZ4.decompress(record + hb, count: stored, into: r.baseAddress!, capacity: rawCount)
            }
            if decoded != rawCount { throw corrupt("LZ4 block decodes to \(decoded) bytes, expected \(rawCount)") }
            failure = raw.withUnsafeBytes { r in
                decodePayload(r.baseAddress!, rawCount: rawCount, scale: h.scale, into: output, corrupt: corrupt, unsupported: unsupported)
            }
        } else {
            if stored != rawCount { throw corrupt("storedBytes \(stored) ≠ rawBytes \(rawCount) without LZ4") }
            failure = decodePayload(record + hb, rawCount: rawCount, scale: h.scale, into: output, corrupt: corrupt, unsupported: unsupported)
        }
        if let failure { throw failure }
        return EntryInfo(view: h.entryView, metadata: h.metadata, scale: h.scale, clampedCount: Int(h.clampedCount),
                         storedBytes: stored, rawBytes: rawCount, lz4: h.isLZ4)
    }

    /// `scale` must be finite and ≥ 0 for every codec (spec §6), bitwise ε/L for L∞ quantised codecs,
    /// and small enough that `L·scale` is finite for L2 ones, so every dequantised value is finite.
    private func checkScale(_ scale: Float, corrupt: (String) -> MemoryBankError) throws(MemoryBankError) {
        if !(scale.isFinite && scale >= 0) { throw corrupt("scale \(scale), allowed finite and ≥ 0") }
        guard let limit = config.codec.levelLimit else { return }
        switch config.norm {
        case .linf:
            let expected = config.epsilon / Float(limit)
            if scale.bitPattern != expected.bitPattern { throw corrupt("scale \(scale), the L∞ codec needs ε/\(limit) = \(expected)") }
        case .l2:
            if !(scale * Float(limit)).isFinite { throw corrupt("scale \(scale): \(limit)·scale overflows binary32 (allowed finite)") }
        }
    }

    /// Decodes a raw payload; returns the corruption found, if any (not thrown: called inside buffer closures).
    private func decodePayload(_ payload: UnsafeRawPointer, rawCount: Int, scale: Float, into output: UnsafeMutablePointer<Float>,
                               corrupt: (String) -> MemoryBankError, unsupported: (String) -> MemoryBankError) -> MemoryBankError? {
        let n = elementCount
        switch config.codec {
        case .f32:
            UnsafeMutableRawPointer(output).copyMemory(from: payload, byteCount: 4 * n)
            return firstNonFinite(output, count: n, corrupt: corrupt)
        case .f16:
            // The payload may sit at any 8-byte boundary of the mapping or in `raw`: 2-byte aligned.
            Quantize.floatFromHalf(output: output, input: payload.assumingMemoryBound(to: UInt16.self), count: n)
            return firstNonFinite(output, count: n, corrupt: corrupt)
        case .q8:
            let q = payload.assumingMemoryBound(to: Int8.self)
            for i in 0..<n where q[i] == -128 { return corrupt("q8 value −128 at element \(i) (allowed −127…127)") }
            Quantize.dequantize(output: output, levels: q, count: n, scale: scale)
        case .q4:
            let ok = levels.withUnsafeMutableBufferPointer { q in
                Quantize.unpackNibbles(output: q.baseAddress!, input: payload.assumingMemoryBound(to: UInt8.self), count: n)
            }
            if !ok { return corrupt("q4 nibble 0 (allowed 1…15)") }
            levels.withUnsafeBufferPointer { q in Quantize.dequantize(output: output, levels: q.baseAddress!, count: n, scale: scale) }
        case .levels:
            return decodeLevels(payload.assumingMemoryBound(to: UInt8.self), rawCount: rawCount, scale: scale, into: output,
                                corrupt: corrupt, unsupported: unsupported)
        case .q8rc, .q8rcn:
            return decodeQ8rc(payload.assumingMemoryBound(to: UInt8.self), rawCount: rawCount, scale: scale, into: output,
                              corrupt: corrupt, unsupported: unsupported)
        }
        return nil
    }

    /// `q8rc` (spec §7.5): the layout byte, three zero bytes, then the coded stream or the direct levels.
    private func decodeQ8rc(_ p: UnsafePointer<UInt8>, rawCount: Int, scale: Float, into output: UnsafeMutablePointer<Float>,
                            corrupt: (String) -> MemoryBankError, unsupported: (String) -> MemoryBankError) -> MemoryBankError? {
        let n = elementCount, header = RecordCodec.q8rcHeaderBytes
        if rawCount < header { return corrupt("q8rc payload of \(rawCount) bytes, at least \(header) expected") }
        let layout = Int(p[0])
        if layout != RecordCodec.q8rcCodedLayout && layout != RecordCodec.q8rcDirectLayout {
            return unsupported("unknown q8rc layout \(layout) (this reader knows 0 coded, 1 direct)")
        }
        if p[1] != 0 || p[2] != 0 || p[3] != 0 { return corrupt("q8rc reserved bytes \(p[1]) \(p[2]) \(p[3]), expected 0") }
        if layout == RecordCodec.q8rcDirectLayout {
            if rawCount != header + n { return corrupt("q8rc direct payload \(rawCount) bytes, expected \(header + n)") }
            let q = UnsafeRawPointer(p + header).assumingMemoryBound(to: Int8.self)
            for i in 0..<n where q[i] == -128 { return corrupt("q8rc level −128 at element \(i) (allowed −127…127)") }
            Quantize.dequantize(output: output, levels: q, count: n, scale: scale)
            return nil
        }
        let streamBytes = rawCount - header
        if streamBytes < RecordCodec.q8rcMinimumStreamBytes || streamBytes > n {
            return corrupt("q8rc coded stream of \(streamBytes) bytes (allowed \(RecordCodec.q8rcMinimumStreamBytes)…\(n))")
        }
        let shape = (c: config.shape[0], h: config.shape[1], w: config.shape[2])
        let valid: Bool
        if config.codec == .q8rcn, let startNoise = config.startNoise {
            // The noise exists only for generations and IDs below 2³² (spec §7.6); a damaged segment
            // header can claim any u64 generation.
            if !RecordCodec.startNoiseCovers(generation: currentGeneration, id: currentID) {
                return corrupt("q8rcn record of generation \(currentGeneration): the start noise is defined for generations "
                               + "and sample IDs below 2³² (spec §7.6)")
            }
            fillNoiseBases(startNoise, generation: currentGeneration, id: currentID, scale: scale,
                           noise: &noise, bases: &bases, halves: &halves)
            valid = levels.withUnsafeMutableBufferPointer { q in
                bases.withUnsafeBufferPointer { b in
                    halves.withUnsafeBufferPointer { hv in
                        classes.withUnsafeMutableBufferPointer { k in
                            modes.withUnsafeMutableBufferPointer { m in
                                probabilities.withUnsafeMutableBufferPointer { pr in
                                    LevelCoder.decodeRelative(input: p + header, count: streamBytes, bases: b.baseAddress!,
                                                              halves: hv.baseAddress!, shape: shape, limit: 127, classes: k.baseAddress!,
                                                              modes: m.baseAddress!, probabilities: pr.baseAddress!, levels: q.baseAddress!)
                                }
                            }
                        }
                    }
                }
            }
        } else {
            valid = levels.withUnsafeMutableBufferPointer { q in
                classes.withUnsafeMutableBufferPointer { k in
                    probabilities.withUnsafeMutableBufferPointer { pr in
                        LevelCoder.decode(input: p + header, count: streamBytes, shape: shape, limit: 127, classes: k.baseAddress!,
                                          probabilities: pr.baseAddress!, levels: q.baseAddress!)
                    }
                }
            }
        }
        if !valid { return corrupt("q8rc coded stream is malformed (an interior level outside −126…126, or the stream ends early or late)") }
        levels.withUnsafeBufferPointer { q in Quantize.dequantize(output: output, levels: q.baseAddress!, count: n, scale: scale) }
        return nil
    }

    /// δ values are finite (spec §7: the writer refuses NaN/±∞); the first one that is not, if any.
    private func firstNonFinite(_ values: UnsafeMutablePointer<Float>, count n: Int,
                                corrupt: (String) -> MemoryBankError) -> MemoryBankError? {
        if Quantize.allFinite(UnsafePointer(values), count: n) { return nil }
        let i = (0..<n).first { !values[$0].isFinite } ?? 0
        return corrupt("δ[\(i)] = \(values[i]): a non-finite value (allowed: finite binary32)")
    }

    private func decodeLevels(_ p: UnsafePointer<UInt8>, rawCount: Int, scale: Float, into output: UnsafeMutablePointer<Float>,
                              corrupt: (String) -> MemoryBankError, unsupported: (String) -> MemoryBankError) -> MemoryBankError? {
        let n = elementCount
        if rawCount < RecordCodec.levelsHeaderBytes + 1 { return corrupt("levels payload of \(rawCount) bytes is too short") }
        let paletteCount = Int(p[0]), b = Int(p[1]), layout = Int(p[2])
        if layout >= RecordCodec.levelsLayoutCount {
            return unsupported("unknown levels layout \(layout) (this reader knows 0 packed, 1 planes, 2 direct)")
        }
        if layout == RecordCodec.directLayout {
            if paletteCount != 0 || b != 8 { return corrupt("levels direct layout needs paletteCount 0 and bitWidth 8, found \(paletteCount), \(b)") }
            let expected = RecordCodec.levelsRawBytes(paletteCount: 0, layout: layout, elementCount: n)
            if rawCount != expected { return corrupt("levels payload \(rawCount) bytes, expected \(expected)") }
            let q = UnsafeRawPointer(p + RecordCodec.levelsHeaderBytes).assumingMemoryBound(to: Int8.self)
            for i in 0..<n where q[i] == -128 { return corrupt("levels value −128 at element \(i) (allowed −127…127)") }
            Quantize.dequantize(output: output, levels: q, count: n, scale: scale)
            return nil
        }
        if paletteCount == 0 { return corrupt("levels paletteCount 0 (allowed 1…255)") }
        if b != RecordCodec.bitWidth(paletteCount: paletteCount) {
            return corrupt("levels bitWidth \(b), ⌈log2 \(paletteCount)⌉ = \(RecordCodec.bitWidth(paletteCount: paletteCount))")
        }
        let expected = RecordCodec.levelsRawBytes(paletteCount: paletteCount, layout: layout, elementCount: n)
        if rawCount != expected { return corrupt("levels payload \(rawCount) bytes, expected \(expected)") }
        var previous = -128
        for j in 0..<paletteCount {
            let level = Int(Int8(bitPattern: p[RecordCodec.levelsHeaderBytes + j]))
            if level <= previous || level == -128 { return corrupt("levels palette not strictly ascending in −127…127 at entry \(j)") }
            previous = level
            values[j] = Float(level) * scale
        }
        let stream = p + RecordCodec.levelsHeaderBytes + paletteCount
        let valid = indices.withUnsafeMutableBufferPointer { ix -> Bool in
            if layout == 0 {
                Quantize.unpackBits(output: ix.baseAddress!, input: stream, count: n, bitWidth: b)
            } else {
                Quantize.unpackBitPlanes(output: ix.baseAddress!, input: stream, count: n, bitWidth: b)
            }
            return values.withUnsafeBufferPointer { v in
                Quantize.lookup(output: output, indices: ix.baseAddress!, count: n, values: v.baseAddress!, valueCount: paletteCount)
            }
        }
        return valid ? nil : corrupt("levels index ≥ paletteCount \(paletteCount)")
    }
}

/// `q8rcn` (spec §7.6): the unit start noise of (generation, id), then the bases and halves.
func fillNoiseBases(_ startNoise: BankStartNoise, generation: Int, id: Int, scale: Float,
                    noise: inout [Float], bases: inout [UInt8], halves: inout [UInt8]) {
    let n = noise.count
    StartNoise(seed: startNoise.seed).fillUnit(epoch: generation, sampleID: id, into: &noise, count: n)
    noise.withUnsafeBufferPointer { z in
        bases.withUnsafeMutableBufferPointer { b in
            halves.withUnsafeMutableBufferPointer { hv in
                LevelCoder.noiseBases(unit: UnsafePointer(z.baseAddress!), count: n, sigma: startNoise.sigma, scale: scale,
                                      bases: b.baseAddress!, halves: hv.baseAddress!)
            }
        }
    }
}

// MARK: - Array entry points (the writer thread holds δ as [Float])

extension RecordEncoder {
    func appendRecord(id: Int, generation: Int = 0, delta: [Float], view: ViewParameters, metadata: EntryMetadata,
                      to out: inout ByteWriter) -> RecordStatistics {
        delta.withUnsafeBufferPointer { d in
            appendRecord(id: id, generation: generation, delta: d.baseAddress!, view: view, metadata: metadata, to: &out)
        }
    }

    static func allFinite(_ delta: [Float]) -> Bool {
        delta.withUnsafeBufferPointer { Quantize.allFinite($0.baseAddress!, count: $0.count) }
    }
}

extension RecordDecoder {
    /// Decodes a record held in an array (tools and benches; the bank decodes from its mapping).
    func decode(record: [UInt8], id: Int, into delta: inout [Float], file: String, generation: Int) throws(MemoryBankError) -> EntryInfo {
        precondition(delta.count == elementCount, "RecordDecoder: buffer of \(delta.count) floats, need \(elementCount)")
        var result: Result<EntryInfo, MemoryBankError> = .failure(.corruptRecord(file: file, generation: generation, sampleID: id, reason: "empty record"))
        record.withUnsafeBytes { r in
            delta.withUnsafeMutableBufferPointer { d in
                guard let base = r.baseAddress else { return }
                do throws(MemoryBankError) {
                    result = .success(try decode(record: base, available: r.count, id: id, into: d.baseAddress!, file: file, generation: generation))
                } catch {
                    result = .failure(error)
                }
            }
        }
        return try result.get()
    }
}
