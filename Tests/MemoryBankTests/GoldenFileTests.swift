// GoldenFileTests.swift: the worked example of docs/format/membank-v1.md §10. A tiny bank written with
// fixed inputs (no timestamps in the format) must equal the committed golden files byte for byte, and
// the annotated listings in the spec must equal `BankDump` of those files. Regenerate (after a
// deliberate format change only) with MEMBANK_REGENERATE_GOLDEN=1.

import Foundation
@testable import MemoryBank
import Tensors
import _TestSupport
import XCTest

final class GoldenFileTests: XCTestCase {
    private let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    private var fixtures: URL { here.appendingPathComponent("Fixtures") }
    private var spec: URL { here.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("docs/format/membank-v1.md") }

    /// The example bank: N = 2, 1×2×2, ε = 0.5, L∞, q8, K = 1, s = 1, generation 7 holding sample 1.
    static func writeGoldenBank(at dir: URL) throws {
        let config = BankConfig(sampleCount: 2, shape: [1, 2, 2], epsilon: 0.5, norm: .linf, codec: .q8,
                                window: 1, stride: 1, createdBy: "golden")
        let bank = try Bank.create(at: dir, config: config, options: Bank.Options(queueCapacity: 4, sync: false))
        try bank.beginGeneration(7)
        try bank.append(id: 1, delta: [0.5, -0.25, 0.001, -0.6], view: ViewParameters(dx: 2, dy: -1, flip: true),
                        metadata: EntryMetadata(label: 3, pY: 0.25, margin: -1.5, loss: 2))
        try bank.sealGeneration()
        bank.close()
    }

    private func section(_ name: String, of text: String) -> (range: Range<String.Index>, body: String)? {
        guard let begin = text.range(of: "<!-- \(name):begin -->\n"), let end = text.range(of: "<!-- \(name):end -->") else { return nil }
        return (begin.upperBound..<end.lowerBound, String(text[begin.upperBound..<end.lowerBound]))
    }

    private func fenced(_ listing: String) -> String { "```\n" + listing + "```\n" }

    func test_goldenBank_matchesTheCommittedFiles_andTheSpecListings() throws {
        let dir = TempDirectory("bank-golden")
        try Self.writeGoldenBank(at: dir.url)
        let segment = try BankFixtures.readBytes(dir.url.appendingPathComponent(BankLayout.segmentName(7)))
        let manifest = try BankFixtures.readBytes(dir.url.appendingPathComponent(BankLayout.manifestName))
        let segmentFixture = fixtures.appendingPathComponent("golden-v1.mbs")
        let manifestFixture = fixtures.appendingPathComponent("golden-v1.mbm")

        if ProcessInfo.processInfo.environment["MEMBANK_REGENERATE_GOLDEN"] == "1" {
            try FileManager.default.createDirectory(at: fixtures, withIntermediateDirectories: true)
            try Data(segment).write(to: segmentFixture)
            try Data(manifest).write(to: manifestFixture)
            var text = try String(contentsOf: spec, encoding: .utf8)
            for (name, listing) in [("golden-segment", BankDump.segment(segment)), ("golden-manifest", BankDump.manifest(manifest))] {
                let s = try XCTUnwrap(section(name, of: text), "markers \(name) missing in the spec")
                text.replaceSubrange(s.range, with: fenced(listing))
            }
            try text.write(to: spec, atomically: true, encoding: .utf8)
        }

        XCTAssertEqual(segment, try BankFixtures.readBytes(segmentFixture), "segment differs from the golden file")
        XCTAssertEqual(manifest, try BankFixtures.readBytes(manifestFixture), "manifest differs from the golden file")
        let text = try String(contentsOf: spec, encoding: .utf8)
        let segmentListing = try XCTUnwrap(section("golden-segment", of: text)).body
        let manifestListing = try XCTUnwrap(section("golden-manifest", of: text)).body
        XCTAssertEqual(BankDump.bytes(fromListing: segmentListing), segment, "spec §10 segment listing ≠ golden file")
        XCTAssertEqual(BankDump.bytes(fromListing: manifestListing), manifest, "spec §10 manifest listing ≠ golden file")
        XCTAssertEqual(segmentListing, fenced(BankDump.segment(segment)), "spec §10 annotations are stale")
        XCTAssertEqual(manifestListing, fenced(BankDump.manifest(manifest)))
    }

    func test_goldenBank_decodesToTheDocumentedValues() throws {
        let dir = TempDirectory("bank-golden-read")
        try Self.writeGoldenBank(at: dir.url)
        let reader = try BankReader.open(at: dir.url)
        XCTAssertNil(try reader.entry(id: 0, generation: 7))
        let e = try XCTUnwrap(reader.entry(id: 1, generation: 7))
        let scale: Float = 0.5 / 127
        XCTAssertEqual(e.delta, [127, -64, 0, -127].map { Float($0) * scale })
        XCTAssertEqual(e.info.clampedCount, 1)
        XCTAssertEqual(e.info.view, ViewParameters(dx: 2, dy: -1, flip: true))
        XCTAssertEqual(e.info.metadata, EntryMetadata(label: 3, pY: 0.25, margin: -1.5, loss: 2))
        XCTAssertFalse(e.info.lz4)
    }
}
