// NPYArray.swift: NumPy `.npy` files (format version 1.0) for `membank export`: little-endian
// float32 ('<f4') or int64 ('<i8') arrays in C order. Written from the NumPy format specification
// (numpy.lib.format); `numpy.load` opens the files. Only these two dtypes; nothing is read back here.

import Foundation
import MemoryBank

/// One `.npy` array in C order.
public struct NPYArray: Sendable {
    /// The NumPy type string: `<f4` or `<i8`.
    public var descr: String
    public var shape: [Int]
    /// The little-endian element bytes, `shape.product · itemsize` of them.
    public var data: [UInt8]

    /// float32 values of `shape`.
    public init(float32 values: [Float], shape: [Int]) {
        precondition(values.count == shape.reduce(1, *), "NPYArray: \(values.count) values for shape \(shape)")
        descr = "<f4"
        self.shape = shape
        var d = [UInt8]()
        d.reserveCapacity(values.count * 4)
        for v in values { appendLE(&d, UInt64(v.bitPattern), bytes: 4) }
        data = d
    }

    /// int64 values of `shape`.
    public init(int64 values: [Int64], shape: [Int]) {
        precondition(values.count == shape.reduce(1, *), "NPYArray: \(values.count) values for shape \(shape)")
        descr = "<i8"
        self.shape = shape
        var d = [UInt8]()
        d.reserveCapacity(values.count * 8)
        for v in values { appendLE(&d, UInt64(bitPattern: v), bytes: 8) }
        data = d
    }

    /// The magic string `\x93NUMPY`.
    public static let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]
    /// The data starts at a multiple of this (the spec's alignment for version 1.0 headers).
    public static let alignment = 64

    /// The header dictionary, e.g. `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 1, 28, 28), }`
    /// (a 1-tuple is written `(3,)`, as Python spells it).
    public var headerDictionary: String {
        let dims = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        return "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(dims), }"
    }

    /// The file:
    /// ```
    /// magic (6) ‖ 0x01 0x00 (version 1.0) ‖ HEADER_LEN (u16 LE) ‖ dict ‖ spaces ‖ '\n' ‖ data
    /// with 10 + HEADER_LEN a multiple of 64
    /// ```
    public func encode() -> [UInt8] {
        var header = Array(headerDictionary.utf8)
        let unpadded = 10 + header.count + 1
        let total = (unpadded + NPYArray.alignment - 1) / NPYArray.alignment * NPYArray.alignment
        header += [UInt8](repeating: 0x20, count: total - unpadded)
        header.append(0x0A)
        precondition(header.count <= Int(UInt16.max), "NPYArray: header too long for format 1.0")
        var out = NPYArray.magic + [1, 0, UInt8(header.count & 0xFF), UInt8(header.count >> 8)]
        out += header
        out += data
        return out
    }

    /// Writes the file to `path`.
    /// - Throws: `MembankError.io` naming the path.
    public func write(to path: String) throws(MembankError) {
        do {
            try Data(encode()).write(to: URL(fileURLWithPath: path))
        } catch {
            throw .io(path: path, operation: "write .npy", reason: error.localizedDescription)
        }
    }
}

/// Appends the low `bytes` bytes of `v`, least significant first.
func appendLE(_ out: inout [UInt8], _ v: UInt64, bytes: Int) {
    for k in 0..<bytes { out.append(UInt8((v >> UInt64(8 * k)) & 0xFF)) }
}
