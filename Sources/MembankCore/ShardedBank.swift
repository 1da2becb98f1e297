// ShardedBank.swift: a bank written by a data-parallel run, one shard per rank (`BANK/rank-<r>`, each
// an ordinary bank over the samples that rank owns: docs/distributed.md §6), read as one: detection,
// opening with the check that the shards share their settings, and the union reports of `membank
// info` and `membank verify` (per shard and total), and the routing of a sample ID to the shard that
// holds it (`show`, `render`, `diff`, `dump`). `stats` and `export` take the shards through
// BankStatistics.compute([…]) and BankExport.collect([…]); `diff --all` through BankDrift.population([…]).

import Foundation
import MemoryBank

/// The shards of a sharded bank directory, in rank order.
public struct ShardedBank {
    public let path: String
    /// `path/rank-0`, `path/rank-1`, … (only those holding a manifest).
    public let shards: [String]

    /// The shards under `path`, or nil when `path` is an ordinary bank (has manifest.mbm) or holds
    /// no `rank-<r>` bank.
    public static func detect(_ path: String) -> ShardedBank? {
        let fm = FileManager.default
        let dir = URL(fileURLWithPath: path)
        if fm.fileExists(atPath: dir.appendingPathComponent("manifest.mbm").path) { return nil }
        guard let names = try? fm.contentsOfDirectory(atPath: path) else { return nil }
        let ranks = names.compactMap { n -> Int? in n.hasPrefix("rank-") ? Int(n.dropFirst(5)) : nil }.sorted()
        let shards = ranks.map { dir.appendingPathComponent("rank-\($0)").path }
            .filter { fm.fileExists(atPath: URL(fileURLWithPath: $0).appendingPathComponent("manifest.mbm").path) }
        return shards.isEmpty ? nil : ShardedBank(path: path, shards: shards)
    }

    /// Opens every shard and checks they agree on shape, ε, norm, codec and window.
    /// - Throws: the first shard's open error, or `.shardsDisagree` naming the setting.
    public func open() throws(MembankError) -> [InspectedBank] {
        var banks: [InspectedBank] = []
        for s in shards { banks.append(try InspectedBank.open(s)) }
        let settings: [(String, (BankConfig) -> String)] = [
            ("shape", { $0.shape.map(String.init).joined(separator: "×") }), ("epsilon", { "\($0.epsilon)" }),
            ("norm", { $0.norm.rawValue }), ("codec", { $0.codec.rawValue }), ("window", { "\($0.window)/\($0.stride)" }),
            ("sampleCount", { "\($0.sampleCount)" }),
        ]
        for (field, value) in settings {
            let values = banks.map { value($0.config) }
            if Set(values).count > 1 {
                throw .shardsDisagree(path: path, field: field, values: zip(shards, values).map {
                    "\(($0.0 as NSString).lastPathComponent): \($0.1)"
                })
            }
        }
        return banks
    }

    /// The bank of `banks` (one bank, or a sharded bank's shards in rank order) that holds sample
    /// `id`. Sample ID i belongs to shard `i mod R` (fixed ownership, docs/distributed.md §2); that
    /// shard is checked against its index first (in `generation`, or in any live generation when
    /// nil), then the others, so a bank whose ownership differs still routes right. When no shard
    /// holds the ID, the owner shard (its errors then say where the ID is missing).
    public static func shard(holding id: Int, generation: Int? = nil, in banks: [InspectedBank]) -> InspectedBank {
        precondition(!banks.isEmpty, "ShardedBank.shard: no banks")
        guard banks.count > 1 else { return banks[0] }
        func holds(_ b: InspectedBank) -> Bool {
            if let generation { return b.reader.contains(id: id, generation: generation) }
            return b.generations.contains { b.reader.contains(id: id, generation: $0) }
        }
        let owner = banks[((id % banks.count) + banks.count) % banks.count]
        if holds(owner) { return owner }
        return banks.first(where: holds) ?? owner
    }

    /// `generation` when every shard holds it live, else (nil) the newest generation live in
    /// every shard. One bank: `InspectedBank.resolveGeneration`.
    /// - Throws: `generationMissing` (naming the shard's live generations), `noGenerations`.
    public static func resolveGeneration(_ generation: Int?, in banks: [InspectedBank], path: String) throws(MembankError) -> Int {
        if banks.count == 1 { return try banks[0].resolveGeneration(generation) }
        if let generation {
            for b in banks { _ = try b.resolveGeneration(generation) }
            return generation
        }
        guard let newest = commonGenerations(banks).last else { throw .noGenerations(path: path) }
        return newest
    }

    /// The IDs with an entry in `generation` in any of `banks`, ascending (the union of the shards).
    public static func ids(in generation: Int, of banks: [InspectedBank]) -> [Int] {
        banks.count == 1 ? banks[0].ids(in: generation) : banks.flatMap { $0.ids(in: generation) }.sorted()
    }

    /// The name of `bank`'s directory (`rank-1`), for output lines saying which shard answered.
    public static func shardName(_ bank: InspectedBank) -> String { (bank.path as NSString).lastPathComponent }

    /// Generations live in every shard, ascending.
    public static func commonGenerations(_ banks: [InspectedBank]) -> [Int] {
        guard let first = banks.first else { return [] }
        return first.generations.filter { g in banks.allSatisfy { $0.generations.contains(g) } }
    }
}

// MARK: - info

/// `membank info` of a sharded bank: each shard's report and the union's totals.
public struct ShardedInfo: Codable, Equatable, Sendable {
    public var path: String
    public var shardCount: Int
    /// The union: generations with their counts summed over the shards, entries and bytes summed,
    /// the per-entry figures recomputed from the sums.
    public var total: BankInfo
    public var shards: [BankInfo]

    public static func compute(_ sharded: ShardedBank) throws(MembankError) -> ShardedInfo {
        var infos: [BankInfo] = []
        for b in try sharded.open() { infos.append(try BankInfo.compute(b)) }
        var total = infos[0]
        total.path = sharded.path
        var byGeneration: [Int: GenerationInfo] = [:]
        for info in infos {
            for g in info.generations {
                var t = byGeneration[g.generation] ?? GenerationInfo(generation: g.generation, entries: 0, segmentBytes: 0,
                                                                       recordBytes: 0, payloadBytes: 0, rawPayloadBytes: 0,
                                                                       lz4Entries: 0, clampedValues: 0, damagedEntries: 0)
                t.entries += g.entries; t.segmentBytes += g.segmentBytes; t.recordBytes += g.recordBytes
                t.payloadBytes += g.payloadBytes; t.rawPayloadBytes += g.rawPayloadBytes; t.lz4Entries += g.lz4Entries
                t.clampedValues += g.clampedValues; t.damagedEntries += g.damagedEntries
                byGeneration[g.generation] = t
            }
        }
        total.generations = byGeneration.keys.sorted().map { byGeneration[$0]! }
        total.entries = infos.reduce(0) { $0 + $1.entries }
        total.bytesOnDisk = infos.reduce(0) { $0 + $1.bytesOnDisk }
        func per(_ sum: Int) -> Double? { total.entries == 0 ? nil : Double(sum) / Double(total.entries) }
        total.bytesPerEntry = per(total.bytesOnDisk)
        total.recordBytesPerEntry = per(total.generations.reduce(0) { $0 + $1.recordBytes })
        total.payloadBytesPerEntry = per(total.generations.reduce(0) { $0 + $1.payloadBytes })
        total.compressionRatio = total.bytesPerEntry.map { Double(total.float32BytesPerEntry) / $0 }
        total.payloadCompressionRatio = total.payloadBytesPerEntry.flatMap { $0 > 0 ? Double(total.float32BytesPerEntry) / $0 : nil }
        return ShardedInfo(path: sharded.path, shardCount: infos.count, total: total, shards: infos)
    }

    /// The human report: the per-shard table, then the union in the ordinary layout.
    public var text: String {
        var out = "sharded bank \(path): \(shardCount) shards (one per rank of a data-parallel run)\n"
        out += Table(header: ["shard", "generations", "entries", "on disk"], rows: shards.map { s in
            [(s.path as NSString).lastPathComponent, MembankError.list(s.generations.map(\.generation)), group(s.entries), bytes(s.bytesOnDisk)]
        } + [["total", MembankError.list(total.generations.map(\.generation)), group(total.entries), bytes(total.bytesOnDisk)]]).render()
        out += "union of the shards\n"
        out += total.text
        return out
    }
}

// MARK: - verify

/// `membank verify` of a sharded bank: every shard verified; intact only when every shard is.
public struct ShardedVerifyReport: Codable, Equatable, Sendable {
    public var path: String
    public var intact: Bool
    public var recordsChecked: Int
    public var shards: [VerifyReport]

    public static func run(_ sharded: ShardedBank) -> ShardedVerifyReport {
        let reports = sharded.shards.map { VerifyReport.run(path: $0) }
        var report = ShardedVerifyReport(path: sharded.path, intact: reports.allSatisfy(\.intact),
                                         recordsChecked: reports.reduce(0) { $0 + $1.recordsChecked }, shards: reports)
        if report.intact {
            do { _ = try sharded.open() } catch {
                report.intact = false
                report.shards[0].problems.append(VerifyProblem(file: nil, generation: nil, sample: nil, kind: "shards",
                                                               message: error.description))
            }
        }
        return report
    }

    public var text: String {
        var out = "sharded bank \(path): " + (intact ? "intact" : "DAMAGED")
            + " (\(shards.count) shards, \(group(recordsChecked)) records checked)\n"
        for s in shards { out += s.text }
        return out
    }
}
