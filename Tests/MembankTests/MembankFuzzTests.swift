// MembankFuzzTests.swift: the `membank` fuzz target (docs/fuzzing.md): small banks (f32 L∞ with
// incompressible δ, so payload mutations reach the values; levels L2; q8rcn L∞ with δ started from
// the bank's own noise, so its range-coded records and v1.1 manifest are mutated) have one file mutated per
// iteration (half with checksums repaired and the manifest pointed at the mutant, BankFixup), then
// every subcommand runs on it in-process through MembankCore (info, verify, stats, dump, export,
// pictures, drift); each must return or throw a MembankError whose text ends in a hint. A handful of
// mutants also go through the real executable: exit status 0 or 1, never a signal, and a failure is
// one `membank: error:` line plus a `hint:` line.

import Datasets
import Foundation
import MembankCore
import MemoryBank
import Tensors
import XCTest
import _TestSupport

final class MembankFuzzTests: XCTestCase {
    /// Mutated banks per base bank in the default suite.
    static let defaultMutants = 100
    /// Mutated banks run through the executable (each: every subcommand once).
    static let executableMutants = 3

    private var dir: TempDirectory!

    override func setUpWithError() throws {
        dir = TempDirectory("membank-fuzz")
    }

    /// A base bank (files by name) of `codec`/`norm`: 6 IDs of the demo shape, generations 0 and 1.
    private func baseBank(codec: BankCodec, norm: PerturbationNorm) throws -> [(name: String, bytes: [UInt8])] {
        let shape = try DataSource.demo.open(.train).shape.dimensions
        let url = dir.url.appendingPathComponent("base-\(codec.rawValue)")
        // q8rcn: σ = 0.01 (about 4 q8 levels at ε = 0.3), so the noise shows in the levels.
        let noise = codec == .q8rcn ? BankStartNoise(seed: 11, sigma: 0.01) : nil
        let config = BankConfig(sampleCount: 6, shape: shape, epsilon: 0.3, norm: norm, codec: codec, window: 2, stride: 1,
                                createdBy: "{\"data\": \"demo\", \"fixture\": \"MembankFuzzTests\"}", startNoise: noise)
        let bank = try Bank.create(at: url, config: config, options: Bank.Options(queueCapacity: 8, writeBufferBytes: 4096, sync: false))
        var random = FuzzRandom(seed: 5)
        let n = config.elementCount
        let magnitude: Float = norm == .linf ? 0.3 : 0.3 / Float(n).squareRoot()  // inside the ε-ball
        for g in 0..<2 {
            try bank.beginGeneration(g)
            for id in [0, 2, 3] where !(g == 1 && id == 3) {
                // Uniform values: incompressible, so f32 records are stored raw. q8rcn: the start noise
                // plus k·ε/4, k in −4…4, clipped at ±ε (a PGD-like δ the coder codes relative to the noise).
                var delta = (0..<n).map { _ in (Float(random.below(1 << 20)) / Float(1 << 19) - 1) * magnitude }
                if let noise {
                    let z = StartNoise(seed: noise.seed).unit(epoch: g, sampleID: id, count: n)
                    delta = z.map { min(0.3, max(-0.3, noise.sigma * $0 + Float(random.below(9) - 4) * 0.075)) }
                }
                try bank.append(id: id, delta: delta, view: ViewParameters(dx: Int8(id - 2), dy: 1, flip: id % 2 == 0),
                                metadata: EntryMetadata(label: Int32(id), pY: 0.2, margin: -0.5, loss: 1.5))
            }
            try bank.sealGeneration()
        }
        bank.close()
        return try FileManager.default.contentsOfDirectory(atPath: url.path).filter { $0.hasSuffix(".mbs") || $0.hasSuffix(".mbm") }
            .sorted().map { ($0, [UInt8](try Data(contentsOf: url.appendingPathComponent($0)))) }
    }

    /// Writes `files` into a fresh directory with file `target` mutated; returns the bank path.
    private func mutatedBank(_ files: [(name: String, bytes: [UInt8])], mutator m: inout Mutator, index: Int) throws -> URL {
        let url = dir.url.appendingPathComponent("bank-\(index)")
        try? FileManager.default.removeItem(at: url)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        var out = Dictionary(uniqueKeysWithValues: files.map { ($0.name, $0.bytes) })
        let target = files[m.random.below(files.count)].name
        var mutant = m.mutate(out[target]!)
        if m.random.below(2) == 0 {
            if target == "manifest.mbm" {
                mutant = BankFixup.manifest(mutant)
            } else {
                mutant = BankFixup.segment(mutant)
                let g = UInt64(target.dropFirst(4).dropLast(4))!
                out["manifest.mbm"] = BankFixup.manifest(out["manifest.mbm"]!, generation: g, segment: mutant)
            }
        }
        out[target] = mutant
        for (name, bytes) in out { try Data(bytes).write(to: url.appendingPathComponent(name)) }
        return url
    }

    private func assertHint(_ error: MembankError, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertTrue(error.description.contains("\nhint: "), "\(what): \(error)", file: file, line: line)
    }

    /// Every subcommand in-process; returns true when the bank opened.
    @discardableResult
    private func exercise(_ bank: URL) -> Bool {
        let report = VerifyReport.run(path: bank.path)
        for p in report.problems { XCTAssertTrue(p.message.contains("\nhint: "), "verify: \(p.message)") }
        XCTAssertNoThrow(try JSONEncoder().encode(report), "verify --json")
        for name in (try? FileManager.default.contentsOfDirectory(atPath: bank.path)) ?? [] {
            let bytes = [UInt8]((try? Data(contentsOf: bank.appendingPathComponent(name))) ?? Data())
            _ = name.hasSuffix(".mbm") ? BankDump.manifest(bytes) : BankDump.segment(bytes)
        }
        let inspected: InspectedBank
        do {
            inspected = try InspectedBank.open(bank.path)
        } catch {
            assertHint(error, "open")
            XCTAssertFalse(report.intact, "verify called a bank intact that does not open")
            return false
        }
        func run(_ what: String, _ body: () throws(MembankError) -> Void) {
            do throws(MembankError) { try body() } catch { assertHint(error, what) }
        }
        run("info") { () throws(MembankError) in let info = try BankInfo.compute(inspected); _ = info.text; XCTAssertNoThrow(try JSONEncoder().encode(info)) }
        for g in inspected.generations {
            run("stats") { () throws(MembankError) in
                let s = try BankStatistics.compute(inspected, generation: g)
                _ = BankStatistics.text(s)
                XCTAssertNoThrow(try JSONEncoder().encode(s), "stats --json")
            }
        }
        run("export") { () throws(MembankError) in
            let e = try BankExport.collect(inspected, generation: nil)
            try e.deltas.write(to: dir.url.appendingPathComponent("x.npy").path)
        }
        run("diff --all") { () throws(MembankError) in
            let p = try BankDrift.population(inspected)
            _ = BankDrift.text(p)
            _ = DriftPlot(population: p).render()
        }
        run("diff ID") { () throws(MembankError) in
            let d = try BankDrift.sample(inspected, id: 0)
            _ = BankDrift.text(d)
            _ = DriftPlot(sample: d).render()
        }
        run("render") { () throws(MembankError) in
            let source = try ViewSource(bank: inspected, dataSpec: nil)
            let g = try inspected.resolveGeneration(nil)
            var rows: [SampleTriptych] = []
            for id in inspected.ids(in: g).prefix(2) { rows.append(try source.triptych(id: id, generation: g)) }
            if !rows.isEmpty { _ = ViewGrid.image(rows, shape: inspected.config.shape, scale: 1); _ = ViewGrid.legend(rows) }
        }
        return true
    }

    func test_fuzz_everySubcommandInProcess_neverTraps() throws {
        var opened = 0, executions = 0
        for (k, (codec, norm)) in [(BankCodec.f32, PerturbationNorm.linf), (.levels, .l2), (.q8rcn, .linf)].enumerated() {
            let files = try baseBank(codec: codec, norm: norm)
            let base = dir.url.appendingPathComponent("base-\(codec.rawValue)")
            XCTAssertTrue(exercise(base), "the base bank opens")
            XCTAssertTrue(VerifyReport.run(path: base.path).intact)
            if codec == .q8rcn {
                let reader = try BankReader.open(at: base)
                let n = reader.config.elementCount
                for g in reader.generations {
                    for id in 0..<6 {
                        guard let e = try reader.entry(id: id, generation: g) else { continue }
                        XCTAssertLessThan(e.info.storedBytes, 4 + n, "q8rcn base record \(id) is range-coded (layout 0; layout 1 is 4 + n bytes)")
                    }
                }
            }
            let seed = Fuzz.seed &+ UInt64(k)
            FileHandle.standardError.write(Data("fuzz membank: \(codec.rawValue) bank, seed \(seed)\n".utf8))
            var m = Mutator(seed: seed, corpus: files.map(\.bytes))
            for i in 0..<Fuzz.iterations(default: Self.defaultMutants) {
                let bank = try mutatedBank(files, mutator: &m, index: i)
                if exercise(bank) { opened += 1 }
                executions += 1
                try? FileManager.default.removeItem(at: bank)
            }
        }
        XCTAssertGreaterThan(opened, executions / 10, "too few mutated banks open: \(opened)/\(executions)")
    }

    func test_fuzz_theExecutable_exitsWithAStatus_neverASignal() throws {
        let files = try baseBank(codec: .f32, norm: .linf)
        var m = Mutator(seed: Fuzz.seed &+ 99, corpus: files.map(\.bytes))
        for i in 0..<Self.executableMutants {
            let bank = try mutatedBank(files, mutator: &m, index: i)
            let png = dir.url.appendingPathComponent("r.png").path, npy = dir.url.appendingPathComponent("e.npy").path
            let commands: [[String]] = [
                ["info", bank.path], ["verify", bank.path], ["stats", bank.path, "--json"], ["export", bank.path, "--npy", npy],
                ["diff", bank.path, "--all"], ["render", bank.path, "--random", "2", "--png", png],
                ["dump", bank.appendingPathComponent("gen-0000000001.mbs").path],
                ["dump", bank.appendingPathComponent("manifest.mbm").path],
            ]
            for c in commands {
                let r = try BuiltExecutable.run("membank", c)
                XCTAssertTrue(r.status == 0 || r.status == 1, "\(c): status \(r.status) (a signal?), stderr: \(r.err)")
                if r.status == 1 && c[0] != "verify" {
                    let lines = r.err.split(separator: "\n", omittingEmptySubsequences: false)
                    XCTAssertTrue(lines.first?.hasPrefix("membank: error: ") ?? false, "\(c): \(r.err)")
                    XCTAssertTrue(lines.count >= 2 && lines[1].hasPrefix("hint: "), "\(c): one line plus a hint: \(r.err)")
                }
            }
        }
    }
}
