// SafeTensorsTests.swift: the safetensors reader/writer: round trips, a hand-computed golden file,
// header alignment, one test per rejection case (each must raise its specific error with a hint),
// atomic replacement under failures, and a cross-check with the Python `safetensors` package.

import Foundation
import SystemIO
import Tensors
import XCTest
import _TestSupport

final class SafeTensorsTests: XCTestCase {
    // MARK: - Helpers

    /// A file image from a header text (padded with spaces to a multiple of 8) and a data section.
    private func image(header: String, data: [UInt8]) -> [UInt8] {
        var h = Array(header.utf8)
        h.append(contentsOf: repeatElement(UInt8(ascii: " "), count: (8 - h.count % 8) % 8))
        return littleEndian64(UInt64(h.count)) + h + data
    }

    private func littleEndian64(_ v: UInt64) -> [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * UInt64($0))) }
    }

    private func bytes(hex: String) -> [UInt8] {
        let digits = Array(hex.filter { !$0.isWhitespace })
        return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(digits[$0...$0 + 1]), radix: 16)! }
    }

    /// Decodes `bytes` and returns the error, failing if decoding succeeds. Checks the hint line.
    private func decodeError(_ bytes: [UInt8], file: StaticString = #filePath, line: UInt = #line) -> SafeTensorsError? {
        do {
            _ = try SafeTensorsFile.decode(bytes, source: "test.safetensors")
            XCTFail("decode succeeded; expected an error", file: file, line: line)
            return nil
        } catch {
            XCTAssertTrue(error.description.contains("test.safetensors"), "description does not name the file: \(error)",
                          file: file, line: line)
            XCTAssertTrue(error.description.split(separator: "\n").last?.hasPrefix("hint: ") ?? false,
                          "description does not end with a hint line: \(error)", file: file, line: line)
            return error
        }
    }

    /// The golden file: metadata {"k": "v"}, `a` F32 [2] = [1, −2], `n` I64 [] = 7.
    private var goldenFile: SafeTensorsFile {
        SafeTensorsFile(metadata: ["k": "v"], entries: [
            SafeTensorsEntry(name: "a", tensor: Tensor(shape: [2], values: [1, -2])),
            SafeTensorsEntry(name: "n", int64Scalars: [7]),
        ])
    }

    /// Header, counted by hand (132 characters, padded with 4 spaces to N = 136 = 0x88):
    ///   {"__metadata__":{"k":"v"},                                   26
    ///   "a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},        + 53 = 79
    ///   "n":{"dtype":"I64","shape":[],"data_offsets":[8,16]}}        + 53 = 132
    /// Data: 1.0f = 0x3F800000 → 00 00 80 3F; −2.0f = 0xC0000000 → 00 00 00 C0; 7 → 07 00 … 00.
    /// Confirmed with Python: tools/check_safetensors.py reads this image as a [1, −2] F32, n 7 I64.
    private let goldenHex = """
        8800000000000000
        7b225f5f6d657461646174615f5f223a7b226b223a2276227d2c
        2261223a7b226474797065223a22463332222c227368617065223a5b325d2c
        22646174615f6f666673657473223a5b302c385d7d2c
        226e223a7b226474797065223a22493634222c227368617065223a5b5d2c
        22646174615f6f666673657473223a5b382c31365d7d7d
        20202020
        0000803f000000c0
        0700000000000000
        """

    // MARK: - Round trips

    func test_roundTrip_preservesF32TensorsI64ScalarsAndMetadata() throws {
        var rng = SplitMix64(seed: 3)
        let w = Tensor.randomNormal(shape: [4, 3, 3, 3], std: 1, rng: &rng)
        let file = SafeTensorsFile(metadata: ["format": "pt", "config": "{\"beta\": 6}", "ünï\ncode": "\u{1}\t\\"],
                                   entries: [
                                       SafeTensorsEntry(name: "conv1.weight", tensor: w),
                                       SafeTensorsEntry(name: "bn1.num_batches_tracked", int64Scalars: [Int64.max]),
                                       SafeTensorsEntry(name: "ids", int64Scalars: [-1, 0, 1 << 40], shape: [3]),
                                   ])
        let decoded = try SafeTensorsFile.decode(file.encoded(), source: "mem")
        XCTAssertEqual(decoded, file)
        XCTAssertEqual(try decoded["conv1.weight"]?.tensor(), w)
        XCTAssertEqual(try decoded["bn1.num_batches_tracked"]?.int64Values(), [Int64.max])
        XCTAssertEqual(decoded["bn1.num_batches_tracked"]?.shape, [])
        XCTAssertEqual(try decoded["ids"]?.int64Values(), [-1, 0, 1 << 40])
    }

    func test_roundTrip_emptyMetadata_omitsTheMetadataMember() throws {
        let file = SafeTensorsFile(entries: [SafeTensorsEntry(name: "x", tensor: Tensor(scalar: 2.5))])
        let bytes = file.encoded()
        XCTAssertFalse(String(decoding: bytes, as: UTF8.self).contains("__metadata__"))
        let decoded = try SafeTensorsFile.decode(bytes, source: "mem")
        XCTAssertEqual(decoded.metadata, [:])
        XCTAssertEqual(try decoded["x"]?.tensor(), Tensor(scalar: 2.5))
    }

    func test_roundTrip_zeroSizeTensors_andAFileWithoutEntries() throws {
        let file = SafeTensorsFile(metadata: ["m": ""], entries: [
            SafeTensorsEntry(name: "empty", tensor: Tensor(zeros: [0, 3])),
            SafeTensorsEntry(name: "one", tensor: Tensor(shape: [1], values: [7])),
            SafeTensorsEntry(name: "empty2", tensor: Tensor(zeros: [2, 0])),
        ])
        let decoded = try SafeTensorsFile.decode(file.encoded(), source: "mem")
        XCTAssertEqual(decoded, file)
        XCTAssertEqual(decoded.entries.map(\.name), ["empty", "one", "empty2"])
        XCTAssertEqual(try decoded["empty"]?.tensor().shape, [0, 3])

        let none = SafeTensorsFile()
        XCTAssertEqual(none.encoded(), littleEndian64(8) + Array("{}      ".utf8))
        XCTAssertEqual(try SafeTensorsFile.decode(none.encoded(), source: "mem"), none)
    }

    func test_writeAndRead_throughTheFileSystem() throws {
        let dir = TempDirectory()
        let url = dir.path("model.safetensors")
        try goldenFile.write(to: url)
        XCTAssertEqual(try SafeTensorsFile.read(from: url), goldenFile)
        XCTAssertFalse(FileManager.default.fileExists(atPath: url.path + ".tmp"))
    }

    func test_decode_acceptsAnyMemberOrder_andReturnsEntriesInDataOrder() throws {
        let header = #"{"b":{"data_offsets":[4,8],"shape":[],"dtype":"F32"},"__metadata__":{},"a":{"shape":[1],"dtype":"F32","data_offsets":[0,4]}}"#
        let data: [UInt8] = [0, 0, 0x80, 0x3F, 0, 0, 0, 0x40]
        let file = try SafeTensorsFile.decode(image(header: header, data: data), source: "mem")
        XCTAssertEqual(file.entries.map(\.name), ["a", "b"])
        XCTAssertEqual(try file["a"]?.tensor().scalars, [1])
        XCTAssertEqual(try file["b"]?.tensor().scalars, [2])
    }

    // MARK: - Golden bytes and alignment

    func test_encoded_equalsTheHandComputedGoldenBytes() {
        XCTAssertEqual(goldenFile.encoded(), bytes(hex: goldenHex))
    }

    func test_encoded_equalsThePythonPackagesBytes_forTheSameEntryOrder() {
        // `safetensors.numpy.save({"a": float32 [1, -2], "n": int64 7}, metadata={"k": "v"})`
        // (safetensors 0.8.0) orders tensors by dtype alignment, then name: n (I64) before a (F32).
        // Same conventions otherwise (compact JSON, metadata first, space padding), so the same
        // order gives the same bytes.
        let pythonHex = """
            8800000000000000
            7b225f5f6d657461646174615f5f223a7b226b223a2276227d2c
            226e223a7b226474797065223a22493634222c227368617065223a5b5d2c
            22646174615f6f666673657473223a5b302c385d7d2c
            2261223a7b226474797065223a22463332222c227368617065223a5b325d2c
            22646174615f6f666673657473223a5b382c31365d7d7d
            20202020
            0700000000000000
            0000803f000000c0
            """
        let reordered = SafeTensorsFile(metadata: goldenFile.metadata, entries: goldenFile.entries.reversed())
        XCTAssertEqual(reordered.encoded(), bytes(hex: pythonHex))
    }

    func test_decode_ofTheGoldenBytes_givesTheGoldenFile() throws {
        XCTAssertEqual(try SafeTensorsFile.decode(bytes(hex: goldenHex), source: "golden"), goldenFile)
    }

    func test_header_isPaddedWithSpacesToAMultipleOf8_forEveryNameLength() throws {
        for length in 1...17 {
            let file = SafeTensorsFile(entries: [SafeTensorsEntry(name: String(repeating: "w", count: length),
                                                                  tensor: Tensor(shape: [3], values: [1, 2, 3]))])
            let bytes = file.encoded()
            var n = 0
            for b in 0..<8 { n |= Int(bytes[b]) << (8 * b) }
            XCTAssertEqual(n % 8, 0, "name length \(length)")
            XCTAssertEqual(bytes.count, 8 + n + 12)
            let header = bytes[8..<(8 + n)]
            let closing = header.lastIndex(of: UInt8(ascii: "}"))!
            XCTAssertTrue(header[(closing + 1)...].allSatisfy { $0 == UInt8(ascii: " ") })
            XCTAssertLessThan(header.count - (closing - 8 + 1), 8, "at most 7 padding bytes")
        }
    }

    // MARK: - Rejections

    func test_fileShorterThanTheLengthPrefix_isRejected() {
        for count in [0, 1, 7] {
            guard case .fileTooShort(_, let n)? = decodeError(Array(bytes(hex: goldenHex).prefix(count))) else {
                return XCTFail("expected fileTooShort for \(count) bytes")
            }
            XCTAssertEqual(n, count)
        }
    }

    func test_truncationAtEveryRegion_givesTheMatchingError() {
        let golden = bytes(hex: goldenHex)   // 8 + 136 + 16 = 160 bytes
        XCTAssertEqual(golden.count, 160)
        // Inside the header.
        for cut in [8, 9, 100, 143] {
            guard case .headerLengthExceedsFile(_, 136, cut, _)? = decodeError(Array(golden.prefix(cut))) else {
                return XCTFail("expected headerLengthExceedsFile at \(cut)")
            }
        }
        // At the start of the data and inside the first tensor: entry a lies outside.
        for cut in [144, 147] {
            guard case .offsetsOutsideData(_, "a", 0, 8, cut - 144)? = decodeError(Array(golden.prefix(cut))) else {
                return XCTFail("expected offsetsOutsideData(a) at \(cut)")
            }
        }
        // Inside the second tensor, including one byte short.
        for cut in [152, 155, 159] {
            guard case .offsetsOutsideData(_, "n", 8, 16, cut - 144)? = decodeError(Array(golden.prefix(cut))) else {
                return XCTFail("expected offsetsOutsideData(n) at \(cut)")
            }
        }
    }

    func test_headerLengthBeyondTheSanityLimit_isRejectedBeforeReading() {
        let error = decodeError(littleEndian64(100_000_001) + [UInt8](repeating: 0x20, count: 16))
        guard case .headerTooLarge(_, 100_000_001, SafeTensorsFile.maximumHeaderBytes, _)? = error else {
            return XCTFail("expected headerTooLarge, got \(String(describing: error))")
        }
    }

    func test_foreignFiles_PNGAndRandomBytes_areRejectedClearly() {
        let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 0x0D, 0x49, 0x48, 0x44, 0x52]
        guard case .headerTooLarge(_, _, _, let leading)? = decodeError(png) else { return XCTFail("PNG") }
        XCTAssertEqual(leading, Array(png.prefix(8)))
        XCTAssertTrue(SafeTensorsError.headerTooLarge(file: "f", headerLength: 1, limit: 1, leadingBytes: leading)
            .description.contains("89 50 4E 47 0D 0A 1A 0A"))

        var rng = SplitMix64(seed: 11)
        for _ in 0..<50 {
            let random = (0..<256).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            _ = decodeError(random)
        }
    }

    func test_headerLengthShorterThanTheJSON_isInvalidJSON() {
        var b = bytes(hex: goldenHex)
        b[0] = 0x80  // header now ends 8 bytes early, inside the JSON
        guard case .invalidJSON(_, _, let reason)? = decodeError(b) else { return XCTFail("expected invalidJSON") }
        XCTAssertTrue(reason.contains("unterminated") || reason.contains("expected"), reason)
    }

    func test_malformedJSON_isRejectedWithItsByteOffset() {
        var b = bytes(hex: goldenHex)
        b[8 + 15] = UInt8(ascii: ";")  // the ':' after "__metadata__" (header text index 15)
        guard case .invalidJSON(_, let offset, _)? = decodeError(b) else { return XCTFail("expected invalidJSON") }
        XCTAssertEqual(offset, 8 + 15)
        guard case .invalidField(_, "<header>", _, _, _)? = decodeError(image(header: "[1, 2]", data: [])) else {
            return XCTFail("expected invalidField for a top-level array")
        }
        for bad in [#"{"a":}"#, #"{"a":{"dtype":"F32"}"#, #"{"a" {}}"#, "{'a':1}", #"{"a":01}"#, #"{"a":"\x"}"#, "{}}"] {
            guard case .invalidJSON? = decodeError(image(header: bad, data: [])) else { return XCTFail("accepted \(bad)") }
        }
    }

    func test_headerThatIsNotUTF8_isRejected() {
        var b = bytes(hex: goldenHex)
        b[8 + 18] = 0xFF  // the "k" of the metadata key
        guard case .headerNotUTF8? = decodeError(b) else { return XCTFail("expected headerNotUTF8") }
    }

    func test_unknownDType_namesTheEntryAndTheDType() {
        let header = #"{"w":{"dtype":"F99","shape":[1],"data_offsets":[0,4]}}"#
        guard case .unknownDType(_, "w", "F99")? = decodeError(image(header: header, data: [0, 0, 0, 0])) else {
            return XCTFail("expected unknownDType")
        }
        XCTAssertTrue(SafeTensorsError.unknownDType(file: "f", entry: "w", dtype: "F99").description.contains(#""F99""#))
    }

    func test_offsetsThatDoNotMatchShapeTimesDTypeSize_areRejected() {
        let header = #"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]},"v":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#
        guard case .offsetsDoNotMatchShape(_, "w", 0, 4, [2], .f32)? = decodeError(image(header: header, data: [UInt8](repeating: 0, count: 8))) else {
            return XCTFail("expected offsetsDoNotMatchShape")
        }
    }

    func test_overlappingEntries_areRejected() {
        let header = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#
        guard case .overlappingEntries(_, "b", "a", 4, 8)? = decodeError(image(header: header, data: [UInt8](repeating: 0, count: 8))) else {
            return XCTFail("expected overlappingEntries")
        }
    }

    func test_gapsBetweenEntries_areRejected() {
        let header = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#
        guard case .gapBeforeEntry(_, "b", 8, 4)? = decodeError(image(header: header, data: [UInt8](repeating: 0, count: 12))) else {
            return XCTFail("expected gapBeforeEntry")
        }
    }

    func test_trailingBytesAfterTheLastEntry_areRejected() {
        guard case .trailingBytes(_, 3, 19)? = decodeError(bytes(hex: goldenHex) + [1, 2, 3]) else {
            return XCTFail("expected trailingBytes")
        }
    }

    func test_duplicateNames_areRejectedOnReadAndOnWrite() throws {
        let header = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#
        guard case .duplicateEntry(_, "a")? = decodeError(image(header: header, data: [UInt8](repeating: 0, count: 8))) else {
            return XCTFail("expected duplicateEntry on read")
        }
        let dir = TempDirectory()
        let twice = SafeTensorsFile(entries: [SafeTensorsEntry(name: "a", tensor: Tensor(scalar: 1)),
                                              SafeTensorsEntry(name: "a", tensor: Tensor(scalar: 2))])
        XCTAssertThrowsError(try twice.write(to: dir.path("d.safetensors"))) { error in
            guard case .duplicateEntry(_, "a") = error as? SafeTensorsError else { return XCTFail("\(error)") }
        }
    }

    func test_badFieldTypes_nameTheEntryAndField() {
        let cases: [(String, String, String)] = [
            (#"{"__metadata__":{"k":1}}"#, "__metadata__", "k"),
            (#"{"__metadata__":[]}"#, "__metadata__", "__metadata__"),
            (#"{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}}"#, "w", "shape"),
            (#"{"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,0]}}"#, "w", "shape"),
            (#"{"w":{"dtype":"F32","shape":[],"data_offsets":[0]}}"#, "w", "data_offsets"),
            (#"{"w":{"dtype":"F32","shape":[],"data_offsets":[4,0]}}"#, "w", "data_offsets"),
            (#"{"w":{"dtype":"F32","shape":[]}}"#, "w", "data_offsets"),
            (#"{"w":{"dtype":32,"shape":[],"data_offsets":[0,4]}}"#, "w", "dtype"),
            (#"{"w":3}"#, "w", "<entry>"),
        ]
        for (header, entry, field) in cases {
            let error = decodeError(image(header: header, data: [0, 0, 0, 0]))
            guard case .invalidField(_, let e, let f, _, _)? = error, e == entry, f == field else {
                XCTFail("\(header): expected invalidField(\(entry), \(field)), got \(String(describing: error))")
                continue
            }
        }
    }

    func test_missingFile_isReportedAsMissing() {
        let dir = TempDirectory()
        let url = dir.path("nope.safetensors")
        XCTAssertThrowsError(try SafeTensorsFile.read(from: url)) { error in
            guard case .missingFile(let file) = error as? SafeTensorsError else { return XCTFail("\(error)") }
            XCTAssertEqual(file, url.path)
            XCTAssertTrue("\(error)".contains("hint: "))
        }
    }

    func test_typedAccessors_refuseOtherDTypes() {
        let i = SafeTensorsEntry(name: "n", int64Scalars: [1])
        XCTAssertThrowsError(try i.tensor()) { error in
            XCTAssertEqual(error as? SafeTensorsError, .wrongDType(entry: "n", expected: .f32, found: .i64))
        }
        let f = SafeTensorsEntry(name: "w", tensor: Tensor(scalar: 1))
        XCTAssertThrowsError(try f.int64Values()) { error in
            XCTAssertEqual(error as? SafeTensorsError, .wrongDType(entry: "w", expected: .i64, found: .f32))
        }
        let h = SafeTensorsEntry(name: "h", dtype: .f16, shape: [2], bytes: [0, 0x3C, 0, 0xC0])
        XCTAssertThrowsError(try h.tensor())
        XCTAssertEqual(SafeTensorsDType.f16.byteSize, 2)
        XCTAssertEqual(SafeTensorsDType.f64.byteSize, 8)
        XCTAssertEqual(SafeTensorsDType.u8.byteSize, 1)
        XCTAssertEqual(SafeTensorsDType.i32.byteSize, 4)
    }

    // MARK: - Atomic replacement

    private func oldAndNew(_ dir: TempDirectory) throws -> (url: URL, old: SafeTensorsFile, new: SafeTensorsFile) {
        let url = dir.path("last.safetensors")
        let old = SafeTensorsFile(metadata: ["v": "old"], entries: [SafeTensorsEntry(name: "w", tensor: Tensor(shape: [4], repeating: 1))])
        try old.write(to: url)
        let new = SafeTensorsFile(metadata: ["v": "new"], entries: [SafeTensorsEntry(name: "w", tensor: Tensor(shape: [4096], repeating: 2))])
        return (url, old, new)
    }

    func test_write_replacesTheOldFileCompletely() throws {
        let dir = TempDirectory()
        let (url, _, new) = try oldAndNew(dir)
        try new.write(to: url)
        XCTAssertEqual(try SafeTensorsFile.read(from: url), new)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.url.path), ["last.safetensors"])
    }

    func test_write_failingMidway_leavesTheOldFileIntact_andNoTemporary() throws {
        let dir = TempDirectory()
        let (url, old, new) = try oldAndNew(dir)
        for failAfter in [0, 1, 100, 8000] {
            XCTAssertThrowsError(try AtomicFile.replace(new.encoded(), at: url, simulatedFailureAfterBytes: failAfter)) { error in
                XCTAssertEqual((error as? SystemIOError)?.operation, "write temporary file")
            }
            XCTAssertEqual(try SafeTensorsFile.read(from: url), old, "after failing at byte \(failAfter)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: url.path + ".tmp"))
        }
    }

    func test_write_whenTheTemporaryCannotBeCreated_leavesTheOldFileIntact() throws {
        let dir = TempDirectory()
        let (url, old, new) = try oldAndNew(dir)
        // A directory squatting on the temporary path makes open(O_WRONLY) fail, even for root.
        try FileManager.default.createDirectory(atPath: url.path + ".tmp", withIntermediateDirectories: false)
        XCTAssertThrowsError(try new.write(to: url)) { error in
            guard case .ioFailure(_, let op, _) = error as? SafeTensorsError else { return XCTFail("\(error)") }
            XCTAssertEqual(op, "create temporary file")
            XCTAssertTrue("\(error)".contains("hint: "))
        }
        XCTAssertEqual(try SafeTensorsFile.read(from: url), old)
    }

    /// Runs `chattr <flag> path`; false when chattr is missing or the file system refuses.
    private func chattr(_ flag: String, _ path: String) -> Bool {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["chattr", flag, path]
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return false }
        p.waitUntilExit()
        return p.terminationStatus == 0
    }

    func test_write_intoAnUnwritableDirectory_leavesTheOldFileIntact() throws {
        let dir = TempDirectory()
        let (url, old, new) = try oldAndNew(dir)
        if geteuid() == 0 {
            // Root ignores permission bits; the immutable attribute binds root too.
            guard chattr("+i", dir.url.path) else {
                throw XCTSkip("running as root and chattr +i is unavailable here, so no directory is unwritable; "
                              + "test_write_whenTheTemporaryCannotBeCreated covers the same failure path")
            }
        } else {
            try FileManager.default.setAttributes([.posixPermissions: 0o555], ofItemAtPath: dir.url.path)
        }
        defer {
            if geteuid() == 0 { _ = chattr("-i", dir.url.path) }
            try? FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: dir.url.path)
        }
        XCTAssertThrowsError(try new.write(to: url)) { error in
            guard case .ioFailure(_, "create temporary file", _) = error as? SafeTensorsError else { return XCTFail("\(error)") }
        }
        XCTAssertEqual(try SafeTensorsFile.read(from: url), old)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.url.path), ["last.safetensors"])
    }

    func test_write_whenTheRenameFails_removesTheTemporary() throws {
        let dir = TempDirectory()
        let target = dir.path("occupied")
        try FileManager.default.createDirectory(at: target, withIntermediateDirectories: false)
        try Data([1]).write(to: target.appendingPathComponent("keep"))
        XCTAssertThrowsError(try goldenFile.write(to: target)) { error in
            guard case .ioFailure(_, let op, _) = error as? SafeTensorsError else { return XCTFail("\(error)") }
            XCTAssertEqual(op, "rename temporary file over target")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: target.path + ".tmp"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: target.appendingPathComponent("keep").path))
    }

    // MARK: - Python cross-check

    func test_writtenFile_isReadByPythonSafetensors() throws {
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        let python = repo.appendingPathComponent(".venv-tools/bin/python")
        guard FileManager.default.isExecutableFile(atPath: python.path) else {
            throw XCTSkip("no Python venv at \(python.path); run tools/setup.sh to create it (numpy + safetensors)")
        }
        let dir = TempDirectory()
        let url = dir.path("cross.safetensors")
        let weight = Tensor(shape: [2, 1, 2, 2], values: [0.5, -1, 2, 3.25, -0.125, 4, 5, 6])
        let file = SafeTensorsFile(metadata: ["format": "pt", "note": "ünï \"q\""], entries: [
            SafeTensorsEntry(name: "conv1.weight", tensor: weight),
            SafeTensorsEntry(name: "bn1.num_batches_tracked", int64Scalars: [391]),
            SafeTensorsEntry(name: "bn1.running_mean", tensor: Tensor(shape: [3], values: [0.1, 0.2, 0.3])),
            SafeTensorsEntry(name: "empty", tensor: Tensor(zeros: [0, 3])),
        ])
        try file.write(to: url)

        let process = Process()
        process.executableURL = python
        process.arguments = [repo.appendingPathComponent("tools/check_safetensors.py").path, url.path]
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, String(decoding: stderr, as: UTF8.self))

        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: stdout) as? [String: Any])
        XCTAssertEqual(json["metadata"] as? [String: String], file.metadata)
        XCTAssertEqual(json["order"] as? [String], ["conv1.weight", "bn1.num_batches_tracked", "bn1.running_mean", "empty"])
        let tensors = try XCTUnwrap(json["tensors"] as? [String: [String: Any]])
        XCTAssertEqual(Set(tensors.keys), ["conv1.weight", "bn1.num_batches_tracked", "bn1.running_mean", "empty"])
        XCTAssertEqual(tensors["empty"]?["shape"] as? [Int], [0, 3])
        XCTAssertEqual(tensors["conv1.weight"]?["dtype"] as? String, "F32")
        XCTAssertEqual(tensors["conv1.weight"]?["shape"] as? [Int], [2, 1, 2, 2])
        XCTAssertEqual((tensors["conv1.weight"]?["values"] as? [Double])?.map(Float.init), weight.scalars)
        XCTAssertEqual(tensors["bn1.num_batches_tracked"]?["dtype"] as? String, "I64")
        XCTAssertEqual(tensors["bn1.num_batches_tracked"]?["shape"] as? [Int], [])
        XCTAssertEqual(tensors["bn1.num_batches_tracked"]?["values"] as? [Int], [391])
        XCTAssertEqual(tensors["bn1.running_mean"]?["shape"] as? [Int], [3])
        XCTAssertEqual((tensors["bn1.running_mean"]?["values"] as? [Double])?.map(Float.init), [0.1, 0.2, 0.3])
    }
}
