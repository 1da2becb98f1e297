// Vector.swift: the one place that picks the SIMD widths, plus unaligned load/store helpers.
// Every kernel is written once against FloatVector (main loop) + a scalar tail; no #if arch in kernels.
// The register-blocked convolution micro-kernels use WideVector: one full register of the build's
// target ISA (16 lanes with AVX-512, MEMLOSS_AVX512 set by Package.swift; else 8). docs/kernels.md,
// "Vector width".
//
// Dimension letters used across Kernels (docs/kernels.md): N batch, C in-channels, K out-channels,
// H/W input height/width, P/Q output height/width, R/S kernel height/width.

/// The SIMD vector used by every kernel: 8 lanes = one AVX2 register.
public typealias FloatVector = SIMD8<Float>

/// One full vector register of the target ISA, for the convolution micro-kernels (Conv2D+Direct.swift):
/// 16 lanes (zmm) when built for AVX-512, else 8 (ymm). The other kernels stay on 8-lane FloatVector,
/// whose loops are memory-bound.
#if MEMLOSS_AVX512
public typealias WideVector = SIMD16<Float>
#else
public typealias WideVector = SIMD8<Float>
#endif

/// The vector ISA the kernels were compiled for, for reports and benchmarks.
public enum VectorISA {
    /// "AVX-512 (16-lane conv kernels)" or "AVX2 (8-lane conv kernels)" (or the lane count elsewhere).
    public static var description: String {
        #if MEMLOSS_AVX512
        return "AVX-512 (16-lane conv kernels)"
        #elseif arch(x86_64)
        return "AVX2 (8-lane conv kernels)"
        #else
        return "\(WideVector.scalarCount)-lane conv kernels"
        #endif
    }
}

@inline(__always) @usableFromInline
func loadWide(_ p: UnsafePointer<Float>) -> WideVector {
    UnsafeRawPointer(p).loadUnaligned(as: WideVector.self)
}

@inline(__always) @usableFromInline
func loadWide(_ p: UnsafeMutablePointer<Float>) -> WideVector {
    UnsafeRawPointer(p).loadUnaligned(as: WideVector.self)
}

@inline(__always) @usableFromInline
func storeWide(_ v: WideVector, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: WideVector.self)
}

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
