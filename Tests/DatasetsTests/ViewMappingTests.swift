// ViewMappingTests.swift: moving values between two augmented views of one image (ViewMapping.swift,
// docs/warm-start.md): a round trip A → B → A restores exactly the pixels where the views overlap and
// writes no other; the mapping agrees with `renderView` (view A's rendering mapped into B is B's
// rendering wherever they overlap, on exactly (H − |Δdy|)·(W − |Δdx|) pixels); equal views map as
// the identity.

import Datasets
import Foundation
import Tensors
import XCTest
import _TestSupport

final class ViewMappingTests: XCTestCase {
    /// A random CIFAR-style view (padding 4, flip).
    private func randomView(_ g: inout SplitMix64) -> ViewParameters {
        ViewParameters(dx: Int8(g.nextInt(below: 9) - 4), dy: Int8(g.nextInt(below: 9) - 4), flip: g.next() >> 63 == 1)
    }

    func test_roundTrip_restoresExactlyTheOverlappingPixels_andWritesNoOther() {
        var g = SplitMix64(seed: 21)
        let c = 3, h = 8, w = 7
        for trial in 0..<200 {
            let a = randomView(&g), b = randomView(&g)
            let source = Tensor.randomUniform(shape: [1, c, h, w], low: -1, high: 1, rng: &g)
            let sentinel: Float = 9
            var inB = Tensor(shape: [1, c, h, w], repeating: sentinel)
            let forward = ViewMapping.transfer(source, row: 0, from: a, into: &inB, row: 0, to: b)
            var back = Tensor(shape: [1, c, h, w], repeating: sentinel)
            let backward = ViewMapping.transfer(inB, row: 0, from: b, into: &back, row: 0, to: a)
            XCTAssertEqual(forward, backward, "trial \(trial): overlap is symmetric")
            var overlap = 0
            for y in 0..<h {
                for x in 0..<w {
                    // Pixel (y, x) of A overlaps B iff some pixel of B maps to it.
                    let seen = ViewMapping.sourcePixel(y: y, x: x, height: h, width: w, from: b, to: a) != nil
                    if seen { overlap += 1 }
                    for ch in 0..<c {
                        let i = ch * h * w + y * w + x
                        if seen {
                            XCTAssertEqual(back[flat: i], source[flat: i], "trial \(trial) \(a) → \(b): pixel (\(y), \(x)) not restored")
                        } else {
                            XCTAssertEqual(back[flat: i], sentinel, "trial \(trial) \(a) → \(b): pixel (\(y), \(x)) written")
                        }
                    }
                }
            }
            XCTAssertEqual(overlap, forward)
            // A view's window in the padded frame is rows [dy, dy + H) × columns [dx, dx + W), flipped or
            // not (a flip reverses the order of the columns, not their range): the overlap is the
            // intersection of two such windows.
            let rows = max(0, h - abs(Int(a.dy) - Int(b.dy))), columns = max(0, w - abs(Int(a.dx) - Int(b.dx)))
            XCTAssertEqual(forward, rows * columns, "trial \(trial)")
        }
    }

    func test_equalViews_mapAsTheIdentity() {
        var g = SplitMix64(seed: 5)
        let v = ViewParameters(dx: 2, dy: -3, flip: true)
        let source = Tensor.randomUniform(shape: [2, 1, 5, 6], low: 0, high: 1, rng: &g)
        var target = Tensor(zeros: [2, 1, 5, 6])
        XCTAssertEqual(ViewMapping.transfer(source, row: 1, from: v, into: &target, row: 0, to: v), 30)
        XCTAssertEqual(target.rows(0..<1).scalars, source.rows(1..<2).scalars)
        XCTAssertEqual(target.rows(1..<2).scalars, [Float](repeating: 0, count: 30), "another row was written")
    }

    func test_mappingOneRendering_givesTheOtherViewsRendering_whereTheyOverlap() throws {
        let tmp = TempDirectory("view-mapping")
        let d = try Dataset.openCIFAR10(directory: Fixtures.writeCIFAR10(in: tmp.url).path, partition: .train)
        let s = d.shape
        var g = SplitMix64(seed: 9)
        for trial in 0..<40 {
            let a = randomView(&g), b = randomView(&g), id = trial % d.count
            let ra = d.renderView(id: id, view: a).reshaped([1] + s.dimensions)
            let rb = d.renderView(id: id, view: b)
            let sentinel: Float = -1
            var mapped = Tensor(shape: [1] + s.dimensions, repeating: sentinel)
            let count = ViewMapping.transfer(ra, row: 0, from: a, into: &mapped, row: 0, to: b)
            // The two views' windows in the padded frame intersect in (H − |Δdy|)·(W − |Δdx|) pixels
            // (flipped or not); every channel of each is written, so the check below cannot pass empty.
            let (c, h, w) = (s.dimensions[0], s.dimensions[1], s.dimensions[2])
            let overlap = max(0, h - abs(Int(a.dy) - Int(b.dy))) * max(0, w - abs(Int(a.dx) - Int(b.dx)))
            XCTAssertEqual(count, overlap, "trial \(trial) \(a) → \(b): pixels transferred")
            var written = 0
            for i in 0..<mapped.count where mapped[flat: i] != sentinel {
                written += 1
                XCTAssertEqual(mapped[flat: i], rb[flat: i], "trial \(trial) \(a) → \(b) at flat \(i)")
            }
            XCTAssertEqual(written, overlap * c, "trial \(trial) \(a) → \(b): values written")
        }
    }
}
