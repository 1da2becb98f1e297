// Bank.swift: the writer side of a memory bank directory (docs/format/membank-v1.md §3): create or open,
// generations (begin → append… → seal), the background encoder thread fed by a bounded queue, the
// atomic manifest replacement, retention of the window's generations, orphan cleanup, quarantine of
// damaged past generations (§3.3), and resume (discard newer generations; reopen a checkpointed open
// generation: Bank+Resume.swift, §3.2). Reading is BankReader's; records are SegmentBuilder/RecordCodec's.

import Foundation
import SystemIO
import Tensors

/// A memory bank opened for writing: the single writer of a bank directory.
///
/// ```
/// let bank = try Bank.openOrCreate(at: runDirectory.appendingPathComponent("bank"), config: config)
/// try bank.beginGeneration(epoch)
/// for batch in epoch { try bank.append(ids: ids, deltas: δ, views: views, metadata: meta) }  // returns at once
/// let summary = try bank.sealGeneration()      // index, fsync, rename, manifest, retention
/// let reader = try bank.reader()               // snapshot of the sealed generations
/// ```
/// Contract:
/// - One writer per directory (an flock on `writer.lock`; a second writer gets `bankLocked`).
/// - `append` validates the ID, the size and duplicates at once, copies δ into the queue and returns;
///   a background thread encodes and writes. It blocks only while `options.queueCapacity` entries are
///   waiting (backpressure). Errors of the background thread (disk full, non-finite δ) are thrown by
///   the next `append` and by `sealGeneration`, which then abandons the generation.
/// - Entries are append-only within a generation: one per sample ID.
/// - A generation becomes visible to readers only in `sealGeneration`; an unsealed one (crash,
///   `abandonGeneration`, `close`) is never read and is deleted by the next `open`, unless that open
///   resumes it from a mark of `checkpointOpenGeneration()` (`open(at:options:resuming:)`).
/// - A listed generation whose segment is missing or whose header or index is damaged does not stop
///   `open`: it is quarantined (`quarantined`), never read, and deleted by retention as usual.
/// - Methods are serialized by an internal lock; call them from one thread for predictable order.
public final class Bank: @unchecked Sendable {
    public struct Options: Sendable {
        /// Entries in flight between `append` and the encoder thread (each holds one δ copy:
        /// 12 KiB for 3×32×32). 2–4 batches is plenty (systems.md §7).
        public var queueCapacity: Int
        /// The encoder thread writes to the file once this many record bytes are buffered.
        public var writeBufferBytes: Int
        /// fsync the segment and the directory when sealing (crash safety). Turn off only in
        /// throughput benchmarks and tests that do not test durability.
        public var sync: Bool
        /// Which sealed generations `sealGeneration` keeps (spec §3.1): the window (default) or all.
        public var retention: BankRetention

        public init(queueCapacity: Int = 512, writeBufferBytes: Int = 1 << 20, sync: Bool = true,
                    retention: BankRetention = .window) {
            self.queueCapacity = queueCapacity
            self.writeBufferBytes = writeBufferBytes
            self.sync = sync
            self.retention = retention
        }
    }

    /// Test hook: where `sealGeneration` stops as if the process died (nothing is cleaned up).
    enum CrashPoint: String, Sendable {
        /// Records written, nothing sealed: only `gen-g.mbs.tmp` exists.
        case beforeSeal
        /// Segment sealed and renamed, manifest not yet replaced.
        case afterSegmentRename
        /// Manifest replaced, old generations not yet deleted.
        case afterManifest
    }

    /// Running totals over the bank's lifetime in this process.
    public struct Statistics: Sendable, Equatable {
        public var entriesAppended = 0
        public var generationsSealed = 0
        /// Seconds `append` spent blocked on a full queue (the writer's backpressure).
        public var appendBlockedSeconds = 0.0
        /// Largest number of queued entries seen.
        public var peakQueued = 0
    }

    public let directory: URL
    public let config: BankConfig
    public let options: Options
    var crashPoint: CrashPoint?

    let mutex = NSLock()
    private var lock: WriterLock?
    var manifest: Manifest
    var current: SegmentBuilder?
    /// Sample IDs appended to the open generation (duplicate detection on the caller's thread).
    var appended: [UInt64]
    let queue: BoundedQueue<EntryJob>
    private let exited = ExitSignal()
    var closed = false
    private var totals = Statistics()
    /// Listed generations found damaged at open (filtered by the current manifest on access).
    private var damaged: [QuarantinedGeneration] = []
    /// What `open(at:options:resuming:)` recovered; nil when it did not resume.
    public private(set) var resumeReport: OpenGenerationResumeReport?

    // MARK: - Opening

    /// Creates a new, empty bank in `directory` (created if needed).
    /// - Throws: `invalidConfig`, `alreadyExists`, `bankLocked`, `io`.
    public static func create(at directory: URL, config: BankConfig, options: Options = Options()) throws(MemoryBankError) -> Bank {
        try config.validate()
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw .io(path: directory.path, operation: "create directory", reason: "\(error)")
        }
        let lock = try WriterLock(directory: directory.path)
        let manifestPath = directory.appendingPathComponent(BankLayout.manifestName).path
        if MappedFile.size(ofFileAt: manifestPath) != nil { throw .alreadyExists(path: directory.path) }
        let manifest = Manifest(sequence: 1, config: config, generations: [])
        let bank = Bank(directory: directory, manifest: manifest, lock: lock, options: options)
        try bank.cleanOrphans()
        try bank.writeManifest(manifest)
        return bank
    }

    /// Opens an existing bank for writing: takes the lock, reads the manifest, checks every listed
    /// segment (header, createdBy and index checksums, layout: a damaged or missing one is quarantined,
    /// spec §3.3), resumes the open generation of `mark` if given (spec §3.2), then deletes unsealed
    /// (`*.tmp`) and unlisted segments (spec §3 crash table).
    /// - Parameter mark: from `checkpointOpenGeneration()` of the run being resumed. Then generation
    ///   `mark.generation` is open on return with the records written up to the mark (those that
    ///   survived: `resumeReport`), every sealed generation ≥ it is dropped, and the caller appends the
    ///   rest of the epoch and seals as usual. Do not call `discardGenerations(after:)` afterwards.
    /// - Throws: `notABank`, `bankLocked`, manifest errors (a damaged manifest stays fatal), `io`;
    ///   `resumeMarkMismatch` for a mark of another bank, configuration, run or generation.
    public static func open(at directory: URL, options: Options = Options(),
                            resuming mark: OpenGenerationMark? = nil) throws(MemoryBankError) -> Bank {
        try openExisting(at: directory, options: options, requiring: nil, resuming: mark)
    }

    /// Opens the bank in `directory` if there is one (its configuration must match `config` except
    /// `createdBy`), otherwise creates it; `mark` as in `open` (a new bank resumes it empty: every
    /// record of the mark is reported lost).
    /// - Throws: `configMismatch` naming the first differing field (nothing is changed then), or any
    ///   error of `open`/`create`.
    public static func openOrCreate(at directory: URL, config: BankConfig, options: Options = Options(),
                                    resuming mark: OpenGenerationMark? = nil) throws(MemoryBankError) -> Bank {
        let manifestPath = directory.appendingPathComponent(BankLayout.manifestName).path
        guard MappedFile.size(ofFileAt: manifestPath) != nil else {
            let bank = try create(at: directory, config: config, options: options)
            guard let mark else { return bank }
            do {
                bank.resumeReport = try bank.resume(mark)
            } catch {
                bank.closeQuietly()
                throw error
            }
            return bank
        }
        return try openExisting(at: directory, options: options, requiring: config, resuming: mark)
    }

    private static func openExisting(at directory: URL, options: Options, requiring config: BankConfig?,
                                     resuming mark: OpenGenerationMark?) throws(MemoryBankError) -> Bank {
        let manifestPath = directory.appendingPathComponent(BankLayout.manifestName).path
        if MappedFile.size(ofFileAt: manifestPath) == nil { throw .notABank(path: directory.path) }
        let lock = try WriterLock(directory: directory.path)
        let manifest = try BankReader.readManifest(at: manifestPath)
        if let config, let (field, found, expected) = manifest.config.firstStructuralDifference(from: config) {
            lock.release()
            throw .configMismatch(file: manifestPath, field: field, found: found, expected: expected)
        }
        let bank = Bank(directory: directory, manifest: manifest, lock: lock, options: options)
        do {
            if let mark { bank.resumeReport = try bank.resume(mark) }
            bank.damaged = BankReader.checkSegments(directory: directory, manifest: bank.manifest).damaged
            try bank.cleanOrphans()
            if mark != nil { FaultPoint.hit("bank.resume.afterCleanup") }
        } catch {
            bank.closeKeepingFiles()
            throw error
        }
        return bank
    }

    private init(directory: URL, manifest: Manifest, lock: WriterLock, options: Options) {
        precondition(options.queueCapacity >= 1 && options.writeBufferBytes >= 1, "Bank.Options: capacities must be ≥ 1")
        self.directory = directory
        self.manifest = manifest
        config = manifest.config
        self.options = options
        self.lock = lock
        appended = [UInt64](repeating: 0, count: (manifest.config.sampleCount + 63) / 64)
        let queue = BoundedQueue<EntryJob>(capacity: options.queueCapacity)
        self.queue = queue
        let exited = self.exited
        // The thread captures the queue only (never the Bank), so dropping the Bank runs deinit.
        let thread = Thread {
            while let job = queue.take() {
                job.builder.append(job)
                queue.taskDone()
            }
            exited.signal()
        }
        thread.name = "memloss.bank-writer"
        thread.start()
    }

    deinit { closeQuietly() }

    // MARK: - State

    /// The sealed generations the manifest lists, ascending.
    public var generations: [Int] {
        mutex.lock()
        defer { mutex.unlock() }
        return manifest.generations.map(\.generation)
    }

    /// Listed generations that are not read because their segment is missing or its header or index
    /// is damaged (spec §3.3), found at open; each names the file and the reason. They stay on disk
    /// until retention or `discardGenerations(after:)` deletes them.
    public var quarantined: [QuarantinedGeneration] {
        mutex.lock()
        defer { mutex.unlock() }
        let live = Set(manifest.generations.map(\.generation))
        return damaged.filter { live.contains($0.generation) }
    }

    /// The generation being written, if any.
    public var openGeneration: Int? {
        mutex.lock()
        defer { mutex.unlock() }
        return current?.generation
    }

    public var statistics: Statistics {
        mutex.lock()
        defer { mutex.unlock() }
        var s = totals
        s.appendBlockedSeconds = queue.producerBlockedSeconds
        s.peakQueued = queue.peakCount
        return s
    }

    // MARK: - Generations

    /// Starts writing generation `generation` (the epoch number).
    /// - Throws: `generationAlreadyOpen`, `generationNotIncreasing` (must exceed every live
    ///   generation; see `discardGenerations(after:)` for resume), `writerClosed`, `io`.
    public func beginGeneration(_ generation: Int) throws(MemoryBankError) {
        mutex.lock()
        defer { mutex.unlock() }
        if closed { throw .writerClosed }
        if let open = current { throw .generationAlreadyOpen(generation: open.generation) }
        if generation < 0 { throw .invalidConfig(reason: "generation \(generation) must be ≥ 0") }
        if config.codec == .q8rcn && !RecordCodec.startNoiseCovers(generation: generation, id: 0) {
            throw .invalidConfig(reason: "generation \(generation): q8rcn's start noise is defined for generations below 2³² (spec §7.6)")
        }
        if let newest = manifest.generations.last?.generation, generation <= newest {
            throw .generationNotIncreasing(requested: generation, newest: newest)
        }
        current = try SegmentBuilder(directory: directory.path, config: config, generation: generation,
                                     flushThreshold: options.writeBufferBytes)
        for i in appended.indices { appended[i] = 0 }
    }

    /// Queues the entry of sample `id` in the open generation and returns (the copy is `delta` itself:
    /// arrays are values). Blocks only while the queue is full.
    /// - Parameters:
    ///   - delta: δ = x̃ − view(x), `config.elementCount` floats in [C, H, W] order, finite.
    ///   - view: the view's augmentation bytes (stored as given).
    ///   - metadata: label, p_y(x̃), margin and loss at generation time.
    /// - Throws: immediately `noOpenGeneration`, `sampleOutOfRange`, `shapeMismatch`, `duplicateEntry`;
    ///   the background thread's first failure (e.g. `nonFiniteDelta`, `io`) on this or a later call.
    public func append(id: Int, delta: [Float], view: ViewParameters, metadata: EntryMetadata) throws(MemoryBankError) {
        let builder = try admit(id: id, count: delta.count)
        queue.put(EntryJob(builder: builder, id: id, delta: delta, view: view, metadata: metadata))
        mutex.lock()
        totals.entriesAppended += 1
        mutex.unlock()
    }

    /// Checks an append on the caller's thread and marks `id` as taken; returns the open segment.
    func admit(id: Int, count: Int) throws(MemoryBankError) -> SegmentBuilder {
        mutex.lock()
        defer { mutex.unlock() }
        if closed { throw .writerClosed }
        guard let builder = current else { throw .noOpenGeneration }
        if let e = builder.error { throw e }
        if id < 0 || id >= config.sampleCount { throw .sampleOutOfRange(id: id, sampleCount: config.sampleCount) }
        if count != config.elementCount { throw .shapeMismatch(expected: config.elementCount, actual: count) }
        let word = id / 64, bit = UInt64(1) << UInt64(id % 64)
        if appended[word] & bit != 0 { throw .duplicateEntry(generation: builder.generation, sampleID: id) }
        appended[word] |= bit
        return builder
    }

    /// Seals the open generation: waits for the encoder thread, writes the index and the sealed header,
    /// fsyncs, renames, replaces the manifest atomically, then deletes the generations
    /// `options.retention` does not keep (`config.retains(_:afterSealing:retention:)`, spec §3, §3.1).
    /// - Returns: the generation's statistics.
    /// - Throws: the background thread's first failure or an I/O error; the generation is then
    ///   abandoned (its temporary file deleted) and the bank stays usable.
    @discardableResult
    public func sealGeneration() throws(MemoryBankError) -> GenerationStatistics {
        mutex.lock()
        defer { mutex.unlock() }
        if closed { throw .writerClosed }
        guard let builder = current else { throw .noOpenGeneration }
        queue.waitUntilIdle()
        if crashPoint == .beforeSeal { return try simulateCrash(builder) }
        let entry: ManifestGeneration
        do {
            entry = try builder.seal(sync: options.sync)
        } catch {
            builder.discard()
            current = nil
            throw error
        }
        current = nil
        if crashPoint == .afterSegmentRename { return try simulateCrash(nil) }

        let sealed = builder.generation, retention = options.retention, config = self.config
        let kept = { (g: ManifestGeneration) in config.retains(g.generation, afterSealing: sealed, retention: retention) }
        var next = manifest
        next.sequence += 1
        next.generations = (manifest.generations + [entry]).filter(kept)
        let dropped = manifest.generations.filter { !kept($0) }.map(\.generation)
        do {
            try writeManifest(next)
        } catch {
            try? BankFiles.remove(builder.finalPath)  // not listed: would be an orphan anyway
            throw error
        }
        manifest = next
        FaultPoint.hit("bank.seal.afterManifest")
        if crashPoint == .afterManifest { return try simulateCrash(nil) }
        try deleteSegments(dropped)
        FaultPoint.hit("bank.seal.afterRetention")
        totals.generationsSealed += 1
        return builder.statistics
    }

    /// Discards the open generation (waits for queued appends, deletes its temporary file).
    public func abandonGeneration() {
        mutex.lock()
        defer { mutex.unlock() }
        guard let builder = current else { return }
        queue.waitUntilIdle()
        builder.discard()
        current = nil
    }

    /// Resume support: removes every sealed generation newer than `generation` (a new manifest
    /// first, then the files), so a run restarted from the checkpoint of epoch `generation` writes
    /// `generation + 1` next. No generation may be open.
    public func discardGenerations(after generation: Int) throws(MemoryBankError) {
        mutex.lock()
        defer { mutex.unlock() }
        if closed { throw .writerClosed }
        if let open = current { throw .generationAlreadyOpen(generation: open.generation) }
        let dropped = manifest.generations.filter { $0.generation > generation }.map(\.generation)
        if dropped.isEmpty { return }
        var next = manifest
        next.sequence += 1
        next.generations.removeAll { $0.generation > generation }
        try writeManifest(next)
        manifest = next
        try deleteSegments(dropped)
    }

    /// A read-only snapshot of the sealed generations (maps their segments).
    public func reader() throws(MemoryBankError) -> BankReader {
        try BankReader.open(at: directory)
    }

    /// Abandons an open generation, stops the encoder thread and releases the lock. Idempotent.
    public func close() {
        closeQuietly()
    }

    private func closeQuietly() {
        mutex.lock()
        defer { mutex.unlock() }
        if closed { return }
        if let builder = current {
            queue.waitUntilIdle()
            builder.discard()
            current = nil
        }
        stopThread()
    }

    /// Stops like `close` but leaves the open generation's temporary file in place (a failed open
    /// after a resume must not delete the records it was resuming).
    private func closeKeepingFiles() {
        mutex.lock()
        defer { mutex.unlock() }
        if closed { return }
        current?.abandonWithoutCleanup()
        current = nil
        stopThread()
    }

    private func stopThread() {
        closed = true
        queue.close()
        exited.wait()
        lock?.release()
        lock = nil
    }

    /// Stops like a killed process: no cleanup of the open generation, lock released.
    private func simulateCrash(_ builder: SegmentBuilder?) throws(MemoryBankError) -> GenerationStatistics {
        builder?.abandonWithoutCleanup()
        current = nil
        let point = crashPoint?.rawValue ?? "?"
        stopThread()
        throw .simulatedCrash(point: point)
    }

    // MARK: - Files

    func writeManifest(_ m: Manifest) throws(MemoryBankError) {
        let url = directory.appendingPathComponent(BankLayout.manifestName)
        do {
            try AtomicFile.replace(m.encode(), at: url)
        } catch {
            throw .io(error)
        }
    }

    private func deleteSegments(_ generations: [Int]) throws(MemoryBankError) {
        if generations.isEmpty { return }
        for g in generations { try BankFiles.remove(directory.appendingPathComponent(BankLayout.segmentName(g)).path) }
        if options.sync { try BankFiles.syncDirectory(directory.path) }
    }

    /// Deletes `*.tmp` files and final-named segments the manifest does not list (spec §3), except the
    /// temporary file of a resumed open generation.
    private func cleanOrphans() throws(MemoryBankError) {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        } catch {
            throw .io(path: directory.path, operation: "list directory", reason: "\(error)")
        }
        let live = Set(manifest.generations.map(\.generation))
        let resumed = current.map { BankLayout.segmentName($0.generation) + BankLayout.temporarySuffix }
        var removed = false
        for name in names where name != resumed {
            let isTemporary = name.hasSuffix(BankLayout.temporarySuffix)
                && (name.hasPrefix("gen-") || name.hasPrefix(BankLayout.manifestName))
            let isOrphan = BankLayout.generation(ofSegmentName: name).map { !live.contains($0) } ?? false
            if isTemporary || isOrphan {
                try BankFiles.remove(directory.appendingPathComponent(name).path)
                removed = true
            }
        }
        if removed && options.sync { try BankFiles.syncDirectory(directory.path) }
    }
}
