// EntryCodec.swift: one record encoded or decoded outside a bank, through the same encoder and decoder
// the bank uses: for tools (`membank`), benches (`memloss bench bank`) and cross-checks. No files here.

import Tensors

/// Encodes and decodes single records of one configuration (docs/format/membank-v1.md §6–§7).
/// Not thread-safe: one per thread (it owns scratch buffers).
public final class EntryCodec {
    public let config: BankConfig
    private let encoder: RecordEncoder
    private let decoder: RecordDecoder
    private var writer = ByteWriter()

    public init(config: BankConfig) {
        self.config = config
        encoder = RecordEncoder(config: config)
        decoder = RecordDecoder(config: config)
    }

    /// Encodes δ as a complete record (48-byte header, payload, padding) into `record`, replacing its
    /// contents and reusing its capacity. `generation` matters only to `q8rcn` (the start noise of
    /// (generation, id)); decode with the same.
    /// - Precondition: `delta.count == config.elementCount`, all finite.
    @discardableResult
    public func encode(id: Int, generation: Int = 0, delta: [Float], view: ViewParameters = .identity, metadata: EntryMetadata = .zero,
                       into record: inout [UInt8]) -> RecordStatistics {
        precondition(delta.count == config.elementCount, "EntryCodec: δ has \(delta.count) values, need \(config.elementCount)")
        swap(&writer.bytes, &record)
        writer.bytes.removeAll(keepingCapacity: true)
        let stats = encoder.appendRecord(id: id, generation: generation, delta: delta, view: view, metadata: metadata, to: &writer)
        swap(&writer.bytes, &record)
        return stats
    }

    /// Decodes a record produced by `encode` (or read from a segment) into `delta`.
    /// - Throws: `corruptRecord` / `unsupportedRecord` (file "-", `generation`).
    public func decode(record: [UInt8], id: Int, generation: Int = 0, into delta: inout [Float]) throws(MemoryBankError) -> EntryInfo {
        try decoder.decode(record: record, id: id, into: &delta, file: "-", generation: generation)
    }

    /// The liblz4 version the codec links (reports).
    public static var lz4Version: String { LZ4.version }
}
