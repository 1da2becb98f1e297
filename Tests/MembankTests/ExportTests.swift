// ExportTests.swift: `membank export` writes NumPy format 1.0 files whose header is valid (magic,
// version, length, 64-byte alignment, dict with descr / fortran_order / shape), whose data round-trips
// bit for bit to the bank's decoded δ and IDs, and which numpy.load opens (when a Python with numpy
// is available: .venv-tools from tools/setup.sh).

import Foundation
import MembankCore
import MemoryBank
import XCTest
import _TestSupport

final class ExportTests: XCTestCase {
    /// Parses a .npy file: (descr, fortran_order, shape, data bytes).
    private func parseNPY(_ b: [UInt8]) throws -> (descr: String, fortran: Bool, shape: [Int], data: [UInt8]) {
        XCTAssertEqual(Array(b.prefix(6)), [0x93] + Array("NUMPY".utf8))
        XCTAssertEqual(b[6], 1, "major version")
        XCTAssertEqual(b[7], 0, "minor version")
        let headerLength = Int(b[8]) | Int(b[9]) << 8
        XCTAssertEqual((10 + headerLength) % 64, 0, "data aligned to 64")
        let header = String(decoding: b[10..<(10 + headerLength)], as: UTF8.self)
        XCTAssert(header.hasSuffix("\n"))
        XCTAssert(header.hasPrefix("{") && header.contains("}"), header)
        func value(_ key: String) -> String? {
            guard let r = header.range(of: "'\(key)': ") else { return nil }
            let rest = header[r.upperBound...]
            if rest.first == "(" { return String(rest[...rest.firstIndex(of: ")")!]) }
            return String(rest.prefix { $0 != "," })
        }
        let descr = try XCTUnwrap(value("descr")).trimmingCharacters(in: CharacterSet(charactersIn: "'"))
        let fortran = try XCTUnwrap(value("fortran_order")) == "True"
        let shapeText = try XCTUnwrap(value("shape")).dropFirst().dropLast()
        let shape = shapeText.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        return (descr, fortran, shape, Array(b[(10 + headerLength)...]))
    }

    func test_export_headerIsValid_andDataRoundTrips() throws {
        let dir = TempDirectory("membank-export")
        let out = dir.path("deltas.npy").path
        let r = try MembankTestSupport.run(["export", MembankFixture.shared.bank.path, "--generation", "2", "--npy", out])
        XCTAssertEqual(r.status, 0, r.err)
        let ids = MembankFixture.ids(generation: 2)

        let d = try parseNPY([UInt8](try Data(contentsOf: URL(fileURLWithPath: out))))
        XCTAssertEqual(d.descr, "<f4")
        XCTAssertFalse(d.fortran)
        XCTAssertEqual(d.shape, [ids.count, 1, 28, 28])
        XCTAssertEqual(d.data.count, ids.count * 784 * 4)
        let i = try parseNPY([UInt8](try Data(contentsOf: URL(fileURLWithPath: dir.path("deltas.ids.npy").path))))
        XCTAssertEqual(i.descr, "<i8")
        XCTAssertEqual(i.shape, [ids.count])
        let exportedIDs = (0..<ids.count).map { Int(Int64(bitPattern: MembankTestSupport.le(i.data, 8 * $0, 8))) }
        XCTAssertEqual(exportedIDs, ids)

        let reader = try BankReader.open(at: MembankFixture.shared.bank)
        for (row, id) in ids.enumerated() {
            let entry = try XCTUnwrap(try reader.entry(id: id, generation: 2))
            let values = (0..<784).map { Float(bitPattern: UInt32(MembankTestSupport.le(d.data, 4 * (row * 784 + $0), 4))) }
            XCTAssertEqual(values.map(\.bitPattern), entry.delta.map(\.bitPattern), "sample \(id)")
        }
    }

    func test_npyHeader_ofAOneDimensionalAndAnEmptyArray() {
        let one = NPYArray(int64: [7], shape: [1])
        XCTAssertEqual(one.headerDictionary, "{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }")
        let bytes = one.encode()
        // 10 + 59 + 1 = 70 bytes of magic, version, length, dict and newline round up to 128.
        XCTAssertEqual(bytes.count, 128 + 8)
        XCTAssertEqual(Int(bytes[8]) | Int(bytes[9]) << 8, 118)
        XCTAssertEqual(bytes[127], 0x0A)
        XCTAssertEqual(Array(bytes[128...]), [7, 0, 0, 0, 0, 0, 0, 0])
        let empty = NPYArray(float32: [], shape: [0, 3, 2, 2]).encode()
        XCTAssertEqual(empty.count, 128)
        XCTAssertEqual(empty[127], 0x0A)
    }

    func test_exportedFiles_openWithNumPy() throws {
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let python = repo.appendingPathComponent(".venv-tools/bin/python")
        guard FileManager.default.isExecutableFile(atPath: python.path) else {
            throw XCTSkip("no Python venv at \(python.path); run tools/setup.sh to create it (numpy)")
        }
        let dir = TempDirectory("membank-numpy")
        let out = dir.path("d.npy").path
        XCTAssertEqual(try MembankTestSupport.run(["export", MembankFixture.shared.bank.path, "--npy", out]).status, 0)
        let script = """
            import numpy as np, sys
            d = np.load(sys.argv[1]); i = np.load(sys.argv[2])
            print(d.dtype, d.shape, i.dtype, i.shape, int(i[0]), int(i[-1]), repr(float(np.abs(d).max())), repr(float(d.astype(np.float64).sum())))
            """
        let p = Process()
        p.executableURL = python
        p.arguments = ["-c", script, out, dir.path("d.ids.npy").path]
        let pipe = Pipe(), err = Pipe()
        p.standardOutput = pipe
        p.standardError = err
        try p.run()
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let errText = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, errText)
        let fields = text.split(separator: " ").map(String.init)
        let ids = MembankFixture.ids(generation: 3)
        XCTAssertEqual(Array(fields.prefix(6)), ["float32", "(\(ids.count),", "1,", "28,", "28)", "int64"], text)
        XCTAssertEqual(fields[6...8].joined(separator: " "), "(\(ids.count),) \(ids.first!) \(ids.last!)", text)
        let reader = try BankReader.open(at: MembankFixture.shared.bank)
        var maxAbs: Float = 0, sum = 0.0
        for id in ids {
            let e = try XCTUnwrap(try reader.entry(id: id, generation: 3))
            for v in e.delta { maxAbs = max(maxAbs, abs(v)); sum += Double(v) }
        }
        XCTAssertEqual(Float(try XCTUnwrap(Double(fields[9]))), maxAbs)
        XCTAssertEqual(try XCTUnwrap(Double(fields[10].trimmingCharacters(in: .whitespacesAndNewlines))), sum, accuracy: 1e-9 * max(1, abs(sum)))
    }
}
