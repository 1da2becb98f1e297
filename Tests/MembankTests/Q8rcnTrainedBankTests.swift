// Q8rcnTrainedBankTests.swift: the `q8rcn` codec end to end (docs/format/membank-v1.md §7.6): a real
// two-epoch `memloss train --mem-codec q8rcn` run on the embedded demo, then `membank verify`, the
// manifest's start noise against the run's seed and σ, every entry decoded onto q8's lattice inside
// the ε-ball and decoding bit for bit as q8 (re-written into q8, q8rc and q8rcn-with-another-seed
// banks), the regenerated noise shown to be the run's own (those δ code far smaller under the
// manifest's seed than under q8rc or another seed), and `--resume` continuing with the same bank.
// The δ the trainer held before quantising is not kept, so "within q8's bound of it" is left to
// Q8rcnCodecTests (q8rcn ≡ q8 on every kind of δ).

import Foundation
import MemoryBank
import Tensors
import Training
import XCTest
import _TestSupport

final class Q8rcnTrainedBankTests: XCTestCase {
    /// A tiny TRADES + MemLoss run: 64 demo samples in 2 batches, 2 attack steps, K = 2, ε = 8/255
    /// (so σ = 0.001 spans about 4 q8 levels and the noise is visible in the levels).
    static let flags = ["--train-samples", "64", "--batch-size", "32", "--validation-size", "32", "--epsilon", "8/255",
                        "--validation-samples", "16", "--test-samples", "16", "--width", "0.25",
                        "--attack-steps", "2", "--val-steps", "1", "--test-attacks", "pgd1",
                        "--mem-codec", "q8rcn", "--mem-k", "2"]

    private func memloss(_ args: [String]) throws -> (status: Int32, out: String, err: String) {
        try BuiltExecutable.run("memloss", args)
    }

    private func epochLines(_ run: URL) throws -> [[String: Any]] {
        let text = try String(contentsOf: run.appendingPathComponent("metrics.jsonl"), encoding: .utf8)
        return try text.split(separator: "\n").compactMap { line in
            let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            return obj["type"] as? String == "epoch" ? obj : nil
        }
    }

    /// Every entry of `reader` as (id, generation, δ, stored bytes).
    private func entries(_ reader: BankReader) throws -> [(id: Int, generation: Int, delta: [Float], storedBytes: Int)] {
        var out: [(Int, Int, [Float], Int)] = []
        for g in reader.generations {
            for id in 0..<reader.config.sampleCount {
                if let e = try reader.entry(id: id, generation: g) { out.append((id, g, e.delta, e.info.storedBytes)) }
            }
        }
        return out
    }

    func test_trainWithQ8rcn_verifies_carriesTheRunsNoise_decodesOntoQ8sLattice_andResumes() throws {
        let tmp = TempDirectory("q8rcn-trained")
        let run = tmp.path("run")
        let first = try memloss(["train", "--out", run.path, "--epochs", "2"] + Self.flags)
        XCTAssertEqual(first.status, 0, first.err)
        let bankURL = run.appendingPathComponent("bank")

        let verify = try BuiltExecutable.run("membank", ["verify", bankURL.path])
        XCTAssertEqual(verify.status, 0, verify.out + verify.err)
        XCTAssertTrue(BankReader.verify(at: bankURL).isIntact)

        // The manifest: codec q8rcn with the start noise the trainer drew (seed from the run's seed,
        // σ of TRADES' Gaussian start).
        let config = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: run.appendingPathComponent("config.json"))) as? [String: Any])
        let runSeed = try XCTUnwrap((config["seed"] as? NSNumber)?.uint64Value)
        let reader = try BankReader.open(at: bankURL)
        XCTAssertEqual(reader.config.codec, .q8rcn)
        let noise = try XCTUnwrap(reader.config.startNoise, "a q8rcn manifest carries its start noise (v1.1)")
        XCTAssertEqual(noise.generator, StartNoise.irwinHall12)
        XCTAssertEqual(noise.seed, StartNoise(runSeed: runSeed).seed)
        XCTAssertEqual(noise.sigma, 0.001, "TRADES' Gaussian start")
        XCTAssertEqual(reader.generations, [0, 1])

        // Every entry: q8's levels (re-quantising by q8 changes no bit), inside the ε-ball. Written into
        // a q8 bank, a q8rc bank and a q8rcn bank with another noise seed, the same δ decode bit for
        // bit; the bytes show that the manifest's noise is the one the run's attack started from.
        let stored = try entries(reader)
        XCTAssertEqual(stored.count, 2 * 64, "both epochs stored every sample")
        let e = reader.config.epsilon
        let scale = e / 127
        for s in stored {
            for v in s.delta {
                XCTAssertLessThanOrEqual(abs(v), e, "sample \(s.id) generation \(s.generation)")
                let level = (v / scale).rounded()
                XCTAssertEqual((level * scale).bitPattern, v.bitPattern, "sample \(s.id): \(v) is not a q8 level × ε/127")
            }
        }
        var coded: [String: Int] = [:]
        var wrongNoise = noise
        wrongNoise.seed ^= 1
        for (name, codec, startNoise) in [("q8", BankCodec.q8, nil), ("q8rc", .q8rc, nil), ("q8rcn, wrong noise", .q8rcn, wrongNoise)] {
            let copy = tmp.path("copy-\(codec.rawValue)")
            var c = reader.config
            c.codec = codec
            c.startNoise = startNoise
            c.window = 8
            let bank = try Bank.create(at: copy, config: c, options: Bank.Options(queueCapacity: 4, sync: false))
            for g in reader.generations {
                try bank.beginGeneration(g)
                for s in stored where s.generation == g {
                    let info = try XCTUnwrap(try reader.entry(id: s.id, generation: g)).info
                    try bank.append(id: s.id, delta: s.delta, view: info.view, metadata: info.metadata)
                }
                _ = try bank.sealGeneration()
            }
            bank.close()
            let other = try BankReader.open(at: copy)
            let copied = try entries(other)
            XCTAssertEqual(copied.map(\.delta).map { $0.map(\.bitPattern) }, stored.map(\.delta).map { $0.map(\.bitPattern) }, name)
            coded[name] = copied.reduce(0) { $0 + $1.storedBytes }
        }
        let q8rcnBytes = stored.reduce(0) { $0 + $1.storedBytes }
        XCTAssertLessThanOrEqual(q8rcnBytes, try XCTUnwrap(coded["q8"]) + 4 * stored.count, "never more than q8 + 4 B per entry")
        // (Measured at this seed: 31,958 B against 53,694 B q8rc and 55,610 B with another seed.)
        XCTAssertLessThan(Double(q8rcnBytes), 0.8 * Double(try XCTUnwrap(coded["q8rc"])), "knowing the run's noise pays against q8rc")
        XCTAssertLessThan(Double(q8rcnBytes), 0.8 * Double(try XCTUnwrap(coded["q8rcn, wrong noise"])),
                          "the manifest's noise is the run's: another seed codes worse")

        // --resume for a third epoch: the same bank (the same noise), now reading two generations.
        let resumed = try memloss(["train", "--resume", run.path, "--epochs", "3"])
        XCTAssertEqual(resumed.status, 0, resumed.err)
        let after = try BankReader.open(at: bankURL)
        XCTAssertEqual(after.config.startNoise, noise)
        XCTAssertEqual(after.generations, [0, 1, 2])
        XCTAssertTrue(BankReader.verify(at: bankURL).isIntact)
        for s in stored {
            let again = try XCTUnwrap(try after.entry(id: s.id, generation: s.generation))
            XCTAssertEqual(again.delta.map(\.bitPattern), s.delta.map(\.bitPattern), "resume left generation \(s.generation) as it was")
        }
        let epochs = try epochLines(run)
        XCTAssertEqual(epochs.count, 3)
        XCTAssertEqual(epochs.map { $0["mem_entries_used"] as? Int }, [0, 64, 128], "epoch 3 reads both remembered generations")
    }
}
