// PictureTests.swift: `membank show` and `membank render` write PNGs that decode (signature, chunk
// CRCs, IHDR, zlib/Adler-32 through the Datasets inflater, filter bytes) to exactly the pixels
// expected from the data set's view, the bank's δ and the documented layout; the CRC-32 and Adler-32
// check values; and `diff --svg` writes an SVG plot.

import Datasets
import Foundation
import MembankCore
import MemoryBank
import XCTest
import _TestSupport

final class PictureTests: XCTestCase {
    private func byte(_ v: Float) -> UInt8 { UInt8((min(1, max(0, v)) * 255).rounded()) }

    /// The expected three panels of (id, generation), computed from the data set and the raw entry.
    private func expectedPanels(id: Int, generation: Int) throws -> [[UInt8]] {
        let reader = try BankReader.open(at: MembankFixture.shared.bank)
        let entry = try XCTUnwrap(try reader.entry(id: id, generation: generation))
        let view = entry.info.view
        XCTAssertEqual(view, MembankFixture.augmentation.view(seed: MembankFixture.seed, epoch: generation, id: id))
        let clean = try DataSource.demo.open(.train).renderView(id: id, view: view).scalars
        let eps = MembankFixture.epsilon
        return [clean.map(byte), entry.delta.map { byte(0.5 + $0 / (2 * eps)) }, zip(clean, entry.delta).map { byte($0 + $1) }]
    }

    private func assertPanels(_ png: MembankTestSupport.DecodedPNG, row: Int, scale: Int, expected: [[UInt8]],
                              line: UInt = #line) {
        let gap = 4, pw = 28 * scale, ph = 28 * scale
        var mismatches = 0
        for (k, panel) in expected.enumerated() {
            let x0 = gap + k * (pw + gap), y0 = gap + row * (ph + gap)
            for y in 0..<ph {
                for x in 0..<pw where png.pixels[(y0 + y) * png.width + x0 + x] != panel[(y / scale) * 28 + x / scale] {
                    mismatches += 1
                }
            }
        }
        XCTAssertEqual(mismatches, 0, "pixels differing from the expected panels in row \(row)", line: line)
    }

    func test_show_writesAPNGThatDecodesToTheCleanViewAmplifiedDeltaAndAdversarial() throws {
        let dir = TempDirectory("membank-show")
        let out = dir.path("s.png").path
        let r = try MembankTestSupport.run(["show", MembankFixture.shared.bank.path, "17", "--generation", "1", "--png", out, "--scale", "3"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssert(r.out.contains("17"), r.out)
        let png = try MembankTestSupport.decodePNG([UInt8](try Data(contentsOf: URL(fileURLWithPath: out))))
        XCTAssertEqual(png.chunkTypes, ["IHDR", "IDAT", "IEND"])
        XCTAssertEqual(png.channels, 1)
        XCTAssertEqual(png.width, 3 * 84 + 16)
        XCTAssertEqual(png.height, 84 + 8)
        XCTAssertTrue(png.pixels[0] == 255 && png.pixels[png.pixels.count - 1] == 255, "white margin")
        let panels = try expectedPanels(id: 17, generation: 1)
        XCTAssertNotEqual(panels[0], panels[2], "the perturbation changes the image")
        assertPanels(png, row: 0, scale: 3, expected: panels)
    }

    func test_render_gridOfSeveralIDs_andRandomSelection() throws {
        let dir = TempDirectory("membank-render")
        let out = dir.path("g.png").path
        let r = try MembankTestSupport.run(["render", MembankFixture.shared.bank.path, "--ids", "3,40-41", "--png", out])
        XCTAssertEqual(r.status, 0, r.err)
        let png = try MembankTestSupport.decodePNG([UInt8](try Data(contentsOf: URL(fileURLWithPath: out))))
        XCTAssertEqual(png.height, 3 * 112 + 4 * 4)
        for (row, id) in [3, 40, 41].enumerated() {
            assertPanels(png, row: row, scale: 4, expected: try expectedPanels(id: id, generation: 3))
        }
        let bank = try InspectedBank.open(MembankFixture.shared.bank.path)
        let a = try ViewGrid.randomIDs(from: bank.ids(in: 2), count: 5, seed: 9)
        XCTAssertEqual(a, try ViewGrid.randomIDs(from: bank.ids(in: 2), count: 5, seed: 9), "seeded")
        XCTAssertEqual(Set(a).count, 5)
        XCTAssert(a.allSatisfy { $0 % 10 != 0 && $0 < MembankFixture.trainedSamples }, "\(a) are present in generation 2")
        let rr = try MembankTestSupport.run(["render", MembankFixture.shared.bank.path, "--random", "4", "--generation", "2",
                                             "--png", dir.path("r.png").path])
        XCTAssertEqual(rr.status, 0, rr.err)
        XCTAssertEqual(try MembankTestSupport.decodePNG([UInt8](try Data(contentsOf: dir.path("r.png")))).height, 4 * 112 + 5 * 4)
    }

    func test_rgbImage_andLargeImages_encodeAcrossSeveralStoredBlocks() throws {
        // 200×120 RGB: 72,120 filtered bytes, so two stored blocks.
        var pixels = [UInt8](repeating: 0, count: 200 * 120 * 3)
        for i in pixels.indices { pixels[i] = UInt8(truncatingIfNeeded: i &* 31 &+ i / 7) }
        let image = PNGImage(width: 200, height: 120, channels: 3, pixels: pixels)
        let decoded = try MembankTestSupport.decodePNG(image.encode())
        XCTAssertEqual(decoded.channels, 3)
        XCTAssertEqual(decoded.width, 200)
        XCTAssertEqual(decoded.pixels, pixels)
    }

    func test_checksums_matchTheirCheckValues() {
        XCTAssertEqual(CRC32.checksum(Array("123456789".utf8)), 0xCBF4_3926)
        XCTAssertEqual(MembankTestSupport.bitwiseCRC32(Array("123456789".utf8)), 0xCBF4_3926)
        XCTAssertEqual(CRC32.checksum(Array("IEND".utf8)), 0xAE42_6082)
    }

    func test_amplification_mapsTheEpsilonBallToTheUnitInterval() {
        XCTAssertEqual(SampleTriptych.amplify([-0.3, 0, 0.3, 0.15, 0.4], epsilon: 0.3, norm: .linf), [0, 0.5, 1, 0.75, 1])
        XCTAssertEqual(SampleTriptych.amplify([-0.1, 0.05], epsilon: 2, norm: .l2), [0, 0.75])
    }

    func test_diffSVG_isWritten() throws {
        let dir = TempDirectory("membank-svg")
        let out = dir.path("drift.svg").path
        let r = try MembankTestSupport.run(["diff", MembankFixture.shared.bank.path, "--all", "--svg", out])
        XCTAssertEqual(r.status, 0, r.err)
        let svg = try String(contentsOfFile: out, encoding: .utf8)
        XCTAssert(svg.hasPrefix("<svg") && svg.hasSuffix("</svg>\n"))
        XCTAssertEqual(svg.components(separatedBy: "<polyline").count - 1, 5, "3 cosine and 2 distance series")
        let one = try MembankTestSupport.run(["diff", MembankFixture.shared.bank.path, "10", "--svg", dir.path("one.svg").path])
        XCTAssertEqual(one.status, 0, one.err)
    }
}
