// StartNoiseFieldsTests.swift: `membank dump` and `membank info` name the manifest v1.1 fields of a
// `q8rcn` bank (docs/format/membank-v1.md §4: noiseSeed, noiseSigma, noiseGenerator, reserved2)
// instead of listing them as an unnamed header extension; a v1.0 (q8) bank shows none of them.

import Foundation
import MembankCore
import MemoryBank
import Tensors
import XCTest
import _TestSupport

final class StartNoiseFieldsTests: XCTestCase {
    static let noise = BankStartNoise(seed: 0x1234_5678_9ABC_DEF0, sigma: 0.001)

    /// A bank of 4 samples, 1×4×4, ε = 8/255, one generation (1) holding samples 0 and 2.
    private func makeBank(_ codec: BankCodec, at dir: URL) throws {
        let config = BankConfig(sampleCount: 4, shape: [1, 4, 4], epsilon: 8.0 / 255, norm: .linf, codec: codec,
                                window: 1, stride: 1, createdBy: "labels", startNoise: codec == .q8rcn ? Self.noise : nil)
        let bank = try Bank.create(at: dir, config: config, options: Bank.Options(queueCapacity: 4, sync: false))
        try bank.beginGeneration(1)
        for id in [0, 2] {
            let delta = (0..<16).map { Float(($0 * 5 + id) % 9 - 4) / 4 * config.epsilon }
            try bank.append(id: id, delta: delta, view: ViewParameters(dx: 0, dy: 0, flip: false),
                            metadata: EntryMetadata(label: 1, pY: 0.5, margin: 0, loss: 1))
        }
        _ = try bank.sealGeneration()
        bank.close()
    }

    private func membank(_ args: [String]) throws -> String {
        let r = try BuiltExecutable.run("membank", args)
        XCTAssertEqual(r.status, 0, "membank \(args.joined(separator: " ")): \(r.err)")
        return r.out
    }

    func test_dump_namesTheStartNoiseFields_ofAV1_1Manifest_andTheListingIsTheFile() throws {
        let tmp = TempDirectory("noise-labels-dump")
        try makeBank(.q8rcn, at: tmp.path("bank"))
        let listing = try membank(["dump", tmp.path("bank").path])
        let lines = listing.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.first { $0.hasPrefix("000048") }, "000048  F0 DE BC 9A 78 56 34 12                          noiseSeed 0x123456789ABCDEF0")
        XCTAssertEqual(lines.first { $0.hasPrefix("000050") }, "000050  6F 12 83 3A                                      noiseSigma 0.001")
        XCTAssertEqual(lines.first { $0.hasPrefix("000054") }, "000054  01                                               noiseGenerator 1 (Irwin–Hall 12)")
        XCTAssertEqual(lines.first { $0.hasPrefix("000055") }, "000055  00 00 00                                         reserved2 0")
        XCTAssertFalse(listing.contains("header extension"), listing)
        XCTAssert(listing.contains("versionMinor 1") && listing.contains("headerBytes 88"), listing)
        let manifest = [UInt8](try Data(contentsOf: tmp.path("bank").appendingPathComponent("manifest.mbm")))
        XCTAssertEqual(BankDump.bytes(fromListing: listing), manifest, "every byte listed once, in order")

        try makeBank(.q8, at: tmp.path("q8"))
        let q8 = try membank(["dump", tmp.path("q8").path])
        XCTAssertFalse(q8.contains("noise"), "a v1.0 manifest has no start noise: \(q8)")
    }

    func test_info_reportsTheStartNoise_inTextAndJSON_onlyForQ8rcn() throws {
        let tmp = TempDirectory("noise-labels-info")
        try makeBank(.q8rcn, at: tmp.path("bank"))
        let text = try membank(["info", tmp.path("bank").path])
        XCTAssert(text.contains("  codec         q8rcn\n  start noise   noiseSeed 0x123456789ABCDEF0, noiseSigma σ = 0.001, "
                                + "noiseGenerator 1 (Irwin–Hall 12)\n"), text)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(try membank(["info", tmp.path("bank").path, "--json"]).utf8)) as? [String: Any])
        XCTAssertEqual((json["noiseSeed"] as? NSNumber)?.uint64Value, 0x1234_5678_9ABC_DEF0)
        XCTAssertEqual(try XCTUnwrap(json["noiseSigma"] as? Double), 0.001, accuracy: 1e-9)
        XCTAssertEqual(json["noiseGenerator"] as? Int, 1)

        try makeBank(.q8, at: tmp.path("q8"))
        XCTAssertFalse(try membank(["info", tmp.path("q8").path]).contains("start noise"))
        let q8 = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(try membank(["info", tmp.path("q8").path, "--json"]).utf8)) as? [String: Any])
        XCTAssertNil(q8["noiseSeed"], "absent for a bank without start noise")
    }
}
