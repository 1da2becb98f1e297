// Tensor+Random.swift: tensors filled from a SplitMix64 stream (normal and uniform initialisers), so
// initialisation is seeded and reproducible. The generator itself is SplitMix64.swift.

extension Tensor {
    /// Elements drawn from N(mean, std²).
    public static func randomNormal(shape: [Int], mean: Float = 0, std: Float, rng: inout SplitMix64) -> Tensor {
        let values = (0..<Tensor.elementCount(shape)).map { _ in mean + std * rng.nextNormal() }
        return Tensor(shape: shape, values: values)
    }

    /// Elements drawn from U(low, high).
    public static func randomUniform(shape: [Int], low: Float, high: Float, rng: inout SplitMix64) -> Tensor {
        let values = (0..<Tensor.elementCount(shape)).map { _ in low + (high - low) * rng.nextFloat() }
        return Tensor(shape: shape, values: values)
    }
}
