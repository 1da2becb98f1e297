// SafeTensors.swift: reader and writer of the safetensors file format (the format of Hugging Face's
// `safetensors` package), used for model checkpoints and optimizer state. Whole files are read into
// memory and validated before anything is returned; writes are atomic (SystemIO.AtomicFile).
// It does not know about layers, models or optimizers (Layers/Checkpoint.swift maps those to entries),
// and it converts only F32 and I64 to Swift values; other dtypes are carried as raw bytes.

import Foundation
import SystemIO

// MARK: - Format

/// Element types of the safetensors format, spelled as in the file.
///
/// Only `F32` (→ `Tensor`) and `I64` (→ `[Int64]`) convert to Swift values; the others are read and
/// written as raw little-endian bytes, so foreign files can be inspected and passed through.
public enum SafeTensorsDType: String, Sendable, Hashable, CaseIterable, Codable {
    case bool = "BOOL"
    case u8 = "U8"
    case i8 = "I8"
    case f8E5M2 = "F8_E5M2"
    case f8E4M3 = "F8_E4M3"
    case i16 = "I16"
    case u16 = "U16"
    case f16 = "F16"
    case bf16 = "BF16"
    case i32 = "I32"
    case u32 = "U32"
    case f32 = "F32"
    case f64 = "F64"
    case i64 = "I64"
    case u64 = "U64"

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .bool, .u8, .i8, .f8E5M2, .f8E4M3: return 1
        case .i16, .u16, .f16, .bf16: return 2
        case .i32, .u32, .f32: return 4
        case .f64, .i64, .u64: return 8
        }
    }
}

/// One named tensor of a safetensors file: dtype, shape and its raw little-endian row-major bytes.
public struct SafeTensorsEntry: Sendable, Equatable {
    public var name: String
    public var dtype: SafeTensorsDType
    /// Dimensions, outermost first; `[]` is a scalar (one element).
    public var shape: [Int]
    /// `elementCount(shape) · dtype.byteSize` bytes, little-endian, row-major.
    public var bytes: [UInt8]

    /// An entry from raw bytes.
    /// - Precondition: `bytes.count == elementCount(shape) · dtype.byteSize`.
    public init(name: String, dtype: SafeTensorsDType, shape: [Int], bytes: [UInt8]) {
        precondition(bytes.count == Tensor.elementCount(shape) * dtype.byteSize,
                     "SafeTensorsEntry \(name): \(bytes.count) bytes for \(dtype.rawValue) \(shape)")
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.bytes = bytes
    }

    /// An `F32` entry holding a copy of `tensor` (same shape).
    public init(name: String, tensor: Tensor) {
        self.init(name: name, dtype: .f32, shape: tensor.shape, bytes: tensor.littleEndianFloat32Bytes())
    }

    /// An `I64` entry; `shape: []` (the default) stores a 0-dim scalar, as PyTorch does for
    /// `num_batches_tracked`.
    /// - Precondition: `values.count == elementCount(shape)`.
    public init(name: String, int64Scalars values: [Int64], shape: [Int] = []) {
        precondition(values.count == Tensor.elementCount(shape),
                     "SafeTensorsEntry \(name): \(values.count) Int64 values for shape \(shape)")
        self.init(name: name, dtype: .i64, shape: shape, bytes: LittleEndianInt64.bytes(values))
    }

    /// Number of elements (product of `shape`).
    public var elementCount: Int { Tensor.elementCount(shape) }

    /// The entry as a Float32 tensor.
    /// - Throws: `SafeTensorsError.wrongDType` unless the dtype is `F32` (no silent conversion).
    public func tensor() throws(SafeTensorsError) -> Tensor {
        guard dtype == .f32 else { throw .wrongDType(entry: name, expected: .f32, found: dtype) }
        return Tensor(shape: shape, littleEndianFloat32: bytes)
    }

    /// The entry's values as Int64, row-major.
    /// - Throws: `SafeTensorsError.wrongDType` unless the dtype is `I64`.
    public func int64Values() throws(SafeTensorsError) -> [Int64] {
        guard dtype == .i64 else { throw .wrongDType(entry: name, expected: .i64, found: dtype) }
        return LittleEndianInt64.values(bytes)
    }
}

/// A whole safetensors file in memory: string metadata and ordered entries.
///
/// Layout (all integers little-endian; offsets relative to the first byte after the header):
/// ```
/// u64          N                     header length in bytes; N % 8 == 0 when written here
/// u8[N]        header                UTF-8 JSON object, right-padded with spaces (0x20):
///              {"__metadata__": {"key": "value", …},          (omitted when metadata is empty)
///               "<name>": {"dtype": "F32", "shape": [d0, d1, …], "data_offsets": [begin, end]}, …}
/// u8[…]        data                  each entry's bytes at [begin, end), contiguous, in entry order,
///                                    no gaps, no overlaps, nothing after the last entry
/// ```
/// The writer emits `__metadata__` first (keys sorted), then entries in `entries` order, with the
/// member order `dtype`, `shape`, `data_offsets`, so the bytes are a pure function of the value.
/// The reader accepts any member order and returns entries in data-offset order.
public struct SafeTensorsFile: Sendable, Equatable {
    /// Free-form string metadata (`__metadata__`).
    public var metadata: [String: String]
    /// Entries in file (data) order. Names are unique.
    public var entries: [SafeTensorsEntry]

    /// Header lengths above this are rejected before allocating anything (a sanity limit: real
    /// headers are kilobytes; a larger value means a foreign or corrupt file). 100 MB.
    public static let maximumHeaderBytes = 100_000_000

    /// The key reserved for metadata in the header; no entry may use it.
    public static let metadataKey = "__metadata__"

    public init(metadata: [String: String] = [:], entries: [SafeTensorsEntry] = []) {
        self.metadata = metadata
        self.entries = entries
    }

    /// The entry called `name`, if any.
    public subscript(name: String) -> SafeTensorsEntry? {
        entries.first { $0.name == name }
    }

    // MARK: - Writing

    /// The complete file contents.
    /// - Precondition: entry names are unique and none is `__metadata__` (`write(to:)` checks this
    ///   and throws instead).
    public func encoded() -> [UInt8] {
        if let problem = nameProblem() { preconditionFailure("SafeTensorsFile.encoded: \(problem)") }
        var members: [String] = []
        if !metadata.isEmpty {
            let pairs = metadata.keys.sorted().map { HeaderJSON.quoted($0) + ":" + HeaderJSON.quoted(metadata[$0]!) }
            members.append(HeaderJSON.quoted(SafeTensorsFile.metadataKey) + ":{" + pairs.joined(separator: ",") + "}")
        }
        var offset = 0
        for e in entries {
            let end = offset + e.bytes.count
            let shape = e.shape.map(String.init).joined(separator: ",")
            members.append(HeaderJSON.quoted(e.name) + ":{\"dtype\":\"\(e.dtype.rawValue)\",\"shape\":[\(shape)],"
                           + "\"data_offsets\":[\(offset),\(end)]}")
            offset = end
        }
        var header = Array(("{" + members.joined(separator: ",") + "}").utf8)
        // Pad so the data section starts 8-byte aligned (8 + N ≡ 0 mod 8), as the reference writer does.
        header.append(contentsOf: repeatElement(UInt8(ascii: " "), count: (8 - header.count % 8) % 8))

        var out: [UInt8] = []
        out.reserveCapacity(8 + header.count + offset)
        let n = UInt64(header.count)
        for b in 0..<8 { out.append(UInt8(truncatingIfNeeded: n >> (8 * UInt64(b)))) }
        out.append(contentsOf: header)
        for e in entries { out.append(contentsOf: e.bytes) }
        return out
    }

    /// Writes the file atomically: a temporary `<name>.tmp` in the same directory, a write loop,
    /// fsync, rename over `url`, fsync of the directory. A failure leaves any previous file at
    /// `url` untouched and removes the temporary file.
    public func write(to url: URL) throws(SafeTensorsError) {
        if let problem = nameProblem() {
            throw .duplicateEntry(file: url.path, entry: problem)
        }
        do {
            try AtomicFile.replace(encoded(), at: url)
        } catch {
            throw .ioFailure(file: error.path, operation: error.operation, reason: error.reason)
        }
    }

    /// The first duplicate or reserved entry name, if any.
    private func nameProblem() -> String? {
        var seen = Set<String>()
        for e in entries {
            if e.name == SafeTensorsFile.metadataKey || !seen.insert(e.name).inserted { return e.name }
        }
        return nil
    }

    // MARK: - Reading

    /// Reads and validates the file at `url` (see `decode(_:source:)`).
    public static func read(from url: URL) throws(SafeTensorsError) -> SafeTensorsFile {
        let path = url.path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw .missingFile(file: path)
        }
        if isDirectory.boolValue { throw .ioFailure(file: path, operation: "read", reason: "is a directory") }
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw .ioFailure(file: path, operation: "read", reason: error.localizedDescription)
        }
        return try decode([UInt8](data), source: path)
    }

    /// Parses and validates a complete file image. `source` names the file in errors.
    ///
    /// Checks, in order: the 8-byte length prefix; header length ≤ `maximumHeaderBytes` and within
    /// the file; UTF-8 and JSON syntax; `__metadata__` maps strings to strings; each entry has a
    /// known `dtype`, a `shape` of non-negative integers whose non-zero product fits in `Int`, and
    /// `data_offsets` `[begin, end]` with
    /// begin ≤ end ≤ data length and end − begin = elements × dtype size; unique names; entries
    /// tile the data section exactly (no gap, no overlap, no trailing bytes).
    public static func decode(_ bytes: [UInt8], source: String) throws(SafeTensorsError) -> SafeTensorsFile {
        guard bytes.count >= 8 else { throw .fileTooShort(file: source, byteCount: bytes.count) }
        var headerLength: UInt64 = 0
        for b in 0..<8 { headerLength |= UInt64(bytes[b]) << (8 * UInt64(b)) }
        let leading = Array(bytes.prefix(8))
        guard headerLength <= UInt64(maximumHeaderBytes) else {
            throw .headerTooLarge(file: source, headerLength: headerLength, limit: maximumHeaderBytes, leadingBytes: leading)
        }
        let dataStart = 8 + Int(headerLength)
        guard dataStart <= bytes.count else {
            throw .headerLengthExceedsFile(file: source, headerLength: headerLength, fileSize: bytes.count, leadingBytes: leading)
        }
        let headerBytes = Array(bytes[8..<dataStart])
        guard String(bytes: headerBytes, encoding: .utf8) != nil else { throw .headerNotUTF8(file: source) }
        let json: HeaderJSON
        do {
            json = try HeaderJSONParser.parse(headerBytes)
        } catch {
            throw .invalidJSON(file: source, offset: 8 + error.offset, reason: error.reason)
        }
        guard case .object(let members) = json else {
            throw .invalidField(file: source, entry: "<header>", field: "<top level>",
                                expected: "a JSON object", found: json.kindDescription)
        }

        let dataLength = bytes.count - dataStart
        var metadata: [String: String]? = nil
        var located: [(entry: SafeTensorsEntryHeader, order: Int)] = []
        var names = Set<String>()
        for member in members {
            if member.key == metadataKey {
                guard metadata == nil else { throw .duplicateEntry(file: source, entry: metadataKey) }
                metadata = try decodeMetadata(member.value, source: source)
                continue
            }
            guard names.insert(member.key).inserted else { throw .duplicateEntry(file: source, entry: member.key) }
            let info = try SafeTensorsEntryHeader.decode(member, source: source, dataLength: dataLength)
            located.append((info, located.count))
        }

        // Entries must tile [0, dataLength) exactly. Sort by (begin, end) keeping header order for
        // ties, so zero-size entries sit before a same-offset neighbour.
        located.sort { a, b in
            (a.entry.begin, a.entry.end, a.order) < (b.entry.begin, b.entry.end, b.order)
        }
        var cursor = 0
        var previous: String? = nil
        for (info, _) in located {
            if info.begin < cursor {
                throw .overlappingEntries(file: source, entry: info.name, other: previous ?? "",
                                          begin: info.begin, otherEnd: cursor)
            }
            if info.begin > cursor {
                throw .gapBeforeEntry(file: source, entry: info.name, begin: info.begin, expected: cursor)
            }
            cursor = info.end
            previous = info.name
        }
        if cursor != dataLength {
            throw .trailingBytes(file: source, count: dataLength - cursor, dataLength: dataLength)
        }

        let entries = located.map { info, _ in
            SafeTensorsEntry(name: info.name, dtype: info.dtype, shape: info.shape,
                             bytes: Array(bytes[(dataStart + info.begin)..<(dataStart + info.end)]))
        }
        return SafeTensorsFile(metadata: metadata ?? [:], entries: entries)
    }

    private static func decodeMetadata(_ value: HeaderJSON, source: String) throws(SafeTensorsError) -> [String: String] {
        guard case .object(let pairs) = value else {
            throw .invalidField(file: source, entry: metadataKey, field: metadataKey,
                                expected: "an object of string values", found: value.kindDescription)
        }
        var out: [String: String] = [:]
        for pair in pairs {
            guard case .string(let s) = pair.value else {
                throw .invalidField(file: source, entry: metadataKey, field: pair.key,
                                    expected: "a string value", found: pair.value.kindDescription)
            }
            guard out.updateValue(s, forKey: pair.key) == nil else {
                throw .invalidField(file: source, entry: metadataKey, field: pair.key,
                                    expected: "each metadata key once", found: "a duplicate key")
            }
        }
        return out
    }
}

/// An entry's header fields after validation, before its bytes are sliced out.
private struct SafeTensorsEntryHeader {
    var name: String
    var dtype: SafeTensorsDType
    var shape: [Int]
    var begin: Int
    var end: Int

    static func decode(_ member: HeaderJSON.Member, source: String, dataLength: Int) throws(SafeTensorsError) -> SafeTensorsEntryHeader {
        let name = member.key
        func invalid(_ field: String, _ expected: String, _ found: String) -> SafeTensorsError {
            .invalidField(file: source, entry: name, field: field, expected: expected, found: found)
        }
        guard case .object(let fields) = member.value else {
            throw invalid("<entry>", "an object with dtype, shape and data_offsets", member.value.kindDescription)
        }
        func field(_ key: String) throws(SafeTensorsError) -> HeaderJSON {
            let matches = fields.filter { $0.key == key }
            guard let first = matches.first else { throw invalid(key, "a \(key) member", "none") }
            guard matches.count == 1 else { throw invalid(key, "one \(key) member", "\(matches.count)") }
            return first.value
        }

        let dtypeValue = try field("dtype")
        guard case .string(let dtypeName) = dtypeValue else {
            throw invalid("dtype", "a dtype string such as \"F32\"", dtypeValue.kindDescription)
        }
        guard let dtype = SafeTensorsDType(rawValue: dtypeName) else {
            throw .unknownDType(file: source, entry: name, dtype: dtypeName)
        }

        let shapeValue = try field("shape")
        guard case .array(let dims) = shapeValue else {
            throw invalid("shape", "an array of non-negative integers", shapeValue.kindDescription)
        }
        var shape: [Int] = []
        var elements = 1
        // The product of the non-zero dimensions must fit too, so no stride or partial product of a
        // zero-size tensor's shape can overflow later (Tensors is built with -Ounchecked: it would wrap).
        var nonZero = 1
        var overflow = false
        for d in dims {
            guard let n = d.nonNegativeInt else {
                throw invalid("shape", "an array of non-negative integers", "element \(d.kindDescription)")
            }
            shape.append(n)
            let (p, o) = nonZero.multipliedReportingOverflow(by: max(n, 1))
            nonZero = p
            overflow = overflow || o
            elements = overflow ? 0 : elements * n
        }
        if overflow {
            throw invalid("shape", "dimensions whose product fits in 2^63", "[\(shape.map(String.init).joined(separator: ", "))]")
        }

        let offsetsValue = try field("data_offsets")
        guard case .array(let offsets) = offsetsValue, offsets.count == 2,
              let begin = offsets[0].nonNegativeInt, let end = offsets[1].nonNegativeInt else {
            throw invalid("data_offsets", "[begin, end], two non-negative integers", offsetsValue.kindDescription)
        }
        guard begin <= end else {
            throw invalid("data_offsets", "begin ≤ end", "[\(begin), \(end)]")
        }
        guard end <= dataLength else {
            throw .offsetsOutsideData(file: source, entry: name, begin: begin, end: end, dataLength: dataLength)
        }
        let (expectedBytes, o2) = elements.multipliedReportingOverflow(by: dtype.byteSize)
        guard !o2, end - begin == expectedBytes else {
            throw .offsetsDoNotMatchShape(file: source, entry: name, begin: begin, end: end, shape: shape, dtype: dtype)
        }
        return SafeTensorsEntryHeader(name: name, dtype: dtype, shape: shape, begin: begin, end: end)
    }
}

// MARK: - Errors

/// Why a safetensors file could not be read or written. Every description names the file and
/// the entry or field, says what was expected, and ends with a `hint:` line.
public enum SafeTensorsError: Error, CustomStringConvertible, Equatable {
    /// No file at the path.
    case missingFile(file: String)
    /// An operating-system call failed (open, read, write, fsync, rename).
    case ioFailure(file: String, operation: String, reason: String)
    /// Fewer than the 8 bytes of the header-length prefix.
    case fileTooShort(file: String, byteCount: Int)
    /// The header-length prefix exceeds `SafeTensorsFile.maximumHeaderBytes`.
    case headerTooLarge(file: String, headerLength: UInt64, limit: Int, leadingBytes: [UInt8])
    /// The header-length prefix points past the end of the file.
    case headerLengthExceedsFile(file: String, headerLength: UInt64, fileSize: Int, leadingBytes: [UInt8])
    /// The header bytes are not valid UTF-8.
    case headerNotUTF8(file: String)
    /// The header is not valid JSON; `offset` is the byte offset in the file.
    case invalidJSON(file: String, offset: Int, reason: String)
    /// A header member has the wrong type or value (`entry` is `<header>` for the top level).
    case invalidField(file: String, entry: String, field: String, expected: String, found: String)
    /// An entry's dtype is not one of `SafeTensorsDType`.
    case unknownDType(file: String, entry: String, dtype: String)
    /// An entry name appears twice (or an entry uses the reserved name `__metadata__`).
    case duplicateEntry(file: String, entry: String)
    /// `end − begin` differs from elements(shape) × dtype size.
    case offsetsDoNotMatchShape(file: String, entry: String, begin: Int, end: Int, shape: [Int], dtype: SafeTensorsDType)
    /// `end` lies beyond the data section (typically a truncated file).
    case offsetsOutsideData(file: String, entry: String, begin: Int, end: Int, dataLength: Int)
    /// `entry` starts at `begin`, inside `other`, which ends at `otherEnd`.
    case overlappingEntries(file: String, entry: String, other: String, begin: Int, otherEnd: Int)
    /// Unused bytes before `entry`: it starts at `begin` but the previous entry ends at `expected`.
    case gapBeforeEntry(file: String, entry: String, begin: Int, expected: Int)
    /// `count` bytes after the last entry's end.
    case trailingBytes(file: String, count: Int, dataLength: Int)
    /// A typed accessor was used on an entry of another dtype.
    case wrongDType(entry: String, expected: SafeTensorsDType, found: SafeTensorsDType)

    public var description: String {
        let notSafeTensors = "hint: is this a safetensors file? Re-create it with the tool that wrote it, or check the path."
        switch self {
        case .missingFile(let file):
            return "\(file): no such file\nhint: check the path (checkpoints are written as <run>/last.safetensors)."
        case .ioFailure(let file, let operation, let reason):
            return "\(file): \(operation) failed: \(reason)\nhint: check permissions and free disk space of the directory."
        case .fileTooShort(let file, let count):
            return "\(file): file is \(count) bytes, too short for the 8-byte header length\n"
                + "hint: the file is empty or truncated; use an earlier checkpoint."
        case .headerTooLarge(let file, let length, let limit, let leading):
            return "\(file): header length \(length) exceeds the \(limit)-byte limit (first bytes: \(hex(leading)))\n"
                + notSafeTensors
        case .headerLengthExceedsFile(let file, let length, let size, let leading):
            return "\(file): header length \(length) exceeds the file size \(size) − 8 (first bytes: \(hex(leading)))\n"
                + "hint: the file is truncated or not a safetensors file; use an earlier checkpoint."
        case .headerNotUTF8(let file):
            return "\(file): header is not valid UTF-8\n" + notSafeTensors
        case .invalidJSON(let file, let offset, let reason):
            return "\(file): header is not valid JSON at byte \(offset): \(reason)\n" + notSafeTensors
        case .invalidField(let file, let entry, let field, let expected, let found):
            return "\(file): entry \(entry): field \(field): expected \(expected), found \(found)\n"
                + "hint: the header was written by an incompatible tool or corrupted."
        case .unknownDType(let file, let entry, let dtype):
            let known = SafeTensorsDType.allCases.map(\.rawValue).joined(separator: ", ")
            return "\(file): entry \(entry): unknown dtype \"\(dtype)\" (known: \(known))\n"
                + "hint: convert the tensor to a supported dtype (e.g. F32) when saving."
        case .duplicateEntry(let file, let entry):
            return "\(file): entry \(entry) appears more than once (or uses the reserved name \(SafeTensorsFile.metadataKey))\n"
                + "hint: tensor names must be unique; rename one of them."
        case .offsetsDoNotMatchShape(let file, let entry, let begin, let end, let shape, let dtype):
            return "\(file): entry \(entry): data_offsets [\(begin), \(end)] span \(end - begin) bytes, "
                + "but shape \(shape) × \(dtype.rawValue) (\(dtype.byteSize) bytes) needs \(elementCountText(shape, dtype))\n"
                + "hint: the header is corrupt; use an earlier checkpoint."
        case .offsetsOutsideData(let file, let entry, let begin, let end, let length):
            return "\(file): entry \(entry): data_offsets [\(begin), \(end)] lie outside the \(length)-byte data section\n"
                + "hint: the file is probably truncated (interrupted copy or full disk); use an earlier checkpoint."
        case .overlappingEntries(let file, let entry, let other, let begin, let otherEnd):
            return "\(file): entry \(entry) starts at data offset \(begin), inside entry \(other) (which ends at \(otherEnd))\n"
                + "hint: the header is corrupt; entries must not overlap."
        case .gapBeforeEntry(let file, let entry, let begin, let expected):
            return "\(file): entry \(entry) starts at data offset \(begin), expected \(expected) (no gaps allowed)\n"
                + "hint: the header is corrupt; entries must be contiguous."
        case .trailingBytes(let file, let count, let length):
            return "\(file): data section has \(count) trailing bytes after the last entry (data section is \(length) bytes)\n"
                + "hint: the file was appended to or its header lost entries; use an earlier checkpoint."
        case .wrongDType(let entry, let expected, let found):
            return "entry \(entry): dtype is \(found.rawValue), expected \(expected.rawValue)\n"
                + "hint: this entry holds another kind of value; check the tensor name."
        }
    }
}

private func hex(_ bytes: [UInt8]) -> String {
    bytes.map { b in
        let s = String(b, radix: 16, uppercase: true)
        return s.count == 1 ? "0" + s : s
    }.joined(separator: " ")
}

private func elementCountText(_ shape: [Int], _ dtype: SafeTensorsDType) -> String {
    var n = 1
    for d in shape {
        let (p, o) = n.multipliedReportingOverflow(by: d)
        if o { return "more bytes than fit in Int" }
        n = p
    }
    let (bytes, o) = n.multipliedReportingOverflow(by: dtype.byteSize)
    return o ? "more bytes than fit in Int" : "\(bytes) bytes"
}
