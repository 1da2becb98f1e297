// StudySpec.swift: the study specification (docs/study.md, "Spec format"): a base set of `memloss train`
// flags, arms that add flags (optionally a grid of flag values), seeds, the baseline arm for paired
// differences, and the evaluation block. `cells` expands it into the study's runs, each named by its
// settings; the runner (StudyRunner.swift) and the report (StudyReport.swift) both start from here.

import Foundation

/// A flag value as a spec writes it: a string, a number or a boolean (`true` → `--flag`,
/// `false` → `--no-flag`).
public enum StudyFlagValue: Codable, Sendable, Hashable, CustomStringConvertible {
    case text(String)
    case number(Double)
    case bool(Bool)

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let b = try? c.decode(Bool.self) { self = .bool(b); return }
        if let d = try? c.decode(Double.self) { self = .number(d); return }
        if let s = try? c.decode(String.self) { self = .text(s); return }
        throw DecodingError.dataCorruptedError(in: c, debugDescription: "a flag value must be a string, a number or a boolean")
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .text(let s): try c.encode(s)
        case .number(let d): try c.encode(d)
        case .bool(let b): try c.encode(b)
        }
    }

    /// The value as it goes on the command line (numbers without a trailing `.0`).
    public var description: String {
        switch self {
        case .text(let s): return s
        case .number(let d): return d == d.rounded() && abs(d) < 1e15 ? String(Int(d)) : String(d)
        case .bool(let b): return b ? "true" : "false"
        }
    }

    /// `--name value`, `--name` or `--no-name`.
    public func arguments(flag name: String) -> [String] {
        switch self {
        case .bool(let b): return [b ? "--\(name)" : "--no-\(name)"]
        default: return ["--\(name)", description]
        }
    }
}

/// One arm: flags over the base, optionally crossed with a grid of flag values, with its own seeds.
public struct StudyArm: Codable, Sendable, Equatable {
    /// Unique within the study; letters, digits, `+`, `-`, `_`, `.`.
    public var name: String
    /// `memloss train` flags (without the leading `--`) and their values.
    public var flags: [String: StudyFlagValue]
    /// Flag → values: the arm's cells are the cross product (keys in sorted order).
    public var grid: [String: [StudyFlagValue]]?
    /// Seeds of this arm (default: the study's).
    public var seeds: [Int]?

    public init(name: String, flags: [String: StudyFlagValue] = [:], grid: [String: [StudyFlagValue]]? = nil, seeds: [Int]? = nil) {
        self.name = name; self.flags = flags; self.grid = grid; self.seeds = seeds
    }
}

/// The AutoAttack part of the evaluation: which arms, on how many test points.
public struct StudyAutoAttack: Codable, Sendable, Equatable {
    /// First `n` test images.
    public var n: Int
    /// `standard` (APGD-CE, APGD-T, FAB-T, Square) or another `memloss eval --aa-version`.
    public var version: String
    /// Arms evaluated (nil: every arm).
    public var arms: [String]?

    public init(n: Int, version: String = "standard", arms: [String]? = nil) {
        self.n = n; self.version = version; self.arms = arms
    }
}

/// What every cell is evaluated on after training (its test split).
public struct StudyEvaluation: Codable, Sendable, Equatable {
    /// `memloss train --test-attacks` (e.g. "pgd20,cw").
    public var attacks: String
    /// Test images (0 = all): `--test-samples`.
    public var n: Int
    public var autoattack: StudyAutoAttack?

    public init(attacks: String = "pgd20,cw", n: Int = 0, autoattack: StudyAutoAttack? = nil) {
        self.attacks = attacks; self.n = n; self.autoattack = autoattack
    }
}

/// A study: `memloss study run SPEC.json --out DIR`.
public struct StudySpec: Codable, Sendable, Equatable {
    public static let currentFormat = "memloss-study/1"
    public var format: String
    public var name: String
    public var description: String?
    /// Flags every cell gets (before its arm's).
    public var base: [String: StudyFlagValue]
    public var arms: [StudyArm]
    /// Default seeds of the arms.
    public var seeds: [Int]
    /// The arm paired differences are taken against (seed by seed).
    public var baseline: String?
    public var evaluation: StudyEvaluation

    public init(name: String, description: String? = nil, base: [String: StudyFlagValue], arms: [StudyArm], seeds: [Int],
                baseline: String?, evaluation: StudyEvaluation) {
        format = StudySpec.currentFormat
        self.name = name; self.description = description; self.base = base; self.arms = arms; self.seeds = seeds
        self.baseline = baseline; self.evaluation = evaluation
    }

    /// Flags a spec may not set: the runner owns them.
    public static let reservedFlags: Set<String> = ["out", "resume", "seed", "test-attacks", "test-samples", "overwrite",
                                                    "config", "print-config"]

    // MARK: Loading

    /// Reads and validates the spec at `path`.
    /// - Throws: `StudyError.spec` naming the file, the field and what was expected.
    public static func load(_ path: String) throws -> StudySpec {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw StudyError.spec(file: path, field: "", problem: "cannot be read (missing or not a file)")
        }
        let spec: StudySpec
        do { spec = try JSONDecoder().decode(StudySpec.self, from: data) } catch {
            throw StudyError.spec(file: path, field: StudyError.field(of: error), problem: StudyError.problem(of: error))
        }
        try spec.validate(file: path)
        return spec
    }

    /// Checks names, flags, seeds, the baseline and the evaluation.
    public func validate(file: String) throws {
        func fail(_ field: String, _ problem: String) -> StudyError { .spec(file: file, field: field, problem: problem) }
        guard format == StudySpec.currentFormat else { throw fail("format", "expected \"\(StudySpec.currentFormat)\", found \"\(format)\"") }
        guard StudySpec.isSafeName(name) else { throw fail("name", "expected letters, digits, + - _ . (found \"\(name)\")") }
        guard !arms.isEmpty else { throw fail("arms", "expected at least one arm") }
        var names = Set<String>()
        for (i, arm) in arms.enumerated() {
            guard StudySpec.isSafeName(arm.name) else {
                throw fail("arms[\(i)].name", "expected letters, digits, + - _ . (found \"\(arm.name)\")")
            }
            guard names.insert(arm.name).inserted else { throw fail("arms[\(i)].name", "\"\(arm.name)\" is used twice") }
            let flagNames = Array(arm.flags.keys) + Array((arm.grid ?? [:]).keys)
            for flag in flagNames where StudySpec.reservedFlags.contains(flag) {
                throw fail("arms[\(i)]", "--\(flag) is set by the study runner, not by a spec")
            }
            for (flag, values) in arm.grid ?? [:] where values.isEmpty {
                throw fail("arms[\(i)].grid.\(flag)", "expected at least one value")
            }
            let s = arm.seeds ?? seeds
            guard !s.isEmpty, Set(s).count == s.count, s.allSatisfy({ $0 >= 0 }) else {
                throw fail("arms[\(i)].seeds", "expected distinct seeds ≥ 0, at least one")
            }
        }
        for flag in base.keys where StudySpec.reservedFlags.contains(flag) {
            throw fail("base.\(flag)", "--\(flag) is set by the study runner, not by a spec")
        }
        if let baseline, !names.contains(baseline) { throw fail("baseline", "no arm is named \"\(baseline)\"") }
        guard evaluation.n >= 0 else { throw fail("evaluation.n", "expected ≥ 0 (0 = every test image)") }
        if let aa = evaluation.autoattack {
            guard aa.n > 0 else { throw fail("evaluation.autoattack.n", "expected > 0") }
            for a in aa.arms ?? [] where !names.contains(a) { throw fail("evaluation.autoattack.arms", "no arm is named \"\(a)\"") }
        }
        // Two cells with one name would share a run directory.
        var cellNames = Set<String>()
        for cell in cells where !cellNames.insert(cell.name).inserted {
            throw fail("arms", "two cells are both named \(cell.name)")
        }
    }

    static func isSafeName(_ s: String) -> Bool {
        !s.isEmpty && s.count <= 80 && s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "+-_.".contains($0)) }
            && s != "." && s != ".."
    }

    // MARK: Cells

    /// Every run of the study, in order: arms in spec order, grid points in lexicographic order of
    /// the sorted grid keys, seeds in the arm's order.
    public var cells: [StudyCell] {
        var out: [StudyCell] = []
        for arm in arms {
            for point in StudySpec.gridPoints(arm.grid ?? [:]) {
                for seed in arm.seeds ?? seeds {
                    out.append(StudyCell(arm: arm.name, point: point, seed: seed, flags: flags(arm: arm, point: point)))
                }
            }
        }
        return out
    }

    /// The cross product of a grid: [(flag, value)] per point, flags sorted.
    static func gridPoints(_ grid: [String: [StudyFlagValue]]) -> [[StudyGridSetting]] {
        var points: [[StudyGridSetting]] = [[]]
        for key in grid.keys.sorted() {
            points = points.flatMap { p in grid[key]!.map { p + [StudyGridSetting(flag: key, value: $0)] } }
        }
        return points
    }

    /// base, then the arm's flags, then the grid point (later wins), sorted by flag name.
    func flags(arm: StudyArm, point: [StudyGridSetting]) -> [String: StudyFlagValue] {
        var f = base
        for (k, v) in arm.flags { f[k] = v }
        for s in point { f[s.flag] = s.value }
        return f
    }
}

/// One grid coordinate of a cell.
public struct StudyGridSetting: Codable, Sendable, Hashable {
    public var flag: String
    public var value: StudyFlagValue
}

/// One run of a study.
public struct StudyCell: Sendable, Equatable {
    public var arm: String
    public var point: [StudyGridSetting]
    public var seed: Int
    /// Every train flag of the cell but the runner's (out, seed, test-attacks, test-samples).
    public var flags: [String: StudyFlagValue]

    /// The arm and grid point without the seed: cells of one group differ only by seed.
    public var group: String {
        ([arm] + point.map { "\($0.flag)=\(StudyCell.safe($0.value.description))" }).joined(separator: "_")
    }

    /// The run directory's name: `<group>_seed=<seed>`.
    public var name: String { group + "_seed=\(seed)" }

    static func safe(_ s: String) -> String {
        String(s.map { $0.isASCII && ($0.isLetter || $0.isNumber || "+-.".contains($0)) ? $0 : "-" })
    }

    /// `memloss train` arguments for this cell (flags in name order, then the runner's).
    public func trainArguments(out: String, evaluation: StudyEvaluation) -> [String] {
        var args = ["train"]
        for key in flags.keys.sorted() { args += flags[key]!.arguments(flag: key) }
        args += ["--seed", "\(seed)", "--test-attacks", evaluation.attacks, "--test-samples", "\(evaluation.n)", "--out", out]
        return args
    }
}

public enum StudyError: Error, CustomStringConvertible, Equatable {
    case spec(file: String, field: String, problem: String)
    case directory(path: String, problem: String)

    public var description: String {
        switch self {
        case .spec(let file, let field, let problem):
            return "\(file): \(field.isEmpty ? "" : "field '\(field)': ")\(problem)\nhint: the spec format is in docs/study.md"
        case .directory(let path, let problem):
            return "\(path): \(problem)\nhint: pass the study's --out directory (it holds study-spec.json)"
        }
    }

    static func field(of error: Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, let ctx): return path(ctx.codingPath + [key])
        case DecodingError.typeMismatch(_, let ctx), DecodingError.valueNotFound(_, let ctx), DecodingError.dataCorrupted(let ctx):
            return path(ctx.codingPath)
        default: return ""
        }
    }

    /// `arms[1].flags.mem-beta` from a coding path.
    static func path(_ keys: [CodingKey]) -> String {
        var out = ""
        for k in keys {
            if let i = k.intValue { out += "[\(i)]" } else { out += (out.isEmpty ? "" : ".") + k.stringValue }
        }
        return out
    }

    static func problem(of error: Error) -> String {
        switch error {
        case DecodingError.keyNotFound: return "is missing"
        case DecodingError.typeMismatch(_, let ctx), DecodingError.valueNotFound(_, let ctx), DecodingError.dataCorrupted(let ctx):
            return ctx.debugDescription
        default: return "\(error)"
        }
    }
}
