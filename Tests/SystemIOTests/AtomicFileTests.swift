// AtomicFileTests.swift: the one atomic writer: a replace swaps the whole content; a write failing
// midway (simulated full disk) or a temporary that cannot be created leaves the old file intact and no
// temporary behind; the streaming writer's appends, positioned patches, commit, discard and the two
// deinit policies (delete vs. leave the crashed writer's temporary).

import Foundation
import SystemIO
import XCTest
import _TestSupport

final class AtomicFileTests: XCTestCase {
    func contents(_ path: String) -> [UInt8]? { FileManager.default.contents(atPath: path).map { [UInt8]($0) } }

    func test_replace_swapsTheWholeContent_andLeavesOnlyTheTarget() throws {
        let dir = TempDirectory("atomic")
        let path = dir.path("file.bin").path
        try AtomicFile.replace(Array(repeating: 1, count: 10_000), atPath: path)
        try AtomicFile.replace([7, 8, 9], atPath: path)
        XCTAssertEqual(contents(path), [7, 8, 9])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.url.path), ["file.bin"])
    }

    func test_writeFailingMidway_leavesTheOldFileIntact_andNoTemporary() throws {
        let dir = TempDirectory("atomic")
        let path = dir.path("file.bin").path
        let old = (0..<5000).map { UInt8(truncatingIfNeeded: $0) }
        try AtomicFile.replace(old, atPath: path)
        for failAfter in [0, 1, 100, 4999] {
            XCTAssertThrowsError(try AtomicFile.replace(Array(repeating: 0xAB, count: 5000), atPath: path,
                                                        simulatedFailureAfterBytes: failAfter)) { error in
                let e = error as? SystemIOError
                XCTAssertEqual(e?.operation, "write temporary file")
                XCTAssertEqual(e?.code, EIO)
                XCTAssertEqual(e?.path, path + ".tmp")
            }
            XCTAssertEqual(contents(path), old, "after failing at byte \(failAfter)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: path + ".tmp"), "no temporary left after failing at \(failAfter)")
        }
    }

    func test_temporaryThatCannotBeCreated_failsNamingTheStep_andKeepsTheOldFile() throws {
        let dir = TempDirectory("atomic")
        let path = dir.path("file.bin").path
        try AtomicFile.replace([1, 2], atPath: path)
        // A directory squatting on the temporary path makes open(O_WRONLY) fail, even for root.
        try FileManager.default.createDirectory(atPath: path + ".tmp", withIntermediateDirectories: false)
        XCTAssertThrowsError(try AtomicFile.replace([3], atPath: path)) { error in
            let e = error as? SystemIOError
            XCTAssertEqual(e?.operation, "create temporary file")
            XCTAssertTrue("\(error)".contains(path + ".tmp"))
            XCTAssertTrue("\(error)".contains("hint: "))
        }
        XCTAssertEqual(contents(path), [1, 2])
    }

    func test_streamingWriter_appends_patches_andCommits() throws {
        let dir = TempDirectory("atomic")
        let path = dir.path("stream.bin").path
        let w = try AtomicFileWriter(path: path, temporaryPath: path + ".partial")
        try w.append([0, 0, 0, 0])
        try w.append([5, 6, 7, 8, 9], count: 3)
        XCTAssertEqual(w.bytesWritten, 7)
        try w.write([1, 2], at: 1)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path), "nothing under the final name before commit")
        XCTAssertEqual(contents(path + ".partial"), [0, 1, 2, 0, 5, 6, 7])
        try w.commit()
        XCTAssertEqual(contents(path), [0, 1, 2, 0, 5, 6, 7])
        XCTAssertFalse(FileManager.default.fileExists(atPath: path + ".partial"))
    }

    func test_discard_andDeinit_removeTheTemporary_unlessAskedToLeaveIt() throws {
        let dir = TempDirectory("atomic")
        let path = dir.path("x.bin").path
        try AtomicFile.replace([42], atPath: path)

        let discarded = try AtomicFileWriter(path: path)
        try discarded.append([1, 2, 3])
        discarded.discard()
        XCTAssertFalse(FileManager.default.fileExists(atPath: path + ".tmp"))

        do {
            let dropped = try AtomicFileWriter(path: path)
            try dropped.append([1, 2, 3])
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: path + ".tmp"), "a dropped writer removes its temporary")

        do {
            let crashed = try AtomicFileWriter(path: path, removesTemporaryOnDeinit: false)
            try crashed.append([1, 2, 3])
        }
        XCTAssertEqual(contents(path + ".tmp"), [1, 2, 3], "a writer told to leave its temporary (the bank's crash recovery) does")

        let simulatedCrash = try AtomicFileWriter(path: path, temporaryPath: path + ".crash")
        try simulatedCrash.append([9])
        simulatedCrash.closeLeavingTemporary()
        XCTAssertEqual(contents(path + ".crash"), [9])
        XCTAssertEqual(contents(path), [42], "the final file was never touched")
    }

    func test_fileSystem_remove_toleratesMissingFiles_andSyncsDirectories() throws {
        let dir = TempDirectory("atomic")
        let path = dir.path("gone.bin").path
        try FileSystem.remove(path)
        try AtomicFile.replace([1], atPath: path)
        try FileSystem.rename(path, to: path + ".moved")
        try FileSystem.remove(path + ".moved")
        XCTAssertFalse(FileManager.default.fileExists(atPath: path + ".moved"))
        try FileSystem.syncDirectory(dir.url.path)
        XCTAssertThrowsError(try FileSystem.syncDirectory(dir.path("missing").path)) { error in
            XCTAssertEqual((error as? SystemIOError)?.code, ENOENT)
        }
        XCTAssertEqual(FileSystem.directory(of: "/a/b/c.bin"), "/a/b")
        XCTAssertEqual(FileSystem.directory(of: "c.bin"), "")
        XCTAssertEqual(FileSystem.directory(of: "/c.bin"), "/")
    }
}
