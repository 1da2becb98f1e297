// BankReader.swift: a read-only snapshot of a bank: the manifest as it was at open, each listed
// generation mapped and validated (BankSegment), O(1) lookup by (generation, sample ID), decoding into
// a caller's buffer, and the window's generations for an epoch. Never writes or deletes anything;
// files the manifest does not list (unsealed or orphaned generations) are ignored.

import Foundation
import SystemIO

/// One decoded entry (the allocating convenience form).
public struct BankEntry: Sendable, Equatable {
    public var id: Int
    public var generation: Int
    /// δ in [C, H, W] order.
    public var delta: [Float]
    public var info: EntryInfo
}

/// A snapshot of a bank's sealed generations. Immutable after `open`; `read`/`entry` are safe from
/// several threads (they share one decoder behind a lock; the prefetcher has its own).
public final class BankReader: @unchecked Sendable {
    public let directory: URL
    public let config: BankConfig
    /// The manifest's sequence number at open (increases with every seal/discard).
    public let manifestSequence: UInt64
    /// Live generations, ascending.
    public let generations: [Int]
    private let segments: [Int: BankSegment]
    private let decoderLock = NSLock()
    private let decoder: RecordDecoder

    /// Opens the bank in `directory` read-only and validates every listed segment.
    /// - Throws: `notABank`, manifest and segment header errors (spec §4, §5.1); record damage is
    ///   only found when a record is read (or by `verify()`).
    public static func open(at directory: URL) throws(MemoryBankError) -> BankReader {
        let manifestPath = directory.appendingPathComponent(BankLayout.manifestName).path
        if MappedFile.size(ofFileAt: manifestPath) == nil { throw .notABank(path: directory.path) }
        let manifest = try readManifest(at: manifestPath)
        var segments: [Int: BankSegment] = [:]
        for g in manifest.generations {
            let path = directory.appendingPathComponent(BankLayout.segmentName(g.generation)).path
            segments[g.generation] = try BankSegment(path: path, expected: g, manifestConfig: manifest.config)
        }
        return BankReader(directory: directory, manifest: manifest, segments: segments)
    }

    private init(directory: URL, manifest: Manifest, segments: [Int: BankSegment]) {
        self.directory = directory
        config = manifest.config
        manifestSequence = manifest.sequence
        generations = manifest.generations.map(\.generation)
        self.segments = segments
        decoder = RecordDecoder(config: manifest.config)
    }

    /// Reads and decodes a manifest file.
    static func readManifest(at path: String) throws(MemoryBankError) -> Manifest {
        let bytes: [UInt8]
        do {
            bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw .io(path: path, operation: "read", reason: "\(error)")
        }
        return try Manifest.decode(bytes, file: path)
    }

    /// The mapped segment of `generation`, if live.
    public func segment(_ generation: Int) -> BankSegment? { segments[generation] }

    /// True when `generation` is live and holds an entry for `id`.
    public func contains(id: Int, generation: Int) -> Bool { segments[generation]?.contains(id: id) ?? false }

    /// The generations epoch `epoch` reads, slot k = 1…K (spec §3.1): `epoch − k·s`, or nil where
    /// that generation is not live (early epochs, or deleted).
    public func windowGenerations(forEpoch epoch: Int) -> [Int?] {
        config.generationsRead(atEpoch: epoch).map { segments[$0] == nil ? nil : $0 }
    }

    /// Decodes the entry of `id` in `generation` into `delta` (`config.elementCount` floats; contents
    /// undefined when nil is returned or an error is thrown).
    /// - Returns: the entry's view and metadata, or nil when there is no entry (absent ID, or the
    ///   generation is not live).
    /// - Throws: `corruptRecord` / `unsupportedRecord` naming the file, generation and sample ID.
    public func read(id: Int, generation: Int, into delta: inout [Float]) throws(MemoryBankError) -> EntryInfo? {
        decoderLock.lock()
        defer { decoderLock.unlock() }
        return try decode(id: id, generation: generation, into: &delta, decoder: decoder)
    }

    /// The decoded entry of `id` in `generation`, or nil when absent.
    public func entry(id: Int, generation: Int) throws(MemoryBankError) -> BankEntry? {
        var delta = [Float](repeating: 0, count: config.elementCount)
        guard let info = try read(id: id, generation: generation, into: &delta) else { return nil }
        return BankEntry(id: id, generation: generation, delta: delta, info: info)
    }

    /// Drops every mapped segment page from resident memory (RSS), keeping the page cache: bounds the
    /// file-backed RSS of long reads (the prefetcher calls it every `residentBudget` bytes).
    public func releaseResidentPages() {
        for segment in segments.values { segment.releaseResidentPages() }
    }

    /// A decoder for this configuration, for callers that decode on their own thread.
    func makeDecoder() -> RecordDecoder { RecordDecoder(config: config) }
}
