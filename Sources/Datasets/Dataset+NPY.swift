// Dataset+NPY.swift: NumPy `.npy` reader: uint8 images N×H×W, N×H×W×C or N×C×H×W (C order) mapped in
// place, or float32/float64 images in [0, 1] quantized once to a uint8 cache copy that is mapped
// instead; with an integer labels `.npy` (N or N×1). Parses the format's header (magic "\x93NUMPY",
// version 1.0/2.0/3.0, a Python dict literal with descr, fortran_order, shape, parsed whole up to its
// closing brace and padding) and checks shape × dtype against the file length before any use.
// No `.npz`, no pickles.

import Foundation
import SystemIO

/// Axis order of 4-D `.npy` image arrays.
public enum NPYLayout: String, Codable, Sendable, CaseIterable {
    /// Decide from the shape: channels are axis 3 (NHWC) or axis 1 (NCHW), whichever is ≤ 4 and smaller
    /// than the other; equal sizes are ambiguous and throw.
    case auto
    /// N×H×W×C (NumPy/TensorFlow convention).
    case nhwc
    /// N×C×H×W (PyTorch convention).
    case nchw
}

/// The parsed header of a `.npy` file.
struct NPYHeader {
    /// e.g. "|u1", "<i8".
    let descr: String
    let fortranOrder: Bool
    let shape: [Int]
    /// Byte offset of the array data.
    let dataOffset: Int

    /// Reads and validates the header of `f` (magic, version, dict).
    static func read(_ f: MappedFile) throws -> NPYHeader {
        let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]  // \x93NUMPY
        guard f.count >= 10 else {
            if f.bytes(at: 0, upTo: 6) != Array(magic.prefix(min(6, f.count))) || f.count == 0 {
                throw DatasetError.badMagic(path: f.path, found: f.bytes(at: 0, upTo: 6), expected: "93 4e 55 4d 50 59 (\\x93NUMPY)")
            }
            throw DatasetError.truncated(path: f.path, what: "the .npy preamble", expectedBytes: 10, actualBytes: f.count)
        }
        let head = f.bytes(at: 0, upTo: 6)
        guard head == magic else {
            throw DatasetError.badMagic(path: f.path, found: head, expected: "93 4e 55 4d 50 59 (\\x93NUMPY)")
        }
        let major = f.byte(at: 6)
        let headerLength: Int, start: Int
        switch major {
        case 1:
            headerLength = Int(f.uint16LE(at: 8)); start = 10
        case 2, 3:
            guard f.count >= 12 else {
                throw DatasetError.truncated(path: f.path, what: "the .npy preamble", expectedBytes: 12, actualBytes: f.count)
            }
            headerLength = Int(f.uint32LE(at: 8)); start = 12
        default:
            throw DatasetError.unsupported(path: f.path, feature: ".npy format version \(major).\(f.byte(at: 7))",
                                           hint: "save the array with numpy.save (format 1.0–3.0)")
        }
        guard f.byte(at: 7) == 0 else {
            throw DatasetError.unsupported(path: f.path, feature: ".npy format version \(major).\(f.byte(at: 7))",
                                           hint: "save the array with numpy.save (format 1.0–3.0)")
        }
        guard headerLength <= f.count - start else {
            throw DatasetError.truncated(path: f.path, what: "the .npy header (length field \(headerLength))",
                                         expectedBytes: start + headerLength, actualBytes: f.count)
        }
        let dict = try parseDict(f.bytes(at: start, count: headerLength), path: f.path)
        return NPYHeader(descr: dict.descr, fortranOrder: dict.fortranOrder, shape: dict.shape, dataOffset: start + headerLength)
    }

    /// Parses the header dict, the whole of `text`, in the grammar numpy writes: `{`, the three
    /// keys 'descr' (a quoted string), 'fortran_order' (True/False) and 'shape' (a tuple of
    /// non-negative integers, Python 2's `L` suffix allowed), each exactly once, an optional trailing
    /// comma, `}`, then only padding (spaces and the final newline).
    /// - Throws: `wrongFormat` naming the offending text and its byte offset in the header;
    ///   `unsupported` for a structured dtype (a list as 'descr').
    static func parseDict(_ text: [UInt8], path: String) throws -> (descr: String, fortranOrder: Bool, shape: [Int]) {
        var i = 0
        let shown = String(decoding: text.prefix(160), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        func bad(_ what: String) -> DatasetError {
            .wrongFormat(path: path,
                         expected: "a .npy header dict {'descr': '<dtype>', 'fortran_order': True|False, 'shape': (d0, d1, …)}",
                         found: "\(what) at header byte \(i) in \(shown)")
        }
        func skipSpace() { while i < text.count, text[i] == 0x20 || text[i] == 0x09 || text[i] == 0x0A || text[i] == 0x0D { i += 1 } }
        func peek() -> UInt8? { i < text.count ? text[i] : nil }
        func current() -> String {
            guard let b = peek() else { return "end of header" }
            return b >= 0x20 && b < 0x7F ? "'\(Character(Unicode.Scalar(b)))'" : "byte 0x\(String(b, radix: 16))"
        }
        func expect(_ c: Character) throws {
            guard peek() == c.asciiValue else { throw bad("expected '\(c)', found \(current())") }
            i += 1
        }
        func quoted() throws -> String {
            guard let q = peek(), q == 0x27 || q == 0x22 else { throw bad("expected a quoted string, found \(current())") }
            i += 1
            let start = i
            while i < text.count, text[i] != q {
                guard text[i] != 0x5C, text[i] >= 0x20 else { throw bad("an escape or control byte in a string") }
                i += 1
            }
            guard i < text.count else { throw bad("unterminated string") }
            let s = String(decoding: text[start..<i], as: UTF8.self)
            i += 1
            return s
        }
        func integer() throws -> Int {
            var v = 0, digits = 0
            while let b = peek(), b >= 0x30 && b <= 0x39 {
                let (m, o1) = v.multipliedReportingOverflow(by: 10)
                let (a, o2) = m.addingReportingOverflow(Int(b - 0x30))
                guard !o1, !o2 else { throw bad("a shape entry larger than \(Int.max)") }
                v = a
                digits += 1
                i += 1
            }
            guard digits > 0 else { throw bad("expected a non-negative integer in 'shape', found \(current())") }
            if peek() == UInt8(ascii: "L") { i += 1 }
            return v
        }
        func shapeTuple() throws -> [Int] {
            try expect("(")
            var dims: [Int] = []
            skipSpace()
            while peek() != UInt8(ascii: ")") {
                dims.append(try integer())
                skipSpace()
                if peek() == UInt8(ascii: ",") {
                    i += 1
                    skipSpace()
                } else if peek() != UInt8(ascii: ")") {
                    throw bad("expected ',' or ')' in 'shape', found \(current())")
                }
            }
            i += 1
            return dims
        }

        var descr: String?, fortran: Bool?, shape: [Int]?
        skipSpace()
        try expect("{")
        skipSpace()
        while peek() != UInt8(ascii: "}") {
            guard peek() != nil else { throw bad("unterminated dict: expected '}', found end of header") }
            let keyOffset = i
            let key = try quoted()
            skipSpace()
            try expect(":")
            skipSpace()
            switch key {
            case "descr" where descr == nil:
                if peek() == UInt8(ascii: "[") {
                    throw DatasetError.unsupported(path: path, feature: "structured dtype in \(shown)",
                                                   hint: "save a plain array (e.g. images.astype(numpy.uint8))")
                }
                descr = try quoted()
            case "fortran_order" where fortran == nil:
                if text[i...].starts(with: "True".utf8) { fortran = true; i += 4 }
                else if text[i...].starts(with: "False".utf8) { fortran = false; i += 5 }
                else { throw bad("'fortran_order' neither True nor False") }
            case "shape" where shape == nil:
                shape = try shapeTuple()
            case "descr", "fortran_order", "shape":
                i = keyOffset
                throw bad("key '\(key)' given twice")
            default:
                i = keyOffset
                throw bad("unexpected key '\(key)' (expected only 'descr', 'fortran_order', 'shape')")
            }
            skipSpace()
            if peek() == UInt8(ascii: ",") {
                i += 1
                skipSpace()
            } else if peek() != UInt8(ascii: "}") {
                throw bad(peek() == nil ? "unterminated dict: expected '}', found end of header"
                                        : "expected ',' or '}' after a value, found \(current())")
            }
        }
        i += 1
        skipSpace()
        guard i == text.count else { throw bad("\(current()) after the closing '}'") }
        guard let descr else { throw bad("no 'descr' key") }
        guard let fortran else { throw bad("no 'fortran_order' key") }
        guard let shape else { throw bad("no 'shape' key") }
        return (descr, fortran, shape)
    }

    /// Element type and byte order of `descr`, or nil if not a plain number type.
    var numberType: (type: StoredNumber, bigEndian: Bool)? {
        guard descr.count >= 2 else { return nil }
        var d = Substring(descr)
        var big = false
        if let first = d.first, "<>|=".contains(first) {
            big = first == ">"
            d = d.dropFirst()
        }
        switch d {
        case "u1", "B": return (.uint8, big)
        case "i1", "b": return (.int8, big)
        case "u2": return (.uint16, big)
        case "i2": return (.int16, big)
        case "u4": return (.uint32, big)
        case "i4": return (.int32, big)
        case "u8": return (.uint64, big)
        case "i8": return (.int64, big)
        case "f4": return (.float32, big)
        case "f8": return (.float64, big)
        default: return nil
        }
    }

    /// Element count (product of shape), or nil when the product of the non-zero dimensions
    /// overflows (so no partial product of the shape, e.g. a stride, can overflow either).
    var elementCount: Int? {
        var n = 1, nonZero = 1
        for d in shape {
            let (p, o) = nonZero.multipliedReportingOverflow(by: max(d, 1))
            if o { return nil }
            nonZero = p
            n *= d
        }
        return n
    }

    /// Checks that the data region has exactly `elementCount × width` bytes.
    /// - Throws: `inconsistentSize` for a shape whose byte count overflows, `truncated` / `inconsistentSize`
    ///   for a data region of another size.
    func checkDataSize(_ f: MappedFile, width: Int) throws {
        let dims = shape.map(String.init).joined(separator: "×")
        guard let elements = elementCount, case let (needed, false) = elements.multipliedReportingOverflow(by: width),
              needed <= Int.max - dataOffset else {
            throw DatasetError.inconsistentSize(path: f.path, field: "shape", found: "(\(shape.map(String.init).joined(separator: ", ")))",
                                                expected: "dimensions whose byte count (× \(width) for '\(descr)') fits in 2^63")
        }
        let have = f.count - dataOffset
        if have < needed {
            throw DatasetError.truncated(path: f.path, what: "array data of shape \(dims) (\(descr))",
                                         expectedBytes: dataOffset + needed, actualBytes: f.count)
        }
        if have > needed {
            throw DatasetError.inconsistentSize(path: f.path, field: "file size", found: "\(f.count) bytes",
                                                expected: "\(dataOffset + needed) bytes for shape \(dims) (\(descr))")
        }
    }
}

extension Dataset {
    /// Opens a uint8 or float image array `.npy` with an integer label array `.npy`.
    ///
    /// uint8 images (`|u1`) are mapped in place. float32 / float64 images (`<f4`, `<f8`) must lie in
    /// [0, 1]; they are quantized once to bytes, `round(255 · x)` (docs/datasets.md §2), into a cache
    /// copy in `$MEMLOSS_CACHE_DIR` keyed by the file's path, size and modification time, and that
    /// copy is mapped. A float export of uint8 data (`images / 255`) thus trains on exactly the values
    /// the uint8 file gives.
    /// - Parameters:
    ///   - layout: axis order of 4-D arrays; `.auto` decides from the shape and throws when ambiguous.
    ///   - classCount: labels must lie in `0..<classCount`; nil infers `max + 1`.
    /// - Throws: `DatasetError.pixelOutOfRange` naming the first float outside [0, 1] (or NaN).
    public static func openNPY(images: String, labels: String, layout: NPYLayout = .auto,
                               classCount: Int? = nil, name: String? = nil) throws -> Dataset {
        let f = try MappedFile.openUncompressed(images, expected: "a .npy uint8 or float image array")
        let header = try NPYHeader.read(f)
        guard let imageType = header.numberType, !imageType.bigEndian,
              [.uint8, .float32, .float64].contains(imageType.type) else {
            throw DatasetError.unsupported(
                path: images, feature: "image dtype '\(header.descr)' (expected '|u1' uint8 0…255, or '<f4' / '<f8' float in [0, 1])",
                hint: "save images.astype(numpy.uint8) (0…255) or images.astype('<f4') scaled to [0, 1]")
        }
        if header.fortranOrder {
            throw DatasetError.unsupported(path: images, feature: "fortran_order True (column-major array)",
                                           hint: "save numpy.ascontiguousarray(images)")
        }
        try header.checkDataSize(f, width: imageType.type.byteWidth)
        let s = header.shape
        let n: Int, shape: ImageShape, strides: (c: Int, h: Int, w: Int)
        switch s.count {
        case 3:
            n = s[0]
            shape = ImageShape(channels: 1, height: s[1], width: s[2])
            strides = (s[1] * s[2], s[2], 1)
        case 4:
            n = s[0]
            var chosen = layout
            if chosen == .auto {
                let lastIsChannels = s[3] <= 4 && s[3] < s[1], secondIsChannels = s[1] <= 4 && s[1] < s[3]
                if lastIsChannels { chosen = .nhwc } else if secondIsChannels { chosen = .nchw } else {
                    throw DatasetError.unsupported(
                        path: images, feature: "ambiguous axis order for shape \(s.map(String.init).joined(separator: "×"))",
                        hint: "add :nhwc or :nchw to the spec (npy:IMAGES,LABELS:nhwc)")
                }
            }
            if chosen == .nhwc {
                shape = ImageShape(channels: s[3], height: s[1], width: s[2])
                strides = (1, s[2] * s[3], s[3])
            } else {
                shape = ImageShape(channels: s[1], height: s[2], width: s[3])
                strides = (s[2] * s[3], s[3], 1)
            }
        default:
            throw DatasetError.inconsistentSize(path: images, field: "array rank", found: "\(s.count) (shape \(s))",
                                                expected: "3 (N×H×W) or 4 (N×H×W×C or N×C×H×W)")
        }

        guard shape.pixelCount > 0 else {
            throw DatasetError.inconsistentSize(path: images, field: "image size", found: "\(shape) (shape \(s))",
                                                expected: "at least 1 channel, row and column")
        }

        let lf = try MappedFile.openUncompressed(labels, expected: "a .npy integer label array")
        let lh = try NPYHeader.read(lf)
        guard let labelType = lh.numberType, labelType.type.isInteger else {
            throw DatasetError.unsupported(path: labels, feature: "label dtype '\(lh.descr)' (expected an integer type)",
                                           hint: "save labels.astype(numpy.int64)")
        }
        guard lh.shape.count == 1 || (lh.shape.count == 2 && lh.shape[1] == 1) else {
            throw DatasetError.inconsistentSize(path: labels, field: "label array shape", found: "\(lh.shape)",
                                                expected: "(N,) or (N, 1)")
        }
        guard lh.shape[0] == n else {
            throw DatasetError.inconsistentSize(path: labels, field: "sample count", found: "\(lh.shape[0])",
                                                expected: "\(n) (the count in \(images))")
        }
        try lh.checkDataSize(lf, width: labelType.type.byteWidth)
        let raw = lf.numbers(at: lh.dataOffset, count: n, type: labelType.type, bigEndian: labelType.bigEndian)
        let classes = try classCount ?? inferredClassCount(raw, path: labels)
        let values = try checkedLabels(raw, path: labels, classCount: classes, expected: "0...\(classes - 1)")
        // Float pixels: the bytes live in a cache copy with the same element order, from offset 0.
        let pixels = imageType.type == .uint8
            ? f : try quantizedCopy(of: f, header: header, width: imageType.type.byteWidth, pixelsPerSample: shape.pixelCount)
        let pixelLayout = PixelLayout(
            segments: [.init(file: pixels, firstID: 0, count: n, offset: pixels === f ? header.dataOffset : 0,
                             sampleStride: shape.pixelCount)],
            strideC: strides.c, strideH: strides.h, strideW: strides.w)
        return Dataset(format: .npy, name: name ?? "npy \(images)", shape: shape, classCount: classes,
                       labels: values, layout: pixelLayout, mappedFiles: [pixels, lf])
    }

    /// The uint8 cache copy of the float images in `f` (quantizing them now unless a copy for the
    /// same path, size and modification time exists), mapped.
    /// - Throws: `pixelOutOfRange` for the first value outside [0, 1]; no cache file is left then.
    private static func quantizedCopy(of f: MappedFile, header: NPYHeader, width: Int,
                                      pixelsPerSample: Int) throws -> MappedFile {
        let target = DatasetCache.path(for: f, suffix: "u8")
        let expected = "a uint8 copy of the float images in \(f.path)"
        let count = header.elementCount ?? 0
        if FileManager.default.fileExists(atPath: target) {
            let copy = try MappedFile(path: target, expected: expected)
            if copy.count == count { return copy }  // else rewritten below (a copy of another size is stale)
        }
        try DatasetCache.write(target) { out in
            if let bad = try quantizeUnitFloats(f, offset: header.dataOffset, count: count, width: width, into: out) {
                throw DatasetError.pixelOutOfRange(path: f.path, index: bad.index, sample: bad.index / max(pixelsPerSample, 1),
                                                   found: "\(bad.value)", expected: "[0, 1] (a float image array, '\(header.descr)')")
            }
        }
        return try MappedFile(path: target, expected: expected)
    }
}
