// RowRandom.swift: where a batched attack's random draws come from: one stream shared by the
// whole batch (a row's draws then depend on which rows share its batch and in what order), or one
// stream per row (a row's draws depend on that row's stream alone, so a point gets the same random
// start and the same proposals in any batch, on any MPI rank: docs/distributed.md §5).

import Tensors

/// The random source of a batched attack: shared by the batch, or one stream per row.
///
/// Rows are indexed as in the batch the attack was given; an attack that works on a subset of its
/// rows passes the subset's original indices, so per-row streams follow their rows.
public struct RowRandom {
    /// The batch's stream (used when `perRow` is nil).
    var shared: SplitMix64
    /// One stream per row of the batch, or nil for the shared stream.
    var perRow: [SplitMix64]?

    /// One stream for the whole batch.
    public init(shared rng: SplitMix64) { shared = rng; perRow = nil }

    /// One stream per row (`streams[i]` for row i).
    public init(perRow streams: [SplitMix64]) { shared = SplitMix64(seed: 0); perRow = streams }

    /// The shared stream's state after the draws (unchanged when streams are per row).
    public var sharedState: SplitMix64 { shared }

    /// The next 64 random bits for row `row`.
    public mutating func next(row: Int) -> UInt64 {
        if perRow != nil { return perRow![row].next() }
        return shared.next()
    }

    /// A uniform integer in `0..<bound` for row `row`.
    public mutating func nextInt(below bound: Int, row: Int) -> Int {
        if perRow != nil { return perRow![row].nextInt(below: bound) }
        return shared.nextInt(below: bound)
    }

    /// `[rows.count] + rowShape` elements, row k drawn from row `rows[k]`'s stream (or all from the
    /// shared stream, in order): U(low, high) when `normal` is false, N(0, 1) otherwise.
    mutating func tensor(rows: [Int], rowShape: [Int], uniformLow low: Float, high: Float, normal: Bool) -> Tensor {
        let shape = [rows.count] + rowShape
        func draw(_ rng: inout SplitMix64, _ count: Int) -> [Float] {
            normal ? (0..<count).map { _ in rng.nextNormal() } : (0..<count).map { _ in low + (high - low) * rng.nextFloat() }
        }
        guard perRow != nil else {
            return normal ? Tensor.randomNormal(shape: shape, std: 1, rng: &shared)
                : Tensor.randomUniform(shape: shape, low: low, high: high, rng: &shared)
        }
        let len = Tensor.elementCount(rowShape)
        var values = [Float]()
        values.reserveCapacity(rows.count * len)
        for r in rows { values += draw(&perRow![r], len) }
        return Tensor(shape: shape, values: values)
    }
}
