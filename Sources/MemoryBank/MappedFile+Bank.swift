// MappedFile+Bank.swift: what the bank adds to SystemIO's MappedFile: opening a sealed segment shared
// and for random access (lookups by sample ID jump around; systems.md §6, R7) with MemoryBankError
// messages, and the CRC32C of a mapped range. It knows nothing about the format: headers, records and
// checksums are interpreted by the callers.

import SystemIO

extension MappedFile {
    /// Maps the segment at `path` read-only (`MAP_SHARED`, `MADV_RANDOM`).
    /// - Throws: `MemoryBankError.io` naming the file and the step.
    convenience init(segmentAt path: String) throws(MemoryBankError) {
        do {
            try self.init(path: path, sharing: .shared, access: .random)
        } catch {
            switch error {
            case .notFound(let e), .failed(let e): throw .io(e)
            case .isDirectory(let p): throw .io(path: p, operation: "open for reading", reason: "is a directory")
            }
        }
    }

    /// CRC32C of `length` bytes at `offset`. - Precondition: inside the file.
    func checksum(at offset: Int, count length: Int) -> UInt32 {
        var crc = CRC32C()
        withBytes(at: offset, length: length) { raw in
            if length > 0 { crc.update(raw: raw) }
        }
        return crc.value
    }
}
