// FixtureBankTests.swift: the fixture bank itself: PGD δ lie in the ε-ball, entries carry the views
// and metadata the fixture wrote; and, on request (MEMBANK_FIXTURE_DIR set), a copy of it is written
// to that directory so docs/img can be regenerated (the command is in docs/membank.md).

import Foundation
import MembankCore
import MemoryBank
import XCTest

final class FixtureBankTests: XCTestCase {
    func test_fixtureBank_holdsRealAttackPerturbations() throws {
        let reader = try BankReader.open(at: MembankFixture.shared.bank)
        XCTAssertEqual(reader.generations, MembankFixture.generations)
        var misclassified = 0, total = 0
        for g in reader.generations {
            for id in MembankFixture.ids(generation: g) {
                let e = try XCTUnwrap(try reader.entry(id: id, generation: g))
                XCTAssertLessThanOrEqual(DeltaMath.linf(e.delta), Double(MembankFixture.epsilon) * (1 + 1e-6))
                XCTAssertGreaterThan(DeltaMath.l2(e.delta), 0)
                let v = MembankFixture.augmentation.view(seed: MembankFixture.seed, epoch: g, id: id)
                XCTAssertEqual([e.info.view.dx, e.info.view.dy], [v.dx, v.dy])
                XCTAssertEqual(e.info.view.flip, v.flip)
                XCTAssertEqual(e.info.metadata.loss, -log(max(e.info.metadata.pY, 1e-30)), accuracy: 1e-3)
                if e.info.metadata.margin < 0 { misclassified += 1 }
                total += 1
            }
            XCTAssertFalse(reader.contains(id: MembankFixture.trainedSamples, generation: g))
        }
        // A briefly trained model is fooled by PGD at ε = 0.3 on many, but the margins vary.
        XCTAssertGreaterThan(misclassified, total / 10)
    }

    func test_writeFixtureBank_toMEMBANK_FIXTURE_DIR_whenSet() throws {
        guard let target = ProcessInfo.processInfo.environment["MEMBANK_FIXTURE_DIR"], !target.isEmpty else {
            throw XCTSkip("MEMBANK_FIXTURE_DIR not set: nothing to write (used to regenerate docs/img)")
        }
        let url = URL(fileURLWithPath: target)
        try? FileManager.default.removeItem(at: url)
        try FileManager.default.copyItem(at: MembankFixture.shared.bank, to: url)
        XCTAssertTrue(VerifyReport.run(path: url.path).intact)
    }
}
