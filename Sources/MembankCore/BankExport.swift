// BankExport.swift: `membank export`: one generation's δ entries of a bank collected as NPY arrays
// (δ as '<f4', sample IDs as '<i8'), and the default path of the ID file beside the δ file. The
// `.npy` encoding itself is NPYArray.swift.

import Foundation
import MemoryBank

/// `membank export`: δ of one generation as float32 `(n, C, H, W)` and the sample IDs as int64 `(n,)`.
public struct BankExport: Sendable {
    public var generation: Int
    public var ids: [Int]
    public var deltas: NPYArray
    public var idArray: NPYArray
    /// Damaged records left out of the arrays (`membank verify` names them).
    public var damagedEntries: Int

    /// Collects every entry of `generation` in ascending ID order (δ dequantised, augmented frame).
    public static func collect(_ bank: InspectedBank, generation: Int?) throws(MembankError) -> BankExport {
        try collect([bank], generation: generation)
    }

    /// The union over the shards of a sharded bank (`BANK/rank-<r>`, disjoint IDs), in ascending ID
    /// order; the generation (default: the first shard's newest) must be live in every shard.
    public static func collect(_ banks: [InspectedBank], generation: Int?) throws(MembankError) -> BankExport {
        guard let first = banks.first else { throw .invalidArgument(name: "BANK", value: "no shards", expected: "a bank directory") }
        let g = try first.resolveGeneration(generation)
        var entries: [(id: Int, delta: [Float])] = []
        var skipped = 0
        for bank in banks {
            _ = try bank.resolveGeneration(g)
            skipped += try bank.forEachEntry(in: g) { (id: Int, delta: [Float], _: EntryInfo) throws(MembankError) in
                entries.append((id, delta))
            }.count
        }
        if banks.count > 1 { entries.sort { $0.id < $1.id } }
        let ids = entries.map(\.id)
        if let dup = zip(ids, ids.dropFirst()).first(where: { $0.0 == $0.1 }) {
            throw .shardsDisagree(path: first.path, field: "sample ownership", values: ["ID \(dup.0) is in more than one shard"])
        }
        return BankExport(generation: g, ids: ids, deltas: NPYArray(float32: entries.flatMap(\.delta), shape: [ids.count] + first.config.shape),
                          idArray: NPYArray(int64: ids.map(Int64.init), shape: [ids.count]), damagedEntries: skipped)
    }

    /// The IDs file next to `deltaPath`: `x.npy` → `x.ids.npy` (`x` → `x.ids.npy`).
    public static func defaultIDPath(for deltaPath: String) -> String {
        (deltaPath.hasSuffix(".npy") ? String(deltaPath.dropLast(4)) : deltaPath) + ".ids.npy"
    }
}
