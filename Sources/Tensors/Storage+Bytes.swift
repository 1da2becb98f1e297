// Storage+Bytes.swift: the few raw-memory copies between tensors / integer arrays and little-endian
// byte arrays, used by the safetensors reader and writer (SafeTensors.swift). Kept here because raw
// pointers are allowed only in Tensors/Storage*.swift (style.md §4). No format knowledge lives here:
// callers check shapes and byte counts first.

// MARK: - Float32

extension Tensor {
    /// The elements as little-endian IEEE-754 binary32 bytes, row-major (`4 · count` bytes).
    func littleEndianFloat32Bytes() -> [UInt8] {
        let byteCount = count * MemoryLayout<Float>.size
        return [UInt8](unsafeUninitializedCapacity: byteCount) { out, initialized in
            #if _endian(little)
            if byteCount > 0, let dst = out.baseAddress {
                UnsafeMutableRawPointer(dst).copyMemory(from: UnsafeRawPointer(storage.base), byteCount: byteCount)
            }
            #else
            for i in 0..<count {
                let bits = storage.base[i].bitPattern.littleEndian
                for b in 0..<4 { out[4 * i + b] = UInt8(truncatingIfNeeded: bits >> (8 * b)) }
            }
            #endif
            initialized = byteCount
        }
    }

    /// A tensor of `shape` read from little-endian binary32 bytes.
    /// - Precondition: `bytes.count == 4 · elementCount(shape)`.
    init(shape: [Int], littleEndianFloat32 bytes: [UInt8]) {
        self.init(zeros: shape)
        let n = count
        precondition(bytes.count == n * MemoryLayout<Float>.size,
                     "Tensor(littleEndianFloat32:): \(bytes.count) bytes for shape \(shape)")
        guard n > 0 else { return }
        #if _endian(little)
        bytes.withUnsafeBytes { src in
            UnsafeMutableRawPointer(storage.base).copyMemory(from: src.baseAddress!, byteCount: bytes.count)
        }
        #else
        for i in 0..<n {
            var bits: UInt32 = 0
            for b in 0..<4 { bits |= UInt32(bytes[4 * i + b]) << (8 * b) }
            storage.base[i] = Float(bitPattern: bits)
        }
        #endif
    }
}

// MARK: - Int64

/// Little-endian conversions for 64-bit integer arrays.
enum LittleEndianInt64 {
    /// `values` as little-endian two's-complement bytes (`8 · values.count` bytes).
    static func bytes(_ values: [Int64]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: values.count * 8)
        #if _endian(little)
        values.withUnsafeBytes { src in
            out.withUnsafeMutableBytes { dst in
                if let s = src.baseAddress, let d = dst.baseAddress { d.copyMemory(from: s, byteCount: src.count) }
            }
        }
        #else
        for (i, v) in values.enumerated() {
            let bits = UInt64(bitPattern: v)
            for b in 0..<8 { out[8 * i + b] = UInt8(truncatingIfNeeded: bits >> (8 * b)) }
        }
        #endif
        return out
    }

    /// Integers read from little-endian bytes.
    /// - Precondition: `bytes.count` is a multiple of 8.
    static func values(_ bytes: [UInt8]) -> [Int64] {
        precondition(bytes.count % 8 == 0, "LittleEndianInt64.values: \(bytes.count) bytes is not a multiple of 8")
        let n = bytes.count / 8
        var out = [Int64](repeating: 0, count: n)
        #if _endian(little)
        bytes.withUnsafeBytes { src in
            out.withUnsafeMutableBytes { dst in
                if let s = src.baseAddress, let d = dst.baseAddress { d.copyMemory(from: s, byteCount: src.count) }
            }
        }
        #else
        for i in 0..<n {
            var bits: UInt64 = 0
            for b in 0..<8 { bits |= UInt64(bytes[8 * i + b]) << (8 * b) }
            out[i] = Int64(bitPattern: bits)
        }
        #endif
        return out
    }
}
