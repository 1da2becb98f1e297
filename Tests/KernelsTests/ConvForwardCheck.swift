// ConvForwardCheck.swift: the shared check of a fused conv forward (any algorithm) against the naive
// Reference forward followed by the epilogue in Double, used by the direct and Winograd kernel tests.

import XCTest
@testable import Kernels
import _TestSupport

/// The fused forward on `algorithm` against Reference forward followed by the epilogue in Double.
func checkFusedForward(_ g: ConvGeometry, seed: UInt64, algorithm: ConvAlgorithm,
                       scale: Bool, shift: Bool, residual: Bool, relu: Bool, atol: Float, rtol: Float,
                       file: StaticString = #filePath, line: UInt = #line) {
    let count = g.n * g.k * g.p * g.q, pq = g.p * g.q
    let input = seededUniform(g.n * g.c * g.h * g.w, seed: seed)
    let weight = seededUniform(g.k * g.c * g.r * g.s, seed: seed + 1)
    let scales = seededUniform(g.k, low: 0.5, high: 2, seed: seed + 2)
    let shifts = seededUniform(g.k, seed: seed + 3)
    let residuals = seededUniform(count, seed: seed + 4)
    var plain = [Float](repeating: 0, count: count)
    plain.withUnsafeMutableBufferPointer { o in input.withUnsafeBufferPointer { x in weight.withUnsafeBufferPointer { w in
        Reference.conv2DForward(output: o.baseAddress!, input: x.baseAddress!, weight: w.baseAddress!, bias: nil, geometry: g)
    } } }
    var expected = plain
    for i in 0..<count {
        let k = (i / pq) % g.k
        var v = Double(plain[i]) * Double(scale ? scales[k] : 1) + Double(shift ? shifts[k] : 0)
        if residual { v += Double(residuals[i]) }
        if relu { v = max(0, v) }
        expected[i] = Float(v)
    }
    // NaN-filled output proves every element is written.
    var fast = [Float](repeating: .nan, count: count)
    fast.withUnsafeMutableBufferPointer { o in input.withUnsafeBufferPointer { x in weight.withUnsafeBufferPointer { w in
        scales.withUnsafeBufferPointer { a in shifts.withUnsafeBufferPointer { b in residuals.withUnsafeBufferPointer { res in
            let epilogue = Conv2D.Epilogue(scale: scale ? a.baseAddress! : nil, shift: shift ? b.baseAddress! : nil,
                                           residual: residual ? res.baseAddress! : nil, relu: relu)
            Conv2D.forward(output: o.baseAddress!, input: x.baseAddress!, weight: w.baseAddress!, epilogue: epilogue,
                           geometry: g, algorithm: algorithm)
        } } }
    } } }
    assertClose(fast, expected, atol: atol, rtol: rtol,
                "\(algorithm) forward (scale \(scale), shift \(shift), residual \(residual), relu \(relu)), \(g)",
                file: file, line: line)
}
