// StoragePoolTests.swift: the reuse of large tensor buffers (Tensors/Storage+Pool.swift): a freed
// large buffer is handed to the next storage of the same size, small ones are not pooled, the pool
// never holds more than its capacity, capacity 0 turns it off, and reused buffers behave as new ones
// (zeroed when asked, independent copies). The "a step needs no new buffer after warm-up" figure is
// reported by `memloss bench step` and checked in MemlossBenchTests.

import Foundation
import XCTest
@testable import Tensors

final class StoragePoolTests: XCTestCase {
    private var savedCapacity = 0

    override func setUp() {
        savedCapacity = StoragePool.capacityBytes
        StoragePool.drain()
        StoragePool.capacityBytes = 64 << 20
        StoragePool.resetStatistics()
    }

    override func tearDown() {
        StoragePool.drain()
        StoragePool.capacityBytes = savedCapacity
    }

    private static let large = 300_000   // floats: 1.2 MB, above StoragePool.minimumBytes

    func test_aFreedLargeBuffer_isReusedByTheNextStorageOfTheSameSize() {
        var address: UnsafeMutablePointer<Float>?
        do { let a = TensorStorage(uninitializedCount: Self.large); address = a.base }
        XCTAssertEqual(StoragePool.statistics.misses, 1)
        XCTAssertEqual(StoragePool.statistics.retainedBytes, StoragePool.pooledSize(Self.large * 4))
        let b = TensorStorage(uninitializedCount: Self.large)
        XCTAssertEqual(b.base, address, "the same buffer comes back")
        XCTAssertEqual(StoragePool.statistics.hits, 1)
        XCTAssertEqual(StoragePool.statistics.retainedBytes, 0)
        // Another size (beyond the 4 KiB rounding) does not take a pooled buffer.
        do { _ = TensorStorage(uninitializedCount: Self.large) }          // a miss (b holds the first), then pooled
        XCTAssertEqual(StoragePool.statistics.misses, 2)
        let c = TensorStorage(uninitializedCount: Self.large + 2048)
        XCTAssertEqual(StoragePool.statistics.misses, 3)
        XCTAssertEqual(StoragePool.statistics.retainedBytes, StoragePool.pooledSize(Self.large * 4))
        withExtendedLifetime((b, c)) { XCTAssertNotEqual(c.base, b.base) }
    }

    func test_smallBuffers_areNotPooled() {
        do { _ = TensorStorage(uninitializedCount: 1000) }
        XCTAssertEqual(StoragePool.statistics, StoragePool.Statistics(hits: 0, misses: 0, retainedBytes: 0))
        XCTAssertNil(StoragePool.pooledSize(StoragePool.minimumBytes - 4))
        XCTAssertEqual(StoragePool.pooledSize(StoragePool.minimumBytes + 1), StoragePool.minimumBytes + 4096)
    }

    func test_thePool_neverHoldsMoreThanItsCapacity_andCapacityZeroTurnsItOff() {
        let size = StoragePool.pooledSize(Self.large * 4)!
        StoragePool.capacityBytes = 2 * size
        do { let buffers = (0..<5).map { _ in TensorStorage(uninitializedCount: Self.large) }; _ = buffers }
        XCTAssertEqual(StoragePool.statistics.retainedBytes, 2 * size)
        StoragePool.capacityBytes = size            // lowering the capacity frees what is over it
        XCTAssertEqual(StoragePool.statistics.retainedBytes, size)
        StoragePool.capacityBytes = 0
        XCTAssertEqual(StoragePool.statistics.retainedBytes, 0)
        StoragePool.resetStatistics()
        do { _ = TensorStorage(uninitializedCount: Self.large) }
        do { _ = TensorStorage(uninitializedCount: Self.large) }
        XCTAssertEqual(StoragePool.statistics.hits, 0)
        XCTAssertEqual(StoragePool.statistics.retainedBytes, 0)
    }

    func test_reusedBuffers_areZeroedWhenAsked_andTensorsStayIndependent() {
        do {
            var t = Tensor(uninitialized: [Self.large])
            t.withUnsafeMutableBufferPointer { $0.update(repeating: 7) }
        }
        let zeroed = Tensor(zeros: [Self.large])
        XCTAssertEqual(StoragePool.statistics.hits, 1, "the zeroed tensor reused the freed buffer")
        XCTAssertTrue(zeroed.scalars.allSatisfy { $0 == 0 })
        var copy = zeroed
        copy[flat: 0] = 3
        XCTAssertEqual(zeroed[flat: 0], 0)
        XCTAssertEqual(copy[flat: 0], 3)
    }

    func test_buffersFreedOnManyThreads_allComeBackOnce() {
        let count = 16
        DispatchQueue.concurrentPerform(iterations: count) { _ in _ = TensorStorage(uninitializedCount: Self.large) }
        let size = StoragePool.pooledSize(Self.large * 4)!
        XCTAssertLessThanOrEqual(StoragePool.statistics.retainedBytes, count * size)
        let retained = StoragePool.statistics.retainedBytes / size
        XCTAssertGreaterThanOrEqual(retained, 1)
        let again = (0..<retained).map { _ in TensorStorage(uninitializedCount: Self.large) }
        withExtendedLifetime(again) {
            XCTAssertEqual(Set(again.map(\.base)).count, retained, "no buffer handed out twice")
            XCTAssertEqual(StoragePool.statistics.retainedBytes, 0)
        }
    }
}
