// Membank.swift: the `membank` command line: info, verify, stats, show, render, diff, export and
// dump of a memory bank directory. The CLI only parses arguments and prints; every number comes from
// MembankCore. Errors print their message and hint on stderr and exit with status 1 (no stack trace).

import ArgumentParser
import Foundation
import MembankCore
import MemoryBank

@main
struct Membank: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "membank",
        abstract: "Inspect a memory bank of adversarial perturbations (docs/membank.md).",
        discussion: "BANK is a bank directory (RUN/bank, with manifest.mbm). A data-parallel run's bank is sharded "
            + "(RUN/bank/rank-<r>, one bank per rank): every subcommand takes the sharded RUN/bank. info, verify, stats and "
            + "export read its shards as one (per shard and total); show, render, diff and dump find a sample in the shard "
            + "that holds it (sample ID i: shard i mod R, checked against the shard's index), and render --random and "
            + "diff --all cover the union. A single shard (RUN/bank/rank-<r>) is an ordinary bank. Add --json for "
            + "machine-readable output.",
        subcommands: [Info.self, Verify.self, Stats.self, Show.self, Render.self, Diff.self, Export.self, Dump.self])
}

/// A subcommand whose failures are `MembankError`s: printed with their hint, exit status 1.
protocol MembankCommand: ParsableCommand {
    func execute() throws(MembankError)
}

extension MembankCommand {
    func run() throws {
        do {
            try execute()
        } catch {
            FileHandle.standardError.write(Data("membank: error: \(error.description)\n".utf8))
            throw ExitCode.failure
        }
    }
}

/// Prints `value` as pretty JSON with sorted keys.
func printJSON<T: Encodable>(_ value: T) throws(MembankError) {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    do {
        print(String(decoding: try encoder.encode(value), as: UTF8.self))
    } catch {
        throw .io(path: "<stdout>", operation: "encode JSON", reason: "\(error)")
    }
}

/// The bank at `path`: its shards (`path/rank-<r>`, a data-parallel run's bank) or itself.
func openBanks(_ path: String) throws(MembankError) -> [InspectedBank] {
    if let sharded = ShardedBank.detect(path) { return try sharded.open() }
    return [try InspectedBank.open(path)]
}

struct Info: MembankCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generations, entries, codec, ε and norm, shape, bytes on disk and per entry, compression, settings.")

    @Argument(help: "The bank directory.") var bank: String
    @Flag(help: "Print JSON.") var json = false

    func execute() throws(MembankError) {
        if let sharded = ShardedBank.detect(bank) {
            let info = try ShardedInfo.compute(sharded)
            if json { try printJSON(info) } else { print(info.text, terminator: "") }
            return
        }
        let info = try BankInfo.compute(try InspectedBank.open(bank))
        if json { try printJSON(info) } else { print(info.text, terminator: "") }
    }
}

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check every checksum and structural invariant; exit status 0 only when the bank is intact.")

    @Argument(help: "The bank directory.") var bank: String
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        if let sharded = ShardedBank.detect(bank) {
            let report = ShardedVerifyReport.run(sharded)
            if json {
                do { try printJSON(report) } catch { FileHandle.standardError.write(Data("membank: error: \(error)\n".utf8)) }
            } else {
                print(report.text, terminator: "")
            }
            if !report.intact { throw ExitCode.failure }
            return
        }
        let report = VerifyReport.run(path: bank)
        if json {
            do { try printJSON(report) } catch { FileHandle.standardError.write(Data("membank: error: \(error)\n".utf8)) }
        } else {
            print(report.text, terminator: "")
        }
        if !report.intact { throw ExitCode.failure }
    }
}

struct Stats: MembankCommand {
    static let configuration = CommandConfiguration(
        abstract: "δ histogram, L∞/L2 norms per entry, saturated share, p_y and margin, per class.")

    @Argument(help: "The bank directory.") var bank: String
    @Option(help: "One generation (default: every live generation).") var generation: Int?
    @Option(help: "Histogram bins over [−ε, ε].") var bins: Int = BankStatistics.defaultBins
    @Flag(help: "Print JSON (an array, one object per generation).") var json = false

    func execute() throws(MembankError) {
        // A sharded bank: the statistics of the union of its shards.
        let banks = try openBanks(bank)
        let generations = generation.map { [$0] } ?? ShardedBank.commonGenerations(banks)
        if generations.isEmpty { throw .noGenerations(path: bank) }
        var all: [GenerationStats] = []
        for g in generations {
            for b in banks { _ = try b.resolveGeneration(g) }
            all.append(try BankStatistics.compute(banks, generation: g, bins: bins))
        }
        if banks.count > 1 && !json {
            print("sharded bank \(bank): \(banks.count) shards; statistics of their union")
        }
        if json { try printJSON(all) } else { print(all.map(BankStatistics.text).joined(separator: "\n"), terminator: "") }
    }
}

struct Show: MembankCommand {
    static let configuration = CommandConfiguration(
        abstract: "PNG of one sample: clean view | δ amplified | x' side by side.")

    @Argument(help: "The bank directory.") var bank: String
    @Argument(help: "The sample ID.") var id: Int
    @Option(help: "The generation (default: the newest).") var generation: Int?
    @Option(help: "Output PNG file.") var png: String
    @Option(help: "Training set spec (default: the one recorded in the bank's settings).") var data: String?
    @Option(help: "Nearest-neighbour upscaling factor.") var scale: Int = ViewGrid.defaultScale

    func execute() throws(MembankError) {
        let banks = try openBanks(bank)
        try banks[0].checkID(id)
        let b = ShardedBank.shard(holding: id, generation: generation, in: banks)  // a sharded bank: the shard holding it
        let g = try b.resolveGeneration(generation)
        guard scale >= 1 && scale <= 64 else { throw .invalidArgument(name: "--scale", value: "\(scale)", expected: "1…64") }
        let source = try ViewSource(bank: b, dataSpec: data)
        let row = try source.triptych(id: id, generation: g)
        try ViewGrid.image([row], shape: b.config.shape, scale: scale).write(to: png)
        if banks.count > 1 { print("sample \(id): shard \(ShardedBank.shardName(b)) of \(bank)") }
        print("wrote \(png)\n" + ViewGrid.legend([row]), terminator: "")
    }
}

struct Render: MembankCommand {
    static let configuration = CommandConfiguration(
        abstract: "PNG grid of many samples, one row each: clean view | δ amplified | x'.")

    @Argument(help: "The bank directory.") var bank: String
    @Option(help: "Sample IDs: comma-separated, ranges allowed (0,5,10-12).") var ids: String?
    @Option(help: "Draw this many random IDs among those present in the generation.") var random: Int?
    @Option(help: "Seed of --random.") var seed: UInt64 = 0
    @Option(help: "The generation (default: the newest).") var generation: Int?
    @Option(help: "Output PNG file.") var png: String
    @Option(help: "Training set spec (default: the one recorded in the bank's settings).") var data: String?
    @Option(help: "Nearest-neighbour upscaling factor.") var scale: Int = ViewGrid.defaultScale

    func execute() throws(MembankError) {
        let banks = try openBanks(bank)  // a sharded bank: each ID from the shard holding it; --random over the union
        let g = try ShardedBank.resolveGeneration(generation, in: banks, path: bank)
        guard scale >= 1 && scale <= 64 else { throw .invalidArgument(name: "--scale", value: "\(scale)", expected: "1…64") }
        let chosen: [Int]
        switch (ids, random) {
        case (let text?, nil): chosen = try ViewGrid.parseIDs(text)
        case (nil, let n?): chosen = try ViewGrid.randomIDs(from: ShardedBank.ids(in: g, of: banks), count: n, seed: seed)
        default: throw .invalidArgument(name: "--ids/--random", value: ids == nil ? "neither" : "both", expected: "exactly one of them")
        }
        if chosen.isEmpty {
            throw .invalidArgument(name: "--ids/--random", value: "no IDs", expected: "at least one ID with an entry in generation \(g)")
        }
        for id in chosen { try banks[0].checkID(id) }
        var sources: [String: ViewSource] = [:]  // one per shard, opened when first needed
        var rows: [SampleTriptych] = []
        for id in chosen {
            let b = ShardedBank.shard(holding: id, generation: g, in: banks)
            if sources[b.path] == nil { sources[b.path] = try ViewSource(bank: b, dataSpec: data) }
            rows.append(try sources[b.path]!.triptych(id: id, generation: g))
        }
        try ViewGrid.image(rows, shape: banks[0].config.shape, scale: scale).write(to: png)
        if banks.count > 1 { print("sharded bank \(bank): \(banks.count) shards; \(rows.count) samples from \(sources.count) of them") }
        print("wrote \(png)\n" + ViewGrid.legend(rows), terminator: "")
    }
}

struct Diff: MembankCommand {
    static let configuration = CommandConfiguration(
        abstract: "Cosine similarity and L2 distance of δ across generations, as a table and an SVG plot.")

    @Argument(help: "The bank directory.") var bank: String
    @Argument(help: "The sample ID (or use --all).") var id: Int?
    @Flag(help: "Every sample present in both --from and --to.") var all = false
    @Option(help: "Reference generation (default: the first live one).") var from: Int?
    @Option(help: "Last generation (default: the newest).") var to: Int?
    @Option(help: "Write the plot over generations to this SVG file.") var svg: String?
    @Flag(help: "Print JSON.") var json = false

    func execute() throws(MembankError) {
        let banks = try openBanks(bank)  // a sharded bank: one ID from the shard holding it; --all over the union
        let plot: DriftPlot
        switch (id, all) {
        case (let id?, false):
            let b = ShardedBank.shard(holding: id, in: banks)
            let d = try BankDrift.sample(b, id: id, from: from, to: to)
            if banks.count > 1 && !json { print("sample \(id): shard \(ShardedBank.shardName(b)) of \(bank)") }
            if json { try printJSON(d) } else { print(BankDrift.text(d), terminator: "") }
            plot = DriftPlot(sample: d)
        case (nil, true):
            let p = try BankDrift.population(banks, from: from, to: to)
            if banks.count > 1 && !json { print("sharded bank \(bank): \(banks.count) shards; drift of their union") }
            if json { try printJSON(p) } else { print(BankDrift.text(p), terminator: "") }
            plot = DriftPlot(population: p)
        default:
            throw .invalidArgument(name: "ID/--all", value: id == nil ? "neither" : "both", expected: "a sample ID or --all")
        }
        if let svg {
            do { try Data(plot.render().utf8).write(to: URL(fileURLWithPath: svg)) } catch {
                throw .io(path: svg, operation: "write SVG", reason: error.localizedDescription)
            }
            if !json { print("wrote \(svg)") }
        }
    }
}

struct Export: MembankCommand {
    static let configuration = CommandConfiguration(
        abstract: "δ of one generation (dequantised float32, (n, C, H, W)) and sample IDs (int64, (n,)) as .npy files.")

    @Argument(help: "The bank directory.") var bank: String
    @Option(help: "The generation (default: the newest).") var generation: Int?
    @Option(help: "Output .npy file of δ.") var npy: String
    @Option(help: "Output .npy file of the IDs (default: FILE with .ids.npy).") var idsNpy: String?

    func execute() throws(MembankError) {
        let banks = try openBanks(bank)  // a sharded bank: the union
        let export = try BankExport.collect(banks, generation: generation)
        let idPath = idsNpy ?? BankExport.defaultIDPath(for: npy)
        try export.deltas.write(to: npy)
        try export.idArray.write(to: idPath)
        print("generation \(export.generation): \(export.ids.count) entries, δ \(export.deltas.shape) float32 → \(npy), IDs → \(idPath)")
        print(InspectedBank.skippedNote(export.damagedEntries, in: export.generation), terminator: "")
    }
}

struct Dump: MembankCommand {
    static let configuration = CommandConfiguration(
        abstract: "Annotated hexdump of a segment (.mbs) or manifest (.mbm) file, field by field.")

    @Argument(help: ArgumentHelp("A gen-*.mbs or manifest.mbm file, or a bank directory.",
                                 discussion: "A bank directory: its manifest, or with --generation that generation's segment. "
                                     + "A sharded bank (RUN/bank with rank-<r> shards): the shard holding --id, or --shard."))
    var file: String
    @Option(help: "With a bank directory: dump this generation's segment instead of the manifest.") var generation: Int?
    @Option(help: "With a sharded bank: the shard holding this sample ID.") var id: Int?
    @Option(help: "With a sharded bank: this shard (rank).") var shard: Int?
    @Flag(help: "Raw listing (the only format; kept for the spec's `membank dump --raw`).") var raw = false

    func execute() throws(MembankError) {
        let file = try resolveFile()
        guard let data = FileManager.default.contents(atPath: file) else {
            throw .bankMissing(path: file, reason: "cannot read the file")
        }
        let bytes = [UInt8](data)
        let manifestMagic = Array("MBANKMAN".utf8)
        print(bytes.starts(with: manifestMagic) ? BankDump.manifest(bytes) : BankDump.segment(bytes), terminator: "")
    }
}

extension Dump {
    /// The file to dump: `file` itself, or for a bank directory its manifest or `--generation`'s
    /// segment, in the shard `--id` or `--shard` selects when the directory is a sharded bank.
    func resolveFile() throws(MembankError) -> String {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: file, isDirectory: &isDirectory), isDirectory.boolValue else {
            if generation != nil || id != nil || shard != nil {
                throw .invalidArgument(name: "--generation/--id/--shard", value: file, expected: "a bank directory (they pick a file in it)")
            }
            return file
        }
        let banks = try openBanks(file)
        let b: InspectedBank
        switch (id, shard) {
        case (nil, nil):
            guard banks.count == 1 else {
                throw .invalidArgument(name: "--id/--shard", value: "neither", expected: "one of them: \(file) is a sharded bank of \(banks.count) shards")
            }
            b = banks[0]
        case (let id?, nil):
            try banks[0].checkID(id)
            b = ShardedBank.shard(holding: id, generation: generation, in: banks)
        case (nil, let r?):
            guard let found = banks.first(where: { ShardedBank.shardName($0) == "rank-\(r)" }) ?? (banks.count == 1 && r == 0 ? banks[0] : nil) else {
                throw .invalidArgument(name: "--shard", value: "\(r)", expected: "a shard of \(file): " + banks.map(ShardedBank.shardName).joined(separator: ", "))
            }
            b = found
        default:
            throw .invalidArgument(name: "--id/--shard", value: "both", expected: "at most one of them")
        }
        guard let generation else { return URL(fileURLWithPath: b.path).appendingPathComponent("manifest.mbm").path }
        _ = try b.resolveGeneration(generation)
        guard let segment = b.reader.segment(generation) else { throw .generationMissing(generation: generation, live: b.generations) }
        return segment.path
    }
}
