// MATFile.swift: a minimal MATLAB Level 5 (v5/v6/v7 without compression) MAT-file parser over a mapped
// file: the 128-byte header and the top-level miMATRIX elements (numeric arrays: class, dimensions,
// name, and where the real part's bytes are). It copies nothing: callers map arrays in place.
// miCOMPRESSED (zlib) elements are listed but not inflated here; v7.3 (HDF5) files are rejected.
// Every tag, size and dimension array is checked against the file length and its enclosing element
// here, so callers may index the arrays it returns without further checks.
// Reference: MathWorks, "MAT-File Format" (matfile_format.pdf), chapter 1.

import Foundation
import SystemIO

/// One numeric array variable found in a MAT-file.
struct MATVariable {
    /// mxCLASS code (6 double, 7 single, 8 int8, 9 uint8, …, 15 uint64).
    let arrayClass: Int
    let isComplex: Bool
    /// Dimensions in MATLAB order (column-major: the first varies fastest).
    let dimensions: [Int]
    let name: String
    /// Storage type of the real part (miINT8 = 1 … miUINT64 = 13).
    let dataType: Int
    /// Byte offset and length of the real part.
    let dataOffset: Int
    let dataBytes: Int

    /// Product of `dimensions` (the parser checked that it fits in `Int`).
    var elementCount: Int { dimensions.reduce(1, *) }
}

/// The parsed element directory of a MAT v5 file.
struct MATFile {
    static let miINT8 = 1, miUINT8 = 2, miINT16 = 3, miUINT16 = 4, miINT32 = 5, miUINT32 = 6
    static let miSINGLE = 7, miDOUBLE = 9, miINT64 = 12, miUINT64 = 13, miMATRIX = 14, miCOMPRESSED = 15
    static let mxUINT8 = 9

    let file: MappedFile
    /// Numeric array variables, by name.
    let variables: [String: MATVariable]
    /// Number of top-level miCOMPRESSED elements (their variables are not listed).
    let compressedElements: Int

    /// The storage type of a numeric data element, or nil.
    static func storedNumber(_ dataType: Int) -> StoredNumber? {
        switch dataType {
        case miINT8: return .int8
        case miUINT8: return .uint8
        case miINT16: return .int16
        case miUINT16: return .uint16
        case miINT32: return .int32
        case miUINT32: return .uint32
        case miSINGLE: return .float32
        case miDOUBLE: return .float64
        case miINT64: return .int64
        case miUINT64: return .uint64
        default: return nil
        }
    }

    init(_ f: MappedFile) throws {
        file = f
        guard f.count >= 128 else {
            if f.count < 6 || f.bytes(at: 0, upTo: 6) != Array("MATLAB".utf8) {
                throw DatasetError.badMagic(path: f.path, found: f.bytes(at: 0, upTo: 8),
                                            expected: "the text 'MATLAB 5.0 MAT-file' (a MATLAB v5 .mat file)")
            }
            throw DatasetError.truncated(path: f.path, what: "the 128-byte MAT-file header", expectedBytes: 128, actualBytes: f.count)
        }
        let text = String(decoding: f.bytes(at: 0, upTo: 116), as: UTF8.self)
        guard text.hasPrefix("MATLAB") else {
            throw DatasetError.badMagic(path: f.path, found: f.bytes(at: 0, upTo: 8),
                                        expected: "the text 'MATLAB 5.0 MAT-file' (a MATLAB v5 .mat file)")
        }
        if text.hasPrefix("MATLAB 7.3") {
            throw DatasetError.unsupported(path: f.path, feature: "MATLAB v7.3 MAT-file (HDF5 container)",
                                           hint: "re-save it as v7 without compression: save(FILE, 'X', 'y', '-v6'), or export to .npy")
        }
        let endian = f.bytes(at: 126, upTo: 2)
        guard endian == Array("IM".utf8) else {
            if endian == Array("MI".utf8) {
                throw DatasetError.unsupported(path: f.path, feature: "big-endian MAT-file",
                                               hint: "re-save it on a little-endian machine, or export to .npy")
            }
            throw DatasetError.badMagic(path: f.path, found: endian, expected: "endian indicator 'IM' at byte 126")
        }

        var variables: [String: MATVariable] = [:]
        var compressed = 0
        var pos = 128
        while pos + 8 <= f.count {
            let (type, bytes, dataOffset, small) = MATFile.tag(f, at: pos)
            guard !small else { throw MATFile.corrupt(f, "a small data element at top level (offset \(pos))") }
            let end = dataOffset + bytes  // ≤ count + 2^32: no overflow
            guard end <= f.count else {
                throw DatasetError.truncated(path: f.path, what: "the data element at offset \(pos) (type \(type), \(bytes) bytes)",
                                             expectedBytes: end, actualBytes: f.count)
            }
            if type == MATFile.miCOMPRESSED {
                compressed += 1
            } else if type == MATFile.miMATRIX, bytes > 0 {
                if let v = try MATFile.matrix(f, from: dataOffset, to: end) { variables[v.name] = v }
            }
            pos = type == MATFile.miCOMPRESSED ? end : dataOffset + MATFile.padded(bytes)
        }
        self.variables = variables
        compressedElements = compressed
    }

    /// Most dimensions a variable may have (MATLAB allows any; real datasets have ≤ 4).
    static let maximumDimensions = 32

    static func padded(_ n: Int) -> Int { (n + 7) & ~7 }

    /// Reads the tag at `pos`: (type, byte count, data offset, is small element).
    static func tag(_ f: MappedFile, at pos: Int) -> (Int, Int, Int, Bool) {
        let first = f.uint32LE(at: pos)
        if first >> 16 != 0 {
            // Small data element: 2-byte count, 2-byte type, ≤ 4 data bytes in the tag itself.
            return (Int(first & 0xFFFF), Int(first >> 16), pos + 4, true)
        }
        return (Int(first), Int(f.uint32LE(at: pos + 4)), pos + 8, false)
    }

    static func corrupt(_ f: MappedFile, _ what: String) -> DatasetError {
        .wrongFormat(path: f.path, expected: "a well-formed MATLAB v5 miMATRIX element", found: what)
    }

    /// Parses a numeric miMATRIX element whose contents span `start..<end`; nil for non-numeric ones.
    private static func matrix(_ f: MappedFile, from start: Int, to end: Int) throws -> MATVariable? {
        var pos = start
        func next() throws -> (type: Int, bytes: Int, offset: Int) {
            guard pos + 8 <= end else { throw corrupt(f, "a miMATRIX element ending early (offset \(pos))") }
            let (type, bytes, offset, small) = tag(f, at: pos)
            guard !small || bytes <= 4 else { throw corrupt(f, "a small data element of \(bytes) bytes at offset \(pos) (at most 4)") }
            guard offset + bytes <= end else {
                throw DatasetError.truncated(path: f.path, what: "a miMATRIX subelement at offset \(pos)",
                                             expectedBytes: offset + bytes, actualBytes: min(end, f.count))
            }
            pos = small ? pos + 8 : offset + padded(bytes)
            return (type, bytes, offset)
        }
        let flags = try next()
        guard flags.type == miUINT32, flags.bytes == 8 else { throw corrupt(f, "array flags of type \(flags.type)") }
        let word = f.uint32LE(at: flags.offset)
        let arrayClass = Int(word & 0xFF)
        let isComplex = (word >> 8) & 0x08 != 0
        guard (6...15).contains(arrayClass) else { return nil }  // cell, struct, char, sparse, …
        let dimsElement = try next()
        guard dimsElement.type == miINT32, dimsElement.bytes % 4 == 0,
              (2...maximumDimensions).contains(dimsElement.bytes / 4) else {
            throw corrupt(f, "a dimensions array of type \(dimsElement.type), \(dimsElement.bytes) bytes at offset \(dimsElement.offset) "
                          + "(expected miINT32 with 2…\(maximumDimensions) entries)")
        }
        let dims = (0..<(dimsElement.bytes / 4)).map { Int(Int32(bitPattern: f.uint32LE(at: dimsElement.offset + 4 * $0))) }
        var elements = 1, nonZero = 1
        for d in dims {
            let (p, o) = nonZero.multipliedReportingOverflow(by: max(d, 1))
            guard d >= 0, !o else {
                throw corrupt(f, "dimensions \(dims) at offset \(dimsElement.offset) (expected non-negative sizes whose product fits in 2^63)")
            }
            nonZero = p
            elements *= d
        }
        let nameElement = try next()
        let name = String(decoding: f.bytes(at: nameElement.offset, upTo: nameElement.bytes), as: UTF8.self)
        let real = try next()
        guard let storage = storedNumber(real.type) else {
            throw corrupt(f, "the real part of '\(name)' at offset \(real.offset) has storage type \(real.type) (expected a numeric type 1…13)")
        }
        // elements × width may overflow: compare by division first.
        guard elements <= Int.max / storage.byteWidth, real.bytes == elements * storage.byteWidth else {
            throw DatasetError.inconsistentSize(path: f.path, field: "data size of '\(name)' (offset \(real.offset))",
                                                found: "\(real.bytes) bytes",
                                                expected: "\(dims.map(String.init).joined(separator: "×")) × \(storage.byteWidth)-byte elements")
        }
        return MATVariable(arrayClass: arrayClass, isComplex: isComplex, dimensions: dims, name: name,
                           dataType: real.type, dataOffset: real.offset, dataBytes: real.bytes)
    }
}
