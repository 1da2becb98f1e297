// MembankError.swift: the errors of the `membank` inspection tool that are not the bank's own
// (MemoryBankError): a missing bank directory, an ID or generation the bank does not hold, a data set
// that cannot be found or does not match the bank, and bad arguments. Each description says what was
// found versus expected and ends with a `hint:` line, as MemoryBankError does (style.md §9.6).

import MemoryBank

/// A failure of a `membank` subcommand. Bank-format failures arrive wrapped in `.bank`.
public enum MembankError: Error, CustomStringConvertible, Equatable {
    /// The bank path does not exist (or is not a directory).
    case bankMissing(path: String, reason: String)
    /// The bank's reader rejected it (its description names the file and what is wrong).
    case bank(MemoryBankError)
    /// A sample ID outside `0..<sampleCount`.
    case idOutOfRange(id: Int, sampleCount: Int)
    /// A generation that is not live in the bank.
    case generationMissing(generation: Int, live: [Int])
    /// The bank has no live generation, so there is nothing to inspect.
    case noGenerations(path: String)
    /// The sample has no entry in the generation.
    case entryAbsent(id: Int, generation: Int, presentIn: [Int])
    /// No data set: the bank's `createdBy` names none and `--data` was not given.
    case noDatasetRecorded(key: String)
    /// The data set could not be opened.
    case datasetUnavailable(spec: String, reason: String)
    /// The data set does not fit the bank.
    case datasetMismatch(spec: String, field: String, dataset: String, bank: String)
    /// A command-line value outside its allowed values.
    case invalidArgument(name: String, value: String, expected: String)
    /// Writing an output file failed.
    case io(path: String, operation: String, reason: String)
    /// The shards of a sharded bank (`BANK/rank-<r>`, data-parallel training) disagree on a setting.
    case shardsDisagree(path: String, field: String, values: [String])

    public var description: String {
        let (what, hint) = parts
        return "\(what)\nhint: \(hint)"
    }

    private var parts: (String, String) {
        switch self {
        case .bankMissing(let path, let reason):
            return ("\(path): \(reason)", "pass the bank directory of a run (RUN/bank), which holds manifest.mbm")
        case .bank(let error):
            // MemoryBankError already ends in its own hint line.
            let text = error.description
            if let range = text.range(of: "\nhint: ", options: .backwards) {
                return (String(text[..<range.lowerBound]), String(text[range.upperBound...]))
            }
            return (text, "run `membank verify` on the bank")
        case .idOutOfRange(let id, let n):
            return ("sample ID \(id) is out of range: the bank holds IDs in [0, \(n))",
                    "IDs are indices into the training set; pick one below \(n)")
        case .generationMissing(let g, let live):
            return ("generation \(g) is not in the bank; live generations: \(Self.list(live))",
                    "the writer keeps only the window's generations; run `membank info` to list them")
        case .noGenerations(let path):
            return ("\(path): the bank has no sealed generation yet", "wait until the first epoch has been sealed")
        case .entryAbsent(let id, let g, let present):
            return ("sample \(id) has no entry in generation \(g)"
                        + (present.isEmpty ? " (nor in any live generation)" : "; it has entries in \(Self.list(present))"),
                    "a generation holds entries only for the samples trained on in that epoch")
        case .noDatasetRecorded(let key):
            return ("the bank's createdBy settings name no data set (no \"\(key)\" key)",
                    "pass the training set with --data (e.g. --data demo or --data cifar10:/path)")
        case .datasetUnavailable(let spec, let reason):
            return ("data set '\(spec)' cannot be opened: \(reason)",
                    "pass the training set the bank was written from with --data")
        case .datasetMismatch(let spec, let field, let dataset, let bank):
            return ("data set '\(spec)' does not fit the bank: \(field) is \(dataset) in the data set, \(bank) in the bank",
                    "pass the training set the bank was written from with --data")
        case .invalidArgument(let name, let value, let expected):
            return ("\(name) = \(value) is invalid: expected \(expected)", "see `membank help` for the options")
        case .io(let path, let operation, let reason):
            return ("\(path): \(operation) failed: \(reason)", "check the path, permissions and free disk space")
        case .shardsDisagree(let path, let field, let values):
            return ("\(path): the shards disagree on \(field) (\(values.joined(separator: ", ")))",
                    "the rank-<r> directories must come from one data-parallel run; inspect one shard with `membank info \(path)/rank-0`")
        }
    }

    /// `[3, 4, 5]` as "3, 4, 5", or "none".
    static func list(_ values: [Int]) -> String {
        values.isEmpty ? "none" : values.map(String.init).joined(separator: ", ")
    }
}
