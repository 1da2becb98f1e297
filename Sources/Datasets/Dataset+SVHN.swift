// Dataset+SVHN.swift: the SVHN cropped-digits reader (`train_32x32.mat`, `test_32x32.mat`): MATLAB v5
// variables X (uint8, 32×32×3×N, column-major: row y fastest, then column x, channel, sample) mapped in
// place, and y (N×1, any numeric storage; 1…10 with 10 meaning digit 0). miCOMPRESSED files are
// inflated once into a cache file (MATInflate, Inflater.swift) and that file is mapped; a copy
// that then fails to open is removed again.

import Foundation
import SystemIO

extension Dataset {
    /// Opens an SVHN `.mat` file (cropped digits format) with variables `X` and `y`.
    public static func openSVHN(file path: String, name: String? = nil) throws -> Dataset {
        let original = try MappedFile.openUncompressed(path, expected: "an SVHN .mat file (MATLAB v5 with X and y)")
        let mat = try MATFile(original)
        guard mat.compressedElements > 0 && (mat.variables["X"] == nil || mat.variables["y"] == nil) else {
            return try svhnDataset(mat, path: path, name: name)
        }
        let inflated = try MATInflate.cachedUncompressedCopy(of: original)
        do {
            let copy: MATFile
            do {
                copy = try MATFile(try MappedFile(path: inflated, expected: "an inflated copy of \(path)"))
            } catch let e as DatasetError {
                let problem = e.description.split(separator: "\n").first.map(String.init) ?? "\(e)"
                throw DatasetError.wrongFormat(path: path, expected: "well-formed MATLAB v5 elements inside its miCOMPRESSED elements",
                                               found: "after inflating: \(problem)")
            }
            return try svhnDataset(copy, path: path, name: name)
        } catch {
            // A copy that does not open is useless (and may be large): never leave it in the cache.
            try? FileManager.default.removeItem(atPath: inflated)
            throw error
        }
    }

    /// The SVHN dataset in a parsed MAT-file (the original or its inflated copy); errors name `path`.
    private static func svhnDataset(_ mat: MATFile, path: String, name: String?) throws -> Dataset {
        let f = mat.file
        guard let x = mat.variables["X"] else {
            throw DatasetError.wrongFormat(path: path, expected: "a variable 'X' (uint8 32×32×3×N)",
                                           found: "variables [\(mat.variables.keys.sorted().joined(separator: ", "))]")
        }
        guard let y = mat.variables["y"] else {
            throw DatasetError.wrongFormat(path: path, expected: "a variable 'y' (N×1 labels)",
                                           found: "variables [\(mat.variables.keys.sorted().joined(separator: ", "))]")
        }
        guard x.arrayClass == MATFile.mxUINT8, x.dataType == MATFile.miUINT8, !x.isComplex else {
            throw DatasetError.unsupported(path: path, feature: "X of MATLAB class \(x.arrayClass), storage type \(x.dataType)",
                                           hint: "X must be uint8 (class 9, stored as miUINT8), as in the official files")
        }
        guard x.dimensions.count == 4 || x.dimensions.count == 3 else {
            throw DatasetError.inconsistentSize(path: path, field: "X dimensions", found: "\(x.dimensions)",
                                                expected: "H×W×C×N (4 dimensions, 32×32×3×N officially)")
        }
        let h = x.dimensions[0], w = x.dimensions[1], c = x.dimensions[2]
        let n = x.dimensions.count == 4 ? x.dimensions[3] : 1
        guard h > 0, w > 0, c > 0 else {
            throw DatasetError.inconsistentSize(path: path, field: "X image size", found: "\(x.dimensions)",
                                                expected: "at least 1 row, column and channel (32×32×3×N officially)")
        }
        guard x.dataBytes == h * w * c * n else {  // MATFile checked that the product fits
            throw DatasetError.inconsistentSize(path: path, field: "X data size", found: "\(x.dataBytes) bytes",
                                                expected: "\(h * w * c * n) bytes for \(h)×\(w)×\(c)×\(n)")
        }
        guard y.dimensions.count == 2, y.dimensions.contains(1) || n == 1, y.elementCount == n else {
            throw DatasetError.inconsistentSize(path: path, field: "y dimensions", found: "\(y.dimensions)",
                                                expected: "\(n)×1 (one label per image in X)")
        }
        guard let type = MATFile.storedNumber(y.dataType), !y.isComplex,
              y.dataBytes == n * type.byteWidth else {
            throw DatasetError.inconsistentSize(path: path, field: "y data", found: "storage type \(y.dataType), \(y.dataBytes) bytes",
                                                expected: "\(n) numeric values")
        }
        let raw = f.numbers(at: y.dataOffset, count: n, type: type)
        for (i, v) in raw.enumerated() where !(v >= 1 && v <= 10 && v == v.rounded()) {
            throw DatasetError.labelOutOfRange(path: path, index: i, found: v == v.rounded() && abs(v) < 1e15 ? "\(Int64(v))" : "\(v)",
                                               expected: "1...10 (10 = digit 0)")
        }
        let labels = try checkedLabels(raw, path: path, classCount: 10, expected: "1...10 (10 = digit 0)") { $0 % 10 }
        let layout = PixelLayout(
            segments: [.init(file: f, firstID: 0, count: n, offset: x.dataOffset, sampleStride: h * w * c)],
            strideC: h * w, strideH: 1, strideW: h)
        return Dataset(format: .svhn, name: name ?? "svhn \(path)", shape: ImageShape(channels: c, height: h, width: w),
                       classCount: 10, labels: labels, layout: layout, mappedFiles: [f])
    }

    /// Opens `train_32x32.mat` or `test_32x32.mat` from `directory`.
    public static func openSVHN(directory: String, partition: DatasetPartition) throws -> Dataset {
        try checkDirectory(directory, expected: "a directory with train_32x32.mat and test_32x32.mat")
        let file = (directory as NSString).appendingPathComponent(partition == .train ? "train_32x32.mat" : "test_32x32.mat")
        return try openSVHN(file: file, name: "svhn \(partition.rawValue) (\(directory))")
    }
}
