// MutatorTests.swift: the fuzz driver of _TestSupport (Mutator.swift) is reproducible from its seed,
// really changes its input, and reaches every mutation kind's effect (shorter, longer, same length).

import _TestSupport
import XCTest

final class MutatorTests: XCTestCase {
    private let input: [UInt8] = Array("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}".utf8) + [UInt8](repeating: 7, count: 8)

    func test_sameSeed_sameMutants_differentSeed_differentMutants() {
        var a = Mutator(seed: 1), b = Mutator(seed: 1), c = Mutator(seed: 2)
        let ma = (0..<50).map { _ in a.mutate(input) }
        XCTAssertEqual(ma, (0..<50).map { _ in b.mutate(input) })
        XCTAssertNotEqual(ma, (0..<50).map { _ in c.mutate(input) })
    }

    func test_mutantsDiffer_andCoverShorterLongerAndSameLength() {
        var m = Mutator(seed: 3, corpus: [input, Array(input.reversed())])
        let mutants = (0..<400).map { _ in m.mutate(input) }
        XCTAssertGreaterThan(mutants.filter { $0 != input }.count, 380)
        XCTAssertTrue(mutants.contains { $0.count < input.count })
        XCTAssertTrue(mutants.contains { $0.count > input.count })
        XCTAssertTrue(mutants.contains { $0.count == input.count && $0 != input })
        XCTAssertTrue(mutants.contains { $0.isEmpty == false && $0.count < 4 } || mutants.contains { $0.count < input.count / 2 })
    }

    func test_run_countsTheCorpusAndEveryMutant() {
        var seen = 0
        let n = Fuzz.run(name: "count", corpus: [("a", input), ("b", [1, 2, 3])], iterations: 25) { _ in seen += 1 }
        XCTAssertEqual(n, 52)
        XCTAssertEqual(seen, 52)
    }
}
