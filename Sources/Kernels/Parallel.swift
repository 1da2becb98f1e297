// Parallel.swift: the project's single level of parallelism. Kernels split a batch into one
// contiguous chunk per worker and run the chunks with DispatchQueue.concurrentPerform; BLAS stays
// single-threaded (BLAS.swift). Nothing here nests: a kernel called from inside a chunk runs serially.

import Foundation

public enum Parallel {
    /// Worker count for batch-level parallelism: MEMLOSS_THREADS if set (≥ 1), else the number of
    /// active processors.
    public static let workerCount: Int = {
        if let s = ProcessInfo.processInfo.environment["MEMLOSS_THREADS"], let n = Int(s), n >= 1 { return n }
        return max(1, ProcessInfo.processInfo.activeProcessorCount)
    }()

    /// Set while a thread runs a chunk, so nested calls run serially instead of oversubscribing.
    private static let nestingKey = "memloss.parallel.inside"

    private static var isNested: Bool { Thread.current.threadDictionary[nestingKey] != nil }

    /// Splits `0..<count` into at most `workerCount` contiguous ranges (never more than `count`,
    /// each at least `minimumChunk` long when possible) and calls `body(range, worker)` for each,
    /// concurrently. Returns after all chunks finish. `worker` is in `0..<chunks` and can index
    /// per-worker scratch buffers.
    ///
    /// Chunk boundaries depend only on `count`, `workerCount` and `minimumChunk`, so a reduction
    /// done in worker order is deterministic for a fixed thread count.
    public static func forEachChunk(count: Int, minimumChunk: Int = 1,
                                    _ body: (_ range: Range<Int>, _ worker: Int) -> Void) {
        if count <= 0 { return }
        let chunks = chunkCount(count: count, minimumChunk: minimumChunk)
        if chunks == 1 || isNested {
            body(0..<count, 0)
            return
        }
        DispatchQueue.concurrentPerform(iterations: chunks) { i in
            let r = chunkRange(i, of: chunks, count: count)
            let dict = Thread.current.threadDictionary
            dict[nestingKey] = true
            body(r, i)
            dict.removeObject(forKey: nestingKey)
        }
    }

    /// Number of chunks `forEachChunk` uses for `count` items.
    public static func chunkCount(count: Int, minimumChunk: Int = 1) -> Int {
        if count <= 0 || isNested { return 1 }
        let byMinimum = max(1, count / max(1, minimumChunk))
        return max(1, min(workerCount, count, byMinimum))
    }

    /// The `i`-th of `chunks` near-equal contiguous ranges of `0..<count`.
    public static func chunkRange(_ i: Int, of chunks: Int, count: Int) -> Range<Int> {
        let base = count / chunks, extra = count % chunks
        let lo = i * base + min(i, extra)
        return lo..<(lo + base + (i < extra ? 1 : 0))
    }
}
