// ResumeOverrides.swift: what `memloss train --resume DIR` may change in the stored config.json and
// what it must refuse (issue 14 item 5, README "Resuming a run"): `resumeChanges(stored:requested:explicit:)`
// compares the stored config with the one the flags ask for, field by field, and returns either the
// allowed overrides or every conflict (flag, field, stored value, given value). Pure: no I/O, no CLI.

import Foundation

/// The settings a resumed run may take from the command line instead of its stored config.
///
/// Allowed, because they do not change what the finished epochs computed:
/// - `epochs`: more (or as many as already completed) epochs; the learning-rate schedule then uses
///   the new total (cosine and one-cycle stretch; piecewise milestones are absolute epochs);
/// - `testAttacks`, `testSamples`: the final test evaluation only;
/// - `logEvery`: how often a step line is written to metrics.jsonl.
/// Everything else (data, model, method, optimiser, schedule, seed, split, validation, MemLoss, …)
/// is a conflict.
public struct ResumeOverrides: Sendable, Equatable {
    public var epochs: Int?
    public var testAttacks: [String]?
    public var testSamples: Int?
    public var logEvery: Int?
    // `--checkpoint-every` is not a TrainConfig field but a runtime option of the Trainer
    // (`Trainer.checkpointEvery`): it changes no result, so a resume may always give another one.

    public init(epochs: Int? = nil, testAttacks: [String]? = nil, testSamples: Int? = nil, logEvery: Int? = nil) {
        self.epochs = epochs; self.testAttacks = testAttacks; self.testSamples = testSamples; self.logEvery = logEvery
    }

    /// No override: the stored config as it is.
    public static let none = ResumeOverrides()

    /// The config fields (TrainConfig's JSON keys) a resume may change.
    public static let allowedFields: Set<String> = ["epochs", "testAttacks", "testSamples", "logEvery"]

    /// Lays the overrides over a stored config.
    public func apply(to config: inout TrainConfig) {
        if let epochs { config.epochs = epochs }
        if let testAttacks { config.testAttacks = testAttacks }
        if let testSamples { config.testSamples = testSamples }
        if let logEvery { config.logEvery = logEvery }
    }

    /// Checks the overrides against the checkpoint being resumed.
    /// - Throws: `ResumeConflictError.tooFewEpochs` when `epochs` is below the epochs already completed.
    public func check(completedEpochs: Int, runDirectory: String) throws(ResumeConflictError) {
        if let epochs, epochs < completedEpochs {
            throw .tooFewEpochs(runDirectory: runDirectory, requested: epochs, completed: completedEpochs)
        }
    }
}

/// One setting the command line asks to change in a resumed run but may not.
public struct ResumeConflict: Sendable, Equatable, CustomStringConvertible {
    /// What asked for the change: a flag (`--lr`) or `--config FILE`.
    public var source: String
    /// The config field (JSON path, e.g. `optimizer.learningRate`).
    public var field: String
    /// The stored and the requested value, as JSON text (`absent` when the key is not set).
    public var stored: String
    public var given: String

    public init(source: String, field: String, stored: String, given: String) {
        self.source = source; self.field = field; self.stored = stored; self.given = given
    }

    public var description: String { "\(source) (\(field)): stored \(stored), given \(given)" }
}

/// Why `--resume` refused.
public enum ResumeConflictError: Error, CustomStringConvertible, Equatable {
    /// The flags change settings a resume must keep.
    case conflicts(runDirectory: String, [ResumeConflict])
    /// `--epochs` below what the checkpoint already completed.
    case tooFewEpochs(runDirectory: String, requested: Int, completed: Int)

    public var description: String {
        switch self {
        case let .conflicts(dir, list):
            return "--resume \(dir): the run's config.json differs from the given flags in "
                + list.map(\.description).joined(separator: "; ")
                + "\nhint: drop those flags to continue the run as it was (a resume may change only --epochs, "
                + "--test-attacks, --test-samples and --log-every), or start a new run with another --out"
        case let .tooFewEpochs(dir, requested, completed):
            return "--resume \(dir): --epochs \(requested) is below the \(completed) epochs the checkpoint has completed"
                + "\nhint: pass --epochs \(completed) or more (or omit it to keep the stored value)"
        }
    }
}

extension TrainConfig {
    /// The config.json of the run in `directory` (what `--resume` continues with).
    /// - Throws: `TrainingError.resume` naming the file when it is missing or does not decode.
    public static func stored(inRun directory: URL) throws -> TrainConfig {
        let file = RunDirectory(directory).config
        guard let data = FileManager.default.contents(atPath: file.path) else {
            throw TrainingError.resume("\(file.path) is missing; is \(directory.path) a run directory?")
        }
        do { return try JSONDecoder().decode(TrainConfig.self, from: data) } catch {
            throw TrainingError.resume("\(file.path) is not a valid config: \(error)")
        }
    }

    /// Compares a stored config with the config the command line asks for on resume.
    ///
    /// `requested` is `stored` with `--config FILE` and the flags laid over it, exactly as a new run
    /// would resolve them; `explicit` maps each given flag (`--lr`, `--mem-k`, `--config`) to the config
    /// fields it sets (JSON paths, prefixes allowed: `method` covers `method.attack.steps`). A field
    /// whose value is unchanged is fine whatever was given; a changed field in
    /// `ResumeOverrides.allowedFields` becomes an override; any other changed field is a conflict named
    /// after the flags whose fields cover it (the flags win over `--config`).
    ///
    /// - Returns: `.success(overrides)` or `.failure(conflicts)`, conflicts sorted by field.
    public static func resumeChanges(stored: TrainConfig, requested: TrainConfig,
                                     explicit: [String: [String]]) -> Result<ResumeOverrides, ResumeConflictList> {
        let a = flattenedJSON(stored), b = flattenedJSON(requested)
        var conflicts: [ResumeConflict] = []
        for field in Set(a.keys).union(b.keys).sorted() where a[field] != b[field] {
            if ResumeOverrides.allowedFields.contains(field) { continue }
            let covering = explicit.filter { _, fields in fields.contains { $0.isEmpty || field == $0 || field.hasPrefix($0 + ".") } }
            let flags = covering.keys.filter { $0 != "--config" }.sorted()
            let source = !flags.isEmpty ? flags.joined(separator: "/") : covering.isEmpty ? "the given flags" : "--config"
            conflicts.append(ResumeConflict(source: source, field: field, stored: a[field] ?? "absent",
                                            given: b[field] ?? "absent"))
        }
        if !conflicts.isEmpty { return .failure(ResumeConflictList(conflicts)) }
        var o = ResumeOverrides()
        if requested.epochs != stored.epochs { o.epochs = requested.epochs }
        if requested.testAttacks != stored.testAttacks { o.testAttacks = requested.testAttacks }
        if requested.testSamples != stored.testSamples { o.testSamples = requested.testSamples }
        if requested.logEvery != stored.logEvery { o.logEvery = requested.logEvery }
        return .success(o)
    }

    /// The config as JSON leaves: dotted path → JSON text of the value (arrays are one leaf). Floats
    /// print as JSONEncoder wrote them (0.05, the Float's shortest form).
    static func flattenedJSON(_ config: TrainConfig) -> [String: String] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let data = try? encoder.encode(config),
              let tree = try? JSONDecoder().decode(JSONLeaf.self, from: data) else { return [:] }
        var out: [String: String] = [:]
        func walk(_ value: JSONLeaf, _ path: String) {
            if case .object(let d) = value, !d.isEmpty {
                for (k, v) in d { walk(v, path.isEmpty ? k : path + "." + k) }
            } else {
                out[path] = value.text
            }
        }
        walk(tree, "")
        return out
    }
}

/// A decoded JSON value, for the field-by-field comparison.
private indirect enum JSONLeaf: Decodable {
    case null, bool(Bool), integer(Int64), number(Double), string(String), array([JSONLeaf]), object([String: JSONLeaf])

    init(from decoder: Decoder) throws {
        if let c = try? decoder.singleValueContainer() {
            if c.decodeNil() { self = .null; return }
            if let v = try? c.decode(Bool.self) { self = .bool(v); return }
            if let v = try? c.decode(Int64.self) { self = .integer(v); return }
            if let v = try? c.decode(Double.self) { self = .number(v); return }
            if let v = try? c.decode(String.self) { self = .string(v); return }
            if let v = try? c.decode([JSONLeaf].self) { self = .array(v); return }
        }
        self = .object(try [String: JSONLeaf](from: decoder))
    }

    var text: String {
        switch self {
        case .null: return "null"
        case .bool(let v): return v ? "true" : "false"
        case .integer(let v): return "\(v)"
        case .number(let v): return "\(v)"
        case .string(let v): return "\"\(v)\""
        case .array(let a): return "[" + a.map(\.text).joined(separator: ",") + "]"
        case .object(let d): return "{" + d.keys.sorted().map { "\($0): \(d[$0]!.text)" }.joined(separator: ",") + "}"
        }
    }
}

/// The conflicts `resumeChanges` found (an `Error` so it can be a `Result` failure).
public struct ResumeConflictList: Error, Sendable, Equatable {
    public var conflicts: [ResumeConflict]
    public init(_ conflicts: [ResumeConflict]) { self.conflicts = conflicts }
}
