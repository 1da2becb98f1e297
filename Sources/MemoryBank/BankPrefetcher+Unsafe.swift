// BankPrefetcher+Unsafe.swift: fills one MemoryBatch slot on the producer thread: for every sample of
// the batch and every window slot, decode the entry straight into its place in the δ tensor
// [B, K, C, H, W], or zero it when absent or damaged (a damaged record, or every entry of a quarantined
// generation: docs/format/membank-v1.md §3.3). Ring mechanics are in SystemIO/PrefetchRing.swift.

import SystemIO
import Tensors

/// Decodes batches for one prefetcher (producer thread only; owns its decoder).
final class BatchFiller: @unchecked Sendable {
    let reader: BankReader
    let generations: [Int?]
    let segments: [BankSegment?]
    /// Per window slot: the quarantine of its generation, if the reader left it out.
    let quarantines: [QuarantinedGeneration?]
    let policy: BankPrefetcher.CorruptEntryPolicy
    let decoder: RecordDecoder
    let residentBudget: Int
    /// Payload bytes read since the mapped pages were last released (the estimate off Linux).
    private var sinceRelease = 0
    /// The process's file-backed RSS right after the last release (nil where it cannot be measured).
    private var residentBaseline: Int? = ProcessMemory.residentFileBytes()

    init(reader: BankReader, generations: [Int?], policy: BankPrefetcher.CorruptEntryPolicy, residentBudget: Int) {
        self.reader = reader
        self.residentBudget = residentBudget
        self.generations = generations
        segments = generations.map { g in g.flatMap { reader.segment($0) } }
        quarantines = generations.map { g in g.flatMap { reader.quarantine(of: $0) } }
        self.policy = policy
        decoder = reader.makeDecoder()
    }

    func fill(index: Int, ids: [Int], into batch: inout MemoryBatch) throws -> FillCounts {
        precondition(ids.count <= batch.capacity, "BankPrefetcher: batch \(index) has \(ids.count) IDs, capacity \(batch.capacity)")
        precondition(batch.window == generations.count, "BankPrefetcher: window mismatch")
        let k = batch.window, n = batch.elementCount, sampleCount = reader.config.sampleCount
        // Take back the buffer the previous fill's `makeImages` turned into x′ (same shape).
        if let images = batch.images {
            batch.deltas = images
            batch.images = nil
        }
        batch.index = index
        batch.ids = ids
        batch.generations = generations.map { g in g.flatMap { reader.segment($0) == nil && reader.quarantine(of: $0) == nil ? nil : $0 } }
        batch.problems.removeAll(keepingCapacity: true)
        // Move the arrays out so the tensor's mutable access below overlaps nothing else of `batch`.
        var present: [Bool] = [], views: [ViewParameters] = [], metadata: [EntryMetadata] = [], problems: [MemoryBankError] = []
        swap(&present, &batch.present)
        swap(&views, &batch.views)
        swap(&metadata, &batch.metadata)
        swap(&problems, &batch.problems)
        defer {
            swap(&present, &batch.present)
            swap(&views, &batch.views)
            swap(&metadata, &batch.metadata)
            swap(&problems, &batch.problems)
        }
        var counts = FillCounts()
        try batch.deltas.withUnsafeMutablePointer { base in
            for i in 0..<batch.capacity {
                let id = i < ids.count ? ids[i] : -1
                if i < ids.count && (id < 0 || id >= sampleCount) {
                    throw MemoryBankError.sampleOutOfRange(id: id, sampleCount: sampleCount)
                }
                for slot in 0..<k {
                    let entry = i * k + slot
                    let out = base + entry * n
                    var info: EntryInfo?
                    var damaged = false
                    if i < ids.count, let q = quarantines[slot] {
                        // The whole generation is unreadable: every entry of the slot is skipped as damaged.
                        let error = MemoryBankError.corruptRecord(file: q.file, generation: q.generation, sampleID: id,
                                                                  reason: "generation quarantined: \(q.reason)")
                        if policy != .skip { throw error }
                        problems.append(error)
                        counts.corrupt += 1
                        damaged = true
                    } else if i < ids.count, let segment = segments[slot] {
                        do throws(MemoryBankError) {
                            info = try segment.decode(id: id, into: out, decoder: decoder)
                        } catch {
                            if !(error.isRecordLevel && policy == .skip) { throw error }
                            problems.append(error)
                            counts.corrupt += 1
                            damaged = true
                        }
                    }
                    if i < ids.count && info == nil && !damaged { counts.absent += 1 }
                    if let info {
                        present[entry] = true
                        views[entry] = info.view
                        metadata[entry] = info.metadata
                        counts.decoded += 1
                        counts.storedBytes += info.storedBytes
                    } else {
                        out.update(repeating: 0, count: n)
                        present[entry] = false
                        views[entry] = .identity
                        metadata[entry] = .zero
                    }
                }
            }
        }
        if residentBudget > 0 && shouldRelease(counts) {
            reader.releaseResidentPages()
            sinceRelease = 0
            residentBaseline = ProcessMemory.residentFileBytes()
            counts.releases = 1
        }
        return counts
    }

    /// True when the mapped pages should be dropped now. Measured where possible: a read fault on a
    /// cached file can map a whole large folio around the record (Linux 6.x; ≈ 1 MB for a 1 KB record
    /// was seen on this machine, as for the datasets, docs/datasets.md §9), so counting the bytes read
    /// underestimates RSS by orders of magnitude; the growth of the process's file-backed RSS since the
    /// last release is also compared with the budget. Either reaching it releases.
    private func shouldRelease(_ counts: FillCounts) -> Bool {
        sinceRelease += counts.storedBytes + 4096 * counts.decoded
        if sinceRelease >= residentBudget { return true }
        if let base = residentBaseline, let now = ProcessMemory.residentFileBytes() {
            if now < base { residentBaseline = now }
            return now - min(base, now) > residentBudget
        }
        return false
    }
}
