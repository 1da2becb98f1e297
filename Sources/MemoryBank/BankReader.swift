// BankReader.swift: a read-only snapshot of a bank: the manifest as it was at open, each listed
// generation mapped and validated (BankSegment), O(1) lookup by (generation, sample ID), decoding into
// a caller's buffer, and the window's generations for an epoch; listed generations whose segment is
// missing or damaged are quarantined, not fatal (docs/format/membank-v1.md §3.3). Never writes or
// deletes anything; files the manifest does not list (unsealed or orphaned generations) are ignored.

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

/// A listed generation that is not read: its segment is missing, or its header, createdBy or index
/// is damaged or disagrees with the manifest (spec §3.3). Its samples' memory is skipped and counted.
public struct QuarantinedGeneration: Sendable, Equatable {
    public var generation: Int
    /// The segment's path.
    public var file: String
    /// Why, as the reader's error (names the file, what was found and expected).
    public var error: MemoryBankError

    /// The error's first line (no hint), for a log.
    public var reason: String { "\(error)".split(separator: "\n").first.map(String.init) ?? "\(error)" }
}

/// A snapshot of a bank's sealed generations. Immutable after `open`; `read`/`entry` are safe from
/// several threads (they share one decoder behind a lock; the prefetcher has its own).
public final class BankReader: @unchecked Sendable {
    public let directory: URL
    public let config: BankConfig
    /// The manifest's sequence number at open (increases with every seal/discard).
    public let manifestSequence: UInt64
    /// Live, readable generations, ascending (the quarantined ones are not among them).
    public let generations: [Int]
    /// Listed generations that are not read (spec §3.3), ascending: a trainer names them in its log.
    public let quarantined: [QuarantinedGeneration]
    private let segments: [Int: BankSegment]
    private let decoderLock = NSLock()
    private let decoder: RecordDecoder

    /// What `open` does with a listed generation whose segment is missing or damaged.
    public enum DamagedGenerationPolicy: Sendable {
        /// Leave it out of reads and list it in `quarantined` (spec §3.3; the trainer's policy).
        case quarantine
        /// Throw its error (tools that must not skip anything silently).
        case reject
    }

    /// Opens the bank in `directory` read-only and validates every listed segment (header, createdBy,
    /// index, layout, agreement with the manifest).
    /// - Parameter damaged: `.quarantine` (default): a segment failing those checks is not read and is
    ///   listed in `quarantined`; `.reject`: its error is thrown.
    /// - Throws: `notABank`, manifest errors (spec §4: a damaged manifest is always fatal), and with
    ///   `.reject` segment errors (§5.1); record damage is only found when a record is read (or by `verify()`).
    public static func open(at directory: URL, damaged: DamagedGenerationPolicy = .quarantine) throws(MemoryBankError) -> BankReader {
        let manifestPath = directory.appendingPathComponent(BankLayout.manifestName).path
        if MappedFile.size(ofFileAt: manifestPath) == nil { throw .notABank(path: directory.path) }
        let manifest = try readManifest(at: manifestPath)
        let checked = checkSegments(directory: directory, manifest: manifest)
        if damaged == .reject, let first = checked.damaged.first { throw first.error }
        return BankReader(directory: directory, manifest: manifest, segments: checked.segments, quarantined: checked.damaged)
    }

    /// Maps and validates every segment `manifest` lists: the valid ones, and the others with their error.
    static func checkSegments(directory: URL, manifest: Manifest) -> (segments: [Int: BankSegment], damaged: [QuarantinedGeneration]) {
        var segments: [Int: BankSegment] = [:]
        var damaged: [QuarantinedGeneration] = []
        for g in manifest.generations {
            let path = directory.appendingPathComponent(BankLayout.segmentName(g.generation)).path
            do {
                segments[g.generation] = try BankSegment(path: path, expected: g, manifestConfig: manifest.config)
            } catch {
                damaged.append(QuarantinedGeneration(generation: g.generation, file: path, error: error))
            }
        }
        return (segments, damaged)
    }

    private init(directory: URL, manifest: Manifest, segments: [Int: BankSegment], quarantined: [QuarantinedGeneration]) {
        self.directory = directory
        config = manifest.config
        manifestSequence = manifest.sequence
        generations = manifest.generations.map(\.generation).filter { segments[$0] != nil }
        self.quarantined = quarantined
        self.segments = segments
        decoder = RecordDecoder(config: manifest.config)
    }

    /// Reads and decodes a manifest file.
    static func readManifest(at path: String) throws(MemoryBankError) -> Manifest {
        // Refuse before reading a file larger than any manifest can be (the layout's bounds).
        let size = ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.intValue ?? 0
        if size > Manifest.maximumFileBytes {
            throw .invalidField(file: path, field: "file size", value: "\(size)", allowed: "≤ \(Manifest.maximumFileBytes) bytes")
        }
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

    /// The quarantine entry of `generation`, if it is listed but not read.
    public func quarantine(of generation: Int) -> QuarantinedGeneration? {
        quarantined.first { $0.generation == generation }
    }

    /// The generations epoch `epoch` reads, slot k = 1…K (spec §3.1): `epoch − k·s`, or nil where
    /// that generation is not listed (early epochs, or deleted). A quarantined generation keeps its
    /// number: its entries are skipped as damaged (`BankPrefetcher`), not absent.
    public func windowGenerations(forEpoch epoch: Int) -> [Int?] {
        config.generationsRead(atEpoch: epoch).map { segments[$0] == nil && quarantine(of: $0) == nil ? nil : $0 }
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
