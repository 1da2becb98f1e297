// Storage.swift: the aligned float buffer behind every Tensor, and the only place in Tensors that
// allocates or hands out raw pointers. Copy-on-write is handled by Tensor; this class only owns memory.
// It does not know shapes, layout conventions or anything about layers.

/// Cache-line-aligned buffer of `count` Float32 values. Zero-initialised.
public final class TensorStorage: @unchecked Sendable {
    /// Alignment of every allocation in bytes (a cache line; also satisfies SIMD8<Float> loads).
    public static let alignment = 64

    public let count: Int
    public let base: UnsafeMutablePointer<Float>

    public init(count: Int) {
        precondition(count >= 0, "TensorStorage: negative element count \(count)")
        self.count = count
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        let raw = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: TensorStorage.alignment)
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
        base = raw.bindMemory(to: Float.self, capacity: max(count, 1))
    }

    /// A new storage holding a copy of `self`.
    public func copy() -> TensorStorage {
        let other = TensorStorage(count: count)
        other.base.update(from: base, count: count)
        return other
    }

    deinit {
        UnsafeMutableRawPointer(base).deallocate()
    }
}
