// CheckpointStore.swift: the atomic checkpoint commit of a run (docs/checkpoints.md). Each commit is a
// generation directory `checkpoints/step-<globalStep>/` holding the model, the optimizer + training
// state, a hard link to the best model so far and `commit.json` (where the run stands and the size and
// CRC32C of every file); the small pointer file `checkpoints/CURRENT` is replaced last and is the only
// commit point. `last.safetensors`, `last.state.safetensors` and `best.safetensors` beside it are hard
// links refreshed after each commit (derived names for users and `memloss eval`). Recovery verifies
// every checksum, removes temporaries and uncommitted generations, and falls back to the newest intact
// generation when the pointer or its files are damaged.
// It knows nothing about epochs or banks beyond the values it stores: the trainer decides what and when.

import Foundation
import Layers
import SystemIO
import Tensors

/// Size and checksum of one file of a commit.
public struct FileDigest: Codable, Sendable, Equatable {
    public var bytes: Int
    /// CRC32C of the whole file, 8 lowercase hex digits.
    public var crc32c: String

    public init(bytes: Int, crc32c: String) { self.bytes = bytes; self.crc32c = crc32c }

    /// The digest of `bytes`.
    public init(of bytes: [UInt8]) {
        self.bytes = bytes.count
        crc32c = FileDigest.hex(CRC32C.checksum(bytes))
    }

    static func hex(_ v: UInt32) -> String {
        let h = String(v, radix: 16)
        return String(repeating: "0", count: 8 - h.count) + h
    }
}

/// A mid-epoch position: the partial epoch's running sums, so the epoch's line after a resume is
/// the one an uninterrupted run writes.
public struct EpochProgress: Codable, Sendable, Equatable {
    /// The epoch's metrics over its first `CommitRecord.epochStep` batches.
    var metrics: EpochMetrics
    /// Seconds of the epoch spent before the checkpoint (wall time is not part of exactness).
    public var elapsedSeconds: Double
    public var dataWaitSeconds: Double
    /// Mid-epoch commits of the epoch so far and their seconds.
    public var checkpoints: Int
    public var checkpointSeconds: Double
}

/// Where a run stands at a commit, besides its tensors (`commit.json` of a generation).
public struct CommitRecord: Codable, Sendable, Equatable {
    public static let currentFormat = "memloss-checkpoint-commit/1"
    public var format = CommitRecord.currentFormat
    /// The generation directory's name (`step-<globalStep, 9 digits>`).
    public var generation = ""
    /// The 0-based epoch in progress (`epochStep > 0`) or to run next (`epochStep == 0`).
    public var epoch: Int
    /// Batches of `epoch` done (0 at an epoch boundary).
    public var epochStep: Int
    /// Optimizer steps done.
    public var globalStep: Int
    /// Length of `metrics.jsonl` at the commit: resume truncates the file to it.
    public var metricsBytes: Int
    public var bestEpoch: Int
    public var bestValidationRobust: Double
    /// Whether `best.safetensors` exists in the generation (a validation has run).
    public var hasBest: Bool
    /// The partial epoch (mid-epoch commits only).
    public var progress: EpochProgress?
    /// The memory's open-generation position (mid-epoch commits of a disk bank only).
    public var memory: MemoryCheckpoint?
    /// Digest of every file of the generation except commit.json.
    public var files: [String: FileDigest] = [:]
    /// Training wall time of the run up to the commit, over all its sessions: a resumed run's
    /// `wall_seconds` and summary continue from it. nil in commits written before it existed.
    public var wallSeconds: Double?

    public init(epoch: Int, epochStep: Int, globalStep: Int, metricsBytes: Int, bestEpoch: Int,
                bestValidationRobust: Double, hasBest: Bool, progress: EpochProgress? = nil, memory: MemoryCheckpoint? = nil) {
        self.epoch = epoch; self.epochStep = epochStep; self.globalStep = globalStep; self.metricsBytes = metricsBytes
        self.bestEpoch = bestEpoch; self.bestValidationRobust = bestValidationRobust; self.hasBest = hasBest
        self.progress = progress; self.memory = memory
    }

    /// Completed epochs.
    public var completedEpochs: Int { epoch }
}

/// The pointer file `CURRENT`: which generation is committed, and the digest of its commit.json.
struct CommitPointer: Codable, Equatable {
    static let currentFormat = "memloss-checkpoint-pointer/1"
    var format = CommitPointer.currentFormat
    var generation: String
    var commit: FileDigest
}

public enum CheckpointStoreError: Error, CustomStringConvertible {
    case write(path: String, reason: String)
    case checkpoint(CheckpointError)

    public var description: String {
        switch self {
        case .write(let p, let r):
            return "cannot write checkpoint \(p): \(r)\n"
                + "hint: the previous checkpoint (checkpoints/CURRENT) is intact; free disk space or fix the directory's permissions, then --resume"
        case .checkpoint(let e): return e.description
        }
    }
}

/// A run's checkpoints directory.
public final class CheckpointStore {
    public static let pointerName = "CURRENT"
    public static let commitName = "commit.json"
    public static let modelName = "model.safetensors"
    public static let bestName = "best.safetensors"

    public let directory: URL
    /// The committed checkpoint (after `recover` or `commit`).
    public private(set) var current: CommitRecord?
    /// What recovery found and did (fallbacks, removed files), for the run's log.
    public private(set) var notes: [String] = []

    public init(directory: URL) { self.directory = directory }

    public var pointerURL: URL { directory.appendingPathComponent(CheckpointStore.pointerName) }
    public func generationURL(_ name: String) -> URL { directory.appendingPathComponent(name) }
    public func modelURL(_ r: CommitRecord) -> URL { generationURL(r.generation).appendingPathComponent(CheckpointStore.modelName) }
    public func bestURL(_ r: CommitRecord) -> URL { generationURL(r.generation).appendingPathComponent(CheckpointStore.bestName) }
    /// The model the final evaluation uses: the best so far, else the latest.
    public func evaluationURL(_ r: CommitRecord) -> URL { r.hasBest ? bestURL(r) : modelURL(r) }

    /// The name of the generation committed at `globalStep`.
    public static func generationName(step: Int) -> String {
        let s = String(step)
        return "step-" + String(repeating: "0", count: max(0, 9 - s.count)) + s
    }

    // MARK: Recovery

    /// Finds the committed checkpoint: `CURRENT`, its commit.json (digest in the pointer) and every
    /// file that commit lists (size and CRC32C). When any of them is damaged (or the pointer is
    /// missing beside several generations), falls back to the newest generation whose commit.json
    /// and files verify (a note says so). Removes `*.tmp` files and generations newer than the one
    /// chosen (uncommitted: a commit was interrupted before its flip) and renames damaged ones to
    /// `<name>.damaged`. Returns nil when no commit exists (then every generation is uncommitted).
    @discardableResult
    public func recover() throws -> CommitRecord? {
        notes = []
        let fm = FileManager.default
        guard fm.fileExists(atPath: directory.path) else { current = nil; return nil }
        removeTemporaries(in: directory)
        let generations = generationNames()
        var chosen: CommitRecord? = nil
        if let data = fm.contents(atPath: pointerURL.path) {
            switch readPointer(data) {
            case .success(let pointer):
                switch verifiedRecord(pointer.generation, expected: pointer.commit) {
                case .success(let r): chosen = r
                case .failure(let reason): notes.append("the committed checkpoint \(pointer.generation) is damaged (\(reason))")
                }
            case .failure(let reason):
                notes.append("\(pointerURL.path) is damaged (\(reason))")
            }
        }
        // Without a pointer, a single generation is a first commit that was interrupted before its
        // flip: not committed. Several generations without a pointer mean the pointer was removed
        // from outside: fall back as for a damaged one.
        let pointerLost = !fm.fileExists(atPath: pointerURL.path) && generations.count > 1
        if pointerLost { notes.append("\(pointerURL.path) is missing") }
        if chosen == nil && (fm.fileExists(atPath: pointerURL.path) || pointerLost) {
            for name in generations.reversed() {
                if case .success(let r) = verifiedRecord(name, expected: nil) {
                    notes.append("resuming from the newest intact checkpoint, \(name)")
                    chosen = r
                    break
                }
            }
        }
        // Everything newer than the choice was never committed (or is damaged): out of the way.
        let chosenStep = chosen.map { $0.globalStep } ?? -1
        for name in generations where name != chosen?.generation {
            guard let step = CheckpointStore.step(ofGeneration: name) else { continue }
            if step > chosenStep {
                let url = generationURL(name)
                if case .success = verifiedRecord(name, expected: nil) {
                    try? fm.removeItem(at: url)  // complete but not committed: the commit was interrupted
                } else if fm.fileExists(atPath: url.appendingPathComponent(CheckpointStore.commitName).path) {
                    let damaged = directory.appendingPathComponent(name + ".damaged")
                    try? fm.removeItem(at: damaged)
                    try? fm.moveItem(at: url, to: damaged)
                    notes.append("kept the damaged checkpoint as \(damaged.lastPathComponent)")
                } else {
                    try? fm.removeItem(at: url)
                }
            }
        }
        if let chosen {
            // The pointer must name the choice (it may be missing or damaged), and the derived names
            // must be this commit's.
            let pointerOK: Bool = {
                guard let data = fm.contents(atPath: pointerURL.path), case .success(let p) = readPointer(data) else { return false }
                return p.generation == chosen.generation
            }()
            if !pointerOK { try writePointer(for: chosen) }
            try refreshLinks(chosen)
        }
        current = chosen
        return chosen
    }

    /// Generation directory names (`step-…`), ascending by step.
    func generationNames() -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { CheckpointStore.step(ofGeneration: $0) != nil }
            .sorted { CheckpointStore.step(ofGeneration: $0)! < CheckpointStore.step(ofGeneration: $1)! }
    }

    static func step(ofGeneration name: String) -> Int? {
        guard name.hasPrefix("step-"), name.count == 14 else { return nil }
        return Int(name.dropFirst(5))
    }

    private func readPointer(_ data: Data) -> Result<CommitPointer, VerifyFailure> {
        guard let p = try? JSONDecoder().decode(CommitPointer.self, from: data) else {
            return .failure(VerifyFailure("not a pointer JSON"))
        }
        guard p.format == CommitPointer.currentFormat else { return .failure(VerifyFailure("format \(p.format)")) }
        guard CheckpointStore.step(ofGeneration: p.generation) != nil else {
            return .failure(VerifyFailure("generation \(p.generation) is not a step-… name"))
        }
        return .success(p)
    }

    struct VerifyFailure: Error, CustomStringConvertible {
        var description: String
        init(_ d: String) { description = d }
    }

    /// The generation's commit record if it and every file it lists verify.
    func verifiedRecord(_ name: String, expected: FileDigest?) -> Result<CommitRecord, VerifyFailure> {
        let dir = generationURL(name)
        let commitURL = dir.appendingPathComponent(CheckpointStore.commitName)
        guard let data = FileManager.default.contents(atPath: commitURL.path) else {
            return .failure(VerifyFailure("\(commitURL.path) is missing"))
        }
        let bytes = [UInt8](data)
        if let expected, FileDigest(of: bytes) != expected {
            return .failure(VerifyFailure("\(commitURL.path): size or CRC32C differs from \(CheckpointStore.pointerName)"))
        }
        let record: CommitRecord
        do { record = try JSONDecoder().decode(CommitRecord.self, from: data) } catch {
            return .failure(VerifyFailure("\(commitURL.path) is not a commit record"))
        }
        guard record.format == CommitRecord.currentFormat, record.generation == name else {
            return .failure(VerifyFailure("\(commitURL.path): format \(record.format), generation \(record.generation)"))
        }
        guard record.files[CheckpointStore.modelName] != nil else {
            return .failure(VerifyFailure("\(commitURL.path) lists no \(CheckpointStore.modelName)"))
        }
        for (file, digest) in record.files.sorted(by: { $0.key < $1.key }) {
            let url = dir.appendingPathComponent(file)
            guard let d = FileManager.default.contents(atPath: url.path) else {
                return .failure(VerifyFailure("\(url.path) is missing"))
            }
            let actual = FileDigest(of: [UInt8](d))
            guard actual == digest else {
                return .failure(VerifyFailure("\(url.path): \(actual.bytes) bytes, CRC32C \(actual.crc32c); "
                                              + "commit.json records \(digest.bytes) bytes, \(digest.crc32c)"))
            }
        }
        return .success(record)
    }

    private func removeTemporaries(in dir: URL) {
        let fm = FileManager.default
        for name in (try? fm.contentsOfDirectory(atPath: dir.path)) ?? [] where name.hasSuffix(".tmp") {
            try? fm.removeItem(at: dir.appendingPathComponent(name))
        }
        for name in generationNames() {
            let g = generationURL(name)
            for f in (try? fm.contentsOfDirectory(atPath: g.path)) ?? [] where f.hasSuffix(".tmp") {
                try? fm.removeItem(at: g.appendingPathComponent(f))
            }
        }
    }

    // MARK: Commit

    /// Commits a checkpoint: writes generation `step-<record.globalStep>` (model and state pair,
    /// the best model's hard link, commit.json with every file's digest), then replaces `CURRENT`,
    /// then refreshes the derived names and deletes generations older than the previous commit.
    /// A failure before `CURRENT` is replaced leaves the previous commit in force and removes the
    /// partial generation.
    /// - Parameters:
    ///   - isBest: this model is the new best (its file becomes the generation's best); otherwise
    ///     the previous commit's best (if any) is linked in.
    @discardableResult
    public func commit(model: [StateEntry], optimizer: SGD, state: TrainingState, metadata: [String: String],
                       bestMetadata: [String: String], isBest: Bool, record: CommitRecord) throws -> CommitRecord {
        let fm = FileManager.default
        var record = record
        record.generation = CheckpointStore.generationName(step: record.globalStep)
        let dir = generationURL(record.generation)
        let previous = current
        do {
            try fm.createDirectory(at: directory, withIntermediateDirectories: true)
            if fm.fileExists(atPath: dir.path) { try fm.removeItem(at: dir) }
            try fm.createDirectory(at: dir, withIntermediateDirectories: false)
        } catch {
            throw CheckpointStoreError.write(path: dir.path, reason: CheckpointStore.reason(error))
        }
        do {
            let modelURL = dir.appendingPathComponent(CheckpointStore.modelName)
            let stateURL = Checkpoint.stateURL(forModel: modelURL)
            do {
                try Checkpoint.saveTrainingState(optimizer: optimizer, state: state, to: stateURL)
                FaultPoint.hit("checkpoint.afterState")
                var meta = metadata
                meta[Checkpoint.checkpointIDKey] = state.checkpointID
                try Checkpoint.save(model: model, to: modelURL, metadata: meta)
                FaultPoint.hit("checkpoint.afterModel")
                let bestURL = dir.appendingPathComponent(CheckpointStore.bestName)
                if isBest {
                    try Checkpoint.save(model: model, to: bestURL, metadata: bestMetadata)
                    record.hasBest = true
                } else if let previous, previous.hasBest {
                    try link(self.bestURL(previous), to: bestURL)
                    record.hasBest = true
                } else {
                    record.hasBest = false
                }
            } catch let e as CheckpointError {
                let firstLine = e.description.split(separator: "\n").first.map(String.init) ?? e.description
                throw CheckpointStoreError.write(path: dir.path, reason: firstLine)
            }
            FaultPoint.hit("checkpoint.afterBest")
            var files: [String: FileDigest] = [:]
            for name in try fm.contentsOfDirectory(atPath: dir.path).sorted() {
                guard let d = fm.contents(atPath: dir.appendingPathComponent(name).path) else {
                    throw CheckpointStoreError.write(path: dir.appendingPathComponent(name).path, reason: "cannot read it back")
                }
                files[name] = FileDigest(of: [UInt8](d))
            }
            record.files = files
            let commitBytes = try CheckpointStore.encode(record)
            do {
                try AtomicFile.replace(commitBytes, at: dir.appendingPathComponent(CheckpointStore.commitName))
                try FileSystem.syncDirectory(dir.path)
            } catch {
                throw CheckpointStoreError.write(path: error.path, reason: error.reason)
            }
            FaultPoint.hit("checkpoint.afterCommitRecord")
            try writePointer(for: record, commitBytes: commitBytes)
        } catch {
            try? fm.removeItem(at: dir)
            throw error
        }
        FaultPoint.hit("checkpoint.afterPointer")
        current = record
        try refreshLinks(record)
        FaultPoint.hit("checkpoint.afterLinks")
        // Keep this commit and the previous one (a fallback if this one is damaged later).
        for name in generationNames() where name != record.generation && name != previous?.generation {
            try? fm.removeItem(at: generationURL(name))
        }
        FaultPoint.hit("checkpoint.afterPrune")
        return record
    }

    /// A file-system error in words (no Foundation error dump).
    static func reason(_ error: Error) -> String {
        if let e = error as? SystemIOError { return e.reason }
        if let e = error as? CheckpointStoreError { return e.description }
        let ns = error as NSError
        if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(underlying.code)))
        }
        return ns.localizedDescription
    }

    static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        return Array(try enc.encode(value)) + [0x0A]
    }

    private func writePointer(for record: CommitRecord, commitBytes: [UInt8]? = nil) throws {
        let bytes: [UInt8]
        if let commitBytes { bytes = commitBytes } else {
            let url = generationURL(record.generation).appendingPathComponent(CheckpointStore.commitName)
            guard let d = FileManager.default.contents(atPath: url.path) else {
                throw CheckpointStoreError.write(path: url.path, reason: "cannot read it")
            }
            bytes = [UInt8](d)
        }
        let pointer = CommitPointer(generation: record.generation, commit: FileDigest(of: bytes))
        do { try AtomicFile.replace(try CheckpointStore.encode(pointer), at: pointerURL) } catch let e as SystemIOError {
            throw CheckpointStoreError.write(path: e.path, reason: e.reason)
        }
    }

    /// `last.safetensors`, `last.state.safetensors` and `best.safetensors` in the checkpoints
    /// directory become hard links to `record`'s files (each replaced atomically).
    private func refreshLinks(_ record: CommitRecord) throws {
        let model = modelURL(record)
        try link(model, to: directory.appendingPathComponent("last.safetensors"))
        try link(Checkpoint.stateURL(forModel: model), to: directory.appendingPathComponent("last.state.safetensors"))
        let best = directory.appendingPathComponent("best.safetensors")
        if record.hasBest { try link(bestURL(record), to: best) } else { try? FileManager.default.removeItem(at: best) }
        do { try FileSystem.syncDirectory(directory.path) } catch {
            throw CheckpointStoreError.write(path: error.path, reason: error.reason)
        }
    }

    /// Replaces `target` with a hard link to `source` (a copy where the file system has no links).
    private func link(_ source: URL, to target: URL) throws {
        let fm = FileManager.default
        let tmp = target.path + ".tmp"
        try? fm.removeItem(atPath: tmp)
        do {
            do { try fm.linkItem(atPath: source.path, toPath: tmp) } catch { try fm.copyItem(atPath: source.path, toPath: tmp) }
            try FileSystem.rename(tmp, to: target.path)
            // rename(2) of two names of one inode does nothing and leaves both: drop the temporary.
            if fm.fileExists(atPath: tmp) { try fm.removeItem(atPath: tmp) }
        } catch {
            try? fm.removeItem(atPath: tmp)
            throw CheckpointStoreError.write(path: target.path, reason: CheckpointStore.reason(error))
        }
    }
}

// MARK: - Interval

/// How often the trainer commits a mid-epoch checkpoint: every N optimizer steps, every T seconds
/// of training, or never (epoch ends only). Parsed from `--checkpoint-every`: `500` (steps),
/// `30s`, `10m`, `2h`, `off`.
public enum CheckpointInterval: Sendable, Equatable, CustomStringConvertible {
    case steps(Int)
    case seconds(Double)
    case off

    /// The default: every 10 minutes (a kill loses at most that much work).
    public static let defaultInterval = CheckpointInterval.seconds(600)

    public init?(parsing text: String) {
        let t = text.trimmingCharacters(in: .whitespaces).lowercased()
        if t == "off" || t == "0" { self = .off; return }
        if let n = Int(t) { guard n > 0 else { return nil }; self = .steps(n); return }
        let units: [(String, Double)] = [("s", 1), ("m", 60), ("h", 3600)]
        for (suffix, scale) in units where t.hasSuffix(suffix) {
            guard let v = Double(t.dropLast()), v.isFinite, v > 0 else { return nil }
            self = .seconds(v * scale)
            return
        }
        return nil
    }

    /// Whether a checkpoint is due `steps` steps and `seconds` seconds after the last one.
    public func isDue(steps: Int, seconds: Double) -> Bool {
        switch self {
        case .steps(let n): return steps >= n
        case .seconds(let s): return seconds >= s
        case .off: return false
        }
    }

    public var description: String {
        switch self {
        case .steps(let n): return "\(n) steps"
        case .seconds(let s): return s.truncatingRemainder(dividingBy: 60) == 0 ? "\(Int(s / 60))m" : "\(s)s"
        case .off: return "off"
        }
    }
}
