// DatasetError.swift: every rejection a dataset reader, the spec parser or the synthetic writer can
// produce. Each case names the file (or spec), the field, what was found and what was expected, and
// its description ends with a `hint:` line saying what to do (style.md §9.6). No I/O happens here.

/// A typed dataset error. `description` is a complete message: `<file>: <problem>` then `hint: …`.
public enum DatasetError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The file does not exist. `expected` says what the reader looked for.
    case fileNotFound(path: String, expected: String)
    /// The file exists but cannot be opened or mapped.
    case cannotOpen(path: String, reason: String)
    /// An output file cannot be created or written.
    case cannotWrite(path: String, reason: String)
    /// The whole file is compressed (gzip, zip, xz, bzip2, zstd); readers need the raw bytes to map.
    case compressed(path: String, format: String)
    /// The leading bytes do not identify the expected format.
    case badMagic(path: String, found: [UInt8], expected: String)
    /// The file ends before `what` does.
    case truncated(path: String, what: String, expectedBytes: Int, actualBytes: Int)
    /// A size, count or shape disagrees with another one (in the same file or a companion file).
    case inconsistentSize(path: String, field: String, found: String, expected: String)
    /// A label lies outside the format's range.
    case labelOutOfRange(path: String, index: Int, found: String, expected: String)
    /// A float pixel lies outside its range (or is NaN). `index` is the element index in the file's
    /// array (C order), `sample` the sample it belongs to.
    case pixelOutOfRange(path: String, index: Int, sample: Int, found: String, expected: String)
    /// A valid file that uses a feature this reader does not implement.
    case unsupported(path: String, feature: String, hint: String)
    /// The file (or directory) is something else than what the spec says.
    case wrongFormat(path: String, expected: String, found: String)
    /// A data spec string that cannot be parsed.
    case badSpec(spec: String, reason: String)
    /// The spec names no test files but a test set was asked for.
    case noTestSet(spec: String)
    /// A generator or CLI argument out of range.
    case invalidArgument(name: String, found: String, expected: String)

    public var description: String {
        switch self {
        case let .fileNotFound(path, expected):
            return "\(path): file not found (expected \(expected))\n"
                + "hint: check the path; `memloss data --help` and docs/datasets.md list the files each spec form needs"
        case let .cannotOpen(path, reason):
            return "\(path): cannot open: \(reason)\nhint: check the file's permissions and that it is a regular file"
        case let .cannotWrite(path, reason):
            return "\(path): cannot write: \(reason)\nhint: check that the directory exists, is writable and has free space"
        case let .compressed(path, format):
            let tool: String
            switch format {
            case "gzip": tool = "gunzip (`gunzip -k \(path)`)"
            case "zip": tool = "unzip"
            case "xz": tool = "unxz"
            case "bzip2": tool = "bunzip2"
            default: tool = "zstd -d"
            }
            return "\(path): the file is \(format)-compressed; datasets are memory-mapped and must be stored uncompressed\n"
                + "hint: decompress it with \(tool) and point the spec at the decompressed file"
        case let .badMagic(path, found, expected):
            let hex = found.map { String($0, radix: 16).leftPadded(to: 2) }.joined(separator: " ")
            return "\(path): wrong magic bytes: found \(hex.isEmpty ? "(empty file)" : hex), expected \(expected)\n"
                + "hint: the file is not in the format the spec names; check the spec prefix (mnist:, cifar10:, svhn:, npy:, synthetic:)"
        case let .truncated(path, what, expectedBytes, actualBytes):
            return "\(path): truncated: \(what) needs \(expectedBytes) bytes, the file has \(actualBytes)\n"
                + "hint: the file is incomplete (an interrupted download or copy?); fetch or regenerate it"
        case let .inconsistentSize(path, field, found, expected):
            return "\(path): inconsistent \(field): found \(found), expected \(expected)\n"
                + "hint: the file does not match its header or its companion file; check that the images and labels files belong together"
        case let .labelOutOfRange(path, index, found, expected):
            return "\(path): label of sample \(index) out of range: found \(found), expected \(expected)\n"
                + "hint: the labels do not follow the format's convention; check the spec (e.g. cifar100:DIR:coarse) or the labels file"
        case let .pixelOutOfRange(path, index, sample, found, expected):
            return "\(path): pixel value at element \(index) (sample \(sample)) out of range: found \(found), expected \(expected)\n"
                + "hint: float images must lie in [0, 1]: scale 0…255 data with images / 255, or clip with numpy.clip(images, 0, 1)"
        case let .unsupported(path, feature, hint):
            return "\(path): unsupported: \(feature)\nhint: \(hint)"
        case let .wrongFormat(path, expected, found):
            return "\(path): wrong format: found \(found), expected \(expected)\n"
                + "hint: check the spec prefix and path; see `memloss data info --help` for the spec forms"
        case let .badSpec(spec, reason):
            return "data spec '\(spec)': \(reason)\n"
                + "hint: use demo, mnist:DIR, cifar10:DIR, cifar100:DIR[:coarse], svhn:DIR, "
                + "npy:IMAGES.npy,LABELS.npy[,TEST_IMAGES.npy,TEST_LABELS.npy][:nhwc|:nchw], synthetic:FILE[,TEST_FILE], or a directory/.mlds path"
        case let .noTestSet(spec):
            return "data spec '\(spec)': no test set given\n"
                + "hint: add the test files to the spec (npy:TRAIN_IMG,TRAIN_LBL,TEST_IMG,TEST_LBL or synthetic:TRAIN,TEST) or use the validation split"
        case let .invalidArgument(name, found, expected):
            return "invalid \(name): found \(found), expected \(expected)\nhint: see `memloss data synth --help`"
        }
    }
}

extension String {
    func leftPadded(to width: Int, with pad: Character = "0") -> String {
        count >= width ? self : String(repeating: pad, count: width - count) + self
    }
}
