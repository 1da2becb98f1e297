// MemoryBankLayoutTests.swift: MemoryBank's own share of the layering rules (design.md §2, style.md §4):
// it imports only Tensors, Kernels and CLZ4 of our modules (never Datasets, Layers, Models, Attacks,
// Training), and `Unsafe` appears only in `MappedFile*.swift` and `*+Unsafe.swift`.

import Foundation
import XCTest

final class MemoryBankLayoutTests: XCTestCase {
    private let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Sources/MemoryBank")

    private func files() throws -> [URL] {
        try FileManager.default.contentsOfDirectory(at: sources, includingPropertiesForKeys: nil).filter { $0.pathExtension == "swift" }
    }

    func test_memoryBank_importsNothingAboveIt() throws {
        let forbidden: Set<String> = ["Datasets", "Layers", "Models", "Attacks", "Training"]
        XCTAssertFalse(try files().isEmpty)
        for f in try files() {
            for line in try String(contentsOf: f, encoding: .utf8).split(separator: "\n") where line.hasPrefix("import ") {
                let name = line.dropFirst(7).trimmingCharacters(in: .whitespaces)
                XCTAssertFalse(forbidden.contains(name), "\(f.lastPathComponent) imports \(name)")
            }
        }
    }

    func test_rawPointers_onlyInMappedFileAndUnsafeFiles() throws {
        for f in try files() {
            let name = f.lastPathComponent
            if name.hasPrefix("MappedFile") || name.contains("+Unsafe") { continue }
            for (i, line) in try String(contentsOf: f, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false).enumerated()
            where line.contains("Unsafe") && !line.trimmingCharacters(in: .whitespaces).hasPrefix("//") {
                XCTFail("\(name):\(i + 1) uses a raw pointer API: \(line)")
            }
        }
    }
}
