// Storage.swift: the aligned float buffer behind every Tensor, and the only place in Tensors that
// allocates or hands out raw pointers. Copy-on-write is handled by Tensor; this class only owns memory
// (large buffers come from and go back to StoragePool, Storage+Pool.swift).
// It does not know shapes, layout conventions or anything about layers.

/// Cache-line-aligned buffer of `count` Float32 values, zero-initialised unless made with
/// `init(uninitializedCount:)`.
public final class TensorStorage: @unchecked Sendable {
    /// Alignment of every allocation in bytes (a cache line; also satisfies SIMD8<Float> loads).
    public static let alignment = 64

    public let count: Int
    public let base: UnsafeMutablePointer<Float>

    public convenience init(count: Int) {
        self.init(uninitializedCount: count)
        UnsafeMutableRawPointer(base).initializeMemory(as: UInt8.self, repeating: 0,
                                                       count: max(count, 1) * MemoryLayout<Float>.stride)
    }

    /// A buffer whose contents are undefined until written (no zeroing pass): for outputs a kernel
    /// overwrites completely. The memory is still bound to Float, so reading it is not undefined
    /// behaviour in Swift's sense, only meaningless. Debug builds fill it with NaN, so that a kernel
    /// that reads or leaves part of such an output unwritten shows up in the debug test run.
    public init(uninitializedCount count: Int) {
        precondition(count >= 0, "TensorStorage: negative element count \(count)")
        self.count = count
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        let raw: UnsafeMutableRawPointer
        if let size = StoragePool.pooledSize(bytes) {
            raw = StoragePool.take(size: size, alignment: TensorStorage.alignment)
        } else {
            raw = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: TensorStorage.alignment)
        }
        base = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        #if DEBUG
        base.update(repeating: .nan, count: count)
        #endif
    }

    /// A new storage holding a copy of `self`.
    public func copy() -> TensorStorage {
        let other = TensorStorage(uninitializedCount: count)
        other.base.update(from: base, count: count)
        return other
    }

    deinit {
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        if let size = StoragePool.pooledSize(bytes) {
            StoragePool.give(UnsafeMutableRawPointer(base), size: size)   // large buffers are reused (Storage+Pool.swift)
        } else {
            UnsafeMutableRawPointer(base).deallocate()
        }
    }
}
