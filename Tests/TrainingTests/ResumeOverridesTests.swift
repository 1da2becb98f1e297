// ResumeOverridesTests.swift: TrainConfig.resumeChanges (issue 14 item 5: `--resume DIR` silently
// ignored every other flag): unchanged values are fine, --epochs / test / logging settings become
// overrides, anything else is a conflict naming the flag, the field and both values; the data-size
// checks (TrainConfig.checkData) and the numeric ranges of TrainConfig.validate.

import Foundation
import Training
import XCTest

final class ResumeOverridesTests: XCTestCase {
    private let stored = TrainConfig.demo

    func test_sameValues_areNoConflict_andNoOverride() throws {
        let r = TrainConfig.resumeChanges(stored: stored, requested: stored, explicit: ["--lr": ["optimizer.learningRate"]])
        XCTAssertEqual(try r.get(), .none)
    }

    func test_epochsAndTestSettings_becomeOverrides() throws {
        var requested = stored
        requested.epochs = 20
        requested.testAttacks = ["pgd20", "cw"]
        requested.testSamples = 100
        requested.logEvery = 5
        let o = try TrainConfig.resumeChanges(stored: stored, requested: requested,
                                              explicit: ["--epochs": ["epochs"], "--test-attacks": ["testAttacks"]]).get()
        XCTAssertEqual(o, ResumeOverrides(epochs: 20, testAttacks: ["pgd20", "cw"], testSamples: 100, logEvery: 5))
        var applied = stored
        o.apply(to: &applied)
        XCTAssertEqual(applied, requested)
    }

    func test_trainingSettings_areConflicts_namingFlagFieldAndBothValues() {
        var requested = stored
        requested.optimizer.learningRate = 0.1
        requested.model = "resnet18"
        requested.epochs = 30
        let r = TrainConfig.resumeChanges(stored: stored, requested: requested,
                                          explicit: ["--lr": ["optimizer.learningRate"], "--model": ["model"], "--epochs": ["epochs"]])
        guard case .failure(let list) = r else { return XCTFail("expected conflicts, got \(r)") }
        XCTAssertEqual(list.conflicts, [
            ResumeConflict(source: "--model", field: "model", stored: "\"smallcnn\"", given: "\"resnet18\""),
            ResumeConflict(source: "--lr", field: "optimizer.learningRate", stored: "0.05", given: "0.1"),
        ])
        let text = "\(ResumeConflictError.conflicts(runDirectory: "runs/x", list.conflicts))"
        XCTAssert(text.contains("--lr (optimizer.learningRate): stored 0.05, given 0.1") && text.contains("\nhint: "), text)
    }

    func test_configFileChanges_areNamedAsTheConfigFile_andFlagsWinTheName() {
        var requested = stored
        requested.batchSize = 32
        requested.seed = 9
        let r = TrainConfig.resumeChanges(stored: stored, requested: requested,
                                          explicit: ["--config": [""], "--seed": ["seed"]])
        guard case .failure(let list) = r else { return XCTFail("expected conflicts") }
        XCTAssertEqual(list.conflicts.map(\.source), ["--config", "--seed"])
        XCTAssertEqual(list.conflicts.map(\.field), ["batchSize", "seed"])
    }

    func test_nestedAndOptionalFields_areCompared() {
        var requested = stored
        requested.memLoss = nil
        requested.schedule = .cosine
        let r = TrainConfig.resumeChanges(stored: stored, requested: requested,
                                          explicit: ["--no-memloss": ["memLoss"], "--schedule": ["schedule"]])
        guard case .failure(let list) = r else { return XCTFail("expected conflicts") }
        XCTAssert(list.conflicts.contains { $0.field == "memLoss.window" && $0.given == "absent" && $0.source == "--no-memloss" })
        XCTAssert(list.conflicts.contains { $0.field == "schedule.cosine" && $0.stored == "absent" && $0.source == "--schedule" })
    }

    func test_fewerEpochsThanCompleted_isRefused() {
        XCTAssertThrowsError(try ResumeOverrides(epochs: 2).check(completedEpochs: 3, runDirectory: "r")) { e in
            XCTAssertEqual(e as? ResumeConflictError, .tooFewEpochs(runDirectory: "r", requested: 2, completed: 3))
        }
        XCTAssertNoThrow(try ResumeOverrides(epochs: 3).check(completedEpochs: 3, runDirectory: "r"))
    }

    // MARK: - Numbers and data sizes

    func test_validate_rejectsNonFiniteAndOutOfRangeNumbers_fromConfigFiles() {
        var c = stored
        c.optimizer.learningRate = .infinity
        XCTAssertThrowsError(try c.validate()) { XCTAssert("\($0)".contains("optimizer.learningRate"), "\($0)") }
        c = stored
        c.optimizer.momentum = 1.5
        XCTAssertThrowsError(try c.validate()) { XCTAssert("\($0)".contains("optimizer.momentum"), "\($0)") }
        c = stored
        c.method.beta = .nan
        XCTAssertThrowsError(try c.validate()) { XCTAssert("\($0)".contains("method.beta"), "\($0)") }
        c = stored
        c.memLoss?.term.beta = .infinity
        XCTAssertThrowsError(try c.validate()) { XCTAssert("\($0)".contains("memLoss.beta"), "\($0)") }
        c = stored
        c.width = .infinity
        XCTAssertThrowsError(try c.validate()) { XCTAssert("\($0)".contains("width"), "\($0)") }
        XCTAssertNoThrow(try stored.validate())
    }

    func test_checkData_namesTheDatasetAndItsCount() {
        func message(_ c: TrainConfig, train: Int, test: Int?, classes: Int = 10) -> String {
            do { try c.checkData(trainCount: train, testCount: test, classCount: classes, dataName: "npy train (x.npy)") } catch {
                return "\(error)"
            }
            return ""
        }
        let empty = message(stored, train: 0, test: 10)
        XCTAssert(empty.contains("npy train (x.npy)") && empty.contains("has 0 training images"), empty)
        XCTAssertFalse(empty.contains("--mem") || empty.contains("--classes"), empty)
        XCTAssert(message(stored, train: 100, test: 10, classes: 1).contains("1 class only"))
        XCTAssert(message(stored, train: 400, test: 10).contains("validationSize 400 would hold out all 400"))
        var c = stored
        c.trainSamples = 5000
        XCTAssert(message(c, train: 4000, test: 10).contains("trainSamples 5000 exceeds the 3600 training images"))
        c = stored
        c.testSamples = 2000
        XCTAssert(message(c, train: 4000, test: 1000).contains("testSamples 2000 exceeds the 1000 test images"))
        XCTAssert(message(stored, train: 4000, test: 0).contains("has 0 test images"))
        XCTAssertEqual(message(stored, train: 4000, test: 1000), "")
    }
}
