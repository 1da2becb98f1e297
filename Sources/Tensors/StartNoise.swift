// StartNoise.swift: the per-sample attack start noise that a decoder can regenerate bit for bit:
// a deterministic function of (noise seed, epoch, sample ID, element) built from integer SplitMix64
// output and two IEEE binary32 operations, no libm. Used by the attack (as its Gaussian start, when a
// run asks for it) and by the memory bank's `q8rcn` codec (docs/format/membank-v1.md §7.6), which
// predicts the stored levels from it. Nothing here knows attacks or banks.

/// An exactly specified, Gaussian-like start noise per sample (generator 1: Irwin–Hall of twelve
/// 16-bit uniforms).
///
/// For sample `id` in epoch `e`, the stream is `SplitMix64.derived(seed: seed, stream: e·2³² + id)`
/// (both below 2³²). Element `j` (in [C, H, W] order) takes the next three 64-bit outputs, splits
/// each into four 16-bit words (low word first; the order does not change the sum), sums the twelve
/// words into `S` (0…786,420) and is
///
///     z_j = Float(2·S − 786,420) · 2⁻¹⁷          (exact: an integer below 2²⁰ times a power of two)
///
/// a standard-normal approximation with mean 0, variance 1 − 2⁻³² and support ±6. The attack's
/// start is `x + σ·z` (one binary32 multiplication `σ·z_j`, then the addition), the same σ·z a
/// decoder recomputes.
public struct StartNoise: Sendable, Hashable, Codable {
    /// The generator this struct implements (stored by banks so a later generator cannot be confused with it).
    public static let irwinHall12: UInt8 = 1
    /// XORed into a run seed to make the noise seed (so the noise is not another stream of the run).
    public static let seedSalt: UInt64 = 0x57A2_7A01_5E5E_ED01

    /// The stream seed (a run's `seed ^ seedSalt`).
    public var seed: UInt64

    public init(seed: UInt64) { self.seed = seed }

    /// The noise of a run with seed `runSeed`.
    public init(runSeed: UInt64) { seed = runSeed ^ StartNoise.seedSalt }

    /// Writes z of sample `sampleID` in `epoch` (both in 0..<2³²) into `output[offset..<offset + count]`.
    public func fillUnit(epoch: Int, sampleID: Int, into output: inout [Float], offset: Int = 0, count: Int) {
        precondition(epoch >= 0 && epoch < 1 << 32 && sampleID >= 0 && sampleID < 1 << 32,
                     "StartNoise: epoch \(epoch) and sample ID \(sampleID) must be in 0..<2³²")
        var g = SplitMix64.derived(seed: seed, stream: UInt64(epoch) << 32 | UInt64(sampleID))
        for j in 0..<count {
            var s: UInt64 = 0
            for _ in 0..<3 {
                let r = g.next()
                s &+= (r & 0xFFFF) &+ ((r >> 16) & 0xFFFF) &+ ((r >> 32) & 0xFFFF) &+ (r >> 48)
            }
            output[offset + j] = Float(Int32(truncatingIfNeeded: 2 &* s) &- 786_420) * 0x1p-17
        }
    }

    /// z of one sample as an array (tests, tools).
    public func unit(epoch: Int, sampleID: Int, count: Int) -> [Float] {
        var out = [Float](repeating: 0, count: count)
        fillUnit(epoch: epoch, sampleID: sampleID, into: &out, count: count)
        return out
    }

    /// z for a batch `[ids.count] + sampleShape` (the attack's start, before the factor σ).
    public func unitTensor(epoch: Int, ids: [Int], sampleShape: [Int]) -> Tensor {
        let n = Tensor.elementCount(sampleShape)
        var values = [Float](repeating: 0, count: ids.count * n)
        for (row, id) in ids.enumerated() { fillUnit(epoch: epoch, sampleID: id, into: &values, offset: row * n, count: n) }
        return Tensor(shape: [ids.count] + sampleShape, values: values)
    }
}
