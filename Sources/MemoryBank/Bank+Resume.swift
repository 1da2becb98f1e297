// Bank+Resume.swift: mid-epoch checkpoints of the open generation and their resume
// (docs/format/membank-v1.md §3.2): the mark `Bank.checkpointOpenGeneration()` returns, the report of a
// resume, the walk that validates an unsealed (or sealed) segment's records up to a mark, and the
// resume sequence `Bank.open(…, resuming:)` runs before it deletes any leftover file. Writing records
// is SegmentBuilder's; the manifest and the open/cleanup sequence are Bank.swift's.

import Foundation
import SystemIO

/// What a mid-epoch checkpoint recorded about the bank's open generation (spec §3.2): enough to find
/// and validate, on resume, exactly the records written up to the checkpoint. Store it with the
/// trainer's checkpoint (it is `Codable`; five numbers).
public struct OpenGenerationMark: Codable, Sendable, Equatable {
    /// The open generation (the epoch).
    public var generation: Int
    /// Records written up to the checkpoint.
    public var recordCount: Int
    /// Bytes of those records: the records region `[dataOffset, dataOffset + recordBytes)`, a multiple of 8.
    public var recordBytes: Int
    /// CRC32C of those `recordBytes` bytes.
    public var recordsChecksum: UInt32
    /// The checksum of the segment's unsealed header: ties the mark to the bank's configuration,
    /// its `createdBy` text and the generation.
    public var headerChecksum: UInt32

    public init(generation: Int, recordCount: Int, recordBytes: Int, recordsChecksum: UInt32, headerChecksum: UInt32) {
        self.generation = generation
        self.recordCount = recordCount
        self.recordBytes = recordBytes
        self.recordsChecksum = recordsChecksum
        self.headerChecksum = headerChecksum
    }
}

/// The outcome of resuming an open generation (`Bank.resumeReport`). Never an error: damage is
/// reported here and the generation continues with the records that survived.
public struct OpenGenerationResumeReport: Sendable, Equatable {
    /// Where the records up to the mark were found.
    public enum Source: String, Sendable, Equatable {
        /// `gen-<g>.mbs.tmp`, the open segment (the usual case).
        case temporarySegment
        /// `gen-<g>.mbs`, sealed after the checkpoint (a kill between the seal and the trainer's next
        /// checkpoint): its first `recordCount` records were copied into a new open segment.
        case sealedSegment
        /// Neither file was usable: the generation restarts empty.
        case noSegment
    }

    public var generation: Int
    public var source: Source
    /// Records of the mark kept (validated) and lost (`mark.recordCount − keptRecords`).
    public var keptRecords: Int
    public var lostRecords: Int
    /// The sample IDs of lost records that the damaged file still names (a record whose checksum is
    /// valid after the damage, or the sampleID field of the damaged record). May hold fewer than
    /// `lostRecords` IDs (a file cut short names nothing past its end): the count is exact.
    public var lostSampleIDs: [Int]
    /// Why records were lost, naming the file and offset; nil when every record of the mark was kept.
    public var damage: String?
    /// Sealed generations ≥ `generation` removed from the manifest (the resumed one, if it had been
    /// sealed, and newer ones), as `discardGenerations(after: generation − 1)` would.
    public var droppedGenerations: [Int]

    public var isIntact: Bool { lostRecords == 0 }
}

/// Records of a segment validated from `dataOffset` on: the builder state they imply.
struct RecoveredRecords {
    /// Absolute record offset per sample ID, 0 = absent.
    var index: [UInt64]
    /// IDs in record order.
    var ids: [Int] = []
    /// File offset after the last valid record (= `dataOffset` when there is none).
    var end: Int
    var checksum = CRC32C()
    var statistics = GenerationStatistics()
    var count: Int { ids.count }
    /// Why the walk stopped before `maximumRecords`, naming the offset; nil when it did not.
    var stopReason: String?

    init(sampleCount: Int, dataOffset: Int) {
        index = [UInt64](repeating: 0, count: sampleCount)
        end = dataOffset
    }
}

extension SegmentHeader {
    /// The header checksum `encode()` writes (its last 4 bytes).
    var encodedChecksum: UInt32 {
        var tail = ByteReader(encode(), offset: SegmentHeader.encodedByteCount - 4)
        return tail.readLE()
    }
}

extension Bank {
    /// Where sealing and resuming pass a durable step (docs/format/membank-v1.md §3.2); the kill tests
    /// stop a real process at each (`SystemIO.FaultPoint`).
    public static let faultPoints = [
        "bank.seal.afterSegmentSync", "bank.seal.afterRename", "bank.seal.afterManifest", "bank.seal.afterRetention",
        "bank.checkpoint.afterSync", "bank.resume.afterManifest", "bank.resume.afterTruncate", "bank.resume.afterCleanup",
    ]

    /// Makes the open generation's records so far durable and returns their mark (spec §3.2): waits
    /// until every queued append is encoded, writes the buffered bytes, fsyncs the temporary segment
    /// (when `options.sync`). Appending continues in the same generation. Cost: one queue drain, one
    /// write, one fsync; nothing is re-read.
    /// - Throws: `noOpenGeneration`, `writerClosed`, the writer thread's first failure, `io`.
    public func checkpointOpenGeneration() throws(MemoryBankError) -> OpenGenerationMark {
        mutex.lock()
        defer { mutex.unlock() }
        if closed { throw .writerClosed }
        guard let builder = current else { throw .noOpenGeneration }
        queue.waitUntilIdle()
        let mark = try builder.checkpoint(sync: options.sync)
        FaultPoint.hit("bank.checkpoint.afterSync")
        return mark
    }

    /// Resume step of `open`, before any leftover file is deleted (spec §3.2): validates the records up
    /// to `mark`, drops the generations ≥ its generation from the manifest, reopens the generation
    /// with the valid prefix. Called with the bank not yet shared.
    func resume(_ mark: OpenGenerationMark) throws(MemoryBankError) -> OpenGenerationResumeReport {
        let g = mark.generation
        let finalPath = directory.appendingPathComponent(BankLayout.segmentName(max(0, g))).path
        let temporaryPath = finalPath + BankLayout.temporarySuffix
        try checkMark(mark, file: temporaryPath)
        let dataOffset = Int(SegmentHeader(config: config, generation: g).dataOffset)
        let markEnd = dataOffset + mark.recordBytes

        // The records' source: the sealed segment if there is a valid one (listed, or unlisted after
        // a kill between its rename and the manifest, or during an earlier resume), else the open one.
        var notes: [String] = []
        var source: (kind: OpenGenerationResumeReport.Source, file: MappedFile, limit: Int)?
        if MappedFile.size(ofFileAt: finalPath) != nil {
            do throws(MemoryBankError) {
                let segment = try sealedSegment(at: finalPath, generation: g)
                if segment.dataOffset != dataOffset {
                    throw .invalidField(file: finalPath, field: "dataOffset", value: "\(segment.dataOffset)", allowed: "\(dataOffset)")
                }
                source = (.sealedSegment, segment.file, segment.indexOffset)
            } catch {
                notes.append("sealed segment unusable: " + Bank.firstLine(error))
            }
        }
        if source == nil, let size = MappedFile.size(ofFileAt: temporaryPath), size > 0 {
            do throws(MemoryBankError) {
                source = (.temporarySegment, try MappedFile(segmentAt: temporaryPath), size)
            } catch {
                notes.append(Bank.firstLine(error))
            }
        }

        var recovered = RecoveredRecords(sampleCount: config.sampleCount, dataOffset: dataOffset)
        var named: [Int] = []
        if let source {
            let limit = min(markEnd, source.limit)
            recovered = Bank.walkRecords(file: source.file, config: config, generation: g, dataOffset: dataOffset,
                                         limit: limit, maximumRecords: mark.recordCount)
            if recovered.count == mark.recordCount && (recovered.end != markEnd || recovered.checksum.value != mark.recordsChecksum) {
                throw .resumeMarkMismatch(file: source.file.path, generation: g,
                                          reason: "its first \(mark.recordCount) records are intact but are not the ones the mark "
                                              + "describes (\(recovered.end - dataOffset) bytes, CRC \(String(hex32: recovered.checksum.value)); "
                                              + "mark: \(mark.recordBytes) bytes, CRC \(String(hex32: mark.recordsChecksum)))")
            }
            if recovered.count < mark.recordCount && markEnd < source.limit
                && Bank.validRecordLength(file: source.file, config: config, generation: g, at: recovered.end, limit: source.limit)
                    .map({ recovered.end + $0 > markEnd }) == true {
                // In the mark's file the mark's end is a record boundary: an intact record across it is another run's.
                throw .resumeMarkMismatch(file: source.file.path, generation: g,
                                          reason: "an intact record at offset \(recovered.end) runs past the mark's end \(markEnd): "
                                              + "these records are not the ones the mark describes")
            }
            if recovered.count < mark.recordCount {
                if let reason = recovered.stopReason { notes.append(reason) }
                if source.limit < markEnd {
                    notes.append("\(source.file.path) holds \(source.limit - dataOffset) record bytes, the mark \(mark.recordBytes)")
                }
                named = Bank.nameRecords(file: source.file, config: config, generation: g, from: recovered.end, limit: limit,
                                         excluding: recovered.index, at: mark.recordCount - recovered.count)
            }
        } else if mark.recordCount > 0 {
            notes.append("no segment file for generation \(g) (\(BankLayout.segmentName(g)) or its .tmp)")
        }

        // Manifest first: generations ≥ g leave it (the files go with the orphan cleanup of `open`).
        let dropped = manifest.generations.filter { $0.generation >= g }.map(\.generation)
        if !dropped.isEmpty {
            var next = manifest
            next.sequence += 1
            next.generations.removeAll { $0.generation >= g }
            try writeManifest(next)
            manifest = next
            FaultPoint.hit("bank.resume.afterManifest")
        }

        let builder: SegmentBuilder
        switch source?.kind {
        case .temporarySegment?:
            builder = try SegmentBuilder(directory: directory.path, config: config, generation: g,
                                         flushThreshold: options.writeBufferBytes, recovered: recovered, source: .inPlace)
        case .sealedSegment?:
            builder = try SegmentBuilder(directory: directory.path, config: config, generation: g,
                                         flushThreshold: options.writeBufferBytes, recovered: recovered, source: .copy(source!.file))
        default:
            builder = try SegmentBuilder(directory: directory.path, config: config, generation: g,
                                         flushThreshold: options.writeBufferBytes)
        }
        current = builder
        for i in appended.indices { appended[i] = 0 }
        for id in recovered.ids { appended[id / 64] |= UInt64(1) << UInt64(id % 64) }
        if options.sync {
            try builder.syncTemporary()
            try BankFiles.syncDirectory(directory.path)
        }
        FaultPoint.hit("bank.resume.afterTruncate")

        let kept = recovered.count
        return OpenGenerationResumeReport(generation: g, source: source?.kind ?? .noSegment, keptRecords: kept,
                                          lostRecords: mark.recordCount - kept, lostSampleIDs: named,
                                          damage: kept == mark.recordCount ? nil : notes.joined(separator: "; "),
                                          droppedGenerations: dropped)
    }

    /// Refuses a mark that cannot describe generation `mark.generation` of this bank.
    private func checkMark(_ mark: OpenGenerationMark, file: String) throws(MemoryBankError) {
        func refuse(_ reason: String) -> MemoryBankError { .resumeMarkMismatch(file: file, generation: mark.generation, reason: reason) }
        if mark.generation < 0 || mark.generation > Int.max / 2 { throw refuse("generation \(mark.generation) outside 0…2⁶²") }
        if mark.recordCount < 0 || mark.recordCount > config.sampleCount {
            throw refuse("recordCount \(mark.recordCount) outside 0…\(config.sampleCount) (the bank's sampleCount)")
        }
        if mark.recordBytes < RecordHeader.encodedByteCount * mark.recordCount || mark.recordBytes % RecordHeader.alignment != 0
            || (mark.recordCount == 0) != (mark.recordBytes == 0) || mark.recordBytes > 1 << 50 {
            throw refuse("recordBytes \(mark.recordBytes) for \(mark.recordCount) records (allowed: a multiple of 8, ≥ 48 per record)")
        }
        let expected = SegmentHeader(config: config, generation: mark.generation).encodedChecksum
        if mark.headerChecksum != expected {
            throw refuse("header checksum \(String(hex32: mark.headerChecksum)), this bank's generation \(mark.generation) has "
                         + "\(String(hex32: expected)) (made by a bank with another configuration or createdBy, or for another generation)")
        }
    }

    /// The sealed segment at `path`, validated against its manifest entry if listed, else against its
    /// own header (an unlisted segment left by a kill).
    private func sealedSegment(at path: String, generation: Int) throws(MemoryBankError) -> BankSegment {
        if let listed = manifest.generations.first(where: { $0.generation == generation }) {
            return try BankSegment(path: path, expected: listed, manifestConfig: config)
        }
        let file = try MappedFile(segmentAt: path)
        let header = try SegmentHeader.decode(fileSize: file.count, file: path) { file.bytes(at: $0, count: $1) }
        let entry = ManifestGeneration(generation: generation, segmentBytes: file.count, segmentHeaderChecksum: header.headerChecksum)
        return try BankSegment(path: path, expected: entry, manifestConfig: config)
    }

    /// Validates records from `dataOffset` in write order until `maximumRecords` are found or one is not
    /// valid: it must lie before `limit`, name an unused sample ID, pass every check of a decode
    /// (checksum, structure, payload values) and end with zero padding.
    static func walkRecords(file: MappedFile, config: BankConfig, generation: Int, dataOffset: Int, limit: Int,
                            maximumRecords: Int) -> RecoveredRecords {
        var r = RecoveredRecords(sampleCount: config.sampleCount, dataOffset: dataOffset)
        let decoder = RecordDecoder(config: config)
        var delta = [Float](repeating: 0, count: config.elementCount)
        var offset = dataOffset
        while r.count < maximumRecords {
            func stop(_ reason: String) { r.stopReason = "\(file.path): record \(r.count) at offset \(offset): \(reason)" }
            guard let length = plausibleRecordLength(file: file, config: config, at: offset, limit: limit) else {
                stop(offset + RecordHeader.encodedByteCount > limit ? "runs past the end of the written records" : "implausible record header")
                break
            }
            let id = Int(file.uint32LE(at: offset))
            if r.index[id] != 0 { stop("a second record for sample \(id)"); break }
            let bytes = file.bytes(at: offset, count: length)
            let info: EntryInfo
            do {
                let headerBytes = Int(file.uint16LE(at: offset + 6)), stored = Int(file.uint32LE(at: offset + 40))
                if bytes[(headerBytes + stored)...].contains(where: { $0 != 0 }) { stop("non-zero padding"); break }
                info = try decoder.decode(record: Array(bytes[0..<(headerBytes + stored)]), id: id, into: &delta,
                                          file: file.path, generation: generation)
            } catch {
                stop(firstLine(error))
                break
            }
            var stats = RecordStatistics()
            stats.recordBytes = length
            stats.rawBytes = info.rawBytes
            stats.storedBytes = info.storedBytes
            stats.lz4 = info.lz4
            stats.clampedCount = info.clampedCount
            if config.codec == .levels {
                // The palette size is the number of distinct q8 levels (the encoder's P, whichever layout won).
                let levels = Set(delta.map { info.scale > 0 ? Int(($0 / info.scale).rounded()) : 0 })
                stats.paletteCount = levels.count
                stats.bitWidth = RecordCodec.bitWidth(paletteCount: levels.count)
            }
            r.statistics.add(stats)
            r.index[id] = UInt64(offset)
            r.ids.append(id)
            r.checksum.update(bytes)
            offset += length
            r.end = offset
        }
        return r
    }

    /// The padded length of a record at `offset` whose header fields are plausible for `config`
    /// (sample ID in range, the segment's codec, sizes inside `limit`); nil otherwise. No checksum.
    private static func plausibleRecordLength(file: MappedFile, config: BankConfig, at offset: Int, limit: Int) -> Int? {
        let h = RecordHeader.encodedByteCount
        guard offset + h <= min(limit, file.count) else { return nil }
        let id = Int(file.uint32LE(at: offset)), headerBytes = Int(file.uint16LE(at: offset + 6))
        let stored = Int(file.uint32LE(at: offset + 40))
        guard id < config.sampleCount, file.byte(at: offset + 4) == config.codec.code,
              headerBytes >= h, headerBytes % RecordHeader.alignment == 0,
              stored <= RecordCodec.maximumRawBytes(config.codec, elementCount: config.elementCount) else { return nil }
        let length = alignUp(headerBytes + stored, to: RecordHeader.alignment)
        return offset + length <= min(limit, file.count) ? length : nil
    }

    /// The padded length of a valid record (every check of a decode) at `offset` before `limit`, or nil.
    private static func validRecordLength(file: MappedFile, config: BankConfig, generation: Int, at offset: Int, limit: Int) -> Int? {
        guard let length = plausibleRecordLength(file: file, config: config, at: offset, limit: limit) else { return nil }
        let id = Int(file.uint32LE(at: offset))
        let headerBytes = Int(file.uint16LE(at: offset + 6)), stored = Int(file.uint32LE(at: offset + 40))
        var delta = [Float](repeating: 0, count: config.elementCount)
        let decoded = try? RecordDecoder(config: config).decode(record: file.bytes(at: offset, count: headerBytes + stored), id: id,
                                                                 into: &delta, file: file.path, generation: generation)
        return decoded == nil ? nil : length
    }

    /// The sample IDs of the lost records after a damaged one (spec §3.2): the damaged record's own
    /// sampleID field when in range, then every valid record found at an 8-byte boundary before
    /// `limit`; at most `count`, none already kept.
    private static func nameRecords(file: MappedFile, config: BankConfig, generation: Int, from start: Int, limit: Int,
                                    excluding kept: [UInt64], at count: Int) -> [Int] {
        var names: [Int] = []
        var seen = Set<Int>()
        func name(_ id: Int) {
            if id < config.sampleCount && kept[id] == 0 && seen.insert(id).inserted && names.count < count { names.append(id) }
        }
        if start + 4 <= min(limit, file.count) { name(Int(file.uint32LE(at: start))) }
        var offset = start + RecordHeader.alignment
        while offset < limit && names.count < count {
            if let length = validRecordLength(file: file, config: config, generation: generation, at: offset, limit: limit) {
                name(Int(file.uint32LE(at: offset)))
                offset += length
            } else {
                offset += RecordHeader.alignment
            }
        }
        return names
    }

    /// The first line of an error's description (the part without the hint).
    static func firstLine(_ error: MemoryBankError) -> String {
        "\(error)".split(separator: "\n").first.map(String.init) ?? "\(error)"
    }
}
