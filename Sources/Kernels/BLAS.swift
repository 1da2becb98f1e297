// BLAS.swift: the single wrapper around OpenBLAS's cblas_sgemm. No other file calls cblas_*.
// Row-major is fixed. Threading policy (one level only, systems.md §4): OpenBLAS runs on one
// thread and Kernels parallelise over the batch with `Parallel`; see Parallel.swift.

import CBLAS

/// Whether a GEMM operand is used as stored or transposed.
public enum Transpose: Sendable {
    case none, transposed
    @inline(__always) var cblas: CBLAS_TRANSPOSE { self == .none ? CblasNoTrans : CblasTrans }
}

public enum BLAS {
    /// One-time setup: pin OpenBLAS to a single thread so that batch-level parallelism in the
    /// kernels never nests with BLAS threads (oversubscription on 2 cores costs 10–40%).
    private static let configured: Bool = {
        openblas_set_num_threads(1)
        return true
    }()

    /// Forces the threading set-up (called implicitly by `gemm`).
    @inline(__always) public static func configure() { _ = configured }

    /// The linked OpenBLAS as it reports itself, after `configure()`: build configuration, core
    /// kernel set and thread count, e.g. `OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Haswell MAX_THREADS=64;
    /// core Haswell; 1 thread`.
    public static var configurationDescription: String {
        configure()
        let config = openblas_get_config().map { String(cString: $0) } ?? "OpenBLAS"
        let core = openblas_get_corename().map { String(cString: $0) } ?? "?"
        let threads = openblas_get_num_threads()
        return "\(config); core \(core); \(threads) thread\(threads == 1 ? "" : "s")"
    }

    /// `C = alpha · op(A) · op(B) + beta · C`, row-major.
    ///
    /// Shapes: op(A) `[m, k]`, op(B) `[k, n]`, C `[m, n]`; `lda`, `ldb`, `ldc` are the row strides of
    /// A, B and C as stored.
    public static func gemm(transposeA: Transpose = .none, transposeB: Transpose = .none,
                            m: Int, n: Int, k: Int, alpha: Float = 1,
                            a: UnsafePointer<Float>, lda: Int,
                            b: UnsafePointer<Float>, ldb: Int,
                            beta: Float = 0,
                            c: UnsafeMutablePointer<Float>, ldc: Int) {
        configure()
        if m == 0 || n == 0 { return }
        if k == 0 {
            // BLAS leaves C·beta; make the k = 0 case explicit and well-defined.
            for i in 0..<m { for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j] } }
            return
        }
        cblas_sgemm(CblasRowMajor, transposeA.cblas, transposeB.cblas,
                    Int32(m), Int32(n), Int32(k), alpha,
                    a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// Identification of the BLAS build and the kernel it picked (e.g. "Zen"), for benchmarks.
    public static var configuration: String {
        configure()
        let config = openblas_get_config().map { String(cString: $0) } ?? "?"
        let core = openblas_get_corename().map { String(cString: $0) } ?? "?"
        return "\(config); core \(core); BLAS threads \(openblas_get_num_threads())"
    }
}
