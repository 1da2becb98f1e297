// LayeringTests.swift: enforces the module layering of design.md §2 and the raw-pointer rule of
// style.md §4 by reading the sources: every module under Sources/ has an entry in the allowed-imports
// table (so a new module cannot be forgotten), its imports point down only, and raw-pointer APIs
// appear in exactly the files listed in `rawPointerFiles`, no more and no fewer.

import Foundation
import XCTest

final class LayeringTests: XCTestCase {
    private let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// Which of our modules each module may import. Every directory of Sources/ must be a key; the
    /// system-library shims (CBLAS, CLZ4) import nothing of ours.
    private let allowedImports: [String: Set<String>] = [
        "CBLAS": [],
        "CLZ4": [],
        "CMPI": [],
        // Collectives over MPI (or one process); knows nothing of training.
        "Distributed": ["CMPI"],
        "SystemIO": [],
        "Tensors": ["SystemIO"],
        "Kernels": ["Tensors", "CBLAS"],
        "Layers": ["SystemIO", "Tensors", "Kernels"],
        "Models": ["Tensors", "Kernels", "Layers"],
        "Datasets": ["SystemIO", "Tensors", "Kernels"],
        "Attacks": ["SystemIO", "Tensors", "Kernels", "Layers"],
        "MemoryBank": ["SystemIO", "Tensors", "Kernels", "CLZ4"],
        "Training": ["SystemIO", "Tensors", "Kernels", "Layers", "Models", "Attacks", "Datasets", "MemoryBank", "Distributed"],
        "MemlossBench": ["SystemIO", "Tensors", "Kernels", "Layers", "Models", "Attacks", "Datasets", "MemoryBank", "Training"],
        // The inspection tool: the bank, the data set (to render clean views) and tensors only.
        "MembankCore": ["Tensors", "MemoryBank", "Datasets"],
        "membank": ["Tensors", "MemoryBank", "MembankCore"],
        // Studies: ordinary training runs (child processes) and their run directories.
        "Study": ["SystemIO", "Training"],
        "memloss": ["Tensors", "Kernels", "Layers", "Models", "Datasets", "MemoryBank", "Attacks", "Training", "MemlossBench", "Study",
                    "Distributed"],
    ]

    /// The only files that may use raw-pointer APIs (`Unsafe…`, `unsafeBitCast`, …), as paths below
    /// Sources/. style.md §4: the kernels, the tensor storage and its handle, file mappings and the
    /// `+Unsafe` facets. Each listed file must really use them, so the list stays exact.
    private let rawPointerFiles: Set<String> = [
        // SystemIO: the file mapping, the POSIX writes of the atomic writer, the /proc reads.
        "SystemIO/AtomicFile+Unsafe.swift", "SystemIO/CRC32C+Unsafe.swift", "SystemIO/MappedFile.swift", "SystemIO/ProcessMemory+Unsafe.swift",
        // Tensors: the aligned storage, its buffer pool, its handle and byte copies.
        "Tensors/Storage.swift", "Tensors/Storage+Bytes.swift", "Tensors/Storage+Pool.swift",
        "Tensors/Tensor.swift",
        // Kernels: pointer kernels, their naive twins and the Tensor-level entry points.
        "Kernels/Activation.swift", "Kernels/Activation+Reference.swift", "Kernels/Activation+Tensor.swift",
        "Kernels/BatchNorm2D.swift", "Kernels/BatchNorm2D+Reference.swift", "Kernels/BatchNorm2D+Tensor.swift",
        "Kernels/BLAS.swift", "Kernels/BLAS+Tensor.swift",
        "Kernels/Conv2D.swift", "Kernels/Conv2D+Reference.swift", "Kernels/Conv2D+Tensor.swift",
        "Kernels/Conv2D+Direct.swift", "Kernels/Conv2D+Rows.swift", "Kernels/Conv2D+Strided.swift", "Kernels/Conv2D+Dispatch.swift", "Kernels/Conv2D+Epilogue.swift",
        "Kernels/Conv2D+Winograd.swift",
        "Kernels/Dropout.swift", "Kernels/Dropout+Reference.swift", "Kernels/Dropout+Tensor.swift",
        "Kernels/Elementwise.swift", "Kernels/Elementwise+Reference.swift", "Kernels/Elementwise+Tensor.swift",
        "Kernels/Linear.swift", "Kernels/Linear+Reference.swift", "Kernels/Linear+Tensor.swift",
        "Kernels/Loss.swift", "Kernels/Loss+Reference.swift", "Kernels/Loss+Tensor.swift",
        "Kernels/Perturbation.swift", "Kernels/Perturbation+Reference.swift", "Kernels/Perturbation+Tensor.swift",
        "Kernels/Pooling.swift", "Kernels/Pooling+Reference.swift", "Kernels/Pooling+Tensor.swift",
        "Kernels/Quantize.swift", "Kernels/Quantize+Reference.swift",
        "Kernels/Vector.swift",
        // Datasets: the inflater and the pixel loops.
        "Datasets/Inflater.swift", "Datasets/Dataset+Unsafe.swift", "Datasets/SyntheticData+Unsafe.swift",
        // MemoryBank: the record, segment, CRC and LZ4 loops.
        "MemoryBank/Bank+Unsafe.swift", "MemoryBank/BankPrefetcher+Unsafe.swift", "MemoryBank/BankSegment+Unsafe.swift",
        "MemoryBank/LZ4+Unsafe.swift", "MemoryBank/RecordCodec+Unsafe.swift", "MemoryBank/LevelCoder+Unsafe.swift",
        // Distributed: the buffers MPI reads and writes.
        "Distributed/MPICommunicator+Unsafe.swift",
        // Study: posix_spawn of the runner's child processes and the reads of their stderr.
        "Study/ChildProcess+Unsafe.swift",
    ]

    // MARK: - Reading the sources

    /// The directories of Sources/: one per module.
    private func modules() throws -> [String] {
        let dir = repo.appendingPathComponent("Sources")
        return try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { name in
            var isDirectory: ObjCBool = false
            return FileManager.default.fileExists(atPath: dir.appendingPathComponent(name).path, isDirectory: &isDirectory)
                && isDirectory.boolValue
        }.sorted()
    }

    /// The Swift files of `module`, as paths relative to Sources/ ("Kernels/Conv2D.swift").
    private func swiftFiles(in module: String) -> [String] {
        let dir = repo.appendingPathComponent("Sources/\(module)")
        guard let e = FileManager.default.enumerator(atPath: dir.path) else { return [] }
        return e.compactMap { $0 as? String }.filter { $0.hasSuffix(".swift") }.map { "\(module)/\($0)" }.sorted()
    }

    private func source(_ relativePath: String) throws -> String {
        try String(contentsOf: repo.appendingPathComponent("Sources/\(relativePath)"), encoding: .utf8)
    }

    /// The module named by an import line (`import X`, `@testable import X`, `public import X`,
    /// `import struct X.Y`), or nil for other lines.
    static func importedModule(_ line: Substring) -> String? {
        var words = line.split(separator: " ").filter { !$0.hasPrefix("@") }
        if let first = words.first, ["public", "internal", "package", "private", "fileprivate"].contains(first) {
            words.removeFirst()
        }
        guard words.first == "import", words.count >= 2 else { return nil }
        let kinds: Set<Substring> = ["struct", "class", "enum", "protocol", "typealias", "func", "var", "let"]
        let target = kinds.contains(words[1]) && words.count >= 3 ? words[2] : words[1]
        return String(target.split(separator: ".").first ?? target)
    }

    /// The line without its `//` comment (whole-line and trailing comments; doc comments included).
    static func code(_ line: Substring) -> Substring {
        if let r = line.range(of: "//") { return line[..<r.lowerBound] }
        return line
    }

    /// True if the code (comments removed) uses a raw-pointer API: any `Unsafe…` type or
    /// `withUnsafe…` call, or `unsafeBitCast`, `unsafeUninitializedCapacity`, ….
    static func usesRawPointers(_ text: String) -> Bool {
        text.split(separator: "\n").contains { code($0).range(of: "unsafe", options: .caseInsensitive) != nil }
    }

    // MARK: - Tests

    func test_everyModuleUnderSources_hasAnEntryInTheAllowedImportsTable() throws {
        let found = try modules()
        XCTAssertGreaterThanOrEqual(found.count, 13, "Sources/ not found at \(repo.path)")
        for module in found {
            XCTAssertNotNil(allowedImports[module], "module \(module) (Sources/\(module)) has no entry in allowedImports")
        }
        for module in allowedImports.keys where !found.contains(module) {
            XCTFail("allowedImports lists \(module), which is not a directory of Sources/")
        }
    }

    func test_modules_importOnlyTheLayersBelowThem() throws {
        let ours = Set(try modules())
        for module in try modules() {
            let allowed = allowedImports[module] ?? []
            for file in swiftFiles(in: module) {
                for line in try source(file).split(separator: "\n") {
                    guard let name = Self.importedModule(line), ours.contains(name) else { continue }
                    XCTAssert(allowed.contains(name), "\(file) imports \(name); \(module) may import only \(allowed.sorted())")
                }
            }
        }
    }

    func test_rawPointers_appearInExactlyTheListedFiles() throws {
        var users: Set<String> = []
        for module in try modules() {
            for file in swiftFiles(in: module) where Self.usesRawPointers(try source(file)) { users.insert(file) }
        }
        for file in users.subtracting(rawPointerFiles).sorted() {
            XCTFail("\(file) uses a raw-pointer API but is not in rawPointerFiles (style.md §4: move the pointer code "
                    + "into a kernel or a +Unsafe facet, or list the file with a reason)")
        }
        for file in rawPointerFiles.subtracting(users).sorted() {
            XCTFail("\(file) is in rawPointerFiles but does not exist or uses no raw-pointer API: remove it from the list")
        }
    }

    func test_theCheckersThemselves_readImportsAndCommentsCorrectly() {
        XCTAssertEqual(Self.importedModule("import Kernels"), "Kernels")
        XCTAssertEqual(Self.importedModule("@testable import MemoryBank"), "MemoryBank")
        XCTAssertEqual(Self.importedModule("public import Tensors"), "Tensors")
        XCTAssertEqual(Self.importedModule("import struct Layers.Parameter"), "Layers")
        XCTAssertNil(Self.importedModule("let importance = 1"))
        XCTAssertTrue(Self.usesRawPointers("let p: UnsafePointer<Float>"))
        XCTAssertTrue(Self.usesRawPointers("x.withUnsafeBufferPointer { _ in }"))
        XCTAssertTrue(Self.usesRawPointers("let i = unsafeBitCast(f, to: UInt32.self)"))
        XCTAssertFalse(Self.usesRawPointers("// see Dataset+Unsafe.swift\n/// UnsafePointer in a doc comment"))
        XCTAssertFalse(Self.usesRawPointers("let a = 1  // trailing UnsafePointer mention"))
    }
}
