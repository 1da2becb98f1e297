// EpochOrderTests.swift: per-epoch permutations (valid, deterministic per (seed, epoch), different across
// epochs and seeds), batching with the last partial batch kept or dropped, and the stratified validation
// split held out of the training set.

import Datasets
import Foundation
import XCTest
import _TestSupport

final class EpochOrderTests: XCTestCase {
    func test_permutation_isAPermutation_deterministicPerSeedAndEpoch() {
        let p = EpochOrder.permutation(seed: 3, epoch: 7, count: 1000)
        XCTAssertEqual(p.sorted(), Array(0..<1000))
        XCTAssertEqual(p, EpochOrder.permutation(seed: 3, epoch: 7, count: 1000))
        XCTAssertNotEqual(p, EpochOrder.permutation(seed: 3, epoch: 8, count: 1000))
        XCTAssertNotEqual(p, EpochOrder.permutation(seed: 4, epoch: 7, count: 1000))
        XCTAssertNotEqual(p, Array(0..<1000))
        XCTAssertEqual(EpochOrder.permutation(seed: 1, epoch: 0, count: 0), [])
        XCTAssertEqual(EpochOrder.permutation(seed: 1, epoch: 0, count: 1), [0])
    }

    func test_permutation_isPinned_soResumeAcrossVersionsStaysExact() {
        // Golden values: changing the rule silently would break exact resume of existing runs.
        let p = EpochOrder.permutation(seed: 0, epoch: 0, count: 10)
        XCTAssertEqual(p, EpochOrder.permutation(seed: 0, epoch: 0, count: 10))
        XCTAssertEqual(p, EpochOrderTests.golden)
    }
    static let golden: [Int] = [8, 3, 0, 5, 2, 6, 4, 1, 7, 9]

    func test_firstPositions_areRoughlyUniform() {
        var hits = [Int](repeating: 0, count: 10)
        for epoch in 0..<2000 { hits[EpochOrder.permutation(seed: 1, epoch: epoch, count: 10)[0]] += 1 }
        XCTAssertTrue(hits.allSatisfy { (140...260).contains($0) }, "\(hits)")
    }

    func test_plan_keepsThePartialLastBatchByDefault_andDropsItOnRequest() {
        let keep = EpochPlan(count: 10, seed: 1, epoch: 0, batchSize: 4)
        XCTAssertEqual(keep.batchCount, 3)
        XCTAssertEqual(keep.batchIDs(2).count, 2)
        XCTAssertEqual((0..<3).flatMap { Array(keep.batchIDs($0)) }, keep.ids)
        XCTAssertEqual(keep.sampleCount, 10)
        let drop = EpochPlan(count: 10, seed: 1, epoch: 0, batchSize: 4, dropLast: true)
        XCTAssertEqual(drop.batchCount, 2)
        XCTAssertEqual(drop.sampleCount, 8)
        XCTAssertEqual(drop.ids, keep.ids)
    }

    func test_plan_overAPopulation_visitsExactlyThatPopulation() {
        let population = [5, 9, 11, 20, 21, 40]
        let plan = EpochPlan(population: population, seed: 2, epoch: 1, batchSize: 4)
        XCTAssertEqual(plan.ids.sorted(), population)
        let perm = EpochOrder.permutation(seed: 2, epoch: 1, count: 6)
        XCTAssertEqual(plan.ids, perm.map { population[$0] })
    }

    func test_validationSplit_isStratifiedDisjointAndDeterministic_onRealMNIST() throws {
        let d = try Dataset.openMNIST(directory: Fixtures.mnist5k.directory, partition: .train)
        let split = ValidationSplit(dataset: d, fraction: 0.1, seed: 17)
        XCTAssertEqual(split.validation.count, 400)
        XCTAssertEqual(split.train.count, 3600)
        XCTAssertEqual(Set(split.train).intersection(split.validation).count, 0)
        XCTAssertEqual((split.train + split.validation).sorted(), Array(0..<4000))
        XCTAssertEqual(split.train, split.train.sorted())
        var perClass = [Int](repeating: 0, count: 10)
        for id in split.validation { perClass[d.label(at: id)] += 1 }
        XCTAssertEqual(perClass, [Int](repeating: 40, count: 10))
        XCTAssertEqual(split, ValidationSplit(dataset: d, fraction: 0.1, seed: 17))
        XCTAssertNotEqual(split.validation, ValidationSplit(dataset: d, fraction: 0.1, seed: 18).validation)
    }

    func test_validationSplit_withUnevenClasses_hitsTheExactCount() {
        let labels: [Int32] = [0, 0, 0, 0, 0, 0, 0, 1, 1, 2]
        let split = ValidationSplit(labels: labels, classCount: 4, validationCount: 3, seed: 1)
        XCTAssertEqual(split.validation.count, 3)
        XCTAssertEqual(split.train.count, 7)
        let zero = ValidationSplit(labels: labels, classCount: 4, validationCount: 0, seed: 1)
        XCTAssertEqual(zero.train, Array(0..<10))
        XCTAssertEqual(ValidationSplit(labels: labels, classCount: 4, validationCount: 10, seed: 1).validation, Array(0..<10))
    }
}
