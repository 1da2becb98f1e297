// DiffTests.swift: `membank diff`: a generation against itself gives cosine 1 and distance 0, for
// one sample and for all; the view undoing maps a rendered view back onto the unaugmented image; a
// sample missing from a generation is skipped; the drift between generations is non-trivial.

import Datasets
import Foundation
import MembankCore
import MemoryBank
import Tensors
import XCTest

final class DiffTests: XCTestCase {
    private var bank: InspectedBank { get throws { try InspectedBank.open(MembankFixture.shared.bank.path) } }

    func test_generationWithItself_hasCosineOne() throws {
        let b = try bank
        for g in MembankFixture.generations {
            let d = try BankDrift.sample(b, id: 7, from: g, to: g)
            XCTAssertEqual(d.rows.count, 1)
            XCTAssertEqual(try XCTUnwrap(d.rows[0].cosineToReference), 1, accuracy: 1e-6)
            XCTAssertEqual(d.rows[0].distanceToReference, 0)
            let p = try BankDrift.population(b, from: g, to: g)
            XCTAssertEqual(p.samples, MembankFixture.ids(generation: g).count)
            XCTAssertEqual(try XCTUnwrap(p.cosine.min), 1, accuracy: 1e-6)
            XCTAssertEqual(try XCTUnwrap(p.cosine.max), 1, accuracy: 1e-6)
            XCTAssertEqual(p.distance.max, 0)
        }
        let r = try MembankTestSupport.run(["diff", MembankFixture.shared.bank.path, "--all", "--from", "2", "--to", "2", "--json"])
        XCTAssertEqual(r.status, 0, r.err)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any])
        XCTAssertEqual(try XCTUnwrap((json["cosine"] as? [String: Any])?["mean"] as? Double), 1, accuracy: 1e-6)
    }

    func test_undoingTheView_recoversTheImage() throws {
        let data = try DataSource.demo.open(.train)
        let image = data.imageTensor(at: 12).scalars
        for view in [ViewParameters(dx: 2, dy: -1, flip: true), ViewParameters(dx: -2, dy: 2, flip: false), .identity] {
            let rendered = data.renderView(id: 12, view: view).scalars
            let framed = FramedDelta(delta: rendered, view: view, shape: [1, 28, 28])
            var covered = 0
            for i in 0..<784 where framed.covered[i] {
                covered += 1
                XCTAssertEqual(framed.values[i], image[i], "pixel \(i) for \(view)")
            }
            XCTAssertEqual(covered, (28 - abs(Int(view.dx))) * (28 - abs(Int(view.dy))), "\(view)")
        }
    }

    func test_sampleDrift_overGenerations() throws {
        let b = try bank
        // Sample 10 has no entry in generation 2.
        let d = try BankDrift.sample(b, id: 10)
        XCTAssertEqual(d.rows.map(\.generation), [0, 1, 3])
        XCTAssertEqual(d.rows.map(\.previousGeneration), [nil, 0, 1])
        XCTAssertEqual(try XCTUnwrap(d.rows[0].cosineToReference), 1, accuracy: 1e-6)
        XCTAssertNil(d.rows[0].cosineToPrevious)
        // Independently: cos between generations 0 and 1 from the raw entries in the original frame.
        let reader = try BankReader.open(at: MembankFixture.shared.bank)
        let e0 = try XCTUnwrap(try reader.entry(id: 10, generation: 0)), e1 = try XCTUnwrap(try reader.entry(id: 10, generation: 1))
        let f0 = FramedDelta(delta: e0.delta, view: e0.info.view, shape: [1, 28, 28])
        let f1 = FramedDelta(delta: e1.delta, view: e1.info.view, shape: [1, 28, 28])
        var dot = 0.0, a = 0.0, c = 0.0
        for i in 0..<784 where f0.covered[i] && f1.covered[i] {
            dot += Double(f0.values[i]) * Double(f1.values[i])
            a += Double(f0.values[i]) * Double(f0.values[i])
            c += Double(f1.values[i]) * Double(f1.values[i])
        }
        let cosine = dot / (a.squareRoot() * c.squareRoot())
        XCTAssertEqual(try XCTUnwrap(d.rows[1].cosineToPrevious), cosine, accuracy: 1e-12)
        XCTAssertLessThan(cosine, 0.999, "perturbations of different generations differ")
        XCTAssertGreaterThan(cosine, 0, "but keep part of their direction")

        let p = try BankDrift.population(b, from: 0, to: 3)
        XCTAssertEqual(p.samples, MembankFixture.trainedSamples)
        XCTAssertEqual(p.series.map(\.generation), [0, 1, 2, 3])
        XCTAssertEqual(p.series.map(\.samples), [96, 96, 96 - 10, 96])
        XCTAssertLessThan(try XCTUnwrap(p.cosine.mean), 0.999)
        let text = try MembankTestSupport.run(["diff", MembankFixture.shared.bank.path, "10"])
        XCTAssertEqual(text.status, 0, text.err)
        XCTAssert(text.out.contains("cos prev"), text.out)
    }
}
