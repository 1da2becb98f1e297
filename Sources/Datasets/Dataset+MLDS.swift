// Dataset+MLDS.swift: the project's own mappable dataset format, `.mlds` (docs/datasets.md §4): a
// 128-byte little-endian header, one label byte per sample, then uint8 CHW pixels from a 4 KiB-aligned
// offset. Synthetic sets are written in it; any dataset can be converted to it. This file holds the
// header codec, the reader and the streaming writer; it never holds a whole file in RAM.

import Foundation
import SystemIO

/// The `.mlds` header. Layout: docs/datasets.md §4. Field order equals byte order on disk.
struct MLDSHeader: Equatable {
    /// "MLDS\r\n\x1A\n": the CR LF / ^Z / LF bytes catch text-mode and truncating transfers (as PNG).
    static let magic: [UInt8] = [0x4D, 0x4C, 0x44, 0x53, 0x0D, 0x0A, 0x1A, 0x0A]
    static let currentMajor: UInt16 = 1
    static let currentMinor: UInt16 = 0
    static let encodedByteCount = 128
    /// End of the fields a v1.0 reader needs (the rest of the 128 bytes is reserved, zero).
    static let minimumHeaderBytes = 72
    static let pixelAlignment = 4096

    /// Generator codes (never reused).
    static let generatorNone: UInt32 = 0
    static let generatorSyntheticV1: UInt32 = 1

    var versionMajor: UInt16 = currentMajor     // offset 8
    var versionMinor: UInt16 = currentMinor     // 10
    var headerBytes: UInt32 = UInt32(encodedByteCount)  // 12
    var count: UInt64                           // 16
    var channels: UInt32                        // 24
    var height: UInt32                          // 28
    var width: UInt32                           // 32
    var classCount: UInt32                      // 36
    var generator: UInt32                       // 40
    var flags: UInt32 = 0                       // 44
    var seed: UInt64                            // 48
    var labelsOffset: UInt64                    // 56
    var pixelsOffset: UInt64                    // 64

    init(count: Int, shape: ImageShape, classCount: Int, generator: UInt32, seed: UInt64) {
        self.count = UInt64(count)
        channels = UInt32(shape.channels)
        height = UInt32(shape.height)
        width = UInt32(shape.width)
        self.classCount = UInt32(classCount)
        self.generator = generator
        self.seed = seed
        labelsOffset = UInt64(MLDSHeader.encodedByteCount)
        pixelsOffset = UInt64(MLDSHeader.alignUp(MLDSHeader.encodedByteCount + count, to: MLDSHeader.pixelAlignment))
    }

    static func alignUp(_ offset: Int, to alignment: Int) -> Int { (offset + alignment - 1) / alignment * alignment }

    var shape: ImageShape { ImageShape(channels: Int(channels), height: Int(height), width: Int(width)) }
    var fileSize: Int { Int(pixelsOffset) + Int(count) * shape.pixelCount }

    /// The 128 header bytes.
    func encode() -> [UInt8] {
        var out = MLDSHeader.magic
        out.reserveCapacity(MLDSHeader.encodedByteCount)
        writeLE(versionMajor, into: &out)
        writeLE(versionMinor, into: &out)
        writeLE(headerBytes, into: &out)
        writeLE(count, into: &out)
        writeLE(channels, into: &out)
        writeLE(height, into: &out)
        writeLE(width, into: &out)
        writeLE(classCount, into: &out)
        writeLE(generator, into: &out)
        writeLE(flags, into: &out)
        writeLE(seed, into: &out)
        writeLE(labelsOffset, into: &out)
        writeLE(pixelsOffset, into: &out)
        out += [UInt8](repeating: 0, count: MLDSHeader.encodedByteCount - out.count)
        return out
    }

    /// Decodes and validates the header of `f` (magic, version, field ranges, file size).
    static func decode(from f: MappedFile) throws -> MLDSHeader {
        guard f.count >= 8 else {
            throw DatasetError.badMagic(path: f.path, found: f.bytes(at: 0, upTo: 8), expected: "4d 4c 44 53 0d 0a 1a 0a (MLDS\\r\\n\\x1a\\n)")
        }
        let magic = f.bytes(at: 0, upTo: 8)
        guard magic == MLDSHeader.magic else {
            throw DatasetError.badMagic(path: f.path, found: magic, expected: "4d 4c 44 53 0d 0a 1a 0a (MLDS\\r\\n\\x1a\\n)")
        }
        guard f.count >= minimumHeaderBytes else {
            throw DatasetError.truncated(path: f.path, what: "the .mlds header", expectedBytes: minimumHeaderBytes, actualBytes: f.count)
        }
        let major = f.uint16LE(at: 8)
        guard major == currentMajor else {
            throw DatasetError.unsupported(path: f.path, feature: ".mlds major version \(major) (this reader knows \(currentMajor))",
                                           hint: "regenerate the file with this version of memloss (memloss data synth / convert)")
        }
        var h = MLDSHeader(count: 0, shape: ImageShape(channels: 0, height: 0, width: 0), classCount: 0, generator: 0, seed: 0)
        h.versionMajor = major
        h.versionMinor = f.uint16LE(at: 10)
        h.headerBytes = f.uint32LE(at: 12)
        h.count = f.uint64LE(at: 16)
        h.channels = f.uint32LE(at: 24)
        h.height = f.uint32LE(at: 28)
        h.width = f.uint32LE(at: 32)
        h.classCount = f.uint32LE(at: 36)
        h.generator = f.uint32LE(at: 40)
        h.flags = f.uint32LE(at: 44)
        h.seed = f.uint64LE(at: 48)
        h.labelsOffset = f.uint64LE(at: 56)
        h.pixelsOffset = f.uint64LE(at: 64)

        func bad(_ field: String, _ found: String, _ expected: String) -> DatasetError {
            .inconsistentSize(path: f.path, field: "header field \(field)", found: found, expected: expected)
        }
        guard h.headerBytes >= minimumHeaderBytes else { throw bad("headerBytes", "\(h.headerBytes)", "≥ \(minimumHeaderBytes)") }
        let limit: UInt64 = 1 << 40
        guard h.count < limit else { throw bad("count", "\(h.count)", "< 2^40") }
        for (name, v) in [("channels", h.channels), ("height", h.height), ("width", h.width)] where v == 0 || v > 65_536 {
            throw bad(name, "\(v)", "1...65536")
        }
        guard (1...256).contains(h.classCount) else { throw bad("classCount", "\(h.classCount)", "1...256 (labels are one byte)") }
        guard h.labelsOffset >= UInt64(h.headerBytes), h.labelsOffset < limit else {
            throw bad("labelsOffset", "\(h.labelsOffset)", "≥ headerBytes (\(h.headerBytes))")
        }
        guard h.pixelsOffset >= h.labelsOffset + h.count, h.pixelsOffset < limit else {
            throw bad("pixelsOffset", "\(h.pixelsOffset)", "≥ labelsOffset + count (\(h.labelsOffset + h.count))")
        }
        let (pixels, overflow) = Int(h.count).multipliedReportingOverflow(by: h.shape.pixelCount)
        let expectedSize = overflow || pixels > Int.max - Int(h.pixelsOffset) ? Int.max : Int(h.pixelsOffset) + pixels
        if f.count < expectedSize {
            throw DatasetError.truncated(path: f.path, what: "\(h.count) samples of \(h.shape) pixels",
                                         expectedBytes: expectedSize, actualBytes: f.count)
        }
        if f.count > expectedSize {
            throw DatasetError.inconsistentSize(path: f.path, field: "file size", found: "\(f.count) bytes",
                                                expected: "\(expectedSize) bytes (pixelsOffset + count × C×H×W)")
        }
        return h
    }
}

// MARK: - Little-endian helpers

/// Appends `value` as little-endian bytes (cursor = end of `out`).
func writeLE<T: FixedWidthInteger>(_ value: T, into out: inout [UInt8]) {
    var v = value.littleEndian
    for _ in 0..<MemoryLayout<T>.size {
        out.append(UInt8(truncatingIfNeeded: v))
        v >>= 8
    }
}

// MARK: - Reader

extension Dataset {
    /// Opens a `.mlds` file (synthetic or converted).
    public static func openMLDS(file path: String, name: String? = nil) throws -> Dataset {
        let f = try MappedFile.openUncompressed(path, expected: "a .mlds dataset file (memloss data synth / convert)")
        let h = try MLDSHeader.decode(from: f)
        let n = Int(h.count), classes = Int(h.classCount)
        let raw = f.bytes(at: Int(h.labelsOffset), upTo: n)
        var labels = [Int32](repeating: 0, count: n)
        for i in 0..<n {
            guard Int(raw[i]) < classes else {
                throw DatasetError.labelOutOfRange(path: path, index: i, found: "\(raw[i])", expected: "0...\(classes - 1)")
            }
            labels[i] = Int32(raw[i])
        }
        let shape = h.shape
        let layout = PixelLayout(
            segments: [.init(file: f, firstID: 0, count: n, offset: Int(h.pixelsOffset), sampleStride: shape.pixelCount)],
            strideC: shape.height * shape.width, strideH: shape.width, strideW: 1)
        return Dataset(format: .mlds, name: name ?? "mlds \(path)", shape: shape, classCount: classes, labels: labels,
                       layout: layout, mappedFiles: [f])
    }

    /// The generator seed recorded in a `.mlds` file (nil for other formats or converted files).
    public var syntheticSeed: UInt64? {
        guard format == .mlds, let f = mappedFiles.first, let h = try? MLDSHeader.decode(from: f),
              h.generator == MLDSHeader.generatorSyntheticV1 else { return nil }
        return h.seed
    }

    /// Writes this dataset (identity views, CHW uint8) to a `.mlds` file, streaming in chunks.
    /// - Precondition: `classCount ≤ 256`.
    public func writeMLDS(to path: String) throws {
        guard classCount <= 256 else {
            throw DatasetError.invalidArgument(name: "class count", found: "\(classCount)", expected: "≤ 256 for .mlds")
        }
        let perChunk = max(1, (8 << 20) / max(1, shape.pixelCount))
        try MLDSWriter.write(path: path, count: count, shape: shape, classCount: classCount,
                             generator: MLDSHeader.generatorNone, seed: 0, samplesPerChunk: perChunk,
                             label: { self.label(at: $0) },
                             fill: { range, buffer in
                                 for (k, id) in range.enumerated() {
                                     self.copyImage(at: id, into: &buffer, offset: k * self.shape.pixelCount)
                                 }
                                 self.noteSamplesRead(range.count)
                             })
    }
}

// MARK: - Writer

/// Streams a `.mlds` file: header, labels, zero padding to the pixel offset, then pixel chunks.
enum MLDSWriter {
    /// - Parameters:
    ///   - label: label of a sample ID, in `0..<classCount`.
    ///   - fill: writes samples `range` as consecutive CHW images into `buffer` (sized for the chunk).
    static func write(path: String, count: Int, shape: ImageShape, classCount: Int, generator: UInt32, seed: UInt64,
                      samplesPerChunk: Int, label: (Int) -> Int,
                      fill: (Range<Int>, inout [UInt8]) -> Void, progress: ((Int) -> Void)? = nil) throws {
        let header = MLDSHeader(count: count, shape: shape, classCount: classCount, generator: generator, seed: seed)
        try writingDatasetFile(path) {
            let out = try AtomicFileWriter.datasetFile(path)
            try out.append(header.encode())
            var chunk = [UInt8]()
            chunk.reserveCapacity(1 << 20)
            var id = 0
            while id < count {
                let end = min(count, id + (1 << 20))
                chunk.removeAll(keepingCapacity: true)
                for i in id..<end {
                    let l = label(i)
                    precondition(l >= 0 && l < classCount, "MLDSWriter: label \(l) of sample \(i) out of range")
                    chunk.append(UInt8(l))
                }
                try out.append(chunk)
                id = end
            }
            let pad = Int(header.pixelsOffset) - out.bytesWritten
            if pad > 0 { try out.append([UInt8](repeating: 0, count: pad)) }
            var buffer = [UInt8](repeating: 0, count: samplesPerChunk * shape.pixelCount)
            id = 0
            while id < count {
                let end = min(count, id + samplesPerChunk)
                fill(id..<end, &buffer)
                try out.append(buffer, count: (end - id) * shape.pixelCount)
                id = end
                progress?(id)
            }
            precondition(out.bytesWritten == header.fileSize, "MLDSWriter: wrote \(out.bytesWritten) bytes, header says \(header.fileSize)")
            try out.commit()
        }
    }
}
