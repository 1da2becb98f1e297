// ElementwiseTests.swift: the flat Elementwise kernels against their Reference twins for counts around
// the SIMD width and above the parallel threshold, in-place use, and the accuracy of the blocked sum.

import XCTest
import Kernels
import Tensors
import _TestSupport

final class ElementwiseTests: XCTestCase {
    /// Counts around the 8-lane vector, the 32-lane unrolled sum, a 4096 sum block and the parallel
    /// threshold (2^18), so that every main loop, tail and split is exercised.
    static let counts = [0, 1, 7, 8, 9, 31, 33, 1000, 1003, 4099, 300_001]

    func test_add_matchesReference_forCountsAroundTheVectorWidth() {
        for (k, count) in Self.counts.enumerated() {
            let a = seededUniform(count, seed: UInt64(10 + k)), b = seededUniform(count, seed: UInt64(50 + k))
            var fast = [Float](repeating: .nan, count: count), slow = [Float](repeating: .nan, count: count)
            Elementwise.add(output: &fast, a: a, b: b, count: count)
            Reference.elementwiseAdd(output: &slow, a: a, b: b, count: count)
            XCTAssertEqual(fast, slow, "count \(count)")
        }
    }

    func test_add_inPlace_givesTheSameResultAsOutOfPlace() {
        let count = 1003
        var a = seededUniform(count, seed: 1)
        let b = seededUniform(count, seed: 2)
        var expected = [Float](repeating: 0, count: count)
        Elementwise.add(output: &expected, a: a, b: b, count: count)
        a.withUnsafeMutableBufferPointer { p in
            Elementwise.add(output: p.baseAddress!, a: p.baseAddress!, b: b, count: count)
        }
        XCTAssertEqual(a, expected)
    }

    func test_accumulate_addsIntoTheTarget() {
        for (k, count) in Self.counts.enumerated() {
            let source = seededUniform(count, seed: UInt64(100 + k))
            var fast = seededUniform(count, seed: UInt64(200 + k))
            var slow = fast
            Elementwise.accumulate(into: &fast, from: source, count: count)
            Reference.elementwiseAccumulate(into: &slow, from: source, count: count)
            XCTAssertEqual(fast, slow, "count \(count)")
        }
    }

    func test_scale_matchesReference() {
        for (k, count) in Self.counts.enumerated() {
            let x = seededUniform(count, seed: UInt64(300 + k))
            var fast = [Float](repeating: .nan, count: count), slow = [Float](repeating: .nan, count: count)
            Elementwise.scale(output: &fast, input: x, by: -2.75, count: count)
            Reference.elementwiseScale(output: &slow, input: x, by: -2.75, count: count)
            XCTAssertEqual(fast, slow, "count \(count)")
        }
    }

    func test_addScaled_matchesReference() {
        for (k, count) in Self.counts.enumerated() {
            let source = seededUniform(count, seed: UInt64(400 + k))
            var fast = seededUniform(count, seed: UInt64(500 + k))
            var slow = fast
            Elementwise.addScaled(into: &fast, from: source, scale: 0.3, count: count)
            Reference.elementwiseAddScaled(into: &slow, from: source, scale: 0.3, count: count)
            // One fused rounding vs a Double computation rounded once: equal up to a rare double rounding.
            assertClose(fast, slow, atol: 1e-7, rtol: 1e-7, "count \(count)")
        }
    }

    func test_sum_matchesDoubleReference() {
        for (k, count) in Self.counts.enumerated() {
            let x = seededUniform(count, low: -1, high: 3, seed: UInt64(600 + k))
            let fast = Elementwise.sum(x, count: count)
            let slow = Reference.elementwiseSum(x, count: count)
            XCTAssertEqual(fast, slow, accuracy: 1e-6 * max(1, abs(slow)), "count \(count)")
        }
        XCTAssertEqual(Elementwise.sum([Float](), count: 0), 0)
    }

    func test_sum_staysAccurate_forAMillionEqualValues() {
        // One Float accumulator drifts by several percent here (adding 0.1 to 262144 rounds to a
        // multiple of 1/32); the blocked sum keeps Float error inside 4096-element blocks (≈1e-6).
        let count = 3_000_001
        let x = [Float](repeating: 0.1, count: count)
        let expected = Double(Float(0.1)) * Double(count)
        XCTAssertEqual(Double(Elementwise.sum(x, count: count)), expected, accuracy: expected * 1e-5)
    }

    func test_copy_copiesEveryElement() {
        for (k, count) in Self.counts.enumerated() {
            let x = seededUniform(count, seed: UInt64(700 + k))
            var y = [Float](repeating: .nan, count: count)
            Elementwise.copy(output: &y, input: x, count: count)
            XCTAssertEqual(y, x, "count \(count)")
        }
    }
}
