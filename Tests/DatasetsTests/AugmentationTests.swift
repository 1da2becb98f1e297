// AugmentationTests.swift: recorded views: the crop/flip formula on known pixels, the sampling rule
// (ranges, determinism per (seed, epoch, id)), and the property the memory bank relies on: rebuilding
// a view from (sample ID, parameters) equals the augmented batch row bit for bit, for every layout.

import Datasets
import Foundation
import Tensors
import XCTest
import _TestSupport

final class AugmentationTests: XCTestCase {
    /// Float value of the pattern pixel, or 0 outside the image.
    func expected(_ n: Int, _ c: Int, _ y: Int, _ x: Int, _ s: ImageShape) -> Float {
        (y < 0 || y >= s.height || x < 0 || x >= s.width) ? 0 : Float(Fixtures.pixel(n, c, y, x)) / 255
    }

    func test_renderView_followsTheCropAndFlipFormula() throws {
        let tmp = TempDirectory("aug")
        let root = Fixtures.writeCIFAR10(in: tmp.url)
        let d = try Dataset.openCIFAR10(directory: root.path, partition: .train)
        let s = d.shape
        for view in [ViewParameters.identity, ViewParameters(dx: 3, dy: -2), ViewParameters(dx: -4, dy: 4, flip: true),
                     ViewParameters(dx: 0, dy: 0, flip: true), ViewParameters(dx: 40, dy: 0)] {
            let t = d.renderView(id: 4, view: view)
            XCTAssertEqual(t.shape, [3, 32, 32])
            for c in 0..<3 { for y in 0..<32 { for x in 0..<32 {
                let sx = (view.flip ? 31 - x : x) + Int(view.dx)
                let want = expected(4, c, y + Int(view.dy), sx, s)
                if t[c, y, x] != want { return XCTFail("view \(view) c \(c) y \(y) x \(x): \(t[c, y, x]) != \(want)") }
            } } }
        }
    }

    func test_identityView_isTheImageBytesOver255() throws {
        let tmp = TempDirectory("aug")
        let (i, l) = Fixtures.writeMNIST(in: tmp.url, prefix: "train", labels: [1, 2])
        let d = try Dataset.openIDX(images: i.path, labels: l.path)
        XCTAssertEqual(d.imageTensor(at: 1).scalars, d.image(at: 1).map { Float($0) / 255 })
    }

    func test_sampledViews_stayInRange_coverAllOffsets_andFlipAboutHalfTheTime() {
        let cfg = AugmentationConfig.cifar
        var seenDx = Set<Int8>(), seenDy = Set<Int8>(), flips = 0
        for id in 0..<4000 {
            let v = cfg.view(seed: 9, epoch: 3, id: id)
            XCTAssertTrue((-4...4).contains(v.dx) && (-4...4).contains(v.dy))
            seenDx.insert(v.dx)
            seenDy.insert(v.dy)
            if v.flip { flips += 1 }
        }
        XCTAssertEqual(seenDx.count, 9)
        XCTAssertEqual(seenDy.count, 9)
        XCTAssertTrue((1800...2200).contains(flips), "flips \(flips)/4000")
        XCTAssertEqual(AugmentationConfig.none.view(seed: 9, epoch: 3, id: 5), .identity)
        XCTAssertEqual(AugmentationConfig(padding: 0, flip: true).view(seed: 1, epoch: 0, id: 0).dx, 0)
    }

    func test_views_areAFunctionOfSeedEpochAndID() {
        let cfg = AugmentationConfig.cifar
        let a = (0..<200).map { cfg.view(seed: 1, epoch: 2, id: $0) }
        XCTAssertEqual(a, (0..<200).map { cfg.view(seed: 1, epoch: 2, id: $0) })
        XCTAssertNotEqual(a, (0..<200).map { cfg.view(seed: 1, epoch: 3, id: $0) })
        XCTAssertNotEqual(a, (0..<200).map { cfg.view(seed: 2, epoch: 2, id: $0) })
    }

    func test_standardAugmentation_isCIFARCropFlipForCIFAR_andNoneForDigits() {
        XCTAssertEqual(AugmentationConfig.standard(for: .cifar10), .cifar)
        XCTAssertEqual(AugmentationConfig.standard(for: .cifar100), .cifar)
        XCTAssertEqual(AugmentationConfig.standard(for: .idx), AugmentationConfig.none)
        XCTAssertEqual(AugmentationConfig.standard(for: .svhn), AugmentationConfig.none)
        XCTAssertEqual(AugmentationConfig.cifar.padding, 4)
    }

    /// Loads several batches and rebuilds every row from (id, view): must be bit-identical.
    func assertRebuildEqualsBatch(_ d: Dataset, file: StaticString = #filePath, line: UInt = #line) {
        let loader = BatchLoader(dataset: d, augmentation: .cifar, seed: 5)
        for epoch in 0..<2 {
            let plan = EpochPlan(count: d.count, seed: 5, epoch: epoch, batchSize: 4)
            for b in 0..<plan.batchCount {
                let batch = loader.load(ids: plan.batchIDs(b), epoch: epoch, index: b)
                XCTAssertEqual(batch.images.shape, [batch.count] + d.shape.dimensions, file: file, line: line)
                let rowSize = d.shape.pixelCount
                let all = batch.images.scalars
                for (row, id) in batch.ids.enumerated() {
                    XCTAssertEqual(batch.views[row], loader.view(epoch: epoch, id: id), file: file, line: line)
                    XCTAssertEqual(Int(batch.labels[row]), d.label(at: id), file: file, line: line)
                    let rebuilt = d.renderView(id: id, view: batch.views[row]).scalars
                    let original = Array(all[(row * rowSize)..<((row + 1) * rowSize)])
                    XCTAssertEqual(rebuilt.map(\.bitPattern), original.map(\.bitPattern),
                                   "row \(row) id \(id) view \(batch.views[row])", file: file, line: line)
                }
            }
        }
    }

    func test_viewRebuild_equalsTheAugmentedBatchBitForBit_CIFAR() throws {
        let tmp = TempDirectory("aug")
        let root = Fixtures.writeCIFAR10(in: tmp.url)
        assertRebuildEqualsBatch(try Dataset.openCIFAR10(directory: root.path, partition: .train))
    }

    func test_viewRebuild_equalsTheAugmentedBatchBitForBit_NHWCAndSVHNLayouts() throws {
        let tmp = TempDirectory("aug")
        let s = ImageShape(channels: 3, height: 6, width: 7)
        var nhwc: [UInt8] = []
        for n in 0..<9 { for y in 0..<6 { for x in 0..<7 { for c in 0..<3 { nhwc.append(Fixtures.pixel(n, c, y, x)) } } } }
        Fixtures.write(Fixtures.npy(descr: "|u1", shape: [9, 6, 7, 3], payload: nhwc), to: tmp.path("x.npy"))
        Fixtures.write(Fixtures.npy(descr: "<i8", shape: [9], payload: Fixtures.int64LE(Array(0..<9))), to: tmp.path("y.npy"))
        let npy = try Dataset.openNPY(images: tmp.path("x.npy").path, labels: tmp.path("y.npy").path)
        XCTAssertEqual(npy.shape, s)
        assertRebuildEqualsBatch(npy)
        Fixtures.write(Fixtures.svhnMat(labels: [1, 2, 3, 4, 5, 6, 7]), to: tmp.path("s.mat"))
        assertRebuildEqualsBatch(try Dataset.openSVHN(file: tmp.path("s.mat").path))
    }

    func test_viewRebuild_equalsTheAugmentedBatchBitForBit_realMNIST() throws {
        let d = try Dataset.openMNIST(directory: Fixtures.mnist5k.directory, partition: .test)
        let loader = BatchLoader(dataset: d, augmentation: .cifar, seed: 11)
        let plan = EpochPlan(count: d.count, seed: 11, epoch: 4, batchSize: 128)
        let batch = loader.load(ids: plan.batchIDs(3), epoch: 4, index: 3)
        for row in [0, 50, 127] {
            let rebuilt = d.renderView(id: batch.ids[row], view: batch.views[row])
            XCTAssertEqual(rebuilt, batch.images.rows(row..<(row + 1)).reshaped([1, 28, 28]))
        }
    }
}
