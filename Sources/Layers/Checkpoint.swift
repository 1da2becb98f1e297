// Checkpoint.swift: model state and optimizer/training state as safetensors files, under PyTorch
// state_dict names so the model file loads into `torch.nn.Module.load_state_dict` after conversion
// with `safetensors.torch.load_file`. A resumable checkpoint is a pair of files sharing one ID:
// `<stem>.safetensors` (model) and `<stem>.state.safetensors` (optimizer + TrainingState JSON).
// Loads validate everything before assigning anything. It does not decide when or where to save.

import Foundation
import SystemIO
import Tensors

// MARK: - Training state

/// Everything besides tensors that exact resume needs. Stored as JSON (sorted keys) in the
/// metadata of the training-state file under `Checkpoint.trainingStateKey`.
public struct TrainingState: Codable, Sendable, Equatable {
    /// Completed epochs, i.e. the 0-based epoch to run next.
    public var epoch: Int
    /// Completed optimizer steps (the next step's 0-based iteration for the schedule).
    public var step: Int
    /// Generator states by role (`"data"`, `"dropout"`, …): `SplitMix64.state` values.
    public var rngStates: [String: UInt64]
    /// Shared with the model file's metadata; a mismatch means the two files are not a pair.
    public var checkpointID: String
    /// Free-form values (resolved config JSON, best accuracy so far, …).
    public var extra: [String: String]

    public init(epoch: Int, step: Int, rngStates: [String: UInt64] = [:], checkpointID: String,
                extra: [String: String] = [:]) {
        self.epoch = epoch
        self.step = step
        self.rngStates = rngStates
        self.checkpointID = checkpointID
        self.extra = extra
    }
}

// MARK: - Checkpoint

/// Saving and loading model state (`[StateEntry]`) and optimizer/training state.
///
/// Model file: one tensor per `StateEntry`, named exactly as the entry (PyTorch `state_dict`
/// names), `F32` for parameters and buffers, `I64` with shape `[]` for counters
/// (`num_batches_tracked` is a 0-dim int64 in PyTorch). Metadata: the caller's, plus
/// `format = pt` unless given.
///
/// Training-state file: `SGD.stateEntries()` (`optimizer.step_count`,
/// `optimizer.<name>.momentum_buffer`), and metadata `memloss.training_state` (TrainingState JSON)
/// and `memloss.checkpoint_id`.
public enum Checkpoint {
    /// Metadata key holding the ID shared by a model file and its training-state file.
    public static let checkpointIDKey = "memloss.checkpoint_id"
    /// Metadata key holding the TrainingState JSON in the training-state file.
    public static let trainingStateKey = "memloss.training_state"
    /// Metadata key holding the checksum of a file's tensors (`tensorChecksum`), as 8 lowercase hex
    /// digits. Written by every save, verified by every load when present (files written by other
    /// tools have none and load as before).
    public static let tensorChecksumKey = "memloss.tensors_crc32c"

    /// CRC32C over the tensors of `entries` taken in name order (UTF-8 byte order), each fed as its
    /// name's UTF-8 bytes, one 0x00 byte, then its data bytes. Independent of the order in which a
    /// writer laid the tensors out, so any valid safetensors writer's file can be checked.
    public static func tensorChecksum(_ entries: [SafeTensorsEntry]) -> String {
        var crc = CRC32C()
        for e in entries.sorted(by: { Array($0.name.utf8).lexicographicallyPrecedes(Array($1.name.utf8)) }) {
            crc.update(Array(e.name.utf8) + [0])
            crc.update(e.bytes)
        }
        let hex = String(crc.value, radix: 16)
        return String(repeating: "0", count: 8 - hex.count) + hex
    }

    /// `file` with its tensor checksum added to the metadata.
    static func sealed(_ file: SafeTensorsFile) -> SafeTensorsFile {
        var f = file
        f.metadata[tensorChecksumKey] = tensorChecksum(f.entries)
        return f
    }

    /// The training-state file paired with a model file: `last.safetensors` → `last.state.safetensors`.
    public static func stateURL(forModel url: URL) -> URL {
        let stem = url.pathExtension == "safetensors" ? url.deletingPathExtension() : url
        return stem.deletingLastPathComponent().appendingPathComponent(stem.lastPathComponent + ".state.safetensors")
    }

    /// A fresh checkpoint ID (a UUID; IDs only need to differ between saves, not be reproducible).
    public static func newCheckpointID() -> String { UUID().uuidString }

    // MARK: Model state

    /// Writes the model state atomically to `url`.
    /// - Throws: `CheckpointError.file` on I/O failure or duplicate entry names.
    public static func save(model entries: [StateEntry], to url: URL, metadata: [String: String]) throws(CheckpointError) {
        var meta = metadata
        if meta["format"] == nil { meta["format"] = "pt" }
        let file = sealed(SafeTensorsFile(metadata: meta, entries: entries.map(fileEntry)))
        do { try file.write(to: url) } catch { throw .file(error) }
    }

    /// Loads the model file at `url` into `entries` and returns the file's metadata.
    ///
    /// Every entry must be present with the expected dtype and shape, and the file must hold no
    /// other tensor; the first problem is reported by name (entries in order, then unexpected
    /// file tensors in file order). Nothing is modified unless every check passes.
    @discardableResult
    public static func load(into entries: [StateEntry], from url: URL) throws(CheckpointError) -> [String: String] {
        let file = try read(url)
        let assign = try prepareLoad(into: entries, from: file, source: url.path)
        assign()
        return file.metadata
    }

    // MARK: Training state

    /// Writes the optimizer state and `state` atomically to `url` (normally `stateURL(forModel:)`).
    public static func saveTrainingState(optimizer: SGD, state: TrainingState, to url: URL) throws(CheckpointError) {
        let json: String
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            json = String(decoding: try encoder.encode(state), as: UTF8.self)
        } catch {
            throw .invalidState(file: url.path, reason: "cannot encode TrainingState: \(error)")
        }
        let file = sealed(SafeTensorsFile(metadata: [trainingStateKey: json, checkpointIDKey: state.checkpointID],
                                          entries: optimizer.stateEntries()))
        do { try file.write(to: url) } catch { throw .file(error) }
    }

    /// Loads the training-state file at `url` into `optimizer` and returns the TrainingState.
    /// - Parameter expectedCheckpointID: the model file's `memloss.checkpoint_id`; when given, a
    ///   different ID in this file fails with `pairMismatch` before anything is modified.
    public static func loadTrainingState(into optimizer: SGD, from url: URL,
                                         expectedCheckpointID: String?) throws(CheckpointError) -> TrainingState {
        let file = try read(url)
        let state = try trainingState(in: file, source: url.path)
        if let expectedCheckpointID, expectedCheckpointID != state.checkpointID {
            throw .pairMismatch(modelFile: "<model>", modelID: expectedCheckpointID,
                                stateFile: url.path, stateID: state.checkpointID)
        }
        try optimizer.loadState(from: file, source: url.path)
        return state
    }

    // MARK: Resumable pair

    /// Saves the model to `modelURL` and the optimizer + training state beside it
    /// (`stateURL(forModel:)`), both tagged with `state.checkpointID`. The state file is written
    /// first; a crash between the two writes leaves a pair whose IDs differ, which
    /// `loadResumable` rejects rather than resuming from mismatched halves.
    public static func saveResumable(model: [StateEntry], optimizer: SGD, state: TrainingState,
                                     metadata: [String: String] = [:], to modelURL: URL) throws(CheckpointError) {
        try saveTrainingState(optimizer: optimizer, state: state, to: stateURL(forModel: modelURL))
        var meta = metadata
        meta[checkpointIDKey] = state.checkpointID
        try save(model: model, to: modelURL, metadata: meta)
    }

    /// Loads a pair written by `saveResumable`. Both files are read and every check (pair ID,
    /// names, shapes, dtypes, TrainingState JSON) passes before the model or the optimizer changes.
    public static func loadResumable(into model: [StateEntry], optimizer: SGD,
                                     from modelURL: URL) throws(CheckpointError) -> TrainingState {
        let stateURL = stateURL(forModel: modelURL)
        let modelFile = try read(modelURL)
        let stateFile = try read(stateURL)
        let state = try trainingState(in: stateFile, source: stateURL.path)
        let modelID = modelFile.metadata[checkpointIDKey]
        guard modelID == state.checkpointID else {
            throw .pairMismatch(modelFile: modelURL.path, modelID: modelID, stateFile: stateURL.path, stateID: state.checkpointID)
        }
        let assignModel = try prepareLoad(into: model, from: modelFile, source: modelURL.path)
        try optimizer.loadState(from: stateFile, source: stateURL.path)  // validates fully before assigning
        assignModel()
        return state
    }

    // MARK: - Internals

    /// Reads a safetensors file and, when it carries `tensorChecksumKey`, verifies it.
    static func read(_ url: URL) throws(CheckpointError) -> SafeTensorsFile {
        let file: SafeTensorsFile
        do { file = try SafeTensorsFile.read(from: url) } catch { throw .file(error) }
        if let stored = file.metadata[tensorChecksumKey] {
            let computed = tensorChecksum(file.entries)
            guard stored == computed else { throw .checksumMismatch(file: url.path, stored: stored, computed: computed) }
        }
        return file
    }

    private static func fileEntry(_ entry: StateEntry) -> SafeTensorsEntry {
        switch entry.reference {
        case .parameter(let p): return SafeTensorsEntry(name: entry.name, tensor: p.value)
        case .buffer(let b): return SafeTensorsEntry(name: entry.name, tensor: b.value)
        case .counter(let c): return SafeTensorsEntry(name: entry.name, int64Scalars: [c.value])
        }
    }

    private static func trainingState(in file: SafeTensorsFile, source: String) throws(CheckpointError) -> TrainingState {
        guard let json = file.metadata[trainingStateKey] else { throw .missingMetadata(key: trainingStateKey, file: source) }
        let state: TrainingState
        do {
            state = try JSONDecoder().decode(TrainingState.self, from: Data(json.utf8))
        } catch {
            throw .invalidState(file: source, reason: "\(trainingStateKey) is not a valid TrainingState JSON: \(error)")
        }
        if let id = file.metadata[checkpointIDKey], id != state.checkpointID {
            throw .invalidState(file: source, reason: "\(checkpointIDKey) \(id) differs from the TrainingState's \(state.checkpointID)")
        }
        return state
    }

    /// Validates `file` against `entries` and returns the closure that assigns the values.
    private static func prepareLoad(into entries: [StateEntry], from file: SafeTensorsFile,
                                    source: String) throws(CheckpointError) -> () -> Void {
        var byName: [String: SafeTensorsEntry] = [:]
        for e in file.entries { byName[e.name] = e }
        var expectedNames = Set<String>()
        var assignments: [() -> Void] = []
        for entry in entries {
            precondition(expectedNames.insert(entry.name).inserted, "Checkpoint.load: duplicate state entry \(entry.name)")
            guard let found = byName[entry.name] else { throw .missingTensor(name: entry.name, file: source) }
            let expectedDType: SafeTensorsDType
            if case .counter = entry.reference { expectedDType = .i64 } else { expectedDType = .f32 }
            guard found.dtype == expectedDType else {
                throw .dtypeMismatch(name: entry.name, expected: expectedDType, found: found.dtype, file: source)
            }
            guard found.shape == entry.shape else {
                throw .shapeMismatch(name: entry.name, expected: entry.shape, found: found.shape, file: source)
            }
            do {
                switch entry.reference {
                case .parameter(let p):
                    let t = try found.tensor()
                    assignments.append { p.value = t }
                case .buffer(let b):
                    let t = try found.tensor()
                    assignments.append { b.value = t }
                case .counter(let c):
                    let v = try found.int64Values()[0]
                    assignments.append { c.value = v }
                }
            } catch {
                throw .file(error)
            }
        }
        if let unexpected = file.entries.first(where: { !expectedNames.contains($0.name) }) {
            throw .unexpectedTensor(name: unexpected.name, file: source)
        }
        return { for assign in assignments { assign() } }
    }
}

// MARK: - Errors

/// Why a checkpoint could not be saved or loaded. Descriptions name the file and the tensor and
/// end with a `hint:` line.
public enum CheckpointError: Error, CustomStringConvertible, Equatable {
    /// The file itself is unreadable, corrupt or not safetensors, or could not be written.
    case file(SafeTensorsError)
    /// A tensor the model (or optimizer) expects is not in the file.
    case missingTensor(name: String, file: String)
    /// The file holds a tensor the model (or optimizer) does not have.
    case unexpectedTensor(name: String, file: String)
    case shapeMismatch(name: String, expected: [Int], found: [Int], file: String)
    case dtypeMismatch(name: String, expected: SafeTensorsDType, found: SafeTensorsDType, file: String)
    /// A required metadata key is absent (e.g. the TrainingState JSON).
    case missingMetadata(key: String, file: String)
    /// The training state is malformed.
    case invalidState(file: String, reason: String)
    /// The model file and training-state file carry different checkpoint IDs.
    case pairMismatch(modelFile: String, modelID: String?, stateFile: String, stateID: String)
    /// The tensors do not match the file's `memloss.tensors_crc32c`: a damaged file.
    case checksumMismatch(file: String, stored: String, computed: String)

    public var description: String {
        switch self {
        case .file(let error):
            return error.description
        case .missingTensor(let name, let file):
            return "\(file): tensor \(name) is missing from the checkpoint\n"
                + "hint: the checkpoint was saved from a different model (architecture, width or depth); check the model options."
        case .unexpectedTensor(let name, let file):
            return "\(file): unexpected tensor \(name) (the model has no such entry)\n"
                + "hint: the checkpoint was saved from a different model (architecture, width or depth); check the model options."
        case .shapeMismatch(let name, let expected, let found, let file):
            return "\(file): tensor \(name): expected shape \(expected), found \(found)\n"
                + "hint: the checkpoint was saved with a different width or number of classes; check the model options."
        case .dtypeMismatch(let name, let expected, let found, let file):
            return "\(file): tensor \(name): expected dtype \(expected.rawValue), found \(found.rawValue)\n"
                + "hint: convert the checkpoint to F32 weights and I64 counters (e.g. with tools/check_safetensors.py to inspect it)."
        case .missingMetadata(let key, let file):
            return "\(file): metadata key \(key) is missing\n"
                + "hint: this is not a memloss training-state file; pass the model file, and keep <stem>.state.safetensors beside it."
        case .invalidState(let file, let reason):
            return "\(file): invalid training state: \(reason)\n"
                + "hint: the training-state file is corrupt or from another version; resume from an earlier checkpoint."
        case .checksumMismatch(let file, let stored, let computed):
            return "\(file): the tensors' checksum is \(computed) but the file records \(stored) (\(Checkpoint.tensorChecksumKey)): the file is damaged\n"
                + "hint: resume from or evaluate an intact checkpoint (a run keeps its previous checkpoint in checkpoints/); do not edit checkpoint tensors in place."
        case .pairMismatch(let modelFile, let modelID, let stateFile, let stateID):
            return "\(modelFile) (checkpoint id \(modelID ?? "none")) and \(stateFile) (checkpoint id \(stateID)) are not a pair\n"
                + "hint: a save was interrupted between the two files, or files from different runs were mixed; resume from a consistent pair."
        }
    }
}
