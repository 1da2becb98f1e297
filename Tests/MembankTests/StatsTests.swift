// StatsTests.swift: `membank stats` on the fixture bank: every number recomputed here from the raw
// decoded entries (BankReader.entry) with independent code: histogram counts, L∞/L2 summaries,
// saturated share, p_y / margin summaries, per-class figures; and `membank info` sizes.

import Foundation
import MembankCore
import MemoryBank
import XCTest

final class StatsTests: XCTestCase {
    private func rawEntries(generation g: Int) throws -> [BankEntry] {
        let reader = try BankReader.open(at: MembankFixture.shared.bank)
        return try (0..<reader.config.sampleCount).compactMap { try reader.entry(id: $0, generation: g) }
    }

    private func median(_ v: [Double]) -> Double {
        let s = v.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    func test_stats_matchNumbersRecomputedFromTheRawEntries() throws {
        let bank = try InspectedBank.open(MembankFixture.shared.bank.path)
        for g in [0, 2, 3] {
            let s = try BankStatistics.compute(bank, generation: g, bins: 21)
            let entries = try rawEntries(generation: g)
            XCTAssertEqual(entries.count, MembankFixture.ids(generation: g).count)
            XCTAssertEqual(s.entries, entries.count)
            XCTAssertEqual(s.values, entries.count * 784)

            // Histogram: 21 bins of width 2ε/21; q8 values at ±127·(ε/127) may round one ulp past ±ε.
            let eps = Double(MembankFixture.epsilon)
            var counts = [Int](repeating: 0, count: 21)
            var saturated = 0
            for e in entries {
                for x in e.delta.map(Double.init) {
                    XCTAssertLessThanOrEqual(abs(x), eps * (1 + 1e-6), "δ inside the ε-ball")
                    var k = Int(((x + eps) * 21 / (2 * eps)).rounded(.down))
                    k = min(20, max(0, k))
                    counts[k] += 1
                    if abs(x) >= eps - eps / 254 { saturated += 1 }
                }
            }
            XCTAssertEqual(s.histogram.map(\.count), counts, "generation \(g)")
            XCTAssertEqual(s.outsideRange, 0)
            XCTAssertEqual(s.histogram.first!.lower, -eps, accuracy: 1e-12)
            XCTAssertEqual(s.histogram.last!.upper, eps, accuracy: 1e-12)
            XCTAssertEqual(s.saturation.count, saturated)
            XCTAssertEqual(s.saturation.share, Double(saturated) / Double(s.values), accuracy: 1e-12)
            XCTAssertGreaterThan(saturated, 0, "PGD with 10+ sign steps saturates some pixels")

            let linf = entries.map { e in e.delta.map { Double(abs($0)) }.max()! }
            let l2 = entries.map { e in e.delta.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot() }
            XCTAssertEqual(s.linf.max!, linf.max()!, accuracy: 1e-9)
            XCTAssertEqual(s.linf.min!, linf.min()!, accuracy: 1e-9)
            XCTAssertEqual(s.linf.mean!, linf.reduce(0, +) / Double(linf.count), accuracy: 1e-9)
            XCTAssertEqual(s.l2.mean!, l2.reduce(0, +) / Double(l2.count), accuracy: 1e-9)
            XCTAssertEqual(s.l2.median!, median(l2), accuracy: 1e-9)

            let pY = entries.map { Double($0.info.metadata.pY) }, margin = entries.map { Double($0.info.metadata.margin) }
            XCTAssertEqual(s.pY.mean!, pY.reduce(0, +) / Double(pY.count), accuracy: 1e-9)
            XCTAssertEqual(s.margin.median!, median(margin), accuracy: 1e-9)
            XCTAssertEqual(s.misclassifiedShare, Double(margin.filter { $0 < 0 }.count) / Double(margin.count), accuracy: 1e-12)
            XCTAssert(pY.allSatisfy { $0 >= 0 && $0 <= 1 })

            // Per class.
            let labels = Set(entries.map { Int($0.info.metadata.label) }).sorted()
            XCTAssertEqual(s.perClass.map(\.label), labels)
            for c in s.perClass {
                let members = entries.filter { Int($0.info.metadata.label) == c.label }
                XCTAssertEqual(c.entries, members.count)
                let meanL2 = members.map { e in e.delta.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot() }.reduce(0, +)
                    / Double(members.count)
                XCTAssertEqual(c.meanL2, meanL2, accuracy: 1e-9)
                XCTAssertEqual(c.meanMargin, members.map { Double($0.info.metadata.margin) }.reduce(0, +) / Double(members.count),
                               accuracy: 1e-6)
            }
            XCTAssertEqual(s.perClass.reduce(0) { $0 + $1.entries }, s.entries)
        }
    }

    func test_quantile_isNumPyLinear() {
        XCTAssertEqual(Summary.quantile([1, 2, 3, 4], 0.5), 2.5)
        XCTAssertEqual(Summary.quantile([1, 2, 3, 4], 0.1), 1.3, accuracy: 1e-12)
        XCTAssertEqual(Summary.quantile([5], 0.9), 5)
        let s = Summary([3, 1, 2])
        XCTAssertEqual(s.count, 3)
        XCTAssertEqual(s.mean, 2)
        XCTAssertEqual(s.median, 2)
        XCTAssertNil(Summary([]).mean)
    }

    func test_info_sizesAddUpToTheFilesOnDisk() throws {
        let bankURL = MembankFixture.shared.bank
        let info = try BankInfo.compute(try InspectedBank.open(bankURL.path))
        XCTAssertEqual(info.generations.map(\.generation), MembankFixture.generations)
        XCTAssertEqual(info.generations.map(\.entries), MembankFixture.generations.map { MembankFixture.ids(generation: $0).count })
        XCTAssertEqual(info.entries, info.generations.reduce(0) { $0 + $1.entries })
        XCTAssertEqual(info.shape, [1, 28, 28])
        XCTAssertEqual(info.codec, "q8")
        XCTAssertEqual(info.epsilon, 0.3, accuracy: 1e-7)
        let files = try FileManager.default.contentsOfDirectory(atPath: bankURL.path).filter { $0.hasSuffix(".mbs") || $0.hasSuffix(".mbm") }
        let onDisk = try files.reduce(0) { $0 + (try FileManager.default.attributesOfItem(atPath: bankURL.appendingPathComponent($1).path)[.size] as! Int) }
        XCTAssertEqual(info.bytesOnDisk, onDisk)
        XCTAssertEqual(info.bytesPerEntry!, Double(onDisk) / Double(info.entries), accuracy: 1e-9)
        XCTAssertEqual(info.compressionRatio!, Double(4 * 784) / info.bytesPerEntry!, accuracy: 1e-9)
        // q8 payload: 784 bytes raw, LZ4 only when it saves ≥ 10%.
        for g in info.generations {
            XCTAssertEqual(g.rawPayloadBytes, 784 * g.entries)
            XCTAssertLessThanOrEqual(g.payloadBytes, g.rawPayloadBytes)
            XCTAssertLessThan(g.recordBytes, g.segmentBytes)
        }
        guard case .object(let fields) = info.createdBy else { return XCTFail("createdBy is JSON: \(info.createdBy)") }
        XCTAssertEqual(fields.first?.key, "data")
        XCTAssertEqual(fields.first?.value, .string("demo"))
        XCTAssert(info.text.contains("compression"), info.text)
    }

    func test_statsJSON_fromTheBinary_hasOneObjectPerGeneration() throws {
        let r = try MembankTestSupport.run(["stats", MembankFixture.shared.bank.path, "--json"])
        XCTAssertEqual(r.status, 0, r.err)
        let array = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [[String: Any]])
        XCTAssertEqual(array.map { $0["generation"] as? Int }, MembankFixture.generations)
        let text = try MembankTestSupport.run(["stats", MembankFixture.shared.bank.path, "--generation", "3"])
        XCTAssertEqual(text.status, 0, text.err)
        XCTAssert(text.out.contains("histogram") && text.out.contains("per class"), text.out)
    }
}
