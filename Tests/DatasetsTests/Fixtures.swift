// Fixtures.swift: writers for tiny files in each official layout (IDX, CIFAR-10/100 binary, SVHN MATLAB
// v5 .mat incl. zlib stored-block compression, NumPy .npy), byte patterns with known values at known
// positions, files produced by scipy/numpy (base64) to cross-check, and the path of ../shared/datasets.

import Datasets
import Foundation
import XCTest

enum Fixtures {
    // MARK: - Paths

    /// `<repo>/../shared/datasets/mnist-5k` if it exists (CI checks it out beside the clone).
    static var sharedMNIST5k: String? {
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let dir = repo.deletingLastPathComponent().appendingPathComponent("shared/datasets/mnist-5k").path
        return FileManager.default.fileExists(atPath: dir + "/train-images-idx3-ubyte") ? dir : nil
    }

    /// The real mnist-5k files: the shared copy, or the embedded copy when ../shared is absent.
    static var mnist5k: (directory: String, isShared: Bool) {
        if let shared = sharedMNIST5k { return (shared, true) }
        return (DataSource.demoDirectory, false)
    }

    static func write(_ bytes: [UInt8], to url: URL) {
        try! Data(bytes).write(to: url)
    }

    // MARK: - Pixel patterns

    /// Known pixel value of sample `n` at (c, y, x): distinct across samples, channels and positions.
    static func pixel(_ n: Int, _ c: Int, _ y: Int, _ x: Int) -> UInt8 {
        UInt8((n * 37 + c * 101 + y * 7 + x * 3 + (x * y) % 5) % 256)
    }

    /// CHW bytes of sample `n` with the `pixel` pattern.
    static func chw(_ n: Int, _ shape: ImageShape) -> [UInt8] {
        var out: [UInt8] = []
        for c in 0..<shape.channels { for y in 0..<shape.height { for x in 0..<shape.width { out.append(pixel(n, c, y, x)) } } }
        return out
    }

    // MARK: - IDX

    static func idx(typeCode: UInt8 = 0x08, dims: [Int], payload: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0, 0, typeCode, UInt8(dims.count)]
        for d in dims { out += [UInt8(d >> 24 & 0xFF), UInt8(d >> 16 & 0xFF), UInt8(d >> 8 & 0xFF), UInt8(d & 0xFF)] }
        return out + payload
    }

    /// Writes `<prefix>-images-idx3-ubyte` / `<prefix>-labels-idx1-ubyte` for `labels.count` samples of H×W.
    @discardableResult
    static func writeMNIST(in dir: URL, prefix: String, labels: [UInt8], height: Int = 5, width: Int = 4) -> (URL, URL) {
        let shape = ImageShape(channels: 1, height: height, width: width)
        let pixels = (0..<labels.count).flatMap { chw($0, shape) }
        let images = dir.appendingPathComponent("\(prefix)-images-idx3-ubyte")
        let lbls = dir.appendingPathComponent("\(prefix)-labels-idx1-ubyte")
        write(idx(dims: [labels.count, height, width], payload: pixels), to: images)
        write(idx(dims: [labels.count], payload: labels), to: lbls)
        return (images, lbls)
    }

    // MARK: - CIFAR

    static let cifarShape = ImageShape(channels: 3, height: 32, width: 32)

    /// CIFAR-10 records: label byte + 3072 CHW pixels, samples numbered from `firstID` for the pattern.
    static func cifar10Records(labels: [UInt8], firstID: Int) -> [UInt8] {
        var out: [UInt8] = []
        for (k, l) in labels.enumerated() { out.append(l); out += chw(firstID + k, cifarShape) }
        return out
    }

    /// CIFAR-100 records: coarse byte, fine byte, 3072 CHW pixels.
    static func cifar100Records(coarse: [UInt8], fine: [UInt8], firstID: Int) -> [UInt8] {
        var out: [UInt8] = []
        for k in 0..<coarse.count { out += [coarse[k], fine[k]]; out += chw(firstID + k, cifarShape) }
        return out
    }

    /// A `cifar-10-batches-bin` directory: data_batch_i has `perBatch[i-1]` records; labels = id % 10.
    static func writeCIFAR10(in dir: URL, perBatch: [Int] = [2, 3, 1, 2, 2], testCount: Int = 3) -> URL {
        let root = dir.appendingPathComponent("cifar-10-batches-bin")
        try! FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        var id = 0
        for (i, n) in perBatch.enumerated() {
            write(cifar10Records(labels: (id..<(id + n)).map { UInt8($0 % 10) }, firstID: id),
                  to: root.appendingPathComponent("data_batch_\(i + 1).bin"))
            id += n
        }
        write(cifar10Records(labels: (0..<testCount).map { UInt8(($0 * 3) % 10) }, firstID: 1000),
              to: root.appendingPathComponent("test_batch.bin"))
        return root
    }

    // MARK: - MATLAB v5

    static let miINT8: UInt32 = 1, miUINT8: UInt32 = 2, miINT32: UInt32 = 5, miUINT32: UInt32 = 6
    static let miDOUBLE: UInt32 = 9, miMATRIX: UInt32 = 14, miCOMPRESSED: UInt32 = 15
    static let mxDOUBLE: UInt32 = 6, mxUINT8: UInt32 = 9

    static func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(v >> (8 * UInt32($0)) & 0xFF) } }
    static func le64(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(v >> (8 * UInt64($0)) & 0xFF) } }
    static func pad8(_ b: [UInt8]) -> [UInt8] { b + [UInt8](repeating: 0, count: (8 - b.count % 8) % 8) }

    /// A data element: tag + data (+ padding); small format for ≤ 4 bytes when `small`.
    static func element(_ type: UInt32, _ data: [UInt8], small: Bool = false) -> [UInt8] {
        if small && data.count <= 4 {
            return le32(UInt32(data.count) << 16 | type) + data + [UInt8](repeating: 0, count: 4 - data.count)
        }
        return le32(type) + le32(UInt32(data.count)) + pad8(data)
    }

    /// A numeric miMATRIX element.
    static func matrix(name: String, arrayClass: UInt32, dims: [Int], dataType: UInt32, data: [UInt8]) -> [UInt8] {
        var body = element(miUINT32, le32(arrayClass) + le32(0))
        body += element(miINT32, dims.flatMap { le32(UInt32($0)) })
        body += element(miINT8, Array(name.utf8), small: true)
        body += element(dataType, data)
        return le32(miMATRIX) + le32(UInt32(body.count)) + body
    }

    /// The 128-byte v5 header.
    static func matHeader(text: String = "MATLAB 5.0 MAT-file, Platform: memloss tests", endian: String = "IM") -> [UInt8] {
        var h = Array(text.utf8)
        h += [UInt8](repeating: 0x20, count: 116 - h.count)
        h += [UInt8](repeating: 0, count: 8)
        h += [0x00, 0x01]
        h += Array(endian.utf8)
        return h
    }

    /// Column-major X bytes (H×W×C×N, row fastest) with the `pixel` pattern.
    static func svhnX(_ shape: ImageShape, count n: Int) -> [UInt8] {
        var out: [UInt8] = []
        for s in 0..<n { for c in 0..<shape.channels { for x in 0..<shape.width { for y in 0..<shape.height {
            out.append(pixel(s, c, y, x))
        } } } }
        return out
    }

    /// An SVHN-layout .mat: X uint8 H×W×C×N, y N×1 stored as doubles (or uint8 if `compactLabels`).
    static func svhnMat(shape: ImageShape = ImageShape(channels: 3, height: 32, width: 32), labels: [Double],
                        compactLabels: Bool = false, compress: Bool = false) -> [UInt8] {
        let n = labels.count
        let x = matrix(name: "X", arrayClass: mxUINT8, dims: [shape.height, shape.width, shape.channels, n],
                       dataType: miUINT8, data: svhnX(shape, count: n))
        let yData = compactLabels ? labels.map { UInt8($0) } : labels.flatMap { le64($0.bitPattern) }
        let y = matrix(name: "y", arrayClass: mxDOUBLE, dims: [n, 1], dataType: compactLabels ? miUINT8 : miDOUBLE, data: yData)
        if compress {
            return matHeader() + compressed(x) + compressed(y)
        }
        return matHeader() + x + y
    }

    /// A miCOMPRESSED element holding `element` as a zlib stream of stored (uncompressed) blocks.
    static func compressed(_ element: [UInt8]) -> [UInt8] {
        let z = zlibStored(element)
        return le32(miCOMPRESSED) + le32(UInt32(z.count)) + z
    }

    /// zlib wrapper + DEFLATE stored blocks (≤ 65,535 bytes each) + Adler-32.
    static func zlibStored(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0x78, 0x01]
        var i = 0
        repeat {
            let n = min(65_535, data.count - i)
            let final: UInt8 = i + n == data.count ? 1 : 0
            out.append(final)  // BFINAL, BTYPE = 00, then byte-aligned
            out += [UInt8(n & 0xFF), UInt8(n >> 8), UInt8(~n & 0xFF), UInt8((~n >> 8) & 0xFF)]
            out += data[i..<(i + n)]
            i += n
        } while i < data.count
        var a: UInt32 = 1, b: UInt32 = 0
        for byte in data { a = (a + UInt32(byte)) % 65_521; b = (b + a) % 65_521 }
        let adler = b << 16 | a
        out += [UInt8(adler >> 24), UInt8(adler >> 16 & 0xFF), UInt8(adler >> 8 & 0xFF), UInt8(adler & 0xFF)]
        return out
    }

    // MARK: - NumPy

    /// A v1.0 .npy file: "\x93NUMPY", 1, 0, header length, dict padded with spaces to a 64-byte boundary.
    static func npy(descr: String, shape: [Int], fortran: Bool = false, payload: [UInt8]) -> [UInt8] {
        let shapeText = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var dict = "{'descr': '\(descr)', 'fortran_order': \(fortran ? "True" : "False"), 'shape': \(shapeText), }"
        while (10 + dict.utf8.count + 1) % 64 != 0 { dict += " " }
        dict += "\n"
        let len = dict.utf8.count
        return [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(len & 0xFF), UInt8(len >> 8)] + Array(dict.utf8) + payload
    }

    static func int64LE(_ values: [Int]) -> [UInt8] { values.flatMap { le64(UInt64(bitPattern: Int64($0))) } }

    // MARK: - Files written by scipy 1.17 / numpy 2.4 (cross-checks of the hand-written layouts)

    /// scipy.io.savemat(format='5', do_compression=True) of X uint8 32×32×3×2,
    /// X[h,w,c,n] = ((h·h + 3w + 17c + 29n) mod 11)·23, and y = [[10],[3]] (double).
    /// The X element uses a dynamic-Huffman DEFLATE block, y a fixed-Huffman one.
    static let scipyCompressedSVHN = """
        TUFUTEFCIDUuMCBNQVQtZmlsZSBQbGF0Zm9ybTogcG9zaXgsIENyZWF0ZWQgb246IFdlZCBOb3YgMjUgMDU6MjM6MDkgMjAyNgAAAAAAAAAA\
        AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAABSU0PAAAAxwAAAHic7ZKxbQNACEVJIltJE7kjpSeg9gLskIIt\
        2IIt2IIt2II5clJcMoAluNPXveaK//S/AeDxA3A97+fJF/yfy8nt5P7Mx8n7ydu5v0+G8w9QUpk1BVtkcQyzQO/RvAQyQarHLHJGZKcekbRM\
        xEp7FA1K96To0QMUq1ChxwIOIZLgHokNXNXBelRLroji7DESjQDIsMf1u35f2e/0/ruv9TvZ7/T+u6/1O9nv9P67r/U72e/0/ruv9TvZ7/T+\
        u6/1O9nvH4xyxz8PAAAALQAAAHic42NgYHAAYjYg5oDSIMAK5TMBMSMYMzJUAmlOIBZggAEVBwjN4QAAMDYBsw==
        """

    /// scipy.io.savemat(format='5', do_compression=False) of X uint8 8×8×3×2,
    /// X[h,w,c,n] = (7h + 13w + 31c + 53n) mod 256, and y = [[1],[10]] (double).
    static let scipyUncompressedSVHN = """
        TUFUTEFCIDUuMCBNQVQtZmlsZSBQbGF0Zm9ybTogcG9zaXgsIENyZWF0ZWQgb246IFdlZCBOb3YgMjUgMDU6MjI6NTkgMjAyNgAAAAAAAAAA\
        AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAABSU0OAAAAuAEAAAYAAAAIAAAACQAAAAAAAAAFAAAAEAAAAAgA\
        AAAIAAAAAwAAAAIAAAABAAEAWAAAAAIAAACAAQAAAAcOFRwjKjENFBsiKTA3PhohKC82PURLJy41PENKUVg0O0JJUFdeZUFIT1ZdZGtyTlVc\
        Y2pxeH9bYmlwd36FjB8mLTQ7QklQLDM6QUhPVl05QEdOVVxjakZNVFtiaXB3U1phaG92fYRgZ251fIOKkW10e4KJkJeeeoGIj5adpKs+RUxT\
        WmFob0tSWWBnbnV8WF9mbXR7gollbHN6gYiPlnJ5gIeOlZyjf4aNlJuiqbCMk5qhqK+2vZmgp661vMPKNTxDSlFYX2ZCSVBXXmVsc09WXWRr\
        cnmAXGNqcXh/ho1pcHd+hYyTmnZ9hIuSmaCng4qRmJ+mrbSQl56lrLO6wVRbYmlwd36FYWhvdn2Ei5JudXyDipGYn3uCiZCXnqWsiI+WnaSr\
        srmVnKOqsbi/xqKpsLe+xczTr7a9xMvS2eBzeoGIj5adpICHjpWco6qxjZSboqmwt76aoaivtr3Ey6eutbzDytHYtLvCydDX3uXByM/W3eTr\
        8s7V3OPq8fj/DgAAAEAAAAAGAAAACAAAAAYAAAAAAAAABQAAAAgAAAACAAAAAQAAAAEAAQB5AAAACQAAABAAAAAAAAAAAADwPwAAAAAAACRA
        """

    /// numpy.save of uint8 (2, 4, 5, 3) NHWC with a[n,y,x,c] = (100n + 20y + 4x + c) mod 256.
    static let numpyNHWC = """
        k05VTVBZAQB2AHsnZGVzY3InOiAnfHUxJywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDIsIDQsIDUsIDMpLCB9ICAgICAg\
        ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAQIEBQYICQoMDQ4QERIUFRYYGRocHR4gISIkJSYoKSos\
        LS4wMTI0NTY4OTo8PT5AQUJERUZISUpMTU5kZWZoaWpsbW5wcXJ0dXZ4eXp8fX6AgYKEhYaIiYqMjY6QkZKUlZaYmZqcnZ6goaKkpaaoqaqs\
        ra6wsbI=
        """

    /// numpy.save of int64 [3, 7].
    static let numpyLabels = """
        k05VTVBZAQB2AHsnZGVzY3InOiAnPGk4JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDIsKSwgfSAgICAgICAgICAgICAg\
        ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoDAAAAAAAAAAcAAAAAAAAA
        """

    static func decode(_ base64: String) -> [UInt8] {
        Array(Data(base64Encoded: base64.filter { !$0.isWhitespace })!)
    }
}

/// Asserts that `body` throws a `DatasetError` matching `matches`, and that its description names `path`
/// (when given) and ends with a hint line.
func assertDatasetError<T>(_ body: @autoclosure () throws -> T, path: String? = nil,
                           file: StaticString = #filePath, line: UInt = #line,
                           _ matches: (DatasetError) -> Bool) {
    do {
        _ = try body()
        XCTFail("expected a DatasetError, nothing was thrown", file: file, line: line)
    } catch let e as DatasetError {
        XCTAssertTrue(matches(e), "unexpected error case: \(e)", file: file, line: line)
        if let path { XCTAssertTrue(e.description.contains(path), "message does not name \(path): \(e)", file: file, line: line) }
        XCTAssertTrue(e.description.split(separator: "\n").last?.hasPrefix("hint:") == true,
                      "message has no hint line: \(e)", file: file, line: line)
    } catch {
        XCTFail("expected a DatasetError, got \(error)", file: file, line: line)
    }
}
