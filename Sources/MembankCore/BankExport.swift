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
        let g = try bank.resolveGeneration(generation)
        var ids: [Int] = [], values: [Float] = []
        let skipped = try bank.forEachEntry(in: g) { (id: Int, delta: [Float], _: EntryInfo) throws(MembankError) in
            ids.append(id)
            values += delta
        }
        return BankExport(generation: g, ids: ids, deltas: NPYArray(float32: values, shape: [ids.count] + bank.config.shape),
                          idArray: NPYArray(int64: ids.map(Int64.init), shape: [ids.count]), damagedEntries: skipped.count)
    }

    /// The IDs file next to `deltaPath`: `x.npy` → `x.ids.npy` (`x` → `x.ids.npy`).
    public static func defaultIDPath(for deltaPath: String) -> String {
        (deltaPath.hasSuffix(".npy") ? String(deltaPath.dropLast(4)) : deltaPath) + ".ids.npy"
    }
}
