// MemoryStore.swift: where MemLoss's remembered examples live, behind one protocol the trainer drives
// epoch by epoch: `RAMMemoryStore` (float32 adversarial images, the reference path) and
// `DiskMemoryStore` (the MemoryBank: δ = x̃ − view(x) quantised on disk, prefetched along the epoch's
// known order, x′ = clamp(view(x) + δ, 0, 1) rebuilt on the prefetch thread from the dataset).
//
// Generation g is the set of adversarial examples made in epoch g (0-based); epoch e reads
// generations e − s, …, e − K·s (MemoryStoreConfig.generationsRead). The store's options (K,
// stride, codec, kind, directory) are MemoryStoreConfig; the term's are MemLossTermConfig.

import Datasets
import Foundation
import Kernels
import MemoryBank
import Tensors

/// Where the remembered examples live.
public enum MemoryStoreKind: String, Codable, Sendable, CaseIterable {
    /// The on-disk bank (MemoryBank): quantised δ + view, memory-mapped, prefetched. The default.
    case disk
    /// float32 adversarial images in RAM (O(N·K·image)): the reference the bank is checked against.
    case ram
}

/// Options of a MemLoss memory: which generations are remembered and read, and how they are kept.
/// Defaults (design.md §3): K = 1, stride 1, q8 on disk in `bank/` of the run directory.
public struct MemoryStoreConfig: Codable, Sendable, Hashable {
    /// K: generations remembered per sample (window slots).
    public var window: Int
    /// s: epochs between remembered generations; epoch e reads e − s, e − 2s, …, e − K·s.
    public var stride: Int
    /// Codec of the disk bank.
    public var codec: BankCodec
    public var kind: MemoryStoreKind
    /// Bank directory (nil: `bank/` inside the run directory).
    public var directory: String?
    /// Which generations are kept after each epoch (`--mem-keep`): the window's `K·s + 1` newest
    /// (default: what reading needs) or all of them, for replay (docs/membank.md, *Replay*).
    public var keep: BankRetention
    /// Record the adversarial examples without reading the memory (`--record-memory`): the MemLoss
    /// term is off and nothing is prefetched, so the run's weights are the base method's bit for
    /// bit, and its bank can be replayed. Default false. Exception: with `--attack-init memory` the
    /// store does read its window (`DiskMemoryStore(…, readsWindow: true)`) for the warm start, so the
    /// attack, and the weights, then differ from the base method's (docs/warm-start.md).
    public var recordOnly: Bool

    public init(window: Int = 1, stride: Int = 1, codec: BankCodec = .q8, kind: MemoryStoreKind = .disk,
                directory: String? = nil, keep: BankRetention = .window, recordOnly: Bool = false) {
        self.window = window; self.stride = stride; self.codec = codec; self.kind = kind; self.directory = directory
        self.keep = keep; self.recordOnly = recordOnly
    }

    /// `kind` is written `store`, as in `TrainConfig.memLoss`'s flat JSON.
    enum CodingKeys: String, CodingKey { case window, stride, codec, kind = "store", directory, keep, recordOnly }

    /// Keys absent from a config file keep their defaults.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = MemoryStoreConfig()
        window = try c.decodeIfPresent(Int.self, forKey: .window) ?? d.window
        stride = try c.decodeIfPresent(Int.self, forKey: .stride) ?? d.stride
        codec = try c.decodeIfPresent(BankCodec.self, forKey: .codec) ?? d.codec
        kind = try c.decodeIfPresent(MemoryStoreKind.self, forKey: .kind) ?? d.kind
        directory = try c.decodeIfPresent(String.self, forKey: .directory)
        keep = try c.decodeIfPresent(BankRetention.self, forKey: .keep) ?? d.keep
        recordOnly = try c.decodeIfPresent(Bool.self, forKey: .recordOnly) ?? d.recordOnly
    }

    /// `keep` and `recordOnly` are written only when not the default, so configurations that do not
    /// use them keep the JSON (config.json, the bank's createdBy) they always had.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(window, forKey: .window)
        try c.encode(stride, forKey: .stride)
        try c.encode(codec, forKey: .codec)
        try c.encode(kind, forKey: .kind)
        try c.encodeIfPresent(directory, forKey: .directory)
        if keep != .window { try c.encode(keep, forKey: .keep) }
        if recordOnly { try c.encode(recordOnly, forKey: .recordOnly) }
    }

    /// The generations epoch `epoch` (0-based; generation g = the epoch that made it) reads,
    /// slot k = 0…K−1: `epoch − (k+1)·stride` (negative ones do not exist).
    public func generationsRead(atEpoch epoch: Int) -> [Int] {
        (1...window).map { epoch - $0 * stride }
    }
}

/// What a store did in one epoch (the `memory` object of an epoch line in metrics.jsonl).
public struct MemoryEpochReport: Codable, Sendable, Equatable {
    /// Entries written into this epoch's generation.
    public var entriesWritten = 0
    /// Entries read and used as candidates, looked up but absent, skipped as damaged.
    public var entriesPresent = 0
    public var entriesAbsent = 0
    public var entriesCorrupt = 0
    /// Seconds the trainer waited for the bank prefetcher (0 for RAM).
    public var bankWaitSeconds = 0.0
    /// Seconds `record` was blocked by the bank writer's full queue.
    public var writerBlockedSeconds = 0.0
    /// Bytes of this epoch's generation (segment file) and of all live generations on disk; for
    /// RAM, the float32 bytes held.
    public var generationBytes = 0
    public var totalBytes = 0
    /// Live generations after the epoch.
    public var generations: [Int] = []
    /// generationBytes / entriesWritten.
    public var bytesPerEntry: Double { entriesWritten == 0 ? 0 : Double(generationBytes) / Double(entriesWritten) }

    public init() {}

    enum CodingKeys: String, CodingKey {
        case entriesWritten = "entries_written", entriesPresent = "entries_present", entriesAbsent = "entries_absent"
        case entriesCorrupt = "entries_corrupt", bankWaitSeconds = "bank_wait_seconds"
        case writerBlockedSeconds = "writer_blocked_seconds", generationBytes = "generation_bytes"
        case totalBytes = "total_bytes", generations, bytesPerEntry = "bytes_per_entry"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        entriesWritten = try c.decode(Int.self, forKey: .entriesWritten)
        entriesPresent = try c.decode(Int.self, forKey: .entriesPresent)
        entriesAbsent = try c.decode(Int.self, forKey: .entriesAbsent)
        entriesCorrupt = try c.decode(Int.self, forKey: .entriesCorrupt)
        bankWaitSeconds = try c.decode(Double.self, forKey: .bankWaitSeconds)
        writerBlockedSeconds = try c.decode(Double.self, forKey: .writerBlockedSeconds)
        generationBytes = try c.decode(Int.self, forKey: .generationBytes)
        totalBytes = try c.decode(Int.self, forKey: .totalBytes)
        generations = try c.decode([Int].self, forKey: .generations)
    }

    /// Writes every stored field and the derived `bytes_per_entry` (for readers of the file).
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(entriesWritten, forKey: .entriesWritten)
        try c.encode(entriesPresent, forKey: .entriesPresent)
        try c.encode(entriesAbsent, forKey: .entriesAbsent)
        try c.encode(entriesCorrupt, forKey: .entriesCorrupt)
        try c.encode(bankWaitSeconds, forKey: .bankWaitSeconds)
        try c.encode(writerBlockedSeconds, forKey: .writerBlockedSeconds)
        try c.encode(generationBytes, forKey: .generationBytes)
        try c.encode(totalBytes, forKey: .totalBytes)
        try c.encode(generations, forKey: .generations)
        try c.encode(bytesPerEntry, forKey: .bytesPerEntry)
    }
}

/// The trainer's view of a memory: begin an epoch, get each batch's examples in plan order, record
/// each batch's adversarial examples, end the epoch (the generation becomes readable).
public protocol MemoryStore: AnyObject {
    var config: MemoryStoreConfig { get }
    /// Whether `next(ids:)` delivers the window's entries: always for RAM; for the disk bank unless
    /// it is record-only and was opened without `readsWindow` (fixed when the store is made).
    var readsWindow: Bool { get }
    /// Starts epoch `epoch`: reading its window along `plan`, writing generation `epoch`. With
    /// `resuming` (a mid-epoch checkpoint of this epoch), continues from batch `resuming.batch`
    /// with the epoch's counters so far.
    func beginEpoch(_ epoch: Int, plan: EpochPlan, resuming: MemoryCheckpoint?) throws
    /// A mid-epoch checkpoint after `batch` batches: makes the epoch's records so far durable and
    /// returns the position to resume from.
    func checkpoint(batch: Int) throws -> MemoryCheckpoint
    /// The examples of the next batch of the plan (`ids` must be that batch's IDs).
    func next(ids: [Int]) throws -> MemoryExamples
    /// Records the batch's adversarial examples `adversarial [B, C, H, W]` made on the views
    /// `clean [B, C, H, W]` (rendered with `views`), with their metadata.
    func record(ids: [Int], views: [ViewParameters], clean: Tensor, adversarial: Tensor, metadata: [EntryMetadata]) throws
    /// Ends the epoch: the generation is sealed and older generations outside the window dropped.
    func endEpoch() throws -> MemoryEpochReport
    /// Stops threads and releases files (an unsealed generation is discarded).
    func close()
}

extension MemoryStore {
    /// Starts epoch `epoch` from its first batch.
    public func beginEpoch(_ epoch: Int, plan: EpochPlan) throws { try beginEpoch(epoch, plan: plan, resuming: nil) }
}

/// A memory's position inside an epoch, saved by a mid-epoch checkpoint (commit.json's `memory`).
public struct MemoryCheckpoint: Codable, Sendable, Equatable {
    /// Batches of the epoch done.
    public var batch: Int
    /// The epoch's counters so far.
    public var report: MemoryEpochReport
    /// The disk bank's open generation as made durable (nil for RAM, whose memory is not kept).
    public var bank: OpenGenerationMark?

    public init(batch: Int, report: MemoryEpochReport, bank: OpenGenerationMark? = nil) {
        self.batch = batch; self.report = report; self.bank = bank
    }
}

public enum MemoryStoreError: Error, CustomStringConvertible {
    case bank(MemoryBankError, directory: String)
    case outOfSync(expected: [Int], found: [Int])

    public var description: String {
        switch self {
        case .bank(let e, let dir): return "memory bank \(dir): \(e)"
        case .outOfSync(let e, let f):
            return "memory bank prefetcher out of step with the data: expected IDs \(e.prefix(4))…, got \(f.prefix(4))…"
        }
    }
}

// MARK: - RAM (reference)

/// float32 adversarial images per generation, keyed by sample ID: O(N·K·C·H·W·4) bytes. The
/// reference the disk bank is checked against; not saved in checkpoints (a resumed run starts with
/// an empty memory).
public final class RAMMemoryStore: MemoryStore {
    public let config: MemoryStoreConfig
    let sampleCount: Int
    let elementCount: Int
    let shape: [Int]

    final class Generation {
        var images: [Float]
        var present: [Bool]
        var pY: [Float]
        var margin: [Float]
        var views: [ViewParameters]
        init(sampleCount: Int, elementCount: Int) {
            images = [Float](repeating: 0, count: sampleCount * elementCount)
            present = [Bool](repeating: false, count: sampleCount)
            views = [ViewParameters](repeating: .identity, count: sampleCount)
            pY = [Float](repeating: 0, count: sampleCount)
            margin = [Float](repeating: 0, count: sampleCount)
        }
    }

    private var generations: [Int: Generation] = [:]
    private var current: Generation?
    private var epoch = -1
    private var report = MemoryEpochReport()

    public init(config: MemoryStoreConfig, sampleCount: Int, shape: [Int]) {
        self.config = config
        self.sampleCount = sampleCount
        self.shape = shape
        elementCount = shape.reduce(1, *)
    }

    public var liveGenerations: [Int] { generations.keys.sorted() }

    /// RAM always reads (a record-only RAM store is read only when the step asks, for the warm start).
    public var readsWindow: Bool { true }

    /// A resumed epoch keeps its counters; its images before the checkpoint, like every earlier
    /// generation, were not saved (RAM is not durable), so they are absent.
    public func beginEpoch(_ epoch: Int, plan: EpochPlan, resuming: MemoryCheckpoint?) throws {
        self.epoch = epoch
        current = Generation(sampleCount: sampleCount, elementCount: elementCount)
        report = resuming?.report ?? MemoryEpochReport()
    }

    /// The counters only: the images live in this process.
    public func checkpoint(batch: Int) throws -> MemoryCheckpoint { MemoryCheckpoint(batch: batch, report: report) }

    public func next(ids: [Int]) throws -> MemoryExamples {
        let k = config.window, n = elementCount
        let slots = config.generationsRead(atEpoch: epoch).map { generations[$0] }
        if slots.allSatisfy({ $0 == nil }) {
            report.entriesAbsent += ids.count * k
            return .empty(count: ids.count, window: k, absent: ids.count * k)
        }
        var values = [Float](repeating: 0, count: ids.count * k * n)
        var present = [Bool](repeating: false, count: ids.count * k)
        var py = [Float](repeating: 0, count: ids.count * k), margin = py
        var views = [ViewParameters](repeating: .identity, count: ids.count * k)
        var absent = 0
        for (i, id) in ids.enumerated() {
            for (slot, g) in slots.enumerated() {
                let r = i * k + slot
                guard let g, g.present[id] else { absent += 1; continue }
                present[r] = true
                py[r] = g.pY[id]
                margin[r] = g.margin[id]
                views[r] = g.views[id]
                values.replaceSubrange((r * n)..<((r + 1) * n), with: g.images[(id * n)..<((id + 1) * n)])
            }
        }
        report.entriesAbsent += absent
        report.entriesPresent += ids.count * k - absent
        return MemoryExamples(count: ids.count, window: k, images: Tensor(shape: [ids.count * k] + shape, values: values),
                              present: present, storedPY: py, storedMargin: margin, absent: absent, views: views)
    }

    public func record(ids: [Int], views: [ViewParameters], clean: Tensor, adversarial: Tensor, metadata: [EntryMetadata]) throws {
        guard let current else { return }
        let n = elementCount, all = adversarial.scalars
        for (i, id) in ids.enumerated() {
            current.images.replaceSubrange((id * n)..<((id + 1) * n), with: all[(i * n)..<((i + 1) * n)])
            current.present[id] = true
            current.pY[id] = metadata[i].pY
            current.margin[id] = metadata[i].margin
            current.views[id] = views[i]
        }
        report.entriesWritten += ids.count
    }

    public func endEpoch() throws -> MemoryEpochReport {
        if let current { generations[epoch] = current }
        current = nil
        // The same retention as the bank (spec §3.1): what epochs ≥ this one read, or everything.
        if config.keep == .window {
            let kept = (epoch - config.window * config.stride)...epoch
            for g in generations.keys where !kept.contains(g) { generations[g] = nil }
        }
        report.generations = liveGenerations
        report.generationBytes = elementCount * 4 * report.entriesWritten
        report.totalBytes = generations.count * sampleCount * elementCount * 4
        return report
    }

    public func close() { generations = [:]; current = nil }
}

// MARK: - Disk (the bank)

/// The MemoryBank as MemLoss's memory: δ written by the bank's background writer, read by a
/// `BankPrefetcher` along the epoch's order, and rebuilt into x′ on the prefetch thread. With
/// `config.recordOnly` it only writes (no reader, no prefetcher); `config.keep` is the bank's
/// retention (`Bank.Options.retention`).
public final class DiskMemoryStore: MemoryStore {
    public let config: MemoryStoreConfig
    public let bank: Bank
    let dataset: Dataset
    let shape: [Int]
    private var prefetcher: BankPrefetcher?
    private var epoch = -1
    private var report = MemoryEpochReport()
    /// The writer's blocked seconds when the epoch began.
    private var blockedAtBegin = 0.0
    /// Bank-wait seconds of a resumed epoch before its checkpoint.
    private var waitBefore = 0.0
    /// Batches the bank prefetcher decodes ahead (ring slots); applies from the next `beginEpoch`.
    public var prefetchDepth = 3
    /// Payload bytes the prefetcher reads before it drops the bank's mapped pages from RSS
    /// (`BankPrefetcher.residentBudget`); applies from the next `beginEpoch`.
    public var residentBudget = BankPrefetcher.defaultResidentBudget
    /// `!config.recordOnly`, or true for a record-only store opened with `readsWindow: true`
    /// (`--attack-init memory` without the MemLoss term, docs/warm-start.md); a record-only store
    /// without it has no reader and no prefetcher.
    public let readsWindow: Bool

    /// Opens (or creates) the bank in `directory`.
    /// - Parameters:
    ///   - keepThrough: resume: keep sealed generations ≤ this (the last epoch the checkpoint
    ///     finished, 0-based) and discard newer ones; nil for a fresh run, which discards all.
    ///   - resuming: a mid-epoch resume: the open generation's mark from the checkpoint; the bank
    ///     reopens that generation with its records up to the mark (and drops newer generations),
    ///     so `keepThrough` is not used.
    ///   - readsWindow: a `config.recordOnly` store still reads its window (for the warm start);
    ///     ignored without `recordOnly` (such a store always reads).
    ///   - startNoise: the attack's per-sample start noise, which the `q8rcn` codec needs (and
    ///     only it: nil for every other codec).
    public init(config: MemoryStoreConfig, directory: URL, dataset: Dataset, epsilon: Float, norm: PerturbationNorm,
                createdBy: String, keepThrough: Int?, resuming mark: OpenGenerationMark? = nil,
                options: Bank.Options = Bank.Options(), readsWindow: Bool = false, startNoise: BankStartNoise? = nil) throws {
        self.config = config
        self.readsWindow = !config.recordOnly || readsWindow
        self.dataset = dataset
        shape = dataset.shape.dimensions
        var options = options
        options.retention = config.keep
        let bankConfig = BankConfig(sampleCount: dataset.count, shape: shape, epsilon: epsilon, norm: norm, codec: config.codec,
                                    window: config.window, stride: config.stride, createdBy: createdBy, startNoise: startNoise)
        do {
            bank = try Bank.openOrCreate(at: directory, config: bankConfig, options: options, resuming: mark)
            if mark == nil { try bank.discardGenerations(after: keepThrough ?? -1) }
        } catch {
            throw MemoryStoreError.bank(error, directory: directory.path)
        }
    }

    deinit { close() }

    /// What opening the bank found, for the run's log: quarantined past generations (their
    /// samples' memory is skipped and counted) and, on a mid-epoch resume, records lost after the
    /// checkpoint's mark.
    public var openNotes: [String] {
        var notes = bank.quarantined.map {
            "bank generation \($0.generation) is quarantined (\($0.reason)): its samples' memory is skipped and counted as corrupt"
        }
        if let r = bank.resumeReport, !r.isIntact {
            notes.append("bank generation \(r.generation) resumed with \(r.keptRecords) of its checkpointed records; "
                         + "\(r.lostRecords) lost (\(r.damage ?? "damaged")): those samples have no entry in it")
        }
        return notes
    }

    /// With `resuming`, the bank's open generation was restored when the store was opened (its
    /// records up to the checkpoint kept); reading continues at batch `resuming.batch`.
    public func beginEpoch(_ epoch: Int, plan: EpochPlan, resuming: MemoryCheckpoint?) throws {
        self.epoch = epoch
        report = resuming?.report ?? MemoryEpochReport()
        blockedAtBegin = bank.statistics.appendBlockedSeconds - (resuming?.report.writerBlockedSeconds ?? 0)
        waitBefore = resuming?.report.bankWaitSeconds ?? 0
        prefetcher?.cancel()
        prefetcher = nil
        let reader: BankReader
        do throws(MemoryBankError) {
            if bank.openGeneration != epoch { try bank.beginGeneration(epoch) }
            if !readsWindow { return }  // record-only: writes only, no reader, no prefetcher
            reader = try bank.reader()
        } catch {
            throw MemoryStoreError.bank(error, directory: bank.directory.path)
        }
        let generations = reader.windowGenerations(forEpoch: epoch)
        guard generations.contains(where: { $0 != nil }) else { return }
        prefetcher = makePrefetcher(reader: reader, generations: generations, plan: plan, firstBatch: resuming?.batch ?? 0)
    }

    /// Drains the bank writer and makes the open generation's records durable (Bank.checkpointOpenGeneration).
    public func checkpoint(batch: Int) throws -> MemoryCheckpoint {
        var r = report
        r.bankWaitSeconds = waitBefore + (prefetcher?.statistics.consumerWaitSeconds ?? 0)
        r.writerBlockedSeconds = bank.statistics.appendBlockedSeconds - blockedAtBegin
        do {
            let mark = try bank.checkpointOpenGeneration()
            return MemoryCheckpoint(batch: batch, report: r, bank: mark)
        } catch {
            throw MemoryStoreError.bank(error, directory: bank.directory.path)
        }
    }

    /// Batches `firstBatch..<plan.batchCount` of `plan`.
    private func makePrefetcher(reader: BankReader, generations: [Int?], plan: EpochPlan, firstBatch: Int) -> BankPrefetcher {
        let dataset = self.dataset, k = config.window, shape = self.shape
        return BankPrefetcher(
            reader: reader, generations: generations, batchCount: plan.batchCount - firstBatch, batchCapacity: plan.batchSize,
            depth: prefetchDepth, residentBudget: residentBudget,
            makeImages: { batch, buffer in DiskMemoryStore.rebuild(batch, images: &buffer, dataset: dataset, window: k, shape: shape) },
            batchIDs: { Array(plan.batchIDs($0 + firstBatch)) })
    }

    /// Turns every present δ of `batch`, held in `slab` `[B, K, C, H, W]`, into x′ = clamp(view(x) + δ,
    /// 0, 1) in place, using the view recorded with the entry (producer thread; the prefetcher then
    /// holds the result as `batch.images`).
    static func rebuild(_ batch: MemoryBatch, images slab: inout Tensor, dataset: Dataset, window k: Int, shape: [Int]) {
        slab = slab.reshaped([batch.capacity * k] + shape)
        for i in 0..<batch.count {
            for slot in 0..<k where batch.present[i * k + slot] {
                dataset.addView(id: batch.ids[i], view: batch.views[i * k + slot], to: &slab, row: i * k + slot)
            }
        }
        slab = slab.reshaped([batch.capacity, k] + shape)
    }

    public func next(ids: [Int]) throws -> MemoryExamples {
        let k = config.window
        guard let prefetcher else {
            report.entriesAbsent += ids.count * k
            return .empty(count: ids.count, window: k, absent: ids.count * k)
        }
        let batch: MemoryBatch?
        do { batch = try prefetcher.next() } catch {
            throw MemoryStoreError.bank(error as? MemoryBankError ?? .io(path: bank.directory.path, operation: "prefetch",
                                                                         reason: "\(error)"),
                                        directory: bank.directory.path)
        }
        guard let batch, batch.ids == ids else { throw MemoryStoreError.outOfSync(expected: ids, found: batch?.ids ?? []) }
        // makePrefetcher always passes makeImages, so every delivered batch holds x′.
        guard let images = batch.images else { preconditionFailure("DiskMemoryStore: a memory batch without x′") }
        let rows = batch.count * k, corrupt = batch.problems.count
        var present = 0
        for r in 0..<rows where batch.present[r] { present += 1 }
        let absent = rows - present - corrupt
        report.entriesPresent += present
        report.entriesAbsent += absent
        report.entriesCorrupt += corrupt
        return MemoryExamples(count: batch.count, window: k,
                              images: images.reshaped([batch.capacity * k] + shape),
                              present: batch.present, storedPY: batch.metadata.map(\.pY),
                              storedMargin: batch.metadata.map(\.margin), absent: absent, corrupt: corrupt,
                              problems: batch.problems.map { "\($0)" }, views: Array(batch.views))
    }

    public func record(ids: [Int], views: [ViewParameters], clean: Tensor, adversarial: Tensor, metadata: [EntryMetadata]) throws {
        // δ = x̃ − view(x) (x̃ + (−1)·view(x): exact negation, one rounding, as a subtraction).
        var delta = adversarial.copy()
        Elementwise.addScaled(&delta, clean, scale: -1)
        do {
            try bank.append(ids: ids, deltas: delta, views: views, metadata: metadata)
        } catch {
            throw MemoryStoreError.bank(error, directory: bank.directory.path)
        }
        report.entriesWritten += ids.count
    }

    public func endEpoch() throws -> MemoryEpochReport {
        if let prefetcher {
            report.bankWaitSeconds = waitBefore + prefetcher.statistics.consumerWaitSeconds
            prefetcher.cancel()
        }
        prefetcher = nil
        do {
            let s = try bank.sealGeneration()
            report.generationBytes = s.fileBytes
        } catch {
            throw MemoryStoreError.bank(error, directory: bank.directory.path)
        }
        report.writerBlockedSeconds = bank.statistics.appendBlockedSeconds - blockedAtBegin
        report.generations = bank.generations
        report.totalBytes = DiskMemoryStore.bytesOnDisk(bank.directory)
        return report
    }

    /// Sum of the sizes of the regular files in `directory`.
    public static func bytesOnDisk(_ directory: URL) -> Int {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.reduce(0) { total, name in
            let attrs = try? FileManager.default.attributesOfItem(atPath: directory.appendingPathComponent(name).path)
            return total + ((attrs?[.size] as? NSNumber)?.intValue ?? 0)
        }
    }

    public func close() {
        prefetcher?.cancel()
        prefetcher = nil
        bank.close()
    }
}
