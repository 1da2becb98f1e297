// MemoryBankError.swift: every way opening, reading, verifying or writing a bank can fail, as one typed
// error whose description says what was found versus expected, names the file (and generation and
// sample where it applies), and ends with a `hint:` line (docs/format/membank-v1.md §9).

import SystemIO

/// A memory-bank failure. Reader-side cases name the file; record-level cases also the generation
/// and the sample ID, so a trainer can skip that sample's memory term and count it (design.md §4).
public enum MemoryBankError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The directory has no manifest.
    case notABank(path: String)
    /// `Bank.create` on a directory that already holds a bank.
    case alreadyExists(path: String)
    /// The first 8 bytes are not the expected magic.
    case badMagic(file: String, found: [UInt8], expected: [UInt8])
    /// A format major version this reader does not know.
    case unsupportedMajor(file: String, found: UInt16, minor: UInt16, reader: UInt16)
    /// The file is shorter (or longer) than its header says.
    case truncated(file: String, expectedBytes: Int, actualBytes: Int)
    /// A stored CRC32C differs from the computed one. `region`: manifest, header, createdBy, index.
    case checksumMismatch(file: String, region: String, stored: UInt32, computed: UInt32)
    /// A field holds a value outside its allowed values.
    case invalidField(file: String, field: String, value: String, allowed: String)
    /// A segment disagrees with the manifest (or an opened bank with the requested configuration).
    case configMismatch(file: String, field: String, found: String, expected: String)
    /// The manifest lists a generation whose segment file is missing.
    case segmentMissing(file: String, generation: Int)
    /// One record is damaged (checksum, LZ4, structure, payload values).
    case corruptRecord(file: String, generation: Int, sampleID: Int, reason: String)
    /// A record's metadata field (`pY`, `margin`, `loss`) is NaN or ±∞ (found by `verify`; readers
    /// return it as stored, the bank never interprets metadata).
    case nonFiniteMetadata(file: String, generation: Int, sampleID: Int, field: String, value: Float)
    /// One record uses a codec or flag this reader does not know (a newer minor version).
    case unsupportedRecord(file: String, generation: Int, sampleID: Int, reason: String)
    /// A system call failed.
    case io(path: String, operation: String, reason: String)
    /// Another writer holds the bank's lock.
    case bankLocked(path: String)
    /// A `BankConfig` value outside its allowed range.
    case invalidConfig(reason: String)
    /// A sample ID outside `0..<sampleCount`.
    case sampleOutOfRange(id: Int, sampleCount: Int)
    /// A perturbation with the wrong number of values.
    case shapeMismatch(expected: Int, actual: Int)
    /// A perturbation containing NaN or ±∞.
    case nonFiniteDelta(generation: Int, sampleID: Int)
    /// A second entry for the same sample in one generation (entries are append-only).
    case duplicateEntry(generation: Int, sampleID: Int)
    /// `append`/`seal` without `beginGeneration`.
    case noOpenGeneration
    /// `beginGeneration` while another generation is open.
    case generationAlreadyOpen(generation: Int)
    /// `beginGeneration(g)` with `g` not above every live generation.
    case generationNotIncreasing(requested: Int, newest: Int)
    /// The writer was closed (or crashed in a test).
    case writerClosed
    /// Test hook: the writer stopped at this point of `sealGeneration` as if the process died.
    case simulatedCrash(point: String)
    /// `Bank.open(…, resuming:)` with an open-generation mark that does not describe this bank's
    /// generation (another bank, configuration, run or generation; or a malformed mark).
    case resumeMarkMismatch(file: String, generation: Int, reason: String)

    /// The file the error is about, when there is one.
    public var file: String? {
        switch self {
        case .notABank(let p), .alreadyExists(let p), .bankLocked(let p): return p
        case .badMagic(let f, _, _), .unsupportedMajor(let f, _, _, _), .truncated(let f, _, _),
             .checksumMismatch(let f, _, _, _), .invalidField(let f, _, _, _), .configMismatch(let f, _, _, _),
             .segmentMissing(let f, _), .corruptRecord(let f, _, _, _), .unsupportedRecord(let f, _, _, _),
             .resumeMarkMismatch(let f, _, _), .nonFiniteMetadata(let f, _, _, _, _):
            return f
        case .io(let p, _, _): return p
        default: return nil
        }
    }

    /// The sample the error is about, for record-level errors.
    public var sampleID: Int? {
        switch self {
        case .corruptRecord(_, _, let id, _), .unsupportedRecord(_, _, let id, _), .sampleOutOfRange(let id, _),
             .nonFiniteDelta(_, let id), .duplicateEntry(_, let id), .nonFiniteMetadata(_, _, let id, _, _):
            return id
        default: return nil
        }
    }

    /// True for damage confined to one record: the trainer skips that memory slot and counts it.
    public var isRecordLevel: Bool {
        switch self {
        case .corruptRecord, .unsupportedRecord: return true
        default: return false
        }
    }

    public var description: String {
        let (what, hint) = parts
        return "\(what)\nhint: \(hint)"
    }

    private var parts: (String, String) {
        switch self {
        case .notABank(let p):
            return ("\(p): no \(BankLayout.manifestName) (not a memory bank)",
                    "create the bank with Bank.create(at:config:), or pass the run's bank/ directory")
        case .alreadyExists(let p):
            return ("\(p): a memory bank already exists here",
                    "open it with Bank.open(at:), or remove the directory to start over")
        case .badMagic(let f, let found, let expected):
            return ("\(f): bad magic \(describeBytes(found)), expected \(describeBytes(expected))",
                    "not a membank file of this kind; was it replaced or overwritten?")
        case .unsupportedMajor(let f, let major, let minor, let reader):
            return ("\(f): format version \(major).\(minor), this reader supports \(reader).x",
                    "upgrade memloss to read it, or re-create the bank with this version")
        case .truncated(let f, let expected, let actual):
            return ("\(f): \(actual) bytes, expected \(expected)",
                    "the file was cut short or extended (disk full, copied while written); run `membank verify`, "
                    + "then re-create the bank or drop this generation")
        case .checksumMismatch(let f, let region, let stored, let computed):
            return ("\(f): \(region) checksum \(String(hex32: stored)), computed \(String(hex32: computed))",
                    "the file is damaged; run `membank verify` to list what else is")
        case .invalidField(let f, let field, let value, let allowed):
            return ("\(f): \(field) = \(value), allowed: \(allowed)",
                    "the file is damaged or was not written by memloss; run `membank verify`")
        case .configMismatch(let f, let field, let found, let expected):
            return ("\(f): \(field) is \(found), expected \(expected)",
                    "the bank mixes configurations (another run, or other --mem-* options); "
                    + "use a fresh bank directory or re-create this one")
        case .segmentMissing(let f, let g):
            return ("\(f): segment of generation \(g) listed in the manifest is missing",
                    "files were deleted by hand; re-create the bank (or restore the file)")
        case .corruptRecord(let f, let g, let id, let reason):
            return ("\(f) (generation \(g)), sample \(id): \(reason)",
                    "the trainer skips this sample's memory term and counts it; run `membank verify` for the rest")
        case .nonFiniteMetadata(let f, let g, let id, let field, let value):
            return ("\(f) (generation \(g)), sample \(id): metadata field \(field) = \(value), allowed: finite",
                    "the trainer recorded a diverged value; δ is unaffected, `membank stats` leaves the field out of its summaries")
        case .unsupportedRecord(let f, let g, let id, let reason):
            return ("\(f) (generation \(g)), sample \(id): \(reason)",
                    "written by a newer minor version of the format; upgrade memloss to decode it")
        case .io(let p, let op, let reason):
            return ("\(p): \(op) failed: \(reason)", "check the path, permissions and free disk space")
        case .bankLocked(let p):
            return ("\(p): another writer holds the bank's lock (\(BankLayout.lockName))",
                    "only one training run may write a bank; use another --bank directory")
        case .invalidConfig(let reason):
            return ("invalid bank configuration: \(reason)", "fix the --mem-* options (see `memloss train --help`)")
        case .sampleOutOfRange(let id, let n):
            return ("sample ID \(id) is outside 0..<\(n)", "the bank was created for \(n) samples; is this the same dataset?")
        case .shapeMismatch(let expected, let actual):
            return ("perturbation has \(actual) values, the bank stores \(expected)",
                    "the bank's shape must match the dataset's C×H×W")
        case .nonFiniteDelta(let g, let id):
            return ("generation \(g), sample \(id): the perturbation contains NaN or ±∞",
                    "the attack diverged; check the model and step size (the bank refuses to store it)")
        case .duplicateEntry(let g, let id):
            return ("generation \(g) already has an entry for sample \(id)",
                    "entries are append-only: one per sample per generation; did an epoch visit a sample twice?")
        case .noOpenGeneration:
            return ("no generation is open", "call beginGeneration(epoch) before append and sealGeneration()")
        case .generationAlreadyOpen(let g):
            return ("generation \(g) is still open", "seal or abandon it before beginning another")
        case .generationNotIncreasing(let requested, let newest):
            return ("generation \(requested) is not above the newest live generation \(newest)",
                    "generations follow epochs; when resuming from an earlier checkpoint call "
                    + "discardGenerations(after:) with its epoch first")
        case .writerClosed:
            return ("the bank writer is closed", "open the bank again with Bank.open(at:)")
        case .simulatedCrash(let point):
            return ("simulated crash at \(point)", "test hook only; reopen the bank")
        case .resumeMarkMismatch(let f, let g, let reason):
            return ("\(f) (generation \(g)): the open-generation mark does not match: \(reason)",
                    "the checkpoint belongs to another bank or run; resume with that run's bank directory, "
                    + "or restart the epoch without a mark")
        }
    }
}
