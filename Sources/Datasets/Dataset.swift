// Dataset.swift: the one dataset type every reader produces: memory-mapped uint8 images described by a
// strided pixel layout, labels decoded once at open (4 bytes per sample), and stable sample IDs (the
// index in the file, or in the files concatenated in their official order). Readers live in
// Dataset+<Format>.swift; the pixel loops (uint8 → float views) live in Dataset+Unsafe.swift.
// Not here: augmentation sampling (Augmentation.swift), order (EpochOrder.swift), batching.

import Foundation
import Tensors
import SystemIO

/// Channels × height × width of one image.
public struct ImageShape: Hashable, Codable, Sendable, CustomStringConvertible {
    public var channels: Int
    public var height: Int
    public var width: Int

    public init(channels: Int, height: Int, width: Int) {
        self.channels = channels
        self.height = height
        self.width = width
    }

    /// C·H·W.
    public var pixelCount: Int { channels * height * width }
    /// `[C, H, W]`, the tensor shape of one image.
    public var dimensions: [Int] { [channels, height, width] }
    public var description: String { "\(channels)×\(height)×\(width)" }
}

/// The on-disk format a dataset was read from.
public enum DatasetFormat: String, Codable, Sendable, CaseIterable {
    /// MNIST IDX (idx3 ubyte images + idx1 ubyte labels), uncompressed.
    case idx
    /// CIFAR-10 binary batches (`cifar-10-batches-bin`).
    case cifar10
    /// CIFAR-100 binary (`cifar-100-binary`), fine or coarse labels.
    case cifar100
    /// SVHN cropped digits, MATLAB v5 `.mat` (`train_32x32.mat`, `test_32x32.mat`).
    case svhn
    /// NumPy `.npy` uint8 (or float in [0, 1], quantized once to a cached uint8 copy) images + integer labels `.npy`.
    case npy
    /// The project's own mappable format (`.mlds`, docs/datasets.md §4); synthetic sets use it.
    case mlds

    /// Human-readable name for `memloss data info`.
    public var displayName: String {
        switch self {
        case .idx: return "MNIST IDX"
        case .cifar10: return "CIFAR-10 binary"
        case .cifar100: return "CIFAR-100 binary"
        case .svhn: return "SVHN MATLAB v5"
        case .npy: return "NumPy .npy"
        case .mlds: return "memloss dataset (.mlds)"
        }
    }
}

/// Where each sample's pixels live: one or more file segments of equally spaced samples, and the byte
/// strides of the channel, row and column axes inside a sample. Covers CHW records (CIFAR, IDX,
/// `.mlds`, NCHW `.npy`), HWC (NHWC `.npy`) and MATLAB's column-major H×W×C×N (SVHN).
struct PixelLayout: Sendable {
    struct Segment: Sendable {
        let file: MappedFile
        /// ID of the first sample in this segment.
        let firstID: Int
        let count: Int
        /// Byte offset of pixel (c=0, y=0, x=0) of the segment's first sample.
        let offset: Int
        /// Bytes from one sample to the next.
        let sampleStride: Int
    }

    let segments: [Segment]
    let strideC: Int
    let strideH: Int
    let strideW: Int

    /// The file and byte offset of pixel (0, 0, 0) of sample `id`.
    @inline(__always)
    func locate(_ id: Int) -> (file: MappedFile, offset: Int) {
        if segments.count == 1 {
            let s = segments[0]
            return (s.file, s.offset + id * s.sampleStride)
        }
        // Few segments (CIFAR-10 has 5): binary search on firstID.
        var lo = 0, hi = segments.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if segments[mid].firstID <= id { lo = mid } else { hi = mid - 1 }
        }
        let s = segments[lo]
        return (s.file, s.offset + (id - s.firstID) * s.sampleStride)
    }

    /// True if the channel/row/column strides are those of a packed CHW image.
    func isPackedCHW(_ shape: ImageShape) -> Bool {
        strideW == 1 && strideH == shape.width && strideC == shape.width * shape.height
    }
}

/// A read-only image classification dataset over memory-mapped files.
///
/// - Sample IDs are `0..<count`: the index in the file, or in the official files concatenated in order
///   (CIFAR-10: `data_batch_1.bin` … `data_batch_5.bin`). IDs are stable: they key the memory bank.
/// - Images are uint8 and read on demand from the mapping; `image(at:)` returns CHW bytes whatever the
///   file's layout, `renderView(id:view:…)` returns float CHW in [0, 1] (x / 255), cropped and flipped.
/// - Labels are decoded and range-checked at open and kept in RAM (`labels`, 4 bytes per sample).
/// - Thread-safe: immutable after init, except the residency bookkeeping, which is locked.
///
/// Resident memory: pages touched through the mapping count towards the process's RSS until dropped.
/// Batch loading (`BatchLoader`) drops them whenever the process's file-backed RSS has grown by
/// `residentBudget`, so RSS stays bounded while streaming through a file larger than RAM; the kernel's
/// page cache is not RSS (docs/datasets.md §9).
public final class Dataset: @unchecked Sendable {
    public let format: DatasetFormat
    /// A short description, e.g. "cifar10 train (/data/cifar-10-batches-bin)".
    public let name: String
    /// Paths of the files read, in ID order for multi-file sets.
    public let files: [String]
    public let count: Int
    public let shape: ImageShape
    public let classCount: Int
    /// Labels in `0..<classCount`, one per sample ID.
    public let labels: [Int32]
    /// Number of samples per class.
    public let classCounts: [Int]

    let layout: PixelLayout
    let mappedFiles: [MappedFile]
    private let residency = ResidencyTracker()

    init(format: DatasetFormat, name: String, shape: ImageShape, classCount: Int, labels: [Int32],
         layout: PixelLayout, mappedFiles: [MappedFile]) {
        precondition(layout.segments.reduce(0) { $0 + $1.count } == labels.count,
                     "Dataset: pixel segments and labels disagree")
        self.format = format
        self.name = name
        self.files = mappedFiles.map(\.path)
        self.count = labels.count
        self.shape = shape
        self.classCount = classCount
        self.labels = labels
        self.layout = layout
        self.mappedFiles = mappedFiles
        var counts = [Int](repeating: 0, count: classCount)
        for l in labels {
            precondition(l >= 0 && Int(l) < classCount, "Dataset: unchecked label \(l)")
            counts[Int(l)] += 1
        }
        classCounts = counts
        // Opening scanned the labels (for CIFAR that touches every page); start from zero residency.
        // Training reads samples in a random order: no read-around of 128 KiB per 3 KiB sample.
        releaseResidentPages()
        residency.didRelease()
        for f in mappedFiles { f.advise(.random) }
    }

    public var channels: Int { shape.channels }
    public var height: Int { shape.height }
    public var width: Int { shape.width }

    /// Total size of the files on disk, in bytes.
    public var byteCount: Int { mappedFiles.reduce(0) { $0 + $1.count } }

    /// Label of sample `id`, in `0..<classCount`.
    @inline(__always)
    public func label(at id: Int) -> Int {
        precondition(id >= 0 && id < count, "Dataset \(name): sample ID \(id) out of 0..<\(count)")
        return Int(labels[id])
    }

    /// A copy of image `id` as uint8 CHW bytes (`shape.pixelCount` of them).
    public func image(at id: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: shape.pixelCount)
        copyImage(at: id, into: &out, offset: 0)
        return out
    }

    /// Image `id` (identity view) as a float tensor `[C, H, W]` in [0, 1].
    public func imageTensor(at id: Int) -> Tensor {
        renderView(id: id, view: .identity)
    }

    /// The augmented view `view` of sample `id` as a float tensor `[C, H, W]` in [0, 1]: the same
    /// function the batch loader uses, so the result equals that sample's row of the batch bit for bit.
    public func renderView(id: Int, view: ViewParameters) -> Tensor {
        var t = Tensor(zeros: [1] + shape.dimensions)
        renderView(id: id, view: view, into: &t, row: 0)
        return t.reshaped(shape.dimensions)
    }

    // MARK: - Residency

    /// How much file-backed RSS batch loading may add before it drops this dataset's page-table
    /// entries (`MADV_DONTNEED`; the data stays in the page cache). 0 disables dropping. Default 128 MiB.
    public var residentBudget: Int {
        get { residency.budget }
        set { residency.budget = newValue }
    }

    /// Drops the resident pages of every mapped file now (see `residentBudget`).
    public func releaseResidentPages() {
        for f in mappedFiles { f.releaseResidentPages() }
    }

    /// Called by readers after every few samples: if this process's file-backed RSS grew by more than
    /// `residentBudget` since the last release, drop this dataset's mapped pages. Files that fit in
    /// the budget altogether are never dropped (their RSS cannot exceed it).
    ///
    /// Measured, not estimated: on Linux 6.x a read fault on a cached file maps the whole large folio
    /// around the page (≈ 0.9 MB per random 3 KB sample on this machine), so the growth is read from
    /// /proc/self/statm. Elsewhere it falls back to counting `samples × (span + 64 KiB)`.
    func noteSamplesRead(_ samples: Int) {
        let budget = residentBudget
        if samples == 0 || budget == 0 || byteCount <= budget { return }
        if residency.shouldRelease(estimatedBytes: samples * estimatedBytesPerSample) {
            releaseResidentPages()
            residency.didRelease()
        }
    }

    /// Upper estimate of the RSS one sample read adds where it cannot be measured: its byte span plus a
    /// 64 KiB fault-around window.
    var estimatedBytesPerSample: Int {
        let span = (shape.channels - 1) * layout.strideC + (shape.height - 1) * layout.strideH
            + (shape.width - 1) * layout.strideW + 1
        return span + 64 << 10
    }
}

/// Decides when to release mapped pages: growth of the process's file-backed RSS since the last
/// release (measured) or, where /proc is unavailable, estimated bytes touched. Locked.
final class ResidencyTracker: @unchecked Sendable {
    private let lock = NSLock()
    private var _budget = 128 << 20
    /// File-backed RSS right after the last release (nil: not measurable here).
    private var baseline: Int? = ProcessMemory.residentFileBytes()
    private var estimated = 0

    var budget: Int {
        get { lock.lock(); defer { lock.unlock() }; return _budget }
        set { lock.lock(); _budget = max(0, newValue); lock.unlock() }
    }

    /// True when the pages should be released now.
    func shouldRelease(estimatedBytes: Int) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        if let base = baseline, let now = ProcessMemory.residentFileBytes() {
            if now < base { baseline = now }
            return now - min(base, now) > _budget
        }
        estimated += estimatedBytes
        return estimated > _budget
    }

    /// Records the state right after a release.
    func didRelease() {
        lock.lock()
        baseline = ProcessMemory.residentFileBytes()
        estimated = 0
        lock.unlock()
    }
}

// MARK: - Helpers shared by the readers

extension MappedFile {
    /// Throws `.compressed` if the file starts with a whole-file compression magic number.
    func rejectCompressed() throws {
        let head = bytes(at: 0, upTo: 6)
        if head.count >= 2 && head[0] == 0x1F && head[1] == 0x8B { throw DatasetError.compressed(path: path, format: "gzip") }
        if head.count >= 4 && head[0..<4] == [0x50, 0x4B, 0x03, 0x04] { throw DatasetError.compressed(path: path, format: "zip") }
        if head.count >= 6 && head == [0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00] { throw DatasetError.compressed(path: path, format: "xz") }
        if head.count >= 3 && head[0..<3] == [0x42, 0x5A, 0x68] { throw DatasetError.compressed(path: path, format: "bzip2") }
        if head.count >= 4 && head[0..<4] == [0x28, 0xB5, 0x2F, 0xFD] { throw DatasetError.compressed(path: path, format: "zstd") }
    }

    /// Opens `path`, rejecting whole-file compression; if it is missing but `path.gz` exists, says so.
    static func openUncompressed(_ path: String, expected: String) throws -> MappedFile {
        if !FileManager.default.fileExists(atPath: path) {
            for ext in [".gz", ".zip", ".xz", ".bz2"] where FileManager.default.fileExists(atPath: path + ext) {
                let format = ["gz": "gzip", "zip": "zip", "xz": "xz", "bz2": "bzip2"][String(ext.dropFirst())]!
                throw DatasetError.compressed(path: path + ext, format: format)
            }
        }
        let f = try MappedFile(path: path, expected: expected)
        try f.rejectCompressed()
        return f
    }
}

/// Converts decoded label values to `Int32`, mapping with `transform` and checking `0..<classCount`.
/// `expected` describes the valid stored range for the error message.
func checkedLabels(_ values: [Double], path: String, classCount: Int, expected: String,
                   transform: (Int) -> Int = { $0 }) throws -> [Int32] {
    var out = [Int32](repeating: 0, count: values.count)
    for (i, v) in values.enumerated() {
        let valueText = v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : String(v)
        guard v == v.rounded(), abs(v) < 1e9 else {
            throw DatasetError.labelOutOfRange(path: path, index: i, found: valueText, expected: expected)
        }
        let mapped = transform(Int(v))
        guard mapped >= 0 && mapped < classCount else {
            throw DatasetError.labelOutOfRange(path: path, index: i, found: valueText, expected: expected)
        }
        out[i] = Int32(mapped)
    }
    return out
}

/// Classes of a label array without a stated class count: `max + 1` (at least 1), at most 65,536.
func inferredClassCount(_ values: [Double], path: String) throws -> Int {
    var best = 0.0
    for (i, v) in values.enumerated() {
        guard v >= 0, v < 65_536, v == v.rounded() else {
            throw DatasetError.labelOutOfRange(path: path, index: i, found: "\(v)", expected: "an integer in 0...65535")
        }
        best = max(best, v)
    }
    return Int(best) + 1
}
