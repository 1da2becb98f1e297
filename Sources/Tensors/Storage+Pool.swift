// Storage+Pool.swift: reuse of large tensor buffers across the steps of a run. A training step
// allocates the same activation, gradient and attack buffers every time; glibc serves buffers above
// its mmap threshold (and trims its heap) by returning memory to the system, so each step's first
// write to every such buffer page-faults and the kernel zeroes the page (measured on the ResNet-18
// ×0.25 TRADES step: 4.3% of the time in clear_page, 9.7% in the kernel; docs/performance.md).
// TensorStorage hands its buffer to this pool instead of freeing it, keyed by its exact size
// (rounded to 4 KiB), and takes a same-size buffer back from it before asking malloc: after the
// first (warm-up) step, a step gets every large buffer from here. Bounded in bytes
// (`MEMLOSS_TENSOR_POOL_MB`, default 1,024; 0 turns the pool off): a buffer that would exceed the
// bound is freed. Only raw memory lives here; it knows nothing of shapes or layers.

import Synchronization

/// The process-wide pool of large tensor buffers (see the file comment). Thread-safe: a storage may
/// be freed on any thread.
public enum StoragePool {
    /// Buffers of at least this many bytes are pooled (smaller ones come from malloc's own bins).
    public static let minimumBytes = 128 * 1024

    /// The most bytes the pool keeps while they are unused; from `MEMLOSS_TENSOR_POOL_MB` (MiB) at
    /// start-up, default 1 GiB. Settable (tests); 0 turns pooling off.
    public static var capacityBytes: Int {
        get { state.withLock { $0.capacity } }
        set { let freed = state.withLock { s -> [UnsafeMutableRawPointer] in s.capacity = max(0, newValue); return s.evictToCapacity() }
              for p in freed { p.deallocate() } }
    }

    /// Counters since start-up (or `resetStatistics`): `hits` buffers served from the pool, `misses`
    /// pooled-size buffers that had to come from malloc, `retainedBytes` held unused now.
    public struct Statistics: Sendable, Equatable {
        public var hits = 0, misses = 0, retainedBytes = 0
    }

    public static var statistics: Statistics {
        state.withLock { Statistics(hits: $0.hits, misses: $0.misses, retainedBytes: $0.bytes) }
    }

    public static func resetStatistics() {
        state.withLock { $0.hits = 0; $0.misses = 0 }
    }

    /// Frees every unused buffer the pool holds.
    public static func drain() {
        let freed = state.withLock { s -> [UnsafeMutableRawPointer] in
            let all = s.free.values.flatMap { $0 }
            s.free = [:]; s.bytes = 0
            return all
        }
        for p in freed { p.deallocate() }
    }

    /// The allocation size of a pooled buffer of `bytes` bytes (4 KiB multiple), or nil when buffers
    /// of that size are not pooled.
    @inline(__always)
    static func pooledSize(_ bytes: Int) -> Int? {
        bytes >= minimumBytes ? (bytes + 4095) & ~4095 : nil
    }

    /// A buffer of `size` bytes (a `pooledSize`), from the pool when it has one, else from malloc.
    static func take(size: Int, alignment: Int) -> UnsafeMutableRawPointer {
        let reused = state.withLock { s -> UnsafeMutableRawPointer? in
            if let p = s.free[size]?.popLast() {
                s.bytes -= size; s.hits += 1
                return p
            }
            s.misses += 1
            return nil
        }
        return reused ?? UnsafeMutableRawPointer.allocate(byteCount: size, alignment: alignment)
    }

    /// Takes back a buffer from `take(size:alignment:)`; frees it when the pool is full.
    static func give(_ pointer: UnsafeMutableRawPointer, size: Int) {
        let kept = state.withLock { s -> Bool in
            guard s.bytes + size <= s.capacity else { return false }
            s.free[size, default: []].append(pointer)
            s.bytes += size
            return true
        }
        if !kept { pointer.deallocate() }
    }

    private struct State: ~Copyable {
        var free: [Int: [UnsafeMutableRawPointer]] = [:]
        var bytes = 0, hits = 0, misses = 0
        var capacity: Int

        /// Removes buffers (largest sizes first) until the pool is within its capacity; returns them.
        mutating func evictToCapacity() -> [UnsafeMutableRawPointer] {
            var out: [UnsafeMutableRawPointer] = []
            for size in free.keys.sorted(by: >) where bytes > capacity {
                while bytes > capacity, let p = free[size]?.popLast() { out.append(p); bytes -= size }
            }
            return out
        }
    }

    private static let state = Mutex(State(capacity: initialCapacity()))

    private static func initialCapacity() -> Int {
        if let text = getenv("MEMLOSS_TENSOR_POOL_MB").map({ String(cString: $0) }), let mb = Int(text), mb >= 0 {
            return mb << 20
        }
        return 1 << 30
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
