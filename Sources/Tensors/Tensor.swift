// Tensor.swift: a dense, row-major (NCHW for images) Float32 tensor with copy-on-write storage; the
// handle over TensorStorage, so with Storage*.swift the only Tensors file touching raw memory.
// Pointers are exposed only inside closures. No autograd, no broadcasting: layers call kernels
// explicitly (see Layers/, Kernels/).

/// A dense row-major Float32 tensor. Images are `[N, C, H, W]`, logits `[N, classes]`.
///
/// Value semantics: copies share storage until one of them is mutated (copy-on-write).
/// `reshaped(_:)` shares storage as well.
public struct Tensor: @unchecked Sendable {
    public private(set) var shape: [Int]
    @usableFromInline var storage: TensorStorage

    /// Number of elements (product of `shape`).
    public var count: Int { storage.count }
    public var rank: Int { shape.count }

    /// A zero-filled tensor of the given shape.
    public init(zeros shape: [Int]) {
        let n = Tensor.elementCount(shape)
        self.shape = shape
        self.storage = TensorStorage(count: n)
    }

    /// A tensor of the given shape whose contents are **undefined** (whatever the allocator returned):
    /// for outputs that a kernel overwrites completely, so that no zeroing pass is spent on them.
    /// Never use it for an output that is accumulated into (`+=`), or read before it is written.
    public init(uninitialized shape: [Int]) {
        let n = Tensor.elementCount(shape)
        self.shape = shape
        self.storage = TensorStorage(uninitializedCount: n)
    }

    /// A tensor of the given shape with every element equal to `value`.
    public init(shape: [Int], repeating value: Float) {
        self.init(uninitialized: shape)
        storage.base.update(repeating: value, count: count)
    }

    /// A tensor of the given shape holding `values` in row-major order.
    /// - Precondition: `values.count` equals the product of `shape`.
    public init(shape: [Int], values: [Float]) {
        let n = Tensor.elementCount(shape)
        precondition(values.count == n, "Tensor(shape: \(shape)) needs \(n) values, got \(values.count)")
        self.init(uninitialized: shape)
        values.withUnsafeBufferPointer { src in
            if let p = src.baseAddress { storage.base.update(from: p, count: n) }
        }
    }

    /// A scalar as a rank-0 tensor.
    public init(scalar: Float) { self.init(shape: [], values: [scalar]) }

    /// Product of the dimensions; `[]` counts as one element.
    public static func elementCount(_ shape: [Int]) -> Int {
        var n = 1
        for d in shape {
            precondition(d >= 0, "Tensor: negative dimension in shape \(shape)")
            n *= d
        }
        return n
    }

    /// All elements in row-major order (a copy).
    public var scalars: [Float] {
        Array(UnsafeBufferPointer(start: storage.base, count: count))
    }

    /// Element at a flat (row-major) index.
    public subscript(flat index: Int) -> Float {
        get {
            assert(index >= 0 && index < count, "Tensor: flat index \(index) out of 0..<\(count)")
            return storage.base[index]
        }
        set {
            assert(index >= 0 && index < count, "Tensor: flat index \(index) out of 0..<\(count)")
            makeUnique()
            storage.base[index] = newValue
        }
    }

    /// Element at a multi-dimensional index.
    public subscript(_ indices: Int...) -> Float {
        get { self[flat: flatIndex(indices)] }
        set { self[flat: flatIndex(indices)] = newValue }
    }

    @inlinable
    func flatIndex(_ indices: [Int]) -> Int {
        precondition(indices.count == shape.count, "Tensor: \(indices.count) indices for shape \(shape)")
        var flat = 0
        for (i, d) in zip(indices, shape) {
            precondition(i >= 0 && i < d, "Tensor: index \(indices) out of bounds for shape \(shape)")
            flat = flat * d + i
        }
        return flat
    }

    /// The same elements viewed with another shape (shares storage; no copy).
    public func reshaped(_ newShape: [Int]) -> Tensor {
        precondition(Tensor.elementCount(newShape) == count,
                     "Tensor.reshaped: \(shape) (\(count) elements) cannot become \(newShape)")
        var t = self
        t.shape = newShape
        return t
    }

    /// Ensures this value owns its storage exclusively (copy-on-write).
    @inlinable
    public mutating func makeUnique() {
        if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
    }

    /// Read access to the elements. The pointer must not escape the closure.
    @inlinable
    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: storage.base, count: storage.count))
    }

    /// Write access to the elements (copies first if the storage is shared).
    @inlinable
    public mutating func withUnsafeMutableBufferPointer<R>(
        _ body: (UnsafeMutableBufferPointer<Float>) throws -> R
    ) rethrows -> R {
        makeUnique()
        return try body(UnsafeMutableBufferPointer(start: storage.base, count: storage.count))
    }

    /// Read access as a base pointer (shorthand for kernels).
    @inlinable
    public func withUnsafePointer<R>(_ body: (UnsafePointer<Float>) throws -> R) rethrows -> R {
        try body(UnsafePointer(storage.base))
    }

    /// Write access as a base pointer (copies first if the storage is shared).
    @inlinable
    public mutating func withUnsafeMutablePointer<R>(_ body: (UnsafeMutablePointer<Float>) throws -> R) rethrows -> R {
        makeUnique()
        return try body(storage.base)
    }

    /// Sets every element to `value`.
    public mutating func fill(_ value: Float) {
        makeUnique()
        storage.base.update(repeating: value, count: count)
    }

    /// An independent copy (never shares storage).
    public func copy() -> Tensor {
        var t = self
        t.storage = storage.copy()
        return t
    }

    /// Rows `range` of the leading dimension (a copy), e.g. a sub-batch of `[N, C, H, W]`.
    public func rows(_ range: Range<Int>) -> Tensor {
        precondition(rank >= 1 && range.lowerBound >= 0 && range.upperBound <= shape[0],
                     "Tensor.rows: \(range) out of 0..<\(shape.first ?? 0)")
        let rowSize = shape[0] == 0 ? 0 : count / shape[0]
        let out = Tensor(uninitialized: [range.count] + shape.dropFirst())
        out.storage.base.update(from: storage.base + range.lowerBound * rowSize, count: range.count * rowSize)
        return out
    }

    /// The rows `indices` of the leading dimension, in that order (a copy; repeats allowed), e.g. the
    /// selected entries of a `[B·K, C, H, W]` memory slab.
    public func gatherRows(_ indices: [Int]) -> Tensor {
        precondition(rank >= 1, "Tensor.gatherRows: needs rank ≥ 1")
        let rowSize = shape[0] == 0 ? 0 : count / shape[0]
        let out = Tensor(uninitialized: [indices.count] + shape.dropFirst())
        for (r, i) in indices.enumerated() {
            precondition(i >= 0 && i < shape[0], "Tensor.gatherRows: row \(i) out of 0..<\(shape[0])")
            (out.storage.base + r * rowSize).update(from: storage.base + i * rowSize, count: rowSize)
        }
        return out
    }

    /// Concatenates tensors along the leading dimension (all other dimensions must agree).
    public static func concatenateRows(_ parts: [Tensor]) -> Tensor {
        precondition(!parts.isEmpty, "Tensor.concatenateRows: no parts")
        let tail = Array(parts[0].shape.dropFirst())
        var n = 0
        for p in parts {
            precondition(Array(p.shape.dropFirst()) == tail, "Tensor.concatenateRows: shape \(p.shape) vs tail \(tail)")
            n += p.shape[0]
        }
        let out = Tensor(uninitialized: [n] + tail)
        var offset = 0
        for p in parts {
            (out.storage.base + offset).update(from: p.storage.base, count: p.count)
            offset += p.count
        }
        return out
    }
}

extension Tensor: Equatable {
    /// Exact equality of shape and every element (bitwise for non-NaN values).
    public static func == (a: Tensor, b: Tensor) -> Bool {
        guard a.shape == b.shape else { return false }
        if a.storage === b.storage { return true }
        for i in 0..<a.count where a.storage.base[i] != b.storage.base[i] { return false }
        return true
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let head = scalars.prefix(8).map { String($0) }.joined(separator: ", ")
        return "Tensor(shape: \(shape), [\(head)\(count > 8 ? ", …" : "")])"
    }
}
