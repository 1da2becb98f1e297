// SyntheticData+Unsafe.swift: the synthetic-v1 pixel loop (one sample from its own seeded stream) and
// the chunk renderer that runs it on all cores into disjoint slices of one buffer. The formula is
// documented on SyntheticGenerator; this file only evaluates it.

import Kernels
import Tensors

extension SyntheticGenerator {
    /// Renders sample `id` into `buffer[offset ..< offset + C·H·W]`; returns its label.
    @discardableResult
    func render(_ id: Int, into buffer: inout [UInt8], offset: Int) -> Int {
        precondition(offset >= 0 && offset + spec.shape.pixelCount <= buffer.count)
        return buffer.withUnsafeMutableBufferPointer { p in render(id, into: p.baseAddress! + offset) }
    }

    /// Renders samples `range` back to back into `buffer` (sized for at least `range.count` samples).
    func renderChunk(_ range: Range<Int>, into buffer: inout [UInt8]) {
        let n = spec.shape.pixelCount
        precondition(range.count * n <= buffer.count)
        buffer.withUnsafeMutableBufferPointer { p in
            let base = p.baseAddress!
            Parallel.forEachChunk(count: range.count, minimumChunk: 16) { chunk, _ in
                for k in chunk { self.render(range.lowerBound + k, into: base + k * n) }
            }
        }
    }

    @discardableResult
    private func render(_ id: Int, into out: UnsafeMutablePointer<UInt8>) -> Int {
        let c = spec.shape.channels, h = spec.shape.height, w = spec.shape.width
        var g = SplitMix64.derived(seed: spec.seed ^ SyntheticGenerator.sampleSalt, stream: UInt64(id))
        let label = g.nextInt(below: spec.classCount)
        let s = shiftRange
        let sx = g.nextInt(below: 2 * s + 1) - s
        let sy = g.nextInt(below: 2 * s + 1) - s
        let contrast: Float = 0.6 + 0.4 * g.nextFloat()
        let brightness: Float = (g.nextFloat() - 0.5) * 40
        let gain = 90 * contrast
        let noiseScale: Float = 40 / 128
        var noiseBits: UInt64 = 0
        var noiseLeft = 0
        prototypes[label].withUnsafeBufferPointer { proto in
            var index = 0
            for ch in 0..<c {
                for y in 0..<h {
                    let py = ((y + sy) % h + h) % h
                    let row = (ch * h + py) * w
                    for x in 0..<w {
                        let px = ((x + sx) % w + w) % w
                        if noiseLeft == 0 {
                            noiseBits = g.next()
                            noiseLeft = 8
                        }
                        let u = Float(Int(noiseBits & 0xFF) - 128)
                        noiseBits >>= 8
                        noiseLeft -= 1
                        let v = (128 + brightness + gain * proto[row + px] + u * noiseScale).rounded()
                        out[index] = UInt8(min(255, max(0, v)))
                        index += 1
                    }
                }
            }
        }
        return label
    }
}
