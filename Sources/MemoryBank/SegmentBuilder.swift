// SegmentBuilder.swift: writes one generation's segment file (docs/format/membank-v1.md §3, §5): the
// unsealed header and createdBy at creation, records appended sequentially through a write buffer (on
// the writer thread), then — on the caller's thread, once the queue is idle — the index, the sealed
// header, fsync and the rename to the final name; a mid-epoch checkpoint of the open segment (the
// records so far, durable, with a mark) and the reopening of a recovered prefix (spec §3.2). The
// manifest is Bank's business; recovering the prefix is Bank+Resume.swift.

import Foundation
import SystemIO
import Tensors

/// One generation being written. Appends run on the writer thread; `seal` / `discard` run on the
/// caller's thread after `BoundedQueue.waitUntilIdle()`, which orders them after every append.
final class SegmentBuilder: @unchecked Sendable {
    let generation: Int
    let config: BankConfig
    let temporaryPath: String
    let finalPath: String
    /// The segment under its temporary name until `seal` renames it (left in place if the writer
    /// dies: `Bank` recognises and removes `.tmp` files on open).
    private let file: AtomicFileWriter
    private var header: SegmentHeader
    private let encoder: RecordEncoder
    /// Absolute record offset per sample ID, 0 = absent (spec §5.3). 8·N bytes of RAM.
    private var index: [UInt64]
    /// File offset where the next record starts (records written + buffered).
    private var position: Int
    private var pending = ByteWriter()
    private let flushThreshold: Int
    /// Totals of this generation.
    private(set) var statistics = GenerationStatistics()
    /// The first failure on the writer thread; later appends are skipped.
    private let failure = FailureBox()
    /// Records in the records region so far, and the CRC32C of that region's bytes (the
    /// checkpoint mark's validation data; updated by the writer thread as records are encoded).
    private var recordCount = 0
    private var recordsChecksum = CRC32C()

    init(directory: String, config: BankConfig, generation: Int, flushThreshold: Int) throws(MemoryBankError) {
        self.generation = generation
        self.config = config
        let name = BankLayout.segmentName(generation)
        finalPath = directory + "/" + name
        temporaryPath = finalPath + BankLayout.temporarySuffix
        self.flushThreshold = flushThreshold
        do {
            file = try AtomicFileWriter(path: finalPath, temporaryPath: temporaryPath, removesTemporaryOnDeinit: false)
        } catch {
            throw .io(error)
        }
        header = SegmentHeader(config: config, generation: generation)
        encoder = RecordEncoder(config: config)
        index = [UInt64](repeating: 0, count: config.sampleCount)
        let prefix = SegmentBuilder.unsealedPrefix(config: config, generation: generation)
        position = prefix.count
        do { try file.append(prefix) } catch { throw .io(error) }
        pending = ByteWriter(capacity: flushThreshold + 64 * 1024)
    }

    /// Where a resumed generation's validated records are (Bank+Resume.swift found them).
    enum RecoveredSource {
        /// In the temporary segment itself: it is cut after the last valid record and reopened.
        case inPlace
        /// In another file (the sealed segment of the generation): its bytes
        /// `[dataOffset, recovered.end)` are copied into a new temporary segment.
        case copy(MappedFile)
    }

    /// Reopens generation `generation` for appending after the records `recovered` describes (the
    /// state an uninterrupted writer had after them: index, statistics, record count, checksum).
    /// The file's first `dataOffset` bytes are rewritten as a fresh builder writes them.
    init(directory: String, config: BankConfig, generation: Int, flushThreshold: Int,
         recovered: RecoveredRecords, source: RecoveredSource) throws(MemoryBankError) {
        self.generation = generation
        self.config = config
        let name = BankLayout.segmentName(generation)
        finalPath = directory + "/" + name
        temporaryPath = finalPath + BankLayout.temporarySuffix
        self.flushThreshold = flushThreshold
        header = SegmentHeader(config: config, generation: generation)
        encoder = RecordEncoder(config: config)
        let prefix = SegmentBuilder.unsealedPrefix(config: config, generation: generation)
        precondition(recovered.end >= prefix.count && recovered.index.count == config.sampleCount,
                     "SegmentBuilder: recovered records outside the records region")
        do {
            switch source {
            case .inPlace:
                file = try AtomicFileWriter(continuing: finalPath, temporaryPath: temporaryPath, length: recovered.end,
                                            removesTemporaryOnDeinit: false)
                try file.write(prefix, at: 0)
            case .copy(let mapped):
                file = try AtomicFileWriter(path: finalPath, temporaryPath: temporaryPath, removesTemporaryOnDeinit: false)
                try file.append(prefix)
                var offset = prefix.count
                while offset < recovered.end {
                    let n = min(SegmentBuilder.copyChunkBytes, recovered.end - offset)
                    try file.append(mapped.bytes(at: offset, count: n))
                    offset += n
                }
            }
        } catch {
            throw .io(error)
        }
        index = recovered.index
        position = recovered.end
        statistics = recovered.statistics
        recordCount = recovered.count
        recordsChecksum = recovered.checksum
        pending = ByteWriter(capacity: flushThreshold + 64 * 1024)
    }

    /// Bytes copied per write when a recovered prefix is copied into a new temporary segment.
    static let copyChunkBytes = 1 << 20

    /// The bytes before the records region of an unsealed segment: the header with `sealed = 0`,
    /// createdBy, zero padding to `dataOffset` (spec §3 step 1).
    static func unsealedPrefix(config: BankConfig, generation: Int) -> [UInt8] {
        let header = SegmentHeader(config: config, generation: generation)
        var w = ByteWriter(capacity: Int(header.dataOffset))
        w.write(header.encode())
        w.write(Array(config.createdBy.utf8))
        w.pad(toMultipleOf: SegmentHeader.regionAlignment)
        return w.bytes
    }

    var error: MemoryBankError? { failure.value }

    // MARK: - Writer thread

    /// Encodes and buffers one entry (writer thread). Failures are recorded, not thrown.
    func append(_ job: EntryJob) {
        if failure.value != nil { return }
        let start = DispatchTime.now().uptimeNanoseconds
        if !RecordEncoder.allFinite(job.delta) {
            failure.set(.nonFiniteDelta(generation: generation, sampleID: job.id))
            return
        }
        let offset = position
        let before = pending.count
        let stats = encoder.appendRecord(id: job.id, generation: generation, delta: job.delta, view: job.view, metadata: job.metadata, to: &pending)
        position += pending.count - before
        recordsChecksum.update(pending.bytes[before...])
        recordCount += 1
        index[job.id] = UInt64(offset)
        statistics.add(stats)
        if pending.count >= flushThreshold {
            do {
                try flush()
            } catch {
                failure.set(error)
            }
        }
        statistics.encodeSeconds += Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
    }

    private func flush() throws(MemoryBankError) {
        if pending.count == 0 { return }
        do { try file.append(pending.bytes) } catch { throw .io(error) }
        pending.bytes.removeAll(keepingCapacity: true)
    }

    // MARK: - Caller thread (queue idle)

    /// Writes every buffered record, fsyncs the temporary file when `sync`, and describes the records
    /// written so far (spec §3.2). Appending continues afterwards. Cost: one write + one fsync.
    func checkpoint(sync: Bool) throws(MemoryBankError) -> OpenGenerationMark {
        if let e = failure.value { throw e }
        try flush()
        if sync {
            do { try file.sync() } catch { throw .io(error) }
        }
        return OpenGenerationMark(generation: generation, recordCount: recordCount,
                                  recordBytes: position - Int(header.dataOffset), recordsChecksum: recordsChecksum.value,
                                  headerChecksum: header.encodedChecksum)
    }

    /// fsyncs the temporary file (a resumed prefix made durable before its source is deleted).
    func syncTemporary() throws(MemoryBankError) {
        try flush()
        do { try file.sync() } catch { throw .io(error) }
    }

    /// Writes the index and the sealed header, fsyncs and renames to the final name (spec §3 steps
    /// 3). Returns the manifest entry of the sealed segment.
    func seal(sync: Bool) throws(MemoryBankError) -> ManifestGeneration {
        if let e = failure.value { throw e }
        try flush()
        let indexOffset = alignUp(position, to: SegmentHeader.regionAlignment)
        var w = ByteWriter(capacity: indexOffset - position + 8 * index.count)
        w.write(repeatElement(0, count: indexOffset - position))
        let indexStart = w.count
        var records: UInt64 = 0
        for offset in index {
            w.writeLE(offset)
            if offset != 0 { records += 1 }
        }
        var crc = CRC32C()
        crc.update(w.bytes[indexStart...])
        do { try file.append(w.bytes) } catch { throw .io(error) }
        header.flags |= SegmentHeader.sealedFlag
        header.indexOffset = UInt64(indexOffset)
        header.indexBytes = UInt64(8 * index.count)
        header.recordCount = records
        header.indexChecksum = crc.value
        let headerBytes = header.encode()
        do {
            try file.write(headerBytes, at: 0)
            if sync { try file.sync() }
            FaultPoint.hit("bank.seal.afterSegmentSync")
            try file.commit(sync: false)
            if sync { try FileSystem.syncDirectory(FileSystem.directory(of: finalPath)) }
        } catch {
            file.discard()
            throw .io(error)
        }
        FaultPoint.hit("bank.seal.afterRename")
        statistics.fileBytes = indexOffset + 8 * index.count
        statistics.records = Int(records)
        var tail = ByteReader(headerBytes, offset: SegmentHeader.encodedByteCount - 4)
        return ManifestGeneration(generation: generation, segmentBytes: statistics.fileBytes, segmentHeaderChecksum: tail.readLE())
    }

    /// Closes and deletes the temporary file (abandon).
    func discard() {
        file.discard()
    }

    /// Closes the file without deleting it (the crash simulation of the tests).
    func abandonWithoutCleanup() {
        file.closeLeavingTemporary()
    }
}

/// One queued append: the bank copied the caller's data into it.
struct EntryJob: @unchecked Sendable {
    let builder: SegmentBuilder
    let id: Int
    let delta: [Float]
    let view: ViewParameters
    let metadata: EntryMetadata
}

/// Totals of one generation, reported by `Bank.sealGeneration()`.
public struct GenerationStatistics: Sendable, Equatable {
    /// Entries written (non-empty index slots once sealed).
    public var records = 0
    /// Bytes of records (headers, payloads, padding).
    public var recordBytes = 0
    /// Payload bytes before LZ4 and on disk.
    public var rawPayloadBytes = 0
    public var storedPayloadBytes = 0
    /// Records whose payload is an LZ4 block.
    public var lz4Records = 0
    /// Values clamped by the quantiser over all records.
    public var clampedValues = 0
    /// Records per `levels` bit width 0…8 (empty for other codecs).
    public var bitWidthHistogram = [Int](repeating: 0, count: 9)
    /// Size of the sealed segment file (0 until sealed).
    public var fileBytes = 0
    /// Writer-thread time spent encoding and writing.
    public var encodeSeconds = 0.0

    mutating func add(_ s: RecordStatistics) {
        recordBytes += s.recordBytes
        rawPayloadBytes += s.rawBytes
        storedPayloadBytes += s.storedBytes
        if s.lz4 { lz4Records += 1 }
        clampedValues += s.clampedCount
        if s.paletteCount > 0 { bitWidthHistogram[s.bitWidth] += 1 }
    }

    /// Mean bytes per entry on disk: the record plus its 8-byte index slot.
    public var bytesPerEntry: Double {
        records == 0 ? 0 : Double(recordBytes + 8 * records) / Double(records)
    }
}

/// A lock-protected first error, shared between the writer thread and the caller.
final class FailureBox: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: MemoryBankError?

    var value: MemoryBankError? {
        lock.lock()
        defer { lock.unlock() }
        return stored
    }

    func set(_ error: MemoryBankError) {
        lock.lock()
        if stored == nil { stored = error }
        lock.unlock()
    }
}
