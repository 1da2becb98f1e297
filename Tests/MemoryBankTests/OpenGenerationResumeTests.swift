// OpenGenerationResumeTests.swift: mid-epoch checkpoints of the open generation and their resume
// (docs/format/membank-v1.md §3.2): a resumed generation seals byte-identical to an uninterrupted one
// from the open segment (a), from a sealed segment listed or not (b), keeps the valid prefix of a
// damaged, cut or missing one and names what it lost (c), drops newer generations, rebuilds duplicate
// detection and statistics, and refuses marks of another bank, run or generation.

import Foundation
import SystemIO
@testable import MemoryBank
import _TestSupport
import Tensors
import XCTest

/// One epoch written the same way by every test: generations 0 and 1 full, then generation 2 in a
/// fixed shuffled order with a checkpoint after `checkpointAfter` appends.
enum ResumeScenario {
    static let config = BankFixtures.config(codec: .levels, sampleCount: 40, window: 1)
    static let order: [Int] = {
        var g = SplitMix64(seed: 14)
        var ids = Array(0..<40)
        for i in stride(from: ids.count - 1, to: 0, by: -1) { ids.swapAt(i, Int(g.next() % UInt64(i + 1))) }
        return ids
    }()
    static let checkpointAfter = 17
    static let generation = 2

    static func options(sync: Bool = false) -> Bank.Options {
        Bank.Options(queueCapacity: 8, writeBufferBytes: 700, sync: sync)  // several flushes per generation
    }

    static func delta(_ id: Int, generation: Int = generation, seed: UInt64 = 0) -> [Float] {
        BankFixtures.pgdDelta(count: config.elementCount, seed: seed &+ UInt64(generation * 1000 + id))
    }

    static func append(_ bank: Bank, _ ids: ArraySlice<Int>, seed: UInt64 = 0) throws {
        for id in ids {
            try bank.append(id: id, delta: delta(id, seed: seed), view: BankFixtures.view(id), metadata: BankFixtures.metadata(id))
        }
    }

    /// Creates the bank with generations 0, 1 sealed and generation 2 open holding the first
    /// `checkpointAfter` appends; returns the bank and the mark (nil: no checkpoint taken).
    static func begin(at url: URL, sync: Bool = false, checkpoint: Bool = true, config: BankConfig = config,
                      seed: UInt64 = 0) throws -> (Bank, OpenGenerationMark?) {
        let bank = try Bank.create(at: url, config: config, options: options(sync: sync))
        try BankFixtures.fill(bank, generations: [0, 1], ids: Array(0..<config.sampleCount))
        try bank.beginGeneration(generation)
        try append(bank, order[0..<checkpointAfter], seed: seed)
        let mark = checkpoint ? try bank.checkpointOpenGeneration() : nil
        return (bank, mark)
    }

    /// The uninterrupted run: the sealed bytes of generation 2 and its statistics.
    static func straight(checkpoint: Bool) throws -> (bytes: [UInt8], statistics: GenerationStatistics, mark: OpenGenerationMark?) {
        let dir = TempDirectory("bank-resume-straight")
        let (bank, mark) = try begin(at: dir.url, checkpoint: checkpoint)
        try append(bank, order[checkpointAfter...])
        let stats = try bank.sealGeneration()
        bank.close()
        return (try BankFixtures.readBytes(BankFixtures.segmentURL(dir.url, generation)), stats, mark)
    }

    /// Stops `bank` like a killed process while generation 2 is open (its .tmp stays).
    static func crash(_ bank: Bank) {
        bank.crashPoint = .beforeSeal
        XCTAssertThrowsError(try bank.sealGeneration())
    }

    static func temporaryURL(_ dir: URL) -> URL {
        URL(fileURLWithPath: BankFixtures.segmentURL(dir, generation).path + BankLayout.temporarySuffix)
    }
}

/// Statistics without the timing field.
private func comparable(_ s: GenerationStatistics) -> GenerationStatistics {
    var c = s
    c.encodeSeconds = 0
    return c
}

final class OpenGenerationResumeTests: XCTestCase {
    typealias S = ResumeScenario

    /// Resumes the bank at `dir` from `mark`, appends the rest of the epoch, seals; checks the report
    /// source and that the segment equals the uninterrupted run's byte for byte.
    private func resumeAndFinish(_ dir: TempDirectory, _ mark: OpenGenerationMark, source: OpenGenerationResumeReport.Source,
                                 live: [Int] = [0, 1], file: StaticString = #filePath, line: UInt = #line) throws -> OpenGenerationResumeReport {
        let reference = try S.straight(checkpoint: false)
        let bank = try Bank.open(at: dir.url, options: S.options(), resuming: mark)
        let report = try XCTUnwrap(bank.resumeReport, file: file, line: line)
        XCTAssertEqual(report.source, source, file: file, line: line)
        XCTAssertTrue(report.isIntact, "\(report)", file: file, line: line)
        XCTAssertEqual(report.keptRecords, S.checkpointAfter, file: file, line: line)
        XCTAssertNil(report.damage, file: file, line: line)
        XCTAssertEqual(bank.openGeneration, S.generation, file: file, line: line)
        XCTAssertEqual(bank.generations, live, file: file, line: line)
        try S.append(bank, S.order[S.checkpointAfter...])
        let stats = try bank.sealGeneration()
        XCTAssertEqual(comparable(stats), comparable(reference.statistics), "statistics rebuilt from the prefix", file: file, line: line)
        bank.close()
        let bytes = try BankFixtures.readBytes(BankFixtures.segmentURL(dir.url, S.generation))
        XCTAssertEqual(bytes.count, reference.bytes.count, file: file, line: line)
        XCTAssertTrue(bytes == reference.bytes, "resumed segment differs from the uninterrupted one", file: file, line: line)
        XCTAssertTrue(BankReader.verify(at: dir.url).isIntact, file: file, line: line)
        XCTAssertTrue(BankReader.verify(at: dir.url).ignoredFiles.isEmpty, file: file, line: line)
        return report
    }

    func test_checkpoint_doesNotChangeTheSealedBytes_andContinuesTheGeneration() throws {
        let with = try S.straight(checkpoint: true)
        let without = try S.straight(checkpoint: false)
        XCTAssertTrue(with.bytes == without.bytes)
        let mark = try XCTUnwrap(with.mark)
        XCTAssertEqual(mark.generation, S.generation)
        XCTAssertEqual(mark.recordCount, S.checkpointAfter)
        XCTAssertEqual(mark.recordBytes % 8, 0)
        // The mark is Codable (the trainer stores it in its checkpoint).
        let decoded = try JSONDecoder().decode(OpenGenerationMark.self, from: JSONEncoder().encode(mark))
        XCTAssertEqual(decoded, mark)
    }

    func test_checkpoint_withoutOpenGeneration_isRefused() throws {
        let dir = TempDirectory("bank-resume-noopen")
        let bank = try Bank.create(at: dir.url, config: S.config, options: S.options())
        assertBankError(try bank.checkpointOpenGeneration()) { $0 == .noOpenGeneration }
    }

    func test_checkpoint_isDurable_onDisk_beforeAnySeal() throws {
        let dir = TempDirectory("bank-resume-durable")
        let (bank, mark) = try S.begin(at: dir.url, sync: true)
        let m = try XCTUnwrap(mark)
        let size = try BankFixtures.readBytes(S.temporaryURL(dir.url)).count
        XCTAssertEqual(size, Int(SegmentHeader(config: S.config, generation: S.generation).dataOffset) + m.recordBytes,
                       "every record up to the mark is written out, nothing buffered")
        bank.close()
    }

    // (a) the open segment holds the records up to the mark, and more written after it.
    func test_resumeFromTemporarySegment_isByteIdenticalToAStraightRun() throws {
        let dir = TempDirectory("bank-resume-a")
        let (bank, mark) = try S.begin(at: dir.url)
        try S.append(bank, S.order[S.checkpointAfter..<(S.checkpointAfter + 5)])  // after the mark: cut on resume
        S.crash(bank)
        _ = try resumeAndFinish(dir, try XCTUnwrap(mark), source: .temporarySegment)
    }

    func test_resume_rebuildsDuplicateDetection() throws {
        let dir = TempDirectory("bank-resume-dup")
        let (bank, mark) = try S.begin(at: dir.url)
        S.crash(bank)
        let resumed = try Bank.open(at: dir.url, options: S.options(), resuming: try XCTUnwrap(mark))
        let kept = S.order[0], next = S.order[S.checkpointAfter]
        assertBankError(try resumed.append(id: kept, delta: S.delta(kept), view: .identity, metadata: .zero)) {
            $0 == .duplicateEntry(generation: S.generation, sampleID: kept)
        }
        XCTAssertNoThrow(try resumed.append(id: next, delta: S.delta(next), view: .identity, metadata: .zero))
        assertBankError(try resumed.discardGenerations(after: 1)) { $0 == .generationAlreadyOpen(generation: S.generation) }
    }

    func test_resume_twice_fromTheSameMark_isByteIdentical() throws {
        let dir = TempDirectory("bank-resume-twice")
        let (bank, mark) = try S.begin(at: dir.url)
        S.crash(bank)
        let m = try XCTUnwrap(mark)
        let first = try Bank.open(at: dir.url, options: S.options(), resuming: m)
        try S.append(first, S.order[S.checkpointAfter..<(S.checkpointAfter + 3)])
        first.crashPoint = .beforeSeal
        XCTAssertThrowsError(try first.sealGeneration())
        _ = try resumeAndFinish(dir, m, source: .temporarySegment)
    }

    // (b) generation g was sealed after the checkpoint (kill before the trainer's next checkpoint).
    func test_resumeFromSealedListedSegment_dropsItFromTheManifest_andIsByteIdentical() throws {
        let dir = TempDirectory("bank-resume-b")
        let (bank, mark) = try S.begin(at: dir.url)
        try S.append(bank, S.order[S.checkpointAfter...])
        try bank.sealGeneration()
        bank.close()
        XCTAssertEqual(try BankReader.open(at: dir.url).generations, [1, 2])
        // Sealing 2 (K = 1) deleted 0; epoch 2 reads only 1.
        let report = try resumeAndFinish(dir, try XCTUnwrap(mark), source: .sealedSegment, live: [1])
        XCTAssertEqual(report.droppedGenerations, [2])
    }

    func test_resumeFromSealedUnlistedSegment_afterAKillBeforeTheManifest() throws {
        let dir = TempDirectory("bank-resume-b2")
        let (bank, mark) = try S.begin(at: dir.url)
        try S.append(bank, S.order[S.checkpointAfter...])
        bank.crashPoint = .afterSegmentRename
        XCTAssertThrowsError(try bank.sealGeneration())
        XCTAssertFalse(FileManager.default.fileExists(atPath: S.temporaryURL(dir.url).path))
        let report = try resumeAndFinish(dir, try XCTUnwrap(mark), source: .sealedSegment)
        XCTAssertEqual(report.droppedGenerations, [])
    }

    func test_resume_dropsNewerGenerations() throws {
        let dir = TempDirectory("bank-resume-newer")
        let (bank, mark) = try S.begin(at: dir.url)
        try S.append(bank, S.order[S.checkpointAfter...])
        try bank.sealGeneration()
        try BankFixtures.fill(bank, generations: [3], ids: [1, 2])
        bank.close()
        let resumed = try Bank.open(at: dir.url, options: S.options(), resuming: try XCTUnwrap(mark))
        XCTAssertEqual(resumed.resumeReport?.droppedGenerations, [2, 3])
        XCTAssertEqual(resumed.generations, [], "sealing 3 (K = 1) had deleted 1: retention, spec §3.1")
        XCTAssertFalse(FileManager.default.fileExists(atPath: BankFixtures.segmentURL(dir.url, 3).path))
        XCTAssertFalse(FileManager.default.fileExists(atPath: BankFixtures.segmentURL(dir.url, 2).path))
    }

    // (c) damage inside the prefix: keep what is valid, report what is lost, never fail.
    func test_damagedRecordInThePrefix_keepsTheValidPrefix_andNamesTheLostSamples() throws {
        let dir = TempDirectory("bank-resume-c")
        let (bank, mark) = try S.begin(at: dir.url)
        S.crash(bank)
        let m = try XCTUnwrap(mark)
        // Flip a payload byte of the 6th record (its header, hence its sample ID, stays readable).
        let tmp = S.temporaryURL(dir.url)
        let file = try MappedFile(segmentAt: tmp.path)
        let walked = Bank.walkRecords(file: file, config: S.config, generation: S.generation,
                                      dataOffset: Int(SegmentHeader(config: S.config, generation: S.generation).dataOffset),
                                      limit: file.count, maximumRecords: 5)
        XCTAssertEqual(walked.ids, Array(S.order[0..<5]))
        try BankFixtures.flipByte(at: walked.end + 50, in: tmp)

        let resumed = try Bank.open(at: dir.url, options: S.options(), resuming: m)
        let report = try XCTUnwrap(resumed.resumeReport)
        XCTAssertEqual(report.source, .temporarySegment)
        XCTAssertEqual(report.keptRecords, 5)
        XCTAssertEqual(report.lostRecords, S.checkpointAfter - 5)
        XCTAssertEqual(report.lostSampleIDs, Array(S.order[5..<S.checkpointAfter]), "the damaged one and those after it")
        let damage = try XCTUnwrap(report.damage)
        XCTAssertTrue(damage.contains(tmp.path) && damage.contains("record 5"), damage)
        XCTAssertFalse(report.isIntact)

        // The run carries on from its cursor: the lost samples simply have no generation-2 entry.
        try S.append(resumed, S.order[S.checkpointAfter...])
        try resumed.sealGeneration()
        resumed.close()
        XCTAssertTrue(BankReader.verify(at: dir.url).isIntact)
        let reader = try BankReader.open(at: dir.url)
        for (i, id) in S.order.enumerated() {
            let lost = (5..<S.checkpointAfter).contains(i)
            XCTAssertEqual(reader.contains(id: id, generation: S.generation), !lost, "sample \(id)")
        }
        let first = try XCTUnwrap(reader.entry(id: S.order[0], generation: S.generation))
        assertClose(first.delta, S.delta(S.order[0]), atol: S.config.epsilon / 254 * 1.001, rtol: 0)
    }

    func test_cutTemporarySegment_keepsTheWholeRecordsBeforeTheCut() throws {
        let dir = TempDirectory("bank-resume-cut")
        let (bank, mark) = try S.begin(at: dir.url)
        S.crash(bank)
        let m = try XCTUnwrap(mark)
        let tmp = S.temporaryURL(dir.url)
        let file = try MappedFile(segmentAt: tmp.path)
        let walked = Bank.walkRecords(file: file, config: S.config, generation: S.generation,
                                      dataOffset: Int(SegmentHeader(config: S.config, generation: S.generation).dataOffset),
                                      limit: file.count, maximumRecords: 9)
        let bytes = try BankFixtures.readBytes(tmp)
        try BankFixtures.writeBytes(Array(bytes[0..<(walked.end + 20)]), tmp)  // inside record 9

        let resumed = try Bank.open(at: dir.url, options: S.options(), resuming: m)
        let report = try XCTUnwrap(resumed.resumeReport)
        XCTAssertEqual(report.keptRecords, 9)
        XCTAssertEqual(report.lostRecords, S.checkpointAfter - 9)
        XCTAssertTrue(Set(report.lostSampleIDs).isSubset(of: Set(S.order[9..<S.checkpointAfter])))
        XCTAssertTrue(report.damage?.contains("holds") ?? false, report.damage ?? "")
        try S.append(resumed, S.order[S.checkpointAfter...])
        try resumed.sealGeneration()
        XCTAssertTrue(BankReader.verify(at: dir.url).isIntact)
    }

    func test_missingTemporarySegment_restartsTheGenerationEmpty_reportingEveryRecordLost() throws {
        let dir = TempDirectory("bank-resume-missing")
        let (bank, mark) = try S.begin(at: dir.url)
        S.crash(bank)
        try FileManager.default.removeItem(at: S.temporaryURL(dir.url))
        let resumed = try Bank.open(at: dir.url, options: S.options(), resuming: try XCTUnwrap(mark))
        let report = try XCTUnwrap(resumed.resumeReport)
        XCTAssertEqual(report.source, .noSegment)
        XCTAssertEqual(report.keptRecords, 0)
        XCTAssertEqual(report.lostRecords, S.checkpointAfter)
        XCTAssertTrue(report.damage?.contains("no segment file") ?? false)
        XCTAssertEqual(resumed.openGeneration, S.generation)
        try S.append(resumed, S.order[S.checkpointAfter...])
        XCTAssertEqual(try resumed.sealGeneration().records, S.order.count - S.checkpointAfter)
    }

    func test_damagedSealedSegment_fallsBackToNothing_neverFails() throws {
        let dir = TempDirectory("bank-resume-b-damaged")
        let (bank, mark) = try S.begin(at: dir.url)
        try S.append(bank, S.order[S.checkpointAfter...])
        try bank.sealGeneration()
        bank.close()
        try BankFixtures.flipByte(at: 40, in: BankFixtures.segmentURL(dir.url, S.generation))  // header
        let resumed = try Bank.open(at: dir.url, options: S.options(), resuming: try XCTUnwrap(mark))
        let report = try XCTUnwrap(resumed.resumeReport)
        XCTAssertEqual(report.source, .noSegment)
        XCTAssertEqual(report.lostRecords, S.checkpointAfter)
        XCTAssertTrue(report.damage?.contains("sealed segment unusable") ?? false, report.damage ?? "")
        XCTAssertEqual(resumed.generations, [1])
        XCTAssertTrue(resumed.quarantined.isEmpty, "the damaged generation 2 left the manifest")
    }

    // Marks that do not describe this bank's generation are refused, and nothing is changed.
    func test_markOfAnotherConfiguration_orGeneration_isRefused_andTheBankIsUntouched() throws {
        let dir = TempDirectory("bank-resume-refuse")
        let (bank, mark) = try S.begin(at: dir.url)
        S.crash(bank)
        let good = try XCTUnwrap(mark)
        let tmp = S.temporaryURL(dir.url)
        let before = try BankFixtures.readBytes(tmp)

        var otherConfig = S.config
        otherConfig.createdBy = "{\"other\": 1}"
        let otherDir = TempDirectory("bank-resume-refuse-other")
        let (other, otherMark) = try S.begin(at: otherDir.url, config: otherConfig)
        other.close()
        assertBankError(try Bank.open(at: dir.url, options: S.options(), resuming: try XCTUnwrap(otherMark))) {
            if case .resumeMarkMismatch(tmp.path, 2, let reason) = $0 { return reason.contains("another configuration") }
            return false
        }
        var wrongGeneration = good
        wrongGeneration.generation = 3
        assertBankError(try Bank.open(at: dir.url, options: S.options(), resuming: wrongGeneration)) {
            if case .resumeMarkMismatch(_, 3, let reason) = $0 { return reason.contains("another generation") }
            return false
        }
        var malformed = good
        malformed.recordBytes += 4
        assertBankError(try Bank.open(at: dir.url, options: S.options(), resuming: malformed)) {
            if case .resumeMarkMismatch(_, _, let reason) = $0 { return reason.contains("recordBytes") }
            return false
        }
        XCTAssertTrue(try BankFixtures.readBytes(tmp) == before, "a refused mark changes nothing")
        _ = try resumeAndFinish(dir, good, source: .temporarySegment)
    }

    func test_markOfAnotherRunWithTheSameConfiguration_isRefused() throws {
        let dir = TempDirectory("bank-resume-refuse-run")
        let (bank, _) = try S.begin(at: dir.url, seed: 777)  // other δ, same configuration
        S.crash(bank)
        let reference = try XCTUnwrap(try S.straight(checkpoint: true).mark)
        assertBankError(try Bank.open(at: dir.url, options: S.options(), resuming: reference)) {
            if case .resumeMarkMismatch(_, 2, let reason) = $0 { return reason.contains("not the ones the mark describes") }
            return false
        }
    }

    /// Seeded mutants of the open segment (bit flips, length fields, cuts, splices): resuming from
    /// the mark either keeps a valid prefix (then the rest of the epoch seals into a bank `verify`
    /// finds intact) or refuses the mark; it never traps. MEMLOSS_FUZZ_ITERATIONS runs more.
    func test_mutatedTemporarySegment_resumesToAnIntactBank_orRefusesTheMark() throws {
        let base = TempDirectory("bank-resume-mutants")
        let (bank, mark) = try S.begin(at: base.url)
        S.crash(bank)
        let m = try XCTUnwrap(mark)
        let original = try BankFixtures.readBytes(S.temporaryURL(base.url))
        var outcomes = (kept: 0, damaged: 0, refused: 0)
        var failures: [String] = []
        Fuzz.run(name: "resume .tmp", corpus: [("gen-2.mbs.tmp", original)], iterations: Fuzz.iterations(default: 60)) { mutant in
            let dir = TempDirectory("bank-resume-mutant")
            do {
                try FileManager.default.removeItem(at: dir.url)
                try FileManager.default.copyItem(at: base.url, to: dir.url)
                try BankFixtures.writeBytes(mutant, S.temporaryURL(dir.url))
                let resumed: Bank
                do {
                    resumed = try Bank.open(at: dir.url, options: S.options(), resuming: m)
                } catch MemoryBankError.resumeMarkMismatch {
                    outcomes.refused += 1
                    return
                }
                let report = try XCTUnwrap(resumed.resumeReport)
                if report.isIntact { outcomes.kept += 1 } else { outcomes.damaged += 1 }
                if report.keptRecords + report.lostRecords != S.checkpointAfter { failures.append("counts \(report)") }
                try S.append(resumed, S.order[S.checkpointAfter...])
                try resumed.sealGeneration()
                resumed.close()
                let v = BankReader.verify(at: dir.url)
                if !v.isIntact { failures.append("\(v.problems)") }
            } catch {
                failures.append("\(error)")
            }
        }
        XCTAssertEqual(failures, [])
        XCTAssertGreaterThan(outcomes.kept, 0, "\(outcomes)")
        XCTAssertGreaterThan(outcomes.damaged, 0, "\(outcomes)")
    }

    func test_openOrCreate_withAMark_checksTheConfigurationFirst_andCreatesAMissingBank() throws {
        let dir = TempDirectory("bank-resume-ooc")
        let (bank, mark) = try S.begin(at: dir.url)
        S.crash(bank)
        let m = try XCTUnwrap(mark)
        var other = S.config
        other.codec = .q8
        assertBankError(try Bank.openOrCreate(at: dir.url, config: other, options: S.options(), resuming: m)) {
            if case .configMismatch(_, "codec", _, _) = $0 { return true }
            return false
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: S.temporaryURL(dir.url).path), "nothing deleted")
        let reopened = try Bank.openOrCreate(at: dir.url, config: S.config, options: S.options(), resuming: m)
        XCTAssertEqual(reopened.resumeReport?.keptRecords, S.checkpointAfter)
        reopened.close()

        let fresh = TempDirectory("bank-resume-ooc-fresh")
        let created = try Bank.openOrCreate(at: fresh.url, config: S.config, options: S.options(), resuming: m)
        XCTAssertEqual(created.resumeReport?.source, .noSegment)
        XCTAssertEqual(created.resumeReport?.lostRecords, S.checkpointAfter)
        XCTAssertEqual(created.openGeneration, S.generation)
    }
}
