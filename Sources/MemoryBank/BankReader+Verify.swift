// BankReader+Verify.swift: the full integrity walk behind `membank verify`: the manifest, every listed
// segment's header, createdBy and index checksums and layout, and every record (checksum, structure,
// full decode). Unlike reading, it does not stop at the first problem: it lists them all.

import Foundation
import SystemIO

/// The outcome of `BankReader.verify(at:)`.
public struct BankVerification: Sendable {
    /// Generations the manifest lists.
    public var generations: [Int] = []
    /// Records decoded successfully.
    public var recordsChecked = 0
    /// Every problem found, in manifest order; empty means the bank is intact.
    public var problems: [MemoryBankError] = []
    /// Files in the directory that no reader will read (unsealed or orphaned generations). Not
    /// problems: the next writer `open` deletes them.
    public var ignoredFiles: [String] = []

    public var isIntact: Bool { problems.isEmpty }
}

extension BankReader {
    /// Checks every checksum and structural invariant of the bank in `directory` (read-only).
    public static func verify(at directory: URL) -> BankVerification {
        var report = BankVerification()
        let manifestPath = directory.appendingPathComponent(BankLayout.manifestName).path
        if MappedFile.size(ofFileAt: manifestPath) == nil {
            report.problems.append(.notABank(path: directory.path))
            return report
        }
        let manifest: Manifest
        do {
            manifest = try readManifest(at: manifestPath)
        } catch {
            report.problems.append(error)
            return report
        }
        report.generations = manifest.generations.map(\.generation)
        let decoder = RecordDecoder(config: manifest.config)
        var delta = [Float](repeating: 0, count: manifest.config.elementCount)
        for g in manifest.generations {
            let path = directory.appendingPathComponent(BankLayout.segmentName(g.generation)).path
            let segment: BankSegment
            do {
                segment = try BankSegment(path: path, expected: g, manifestConfig: manifest.config)
            } catch {
                report.problems.append(error)
                continue
            }
            var present = 0
            // sampleCount was bounded by the segment's layout (its index is inside the file).
            for id in 0..<manifest.config.sampleCount where segment.contains(id: id) {
                present += 1
                do {
                    let reader = SingleSegmentDecode(segment: segment, decoder: decoder)
                    let info = try reader.decode(id: id, into: &delta)
                    report.recordsChecked += 1
                    if let info { report.problems += nonFiniteMetadata(info.metadata, file: path, generation: g.generation, id: id) }
                } catch {
                    report.problems.append(error)
                }
            }
            if present != segment.recordCount {
                report.problems.append(.invalidField(file: path, field: "recordCount", value: "\(segment.recordCount)",
                                                     allowed: "\(present) (non-zero index entries)"))
            }
        }
        let live = Set(manifest.generations.map(\.generation))
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        for name in names.sorted() {
            let orphan = BankLayout.generation(ofSegmentName: name).map { !live.contains($0) } ?? false
            if orphan || name.hasSuffix(BankLayout.temporarySuffix) { report.ignoredFiles.append(name) }
        }
        return report
    }

    /// The metadata fields of one entry that are NaN or ±∞, as problems naming the field.
    static func nonFiniteMetadata(_ m: EntryMetadata, file: String, generation: Int, id: Int) -> [MemoryBankError] {
        [("pY", m.pY), ("margin", m.margin), ("loss", m.loss)].compactMap { field, value in
            value.isFinite ? nil : .nonFiniteMetadata(file: file, generation: generation, sampleID: id, field: field, value: value)
        }
    }
}
