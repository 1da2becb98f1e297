// Reference.swift: the namespace of the naive twins of every fast kernel (`Reference.conv2DForward`, …).
// The twins live in `Kernels/<Kernel>+Reference.swift` files as `extension Reference`; they are plain
// loops, obviously correct and slow, used by tests and as the fallback for unsupported cases.
// This file declares the namespace only; it holds no kernels.

/// Naive, obviously correct twins of the fast kernels (plain nested loops, no SIMD, no BLAS,
/// no threads). Each twin has the same signature and semantics as its fast kernel.
public enum Reference {}
