// VerifyReport.swift: `membank verify`: every checksum and structural invariant of the format
// (MemoryBank's BankReader.verify walks the manifest, each segment's header, createdBy and index
// checksums, and decodes every record), plus the semantic check that every δ lies in the ε-ball.
// Each problem is named by file, generation and sample. Intact means no problem at all.

import Foundation
import MemoryBank

/// One problem found by `verify`.
public struct VerifyProblem: Codable, Equatable, Sendable {
    /// The file (a bank path relative names are kept as the reader gave them).
    public var file: String?
    public var generation: Int?
    public var sample: Int?
    /// The error kind (`checksumMismatch`, `corruptRecord`, `outsideBall`, …).
    public var kind: String
    /// The full message (found versus expected, and a hint).
    public var message: String
}

/// The outcome of `membank verify`.
public struct VerifyReport: Codable, Equatable, Sendable {
    public var path: String
    public var intact: Bool
    public var generations: [Int]
    public var recordsChecked: Int
    public var problems: [VerifyProblem]
    /// Unsealed or orphaned files no reader reads (not problems; the next writer deletes them).
    public var ignoredFiles: [String]

    /// Verifies the bank at `path`. Never throws: a missing bank is itself a problem.
    public static func run(path: String) -> VerifyReport {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
            let e = MembankError.bankMissing(path: path, reason: isDirectory.boolValue ? "no such directory" : "no such bank directory")
            return VerifyReport(path: path, intact: false, generations: [], recordsChecked: 0,
                                problems: [VerifyProblem(file: path, generation: nil, sample: nil, kind: "bankMissing", message: e.description)],
                                ignoredFiles: [])
        }
        let url = URL(fileURLWithPath: path)
        let v = BankReader.verify(at: url)
        var problems = v.problems.map(problem)
        if v.isIntact, let reader = try? BankReader.open(at: url) {
            problems += ballProblems(reader)
        }
        return VerifyReport(path: path, intact: problems.isEmpty, generations: v.generations, recordsChecked: v.recordsChecked,
                            problems: problems, ignoredFiles: v.ignoredFiles)
    }

    /// A bank error as a named problem.
    static func problem(_ e: MemoryBankError) -> VerifyProblem {
        var generation: Int?
        switch e {
        case .corruptRecord(_, let g, _, _), .unsupportedRecord(_, let g, _, _), .segmentMissing(_, let g),
             .nonFiniteMetadata(_, let g, _, _, _):
            generation = g
        default:
            // Segment-level errors name the file; its name carries the generation (gen-<g>.mbs).
            if let f = e.file { generation = generationOf(file: f) }
        }
        return VerifyProblem(file: e.file, generation: generation, sample: e.sampleID, kind: kind(of: e), message: e.description)
    }

    /// `gen-0000000004.mbs` → 4.
    static func generationOf(file: String) -> Int? {
        let name = (file as NSString).lastPathComponent
        guard name.hasPrefix("gen-"), name.hasSuffix(".mbs") else { return nil }
        return Int(name.dropFirst(4).dropLast(4))
    }

    /// The enum case name of `e` ("corruptRecord", …).
    static func kind(of e: MemoryBankError) -> String {
        let mirror = Mirror(reflecting: e)
        return mirror.children.first?.label ?? "\(e)"
    }

    /// Every δ must lie in the ε-ball up to the codec's error: L∞ `max|δ_i| ≤ ε + t`, L2
    /// `‖δ‖₂ ≤ ε + √n·t` (t from `BankStatistics.tolerance`). Only run on structurally intact banks.
    static func ballProblems(_ reader: BankReader) -> [VerifyProblem] {
        let c = reader.config
        let t = BankStatistics.tolerance(codec: c.codec, epsilon: c.epsilon)
        let limit = c.norm == .linf ? Double(c.epsilon) + t : Double(c.epsilon) + Double(c.elementCount).squareRoot() * t
        var problems: [VerifyProblem] = []
        var delta = [Float](repeating: 0, count: c.elementCount)
        for g in reader.generations {
            guard let segment = reader.segment(g) else { continue }
            for id in 0..<c.sampleCount where segment.contains(id: id) {
                guard (try? reader.read(id: id, generation: g, into: &delta)) != nil else { continue }
                let norm = c.norm == .linf ? DeltaMath.linf(delta) : DeltaMath.l2(delta)
                if norm > limit {
                    problems.append(VerifyProblem(
                        file: segment.path, generation: g, sample: id, kind: "outsideBall",
                        message: "\(segment.path) (generation \(g)), sample \(id): ‖δ‖ = \(norm) (\(c.norm.rawValue)) "
                            + "exceeds ε = \(c.epsilon) + tolerance \(limit - Double(c.epsilon))\n"
                            + "hint: the writer stored a perturbation outside the attack's ball; check the trainer's δ = x̃ − view(x)"))
                }
            }
        }
        return problems
    }

    /// The human report.
    public var text: String {
        var out = "bank \(path): " + (intact ? "intact" : "DAMAGED (\(problems.count) problem\(problems.count == 1 ? "" : "s"))") + "\n"
        out += "  generations \(MembankError.list(generations)); records checked \(group(recordsChecked))\n"
        for p in problems {
            let place = [p.file.map { ($0 as NSString).lastPathComponent }, p.generation.map { "generation \($0)" },
                         p.sample.map { "sample \($0)" }].compactMap { $0 }.joined(separator: ", ")
            out += "  - [\(p.kind)] \(place)\n"
            out += p.message.split(separator: "\n").map { "      " + $0 }.joined(separator: "\n") + "\n"
        }
        if !ignoredFiles.isEmpty { out += "  ignored (unsealed or orphaned; not read): \(ignoredFiles.joined(separator: ", "))\n" }
        return out
    }
}
