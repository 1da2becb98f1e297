// Vector.swift: the one place that picks the SIMD width, plus unaligned load/store helpers.
// Every kernel is written once against FloatVector (main loop) + a scalar tail; no #if arch in kernels.
//
// Dimension letters used across Kernels (docs/kernels.md): N batch, C in-channels, K out-channels,
// H/W input height/width, P/Q output height/width, R/S kernel height/width.

/// The SIMD vector used by every kernel: 8 lanes = one AVX2 register.
public typealias FloatVector = SIMD8<Float>

@inline(__always) @usableFromInline
func loadVector(_ p: UnsafePointer<Float>) -> FloatVector {
    UnsafeRawPointer(p).loadUnaligned(as: FloatVector.self)
}

@inline(__always) @usableFromInline
func loadVector(_ p: UnsafeMutablePointer<Float>) -> FloatVector {
    UnsafeRawPointer(p).loadUnaligned(as: FloatVector.self)
}

@inline(__always) @usableFromInline
func storeVector(_ v: FloatVector, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: FloatVector.self)
}
