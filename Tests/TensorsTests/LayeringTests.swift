// LayeringTests.swift: enforces the module layering of design.md §2 and the raw-pointer rule of
// style.md §4 by reading the sources: arrows point down only, and `Unsafe` appears only in the
// files allowed to hold raw pointers.

import Foundation
import XCTest

final class LayeringTests: XCTestCase {
    private let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// Which of our modules each module may import.
    private let allowedImports: [String: Set<String>] = [
        "SystemIO": [],
        "Tensors": ["SystemIO"],
        "Kernels": ["Tensors", "CBLAS"],
        "Layers": ["Tensors", "Kernels"],
        "Models": ["Tensors", "Kernels", "Layers"],
        "Datasets": ["SystemIO", "Tensors", "Kernels"],
        "Attacks": ["SystemIO", "Tensors", "Kernels", "Layers"],
        "MemoryBank": ["SystemIO", "Tensors", "Kernels", "CLZ4"],
        "Training": ["SystemIO", "Tensors", "Kernels", "Layers", "Models", "Attacks", "Datasets", "MemoryBank"],
        // The inspection tool: the bank, the data set (to render clean views) and tensors only.
        "MembankCore": ["Tensors", "MemoryBank", "Datasets"],
        "membank": ["Tensors", "MemoryBank", "MembankCore"],
    ]
    private let ourModules: Set<String> = ["SystemIO", "Tensors", "Kernels", "Layers", "Models", "Datasets", "CBLAS", "CLZ4",
                                           "MemoryBank", "Attacks", "Training", "MembankCore"]

    private func swiftFiles(in module: String) -> [URL] {
        let dir = repo.appendingPathComponent("Sources/\(module)")
        guard let e = FileManager.default.enumerator(at: dir, includingPropertiesForKeys: nil) else { return [] }
        return e.compactMap { $0 as? URL }.filter { $0.pathExtension == "swift" }
    }

    func test_modules_importOnlyTheLayersBelowThem() throws {
        for (module, allowed) in allowedImports {
            let files = swiftFiles(in: module)
            XCTAssertFalse(files.isEmpty, "no sources found for \(module)")
            for f in files {
                let text = try String(contentsOf: f, encoding: .utf8)
                for line in text.split(separator: "\n") where line.hasPrefix("import ") {
                    let name = line.dropFirst("import ".count).trimmingCharacters(in: .whitespaces)
                    if ourModules.contains(name) {
                        XCTAssert(allowed.contains(name), "\(f.lastPathComponent) in \(module) imports \(name)")
                    }
                }
            }
        }
    }

    func test_rawPointers_appearOnlyWhereTheStyleGuideAllowsThem() throws {
        // Kernels may use raw pointers anywhere; elsewhere only the named storage / mapping files.
        let allowedFile: (String, String) -> Bool = { module, file in
            switch module {
            case "Kernels": return true
            // Tensor.swift is the handle over its storage (style.md §4: "storage sits behind a handle").
            case "Tensors": return file.hasPrefix("Storage") || file == "Tensor.swift"
            case "Datasets", "MemoryBank": return file.hasPrefix("MappedFile") || file.contains("+Unsafe")
            // SystemIO: the mapping and the POSIX writers / readers (style.md §4).
            case "SystemIO": return file.hasPrefix("MappedFile") || file.contains("+Unsafe")
            default: return false
            }
        }
        for module in ["SystemIO", "Tensors", "Layers", "Models", "Datasets", "Attacks", "Training", "memloss", "MembankCore", "membank"] {
            for f in swiftFiles(in: module) where !allowedFile(module, f.lastPathComponent) {
                let text = try String(contentsOf: f, encoding: .utf8)
                for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
                where line.contains("Unsafe") && !line.trimmingCharacters(in: .whitespaces).hasPrefix("//") {
                    XCTFail("\(module)/\(f.lastPathComponent):\(i + 1) uses a raw pointer API: \(line)")
                }
            }
        }
    }
}
