// InspectedBank.swift: a bank opened for inspection: the read-only BankReader plus the checks every
// subcommand shares (the path exists, a generation is live, an ID is in range and present), the IDs
// present in a generation, and the training settings recorded in `createdBy`. Never writes.

import Foundation
import MemoryBank

/// A bank opened read-only for the `membank` subcommands.
public struct InspectedBank {
    public let path: String
    public let reader: BankReader

    /// Opens the bank directory at `path`.
    /// - Throws: `bankMissing` when the path does not exist or is not a directory; `.bank(error)` for
    ///   every rejection of the reader (no manifest, unknown major version, damaged headers: spec §4, §5.1).
    public static func open(_ path: String) throws(MembankError) -> InspectedBank {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw .bankMissing(path: path, reason: "no such file or directory")
        }
        guard isDirectory.boolValue else {
            throw .bankMissing(path: path, reason: "is a file, not a bank directory")
        }
        do {
            return InspectedBank(path: path, reader: try BankReader.open(at: URL(fileURLWithPath: path)))
        } catch {
            throw .bank(error)
        }
    }

    public var config: BankConfig { reader.config }
    public var generations: [Int] { reader.generations }

    /// `generation` if live, else the newest live generation when `generation` is nil.
    /// - Throws: `generationMissing` / `noGenerations`.
    public func resolveGeneration(_ generation: Int?) throws(MembankError) -> Int {
        if let generation {
            guard reader.segment(generation) != nil else { throw .generationMissing(generation: generation, live: generations) }
            return generation
        }
        guard let newest = generations.last else { throw .noGenerations(path: path) }
        return newest
    }

    /// Throws `idOutOfRange` unless `0 ≤ id < sampleCount`.
    public func checkID(_ id: Int) throws(MembankError) {
        guard id >= 0 && id < config.sampleCount else { throw .idOutOfRange(id: id, sampleCount: config.sampleCount) }
    }

    /// The IDs with an entry in `generation`, ascending.
    public func ids(in generation: Int) -> [Int] {
        guard let segment = reader.segment(generation) else { return [] }
        return (0..<config.sampleCount).filter { segment.contains(id: $0) }
    }

    /// The decoded entry of `id` in `generation`.
    /// - Throws: `idOutOfRange`, `generationMissing`, `entryAbsent`, or `.bank(corruptRecord…)`.
    public func entry(id: Int, generation: Int) throws(MembankError) -> BankEntry {
        try checkID(id)
        _ = try resolveGeneration(generation)
        let found: BankEntry?
        do { found = try reader.entry(id: id, generation: generation) } catch { throw .bank(error) }
        guard let found else {
            throw .entryAbsent(id: id, generation: generation,
                               presentIn: generations.filter { reader.contains(id: id, generation: $0) })
        }
        return found
    }

    /// Calls `body` with every entry of `generation` in ascending ID order, reusing one δ buffer.
    /// Damaged records (`MemoryBankError.isRecordLevel`: checksum, structure, non-finite δ) are
    /// skipped, as the trainer skips them, and returned so the report can say how many.
    /// - Returns: the skipped records' errors, in ID order.
    /// - Throws: what `body` throws.
    @discardableResult
    public func forEachEntry(in generation: Int,
                             _ body: (Int, [Float], EntryInfo) throws(MembankError) -> Void) throws(MembankError) -> [MemoryBankError] {
        var delta = [Float](repeating: 0, count: config.elementCount)
        var skipped: [MemoryBankError] = []
        for id in ids(in: generation) {
            let info: EntryInfo?
            do {
                info = try reader.read(id: id, generation: generation, into: &delta)
            } catch {
                if error.isRecordLevel { skipped.append(error); continue }
                throw .bank(error)
            }
            if let info { try body(id, delta, info) }
        }
        return skipped
    }

    /// The report line for records `forEachEntry` skipped ("" when none).
    public static func skippedNote(_ count: Int, in generation: Int) -> String {
        count == 0 ? "" : "skipped \(count) damaged record\(count == 1 ? "" : "s") in generation \(generation) "
            + "(left out of every figure; `membank verify` lists them)\n"
    }

    // MARK: - Recorded settings

    /// The `createdBy` key that names the training set (TrainConfig.data).
    public static let dataKey = "data"

    /// `createdBy` parsed as JSON, or its raw text when it is not JSON.
    public var createdBy: JSONValue { JSONValue(parsingOrText: config.createdBy) }

    /// The data spec recorded in `createdBy` under `dataKey`, if any.
    public var recordedDataSpec: String? {
        if case .object(let fields) = createdBy, case .string(let spec)? = fields.first(where: { $0.key == Self.dataKey })?.value {
            return spec
        }
        return nil
    }
}
