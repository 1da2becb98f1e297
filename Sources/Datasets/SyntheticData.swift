// SyntheticData.swift: learnable synthetic image sets for tests and scale benches: per-class smooth
// prototype patterns plus per-sample shift, contrast, brightness and noise, every sample a pure function
// of (seed, id), written to a `.mlds` file in chunks (so a 4+ GB set never sits in RAM).
// The generator ("synthetic-v1") is normative: docs/datasets.md §6. Pixel loops: SyntheticData+Unsafe.swift.

import Foundation
import Tensors

/// What to generate: N samples of C×H×W with `classCount` classes, from `seed`.
public struct SyntheticSpec: Hashable, Codable, Sendable {
    public var count: Int
    public var shape: ImageShape
    /// 1...256 (`.mlds` labels are one byte).
    public var classCount: Int
    public var seed: UInt64

    public init(count: Int, shape: ImageShape, classCount: Int, seed: UInt64) {
        self.count = count
        self.shape = shape
        self.classCount = classCount
        self.seed = seed
    }

    /// The defaults of `memloss data synth`: 10,000 CIFAR-shaped samples (3×32×32), 10 classes, seed 0.
    public static let standard = SyntheticSpec(count: 10_000, shape: ImageShape(channels: 3, height: 32, width: 32),
                                               classCount: 10, seed: 0)

    /// Throws `.invalidArgument` for out-of-range fields.
    public func validate() throws {
        guard count >= 0 && count < (1 << 40) else {
            throw DatasetError.invalidArgument(name: "count", found: "\(count)", expected: "0 ≤ N < 2^40")
        }
        for (name, v) in [("channels", shape.channels), ("height", shape.height), ("width", shape.width)] where !(1...4096).contains(v) {
            throw DatasetError.invalidArgument(name: name, found: "\(v)", expected: "1...4096")
        }
        guard (1...256).contains(classCount) else {
            throw DatasetError.invalidArgument(name: "classes", found: "\(classCount)", expected: "1...256")
        }
    }

    /// Size of the `.mlds` file this spec produces, in bytes.
    public var fileSize: Int {
        MLDSHeader(count: count, shape: shape, classCount: classCount, generator: MLDSHeader.generatorSyntheticV1, seed: seed).fileSize
    }
}

/// The synthetic-v1 generator.
///
/// ```
/// prototype P_k[c, y, x] = Σ_{j<3} a_j · wave(fx_j·x/W + fy_j·y/H + φ_j),  normalised to max |P_k| = 1
///     (fx, fy ∈ {−2…2} not both 0, φ ∈ [0,1), a ∈ [0.5,1), drawn per (k, c) from the seed)
/// sample id:  g = SplitMix64.derived(seed: seed ^ salt, stream: id)
///     label k = g.nextInt(below: K);  shifts sx, sy ∈ [−s, s] (s = max(1, min(H, W)/16), cyclic)
///     contrast α ∈ [0.6, 1), brightness β ∈ [−20, 20)
///     pixel = clamp(round(128 + β + 90·α·P_k[c, (y+sy) mod H, (x+sx) mod W] + (u − 128)·40/128), 0, 255)
///     with u one byte of g per pixel (8 per `next()`), in CHW order
/// ```
/// Only +, −, ×, ÷ and `rounded()` on Float (no libm), so files are identical on every platform.
public struct SyntheticGenerator: Sendable {
    public let spec: SyntheticSpec
    /// `[K][C·H·W]` prototypes in [−1, 1].
    let prototypes: [[Float]]

    static let prototypeSalt: UInt64 = 0x7072_6F74_6F74_7970  // "prototyp"
    static let sampleSalt: UInt64 = 0x7361_6D70_6C65_7631     // "samplev1"

    public init(_ spec: SyntheticSpec) {
        self.spec = spec
        let c = spec.shape.channels, h = spec.shape.height, w = spec.shape.width
        var protos: [[Float]] = []
        protos.reserveCapacity(spec.classCount)
        for k in 0..<spec.classCount {
            var g = SplitMix64.derived(seed: spec.seed ^ SyntheticGenerator.prototypeSalt, stream: UInt64(k))
            var p = [Float](repeating: 0, count: c * h * w)
            for ch in 0..<c {
                for _ in 0..<3 {
                    var fx = 0, fy = 0
                    while fx == 0 && fy == 0 {
                        fx = g.nextInt(below: 5) - 2
                        fy = g.nextInt(below: 5) - 2
                    }
                    let phase = g.nextFloat()
                    let amplitude = 0.5 + 0.5 * g.nextFloat()
                    for y in 0..<h {
                        for x in 0..<w {
                            let t = Float(fx) * Float(x) / Float(w) + Float(fy) * Float(y) / Float(h) + phase
                            p[(ch * h + y) * w + x] += amplitude * SyntheticGenerator.wave(t)
                        }
                    }
                }
            }
            var peak: Float = 0
            for v in p { peak = max(peak, abs(v)) }
            if peak > 0 { for i in p.indices { p[i] /= peak } }
            protos.append(p)
        }
        prototypes = protos
    }

    /// A smooth periodic wave with period 1 (a parabolic approximation of sin 2πt, libm-free).
    @inline(__always)
    static func wave(_ t: Float) -> Float {
        let u = t - t.rounded(.down)        // [0, 1)
        let v = 2 * u - 1                   // [−1, 1)
        return -4 * v * (1 - abs(v))
    }

    /// Cyclic shift range s.
    var shiftRange: Int { max(1, min(spec.shape.height, spec.shape.width) / 16) }

    /// Label of sample `id`.
    public func label(of id: Int) -> Int {
        var g = SplitMix64.derived(seed: spec.seed ^ SyntheticGenerator.sampleSalt, stream: UInt64(id))
        return g.nextInt(below: spec.classCount)
    }

    /// Sample `id` generated on its own: (label, CHW bytes). Equal to what `write` stores.
    public func sample(_ id: Int) -> (label: Int, pixels: [UInt8]) {
        var out = [UInt8](repeating: 0, count: spec.shape.pixelCount)
        let l = render(id, into: &out, offset: 0)
        return (l, out)
    }

    /// Writes the whole set to `path` (`.mlds`), in chunks of about 8 MiB rendered on all cores.
    /// - Parameter progress: called with the number of samples written so far.
    public func write(to path: String, progress: ((Int) -> Void)? = nil) throws {
        try spec.validate()
        let perChunk = max(1, (8 << 20) / spec.shape.pixelCount)
        try MLDSWriter.write(path: path, count: spec.count, shape: spec.shape, classCount: spec.classCount,
                             generator: MLDSHeader.generatorSyntheticV1, seed: spec.seed, samplesPerChunk: perChunk,
                             label: { self.label(of: $0) },
                             fill: { range, buffer in self.renderChunk(range, into: &buffer) },
                             progress: progress)
    }
}

extension Dataset {
    /// Generates `spec` into `path` and opens it.
    public static func makeSynthetic(_ spec: SyntheticSpec, path: String) throws -> Dataset {
        try SyntheticGenerator(spec).write(to: path)
        return try openMLDS(file: path)
    }
}
