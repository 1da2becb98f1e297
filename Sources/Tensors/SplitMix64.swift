// SplitMix64.swift: seeded, checkpointable random numbers for initialisation, dropout and data order.
// Never uses SystemRandomNumberGenerator (a getrandom syscall per value, systems.md §3.7) or the clock.

/// SplitMix64 (Steele, Lea, Flood 2014): a 64-bit state generator; the whole state is `state`,
/// so saving and restoring it resumes the stream exactly.
public struct SplitMix64: RandomNumberGenerator, Sendable, Hashable, Codable {
    public var state: UInt64

    public init(seed: UInt64) { state = seed }

    @inlinable
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 24 bits of precision.
    @inlinable
    public mutating func nextFloat() -> Float {
        Float(next() >> 40) * (1.0 / 16_777_216.0)
    }

    /// Uniform in [0, 1) with 53 bits of precision.
    @inlinable
    public mutating func nextDouble() -> Double {
        Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
    }

    /// Standard normal N(0, 1) by the Box–Muller transform (one value per call; the second is dropped
    /// so that the state alone determines the stream).
    @inlinable
    public mutating func nextNormal() -> Float {
        // 1 − u keeps the logarithm's argument in (0, 1].
        let u1 = 1.0 - nextDouble()
        let u2 = nextDouble()
        return Float((-2.0 * _log(u1)).squareRoot() * _cos(2.0 * Double.pi * u2))
    }

    /// Uniform integer in 0..<bound without modulo bias.
    @inlinable
    public mutating func nextInt(below bound: Int) -> Int {
        precondition(bound > 0, "SplitMix64.nextInt: bound must be positive")
        return Int(next(upperBound: UInt64(bound)))
    }

    /// A generator for an independent stream derived from this seed and `stream` (e.g. one per epoch).
    public static func derived(seed: UInt64, stream: UInt64) -> SplitMix64 {
        var g = SplitMix64(seed: seed ^ (stream &* 0xD1B5_4A32_D192_ED03))
        _ = g.next()
        return SplitMix64(seed: g.next())
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@usableFromInline func _log(_ x: Double) -> Double { log(x) }
@usableFromInline func _cos(_ x: Double) -> Double { cos(x) }
