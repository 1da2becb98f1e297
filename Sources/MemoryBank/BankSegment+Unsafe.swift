// BankSegment+Unsafe.swift: decoding one record of a mapped segment into a caller's float buffer:
// index lookup, offset checks, then RecordDecoder on the mapped bytes (no copy of the payload).

import SystemIO

extension BankSegment {
    /// Decodes sample `id` into `output` (`config.elementCount` floats).
    /// - Returns: nil when this generation has no entry for `id`.
    /// - Throws: `corruptRecord` / `unsupportedRecord` naming this file, the generation and `id`.
    func decode(id: Int, into output: UnsafeMutablePointer<Float>, decoder: RecordDecoder) throws(MemoryBankError) -> EntryInfo? {
        guard let offset = recordOffset(of: id) else { return nil }
        try checkOffset(offset, id: id)
        return try file.withBytes(at: offset, length: indexOffset - offset) { (record) throws(MemoryBankError) -> EntryInfo in
            try decoder.decode(record: record.baseAddress!, available: record.count, id: id, into: output, file: path, generation: generation)
        }
    }
}

extension BankReader {
    /// Decodes the entry of `id` in `generation` into `output`; nil when absent or the generation is
    /// not live.
    func decode(id: Int, generation: Int, into output: UnsafeMutablePointer<Float>, decoder: RecordDecoder) throws(MemoryBankError) -> EntryInfo? {
        guard let segment = segment(generation) else { return nil }
        return try segment.decode(id: id, into: output, decoder: decoder)
    }

    /// Decodes into an array of `config.elementCount` floats (the convenience path).
    func decode(id: Int, generation: Int, into delta: inout [Float], decoder: RecordDecoder) throws(MemoryBankError) -> EntryInfo? {
        precondition(delta.count == config.elementCount, "BankReader.read: buffer of \(delta.count) floats, need \(config.elementCount)")
        var result: Result<EntryInfo?, MemoryBankError> = .success(nil)
        delta.withUnsafeMutableBufferPointer { d in
            do throws(MemoryBankError) {
                result = .success(try decode(id: id, generation: generation, into: d.baseAddress!, decoder: decoder))
            } catch {
                result = .failure(error)
            }
        }
        return try result.get()
    }
}

/// Decodes records of one segment into an array (verify's loop).
struct SingleSegmentDecode {
    let segment: BankSegment
    let decoder: RecordDecoder

    /// - Returns: the entry's info, nil when absent.
    func decode(id: Int, into delta: inout [Float]) throws(MemoryBankError) -> EntryInfo? {
        var result: Result<EntryInfo?, MemoryBankError> = .success(nil)
        delta.withUnsafeMutableBufferPointer { d in
            do throws(MemoryBankError) {
                result = .success(try segment.decode(id: id, into: d.baseAddress!, decoder: decoder))
            } catch {
                result = .failure(error)
            }
        }
        return try result.get()
    }
}
