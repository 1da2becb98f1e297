// BLAS+Tensor.swift: Tensor-level entry points of the `BLAS` kernels: a column-parallel GEMM over
// tensors (the reference figure of `memloss bench conv`). So that Layers, Attacks and Training
// never touch raw pointers, each function checks shapes, allocates its output (unless it writes
// `into:` one), opens the pointers once and calls the pointer kernel of BLAS.swift. Gradient
// accumulators are passed `inout` (`+=` semantics).

import Tensors

extension BLAS {
    /// `c [m, n] = a [m, k] · b [k, n]` with the columns split into one contiguous block per worker
    /// (`Parallel`), each block a single-threaded sgemm: the project's threading policy applied to
    /// one GEMM (the reference figure `memloss bench conv` compares the conv kernels against).
    public static func parallelGEMM(_ a: Tensor, _ b: Tensor, into c: inout Tensor) {
        let m = a.shape[0], k = a.shape[1], n = b.shape[1]
        precondition(b.shape[0] == k && c.count == m * n, "BLAS.parallelGEMM: \(a.shape) · \(b.shape) → \(c.shape)")
        c.withUnsafeMutablePointer { cp in
            a.withUnsafePointer { ap in
                b.withUnsafePointer { bp in
                    Parallel.forEachChunk(count: n) { columns, _ in
                        gemm(m: m, n: columns.count, k: k, a: ap, lda: k,
                             b: bp + columns.lowerBound, ldb: n, c: cp + columns.lowerBound, ldc: n)
                    }
                }
            }
        }
    }
}
