// AutoAttack+State.swift: the cascade's resumable state file (JSON, replaced atomically after
// every batch; format in docs/autoattack.md §State file): what identifies a run (configuration,
// fingerprints of the images, labels and model weights), per-point flags and per-attack records,
// and the errors a bad or mismatching file gives (naming the file and the field).

import Foundation
import Layers
import SystemIO
import Tensors

/// Why an AutoAttack run could not start or continue.
public enum AutoAttackError: Error, CustomStringConvertible, Equatable {
    /// A configuration value is unusable.
    case invalidConfig(field: String, problem: String)
    /// The state file exists but cannot be read or parsed.
    case unreadableState(path: String, reason: String)
    /// The state file was written for a different run.
    case stateMismatch(path: String, field: String, expected: String, found: String)
    /// The state file parses but a value is impossible (wrong length, index out of range, …).
    case corruptState(path: String, field: String, problem: String)
    /// Writing the state file failed.
    case writeFailed(path: String, reason: String)

    public var description: String {
        switch self {
        case .invalidConfig(let field, let problem):
            return "AutoAttack configuration: \(field) \(problem)\nhint: check the --epsilon, --norm and --version flags"
        case .unreadableState(let path, let reason):
            return "\(path): cannot read the AutoAttack state file: \(reason)\n"
                + "hint: delete it to start the evaluation from scratch"
        case .stateMismatch(let path, let field, let expected, let found):
            return "\(path): the AutoAttack state file belongs to another run: field '\(field)' is \(found), "
                + "this run has \(expected)\nhint: pass another --state file, or delete this one to start from scratch"
        case .corruptState(let path, let field, let problem):
            return "\(path): the AutoAttack state file is inconsistent: field '\(field)' \(problem)\n"
                + "hint: delete it to start the evaluation from scratch"
        case .writeFailed(let path, let reason):
            return "\(path): cannot write the AutoAttack state file: \(reason)\n"
                + "hint: check permissions and free disk space of the directory"
        }
    }
}

/// Everything that must agree for a state file to be continued (compared field by field).
struct StateIdentity: Codable, Equatable {
    var epsilon: Float
    var norm: PerturbationNorm
    var preset: AutoAttack.Preset
    var seed: UInt64
    var batchSize: Int
    var apgdIterations: Int
    var fabIterations: Int
    var targetCount: Int
    var squareQueries: Int
    var n: Int
    /// FNV-1a 64 of the image bits and labels, hex.
    var dataFingerprint: String
    /// FNV-1a 64 of every parameter and buffer of the model, hex.
    var modelFingerprint: String
    /// FNV-1a 64 of the per-point stream keys, hex; nil (absent in older files): per-batch streams.
    var pointStreams: String?

    init<M: Classifier>(config c: AutoAttack.Config, images: Tensor, labels: [Int32], model: M, pointKeys: [UInt64]? = nil) {
        epsilon = c.epsilon; norm = c.norm; preset = c.preset; seed = c.seed; batchSize = c.batchSize
        apgdIterations = c.apgdIterations; fabIterations = c.fabIterations; targetCount = c.targetCount
        squareQueries = c.squareQueries; n = labels.count
        var h = Fingerprint()
        h.add(images.scalars)
        for y in labels { h.add(UInt64(UInt32(bitPattern: y))) }
        dataFingerprint = h.hex
        var m = Fingerprint()
        for e in model.stateEntries(prefix: "") {
            switch e.reference {
            case .parameter(let p): m.add(p.value.scalars)
            case .buffer(let b): m.add(b.value.scalars)
            case .counter: break  // BatchNorm batch counters do not change the inference function
            }
        }
        modelFingerprint = m.hex
        pointStreams = pointKeys.map { keys in
            var k = Fingerprint()
            k.add(UInt64(keys.count))
            for key in keys { k.add(key) }
            return k.hex
        }
    }

    /// The first field (in declaration order) whose value differs from `other`'s, with both values.
    func firstDifference(from other: StateIdentity) -> (field: String, mine: String, theirs: String)? {
        for (a, b) in zip(Mirror(reflecting: self).children, Mirror(reflecting: other).children) {
            let (x, y) = ("\(a.value)", "\(b.value)")
            if x != y { return (a.label ?? "?", x, y) }
        }
        return nil
    }
}

/// 64-bit FNV-1a over words (a change detector for the state file, not a cryptographic hash).
struct Fingerprint {
    private(set) var value: UInt64 = 0xCBF2_9CE4_8422_2325

    mutating func add(_ word: UInt64) {
        var w = word
        for _ in 0..<8 {
            value = (value ^ (w & 0xFF)) &* 0x0000_0100_0000_01B3
            w >>= 8
        }
    }

    mutating func add(_ values: [Float]) {
        add(UInt64(values.count))
        for v in values { add(UInt64(v.bitPattern)) }
    }

    var hex: String { String(value, radix: 16) }
}

/// The cascade's progress as stored in the state file.
struct CascadeState: Codable {
    static let format = "memloss.autoattack-state"
    /// 2: Square's p schedule runs on the iteration index as is (AutoAttack's); a version-1 state was
    /// made with the schedule rescaled to 10,000 queries, so resuming it would mix the two.
    static let version = 2

    var format = CascadeState.format
    var version = CascadeState.version
    var identity: StateIdentity
    /// Per point, "1" correct / "0" wrong, as one string (compact for 10,000 points).
    var cleanFlags: String
    var robustFlags: String
    var cleanSeconds: Double
    var records: [AutoAttack.AttackRecord]

    init(identity: StateIdentity, clean: [Bool], robust: [Bool], cleanSeconds: Double, records: [AutoAttack.AttackRecord]) {
        self.identity = identity
        cleanFlags = CascadeState.encode(clean)
        robustFlags = CascadeState.encode(robust)
        self.cleanSeconds = cleanSeconds
        self.records = records
    }

    var clean: [Bool] { cleanFlags.map { $0 == "1" } }
    var robust: [Bool] {
        get { robustFlags.map { $0 == "1" } }
        set { robustFlags = CascadeState.encode(newValue) }
    }

    static func encode(_ flags: [Bool]) -> String { String(flags.map { $0 ? "1" : "0" }) }

    func save(to url: URL) throws(AutoAttackError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data: Data
        do { data = try encoder.encode(self) } catch { throw .writeFailed(path: url.path, reason: "\(error)") }
        do { try AtomicFile.replace([UInt8](data), at: url) } catch { throw .writeFailed(path: url.path, reason: error.description) }
    }

    /// Reads `url` and checks it against `expected`, then checks its internal consistency.
    static func load(from url: URL, expecting expected: StateIdentity) throws(AutoAttackError) -> CascadeState {
        let path = url.path
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .unreadableState(path: path, reason: "cannot be opened")
        }
        if let header = try? JSONDecoder().decode(Header.self, from: data) {
            if header.format != format {
                throw .stateMismatch(path: path, field: "format", expected: format, found: header.format)
            }
            if header.version != version {
                throw .stateMismatch(path: path, field: "version", expected: "\(version)", found: "\(header.version)")
            }
        }
        let state: CascadeState
        do { state = try JSONDecoder().decode(CascadeState.self, from: data) } catch {
            throw .unreadableState(path: path, reason: "not a valid state file (\(error))")
        }
        if let d = expected.firstDifference(from: state.identity) {
            throw .stateMismatch(path: path, field: "identity." + d.field, expected: d.mine, found: d.theirs)
        }
        try state.checkConsistency(path: path)
        return state
    }

    /// Lengths, flag characters, index ranges and subset relations a valid file satisfies.
    func checkConsistency(path: String) throws(AutoAttackError) {
        let n = identity.n
        for (field, flags) in [("cleanFlags", cleanFlags), ("robustFlags", robustFlags)] {
            if flags.count != n || flags.contains(where: { $0 != "0" && $0 != "1" }) {
                throw .corruptState(path: path, field: field, problem: "must be \(n) characters '0'/'1', got \(flags.count)")
            }
        }
        let (c, r) = (clean, robust)
        if (0..<n).contains(where: { r[$0] && !c[$0] }) {
            throw .corruptState(path: path, field: "robustFlags", problem: "marks a point robust that is wrong clean")
        }
        for (k, rec) in records.enumerated() {
            let attacked = Set(rec.attacked)
            if rec.attacked.contains(where: { $0 < 0 || $0 >= n }) || attacked.count != rec.attacked.count {
                throw .corruptState(path: path, field: "records[\(k)].attacked", problem: "must be distinct indices in 0..<\(n)")
            }
            if !rec.broken.allSatisfy({ attacked.contains($0) && !r[$0] }) {
                throw .corruptState(path: path, field: "records[\(k)].broken",
                                    problem: "must list attacked points that are no longer robust")
            }
            if rec.batchesDone < 0 || rec.batchesDone * identity.batchSize > rec.attacked.count + identity.batchSize - 1 {
                throw .corruptState(path: path, field: "records[\(k)].batchesDone", problem: "is out of range (\(rec.batchesDone))")
            }
        }
    }

    /// The two fields checked before the rest is decoded (so an old or foreign file is named as such).
    private struct Header: Decodable {
        var format: String
        var version: Int
    }
}
