// Bank+Unsafe.swift: the batch form of Bank.append, which copies rows of a δ tensor [B, C, H, W] into
// the writer's queue (one raw-buffer read per row). Everything else about appending is in Bank.swift.

import Tensors

extension Bank {
    /// Queues one entry per ID from a batch of perturbations (row `i` of `deltas` belongs to `ids[i]`).
    /// - Parameters:
    ///   - deltas: δ as `[B, C, H, W]` (or any shape whose rows hold `config.elementCount` values),
    ///     B ≥ `ids.count`; rows past `ids.count` are ignored (a partial last batch).
    ///   - views, metadata: one per ID.
    /// - Throws: as `append(id:delta:view:metadata:)`; entries before the failing one are queued.
    public func append(ids: [Int], deltas: Tensor, views: [ViewParameters], metadata: [EntryMetadata]) throws(MemoryBankError) {
        precondition(views.count == ids.count && metadata.count == ids.count, "Bank.append: one view and metadata per ID")
        let n = config.elementCount
        let rows = deltas.shape.first ?? 0
        if rows < ids.count || (rows > 0 && deltas.count / rows != n) {
            throw .shapeMismatch(expected: n, actual: rows == 0 ? 0 : deltas.count / rows)
        }
        for (i, id) in ids.enumerated() {
            let row = deltas.withUnsafeBufferPointer { Array(UnsafeBufferPointer(rebasing: $0[(i * n)..<((i + 1) * n)])) }
            try append(id: id, delta: row, view: views[i], metadata: metadata[i])
        }
    }
}
