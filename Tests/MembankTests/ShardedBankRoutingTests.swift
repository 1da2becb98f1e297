// ShardedBankRoutingTests.swift: `membank show`, `render`, `diff` and `dump` on a sharded bank
// (BANK/rank-<r>, as a data-parallel run writes it): the fixture's entries split by ID mod 2 into
// two shards, plus the same entries in one unsharded bank (f32, so nothing is re-quantised).
// Each sample is read from the shard that holds it (the output names it, and equals that shard's
// own answer); `render --random` and `diff --all` cover the union, equal to the unsharded bank's.

import Foundation
import MembankCore
import MemoryBank
import XCTest
import _TestSupport

final class ShardedBankRoutingTests: XCTestCase {
    /// The fixture's entries as a 2-shard bank (`root`) and as one bank (`whole`), codec f32.
    static let banks: (dir: TempDirectory, root: URL, whole: URL) = {
        let dir = TempDirectory("membank-sharded")
        let root = dir.path("run/bank"), whole = dir.path("whole")
        do {
            let source = try BankReader.open(at: MembankFixture.shared.bank)
            var config = source.config
            config.codec = .f32
            let options = Bank.Options(queueCapacity: 64, sync: false)
            let targets = [try Bank.create(at: root.appendingPathComponent("rank-0"), config: config, options: options),
                           try Bank.create(at: root.appendingPathComponent("rank-1"), config: config, options: options),
                           try Bank.create(at: whole, config: config, options: options)]
            defer { targets.forEach { $0.close() } }
            for g in source.generations {
                for b in targets { try b.beginGeneration(g) }
                for id in 0..<config.sampleCount where source.contains(id: id, generation: g) {
                    guard let e = try source.entry(id: id, generation: g) else { continue }
                    for b in [targets[id % 2], targets[2]] {
                        try b.append(id: id, delta: e.delta, view: e.info.view, metadata: e.info.metadata)
                    }
                }
                for b in targets { try b.sealGeneration() }
            }
        } catch { fatalError("ShardedBankRoutingTests: \(error)") }
        return (dir, root, whole)
    }()

    private func membank(_ args: [String]) throws -> (status: Int32, out: String, err: String) {
        try MembankTestSupport.run(args)
    }

    func test_show_readsTheSampleFromTheShardThatHoldsIt() throws {
        let (dir, root, _) = Self.banks
        for id in [4, 7] {
            let png = dir.path("show-\(id).png").path, direct = dir.path("direct-\(id).png").path
            let r = try membank(["show", root.path, "\(id)", "--png", png])
            XCTAssertEqual(r.status, 0, r.err)
            XCTAssertTrue(r.out.contains("sample \(id): shard rank-\(id % 2)"), r.out)
            let d = try membank(["show", root.appendingPathComponent("rank-\(id % 2)").path, "\(id)", "--png", direct])
            XCTAssertEqual(d.status, 0, d.err)
            XCTAssertEqual(FileManager.default.contents(atPath: png), FileManager.default.contents(atPath: direct))
        }
        // An ID no shard holds is named as absent (from its owner shard), not a crash.
        let missing = try membank(["show", root.path, "\(MembankFixture.trainedSamples + 1)", "--png", dir.path("x.png").path])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.err.contains("\(MembankFixture.trainedSamples + 1)"), missing.err)
    }

    func test_render_idsFromBothShards_andRandomOverTheUnion_equalTheUnshardedBank() throws {
        let (dir, root, whole) = Self.banks
        for args in [["--ids", "3,4,10-12"], ["--random", "6", "--seed", "3"]] {
            let a = dir.path("render-sharded.png").path, b = dir.path("render-whole.png").path
            let r = try membank(["render", root.path, "--png", a] + args)
            XCTAssertEqual(r.status, 0, r.err)
            XCTAssertTrue(r.out.contains("2 shards"), r.out)
            let w = try membank(["render", whole.path, "--png", b] + args)
            XCTAssertEqual(w.status, 0, w.err)
            XCTAssertEqual(FileManager.default.contents(atPath: a), FileManager.default.contents(atPath: b), "\(args)")
            // The legend lists the same samples.
            XCTAssertEqual(r.out.split(separator: "\n").dropFirst(2).joined(separator: "\n"),
                           w.out.split(separator: "\n").dropFirst(1).joined(separator: "\n"))
        }
    }

    func test_diff_oneSampleFromItsShard_andAllOverTheUnion() throws {
        let (_, root, whole) = Self.banks
        let one = try membank(["diff", root.path, "5", "--json"])
        XCTAssertEqual(one.status, 0, one.err)
        let direct = try membank(["diff", root.appendingPathComponent("rank-1").path, "5", "--json"])
        XCTAssertEqual(one.out, direct.out)
        let text = try membank(["diff", root.path, "5"])
        XCTAssertTrue(text.out.contains("sample 5: shard rank-1"), text.out)

        let all = try membank(["diff", root.path, "--all", "--json"])
        XCTAssertEqual(all.status, 0, all.err)
        let reference = try membank(["diff", whole.path, "--all", "--json"])
        let a = try JSONDecoder().decode(PopulationDrift.self, from: Data(all.out.utf8))
        let b = try JSONDecoder().decode(PopulationDrift.self, from: Data(reference.out.utf8))
        XCTAssertEqual(a.samples, b.samples)
        XCTAssertEqual(a.samples, MembankFixture.trainedSamples, "every trained sample of both shards")
        XCTAssertEqual(a.series.map(\.samples), b.series.map(\.samples))
        XCTAssertEqual(a.cosine.median ?? .nan, b.cosine.median ?? .nan, accuracy: 1e-12)
        XCTAssertEqual(a.cosine.mean ?? .nan, b.cosine.mean ?? .nan, accuracy: 1e-9)
        XCTAssertEqual(a.distance.mean ?? .nan, b.distance.mean ?? .nan, accuracy: 1e-9)
        XCTAssertEqual(a.negativeCosineShare, b.negativeCosineShare)
    }

    func test_dump_picksTheShardByIDOrRank_andTheSegmentByGeneration() throws {
        let (_, root, _) = Self.banks
        let byID = try membank(["dump", root.path, "--id", "7", "--generation", "1"])
        XCTAssertEqual(byID.status, 0, byID.err)
        let segment = MembankTestSupport.segmentURL(root.appendingPathComponent("rank-1"), 1)
        let direct = try membank(["dump", segment.path])
        XCTAssertEqual(byID.out, direct.out)
        let byRank = try membank(["dump", root.path, "--shard", "0"])
        XCTAssertEqual(byRank.status, 0, byRank.err)
        XCTAssertEqual(byRank.out, try membank(["dump", root.appendingPathComponent("rank-0/manifest.mbm").path]).out)
        let neither = try membank(["dump", root.path])
        XCTAssertNotEqual(neither.status, 0)
        XCTAssertTrue(neither.err.contains("--id/--shard") && neither.err.contains("2 shards"), neither.err)
        let badShard = try membank(["dump", root.path, "--shard", "5"])
        XCTAssertNotEqual(badShard.status, 0)
        XCTAssertTrue(badShard.err.contains("rank-0, rank-1"), badShard.err)
    }

    func test_routing_checksTheShardsIndex_notOnlyTheOwnershipRule() throws {
        let (_, root, _) = Self.banks
        let banks = try ShardedBank.detect(root.path)!.open()
        XCTAssertEqual(ShardedBank.shardName(ShardedBank.shard(holding: 9, in: banks)), "rank-1")
        // With the shards listed the other way round, i mod R names the wrong shard; the index wins.
        let reversed = Array(banks.reversed())
        XCTAssertEqual(ShardedBank.shardName(ShardedBank.shard(holding: 9, in: reversed)), "rank-1")
        XCTAssertEqual(ShardedBank.shardName(ShardedBank.shard(holding: 10, in: reversed)), "rank-0")
        XCTAssertEqual(ShardedBank.ids(in: 2, of: banks), MembankFixture.ids(generation: 2))
    }
}
