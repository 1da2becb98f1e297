// Dataset+NPY.swift: NumPy `.npy` reader: uint8 images N×H×W, N×H×W×C or N×C×H×W (C order) mapped in
// place, or float32/float64 images in [0, 1] quantized once to a uint8 cache copy that is mapped
// instead; with an integer labels `.npy` (N or N×1). Parses the format's header (magic "\x93NUMPY",
// version 1.0/2.0/3.0, a Python dict literal with descr, fortran_order, shape). No `.npz`, no pickles.

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
        guard f.count >= start + headerLength else {
            throw DatasetError.truncated(path: f.path, what: "the .npy header", expectedBytes: start + headerLength, actualBytes: f.count)
        }
        let text = String(decoding: f.bytes(at: start, upTo: headerLength), as: UTF8.self)
        func bad(_ what: String) -> DatasetError {
            .wrongFormat(path: f.path, expected: "a .npy header dict with 'descr', 'fortran_order' and 'shape'",
                         found: "\(what) in header \(text.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        guard let descrValue = value(of: "descr", in: text) else { throw bad("no 'descr'") }
        guard let quote = descrValue.first, quote == "'" || quote == "\"" else {
            throw DatasetError.unsupported(path: f.path, feature: "structured dtype \(descrValue.prefix(40))",
                                           hint: "save a plain array (e.g. images.astype(numpy.uint8))")
        }
        let afterQuote = descrValue.dropFirst()
        guard let end = afterQuote.firstIndex(of: quote) else { throw bad("unterminated 'descr'") }
        let descr = String(afterQuote[..<end])

        guard let fortranValue = value(of: "fortran_order", in: text) else { throw bad("no 'fortran_order'") }
        let fortran: Bool
        if fortranValue.hasPrefix("True") { fortran = true } else if fortranValue.hasPrefix("False") { fortran = false } else {
            throw bad("'fortran_order' neither True nor False")
        }
        guard let shapeValue = value(of: "shape", in: text), shapeValue.first == "(",
              let close = shapeValue.firstIndex(of: ")") else { throw bad("no 'shape' tuple") }
        var shape: [Int] = []
        for part in shapeValue[shapeValue.index(after: shapeValue.startIndex)..<close].split(separator: ",") {
            let token = part.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "L", with: "")
            if token.isEmpty { continue }
            guard let d = Int(token), d >= 0 else { throw bad("shape entry '\(token)'") }
            shape.append(d)
        }
        return NPYHeader(descr: descr, fortranOrder: fortran, shape: shape, dataOffset: start + headerLength)
    }

    /// The text after `'key':` (leading spaces removed), or nil.
    private static func value(of key: String, in text: String) -> Substring? {
        for q in ["'", "\""] {
            if let r = text.range(of: q + key + q) {
                var rest = text[r.upperBound...].drop { $0 == " " }
                guard rest.first == ":" else { return nil }
                rest = rest.dropFirst().drop { $0 == " " }
                return rest
            }
        }
        return nil
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

    /// Element count (product of shape), or nil on overflow.
    var elementCount: Int? {
        var n = 1
        for d in shape {
            let (p, o) = n.multipliedReportingOverflow(by: d)
            if o { return nil }
            n = p
        }
        return n
    }

    /// Checks that the data region has exactly `elementCount × width` bytes.
    func checkDataSize(_ f: MappedFile, width: Int) throws {
        let needed = (elementCount ?? Int.max / 2) * width
        let have = f.count - dataOffset
        let dims = shape.map(String.init).joined(separator: "×")
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
        try DatasetCache.createDirectory()
        let bad = try writingDatasetFile(target) { () throws -> (index: Int, value: Double)? in
            let out = try AtomicFileWriter.datasetFile(target)
            guard let bad = try quantizeUnitFloats(f, offset: header.dataOffset, count: count, width: width, into: out) else {
                try out.commit(sync: false)
                return nil
            }
            out.discard()
            return bad
        }
        if let bad {
            throw DatasetError.pixelOutOfRange(path: f.path, index: bad.index, sample: bad.index / max(pixelsPerSample, 1),
                                               found: "\(bad.value)", expected: "[0, 1] (a float image array, '\(header.descr)')")
        }
        return try MappedFile(path: target, expected: expected)
    }
}
