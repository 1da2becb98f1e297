// Elementwise+Tensor.swift: Tensor-level entry points of the `Elementwise` kernels: add,
// accumulate, scaled add, scale and sum. So that Layers, Attacks and Training never touch raw
// pointers, each function checks shapes, allocates its output (unless it writes `into:` one), opens
// the pointers once and calls the pointer kernel of Elementwise.swift. Gradient accumulators are
// passed `inout` (`+=` semantics).

import Tensors

extension Elementwise {
    /// `a + b` (same shape).
    public static func add(_ a: Tensor, _ b: Tensor) -> Tensor {
        precondition(a.shape == b.shape, "Elementwise.add: shapes \(a.shape) and \(b.shape) differ")
        var out = Tensor(uninitialized: a.shape)
        out.withUnsafeMutablePointer { y in
            a.withUnsafePointer { pa in b.withUnsafePointer { pb in add(output: y, a: pa, b: pb, count: a.count) } }
        }
        return out
    }

    /// `target += source` (same element count).
    public static func accumulate(_ target: inout Tensor, _ source: Tensor) {
        precondition(target.count == source.count, "Elementwise.accumulate: \(target.shape) vs \(source.shape)")
        target.withUnsafeMutablePointer { t in source.withUnsafePointer { s in accumulate(into: t, from: s, count: source.count) } }
    }

    /// `target += scale · source`.
    public static func addScaled(_ target: inout Tensor, _ source: Tensor, scale: Float) {
        precondition(target.count == source.count, "Elementwise.addScaled: \(target.shape) vs \(source.shape)")
        target.withUnsafeMutablePointer { t in source.withUnsafePointer { s in addScaled(into: t, from: s, scale: scale, count: source.count) } }
    }

    /// `scale · input`.
    public static func scaled(_ input: Tensor, by scale: Float) -> Tensor {
        var out = Tensor(uninitialized: input.shape)
        out.withUnsafeMutablePointer { y in input.withUnsafePointer { x in self.scale(output: y, input: x, by: scale, count: input.count) } }
        return out
    }

    /// Sum of all elements.
    public static func sum(_ t: Tensor) -> Float {
        t.withUnsafePointer { sum($0, count: t.count) }
    }
}
