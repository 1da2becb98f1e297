// TrainConfig.swift: everything a training run needs, as one Codable value: data, model, method,
// optimiser, schedule, evaluation, seeds. The CLI only parses flags into it; every default is
// declared here (or in the method / optimiser configs it holds), once. The resolved value is
// written to the run directory as config.json and read back on --resume.

import Attacks
import Foundation
import Layers
import Models

public struct TrainConfig: Codable, Sendable, Equatable {
    /// Data source: `demo`, `mnist:DIR`, `cifar10:DIR`, `cifar100:DIR[:coarse]`, `svhn:DIR`,
    /// `npy:IMAGES,LABELS`, `synthetic:FILE` (Datasets.DataSource).
    public var data: String
    /// Model name (`smallcnn`, `resnet18`, `preactresnet18`, `wrn-D-K`) and width multiplier.
    public var model: String
    public var width: Double
    /// The training method with its attack and loss weights.
    public var method: MethodConfig
    public var epochs: Int
    public var batchSize: Int
    public var optimizer: SGDConfig
    public var schedule: LearningRateSchedule
    /// Seeds the model initialisation, the data order, augmentation views, the validation split
    /// and the attacks' random starts (each through its own derived stream).
    public var seed: UInt64
    /// Training samples held out for validation (model selection never looks at the test set).
    public var validationSize: Int
    /// Validate every this many epochs (and after the last).
    public var evalEvery: Int
    /// The validation attack (PGD-k) and how many validation samples it runs on.
    public var validationAttack: PGDConfig
    public var validationSamples: Int
    /// Attacks of the final test-set evaluation (AttackSpec names, e.g. "pgd20", "cw") and the
    /// number of test samples (0 = all).
    public var testAttacks: [String]
    public var testSamples: Int
    /// ε as written by the user (e.g. "8/255"), for reports; the float lives in the attack configs.
    public var epsilonText: String
    /// Write a step line to metrics.jsonl every this many steps.
    public var logEvery: Int
    /// Augmentation: nil = the dataset's convention (crop + flip for CIFAR, none for MNIST/SVHN).
    public var augment: Bool?
    /// HAT only: a standard-trained checkpoint of the same architecture (the helper model).
    public var helperCheckpoint: String?
    /// Prefetch depth (batches produced ahead of the compute).
    public var prefetchDepth: Int
    /// Use only the first N samples of the training split (0 = all): quick runs and tests.
    public var trainSamples: Int
    /// The MemLoss term (nil = off): window, weighting, selection and where the memory lives
    /// (the on-disk bank by default, `bank/` in the run directory). With `memLoss.recordOnly` the
    /// bank is written but never read: no term (`--record-memory`).
    public var memLoss: MemLossConfig? = nil
    /// Where the training attack starts (`--attack-init`, docs/warm-start.md): `.random` (the
    /// default), the method's random start; `.memory` warm-starts each sample with an entry from the
    /// memory bank (the MemLoss store, or a K = 1 record-only bank opened for it when the term is
    /// off). The key is written only for `.memory` and a missing key reads as `.random`
    /// (WarmStart.swift, the `AttackInit` coding), so the default has one spelling in memory and in
    /// config.json, and a config without the option keeps the JSON it always had.
    public var attackInit: AttackInit = .random

    /// The default run (`memloss train` with no arguments): TRADES + MemLoss (K = 1, β′ = 2,
    /// difficulty weighting, q8 disk bank) on the embedded MNIST subset with SmallCNN, sized to
    /// finish within 5 minutes on 2 cores.
    ///
    /// ε = 0.3 is the MNIST standard (TRADES, Madry); the attack uses 10 steps of 0.05 instead of
    /// TRADES-MNIST's 40 steps of 0.01 to fit the time budget (the step count × size still crosses
    /// the ball). β = 1 (TRADES MNIST default), momentum 0.9 and no weight decay (TRADES MNIST).
    /// Departures for the budget: SmallCNN at half width, batch 64 (more updates on 3,600
    /// samples), lr 0.05 for 12 epochs then 0.005 for 3.
    public static let demo = TrainConfig(
        data: "demo", model: "smallcnn", width: 0.5,
        method: .trades(TRADESConfig(attack: PGDConfig(epsilon: 0.3, stepSize: 0.05, steps: 10, norm: .linf,
                                                       randomStart: .gaussian(std: 0.001)),
                                     beta: 1)),
        epochs: 15, batchSize: 64,
        optimizer: SGDConfig(learningRate: 0.05, momentum: 0.9, weightDecay: 0),
        schedule: .piecewise(milestones: [13], factors: [0.1]),
        seed: 1, validationSize: 400, evalEvery: 3,
        validationAttack: PGDConfig(epsilon: 0.3, stepSize: 0.05, steps: 10, norm: .linf, randomStart: .uniform),
        validationSamples: 400, testAttacks: ["pgd20"], testSamples: 0, epsilonText: "0.3",
        logEvery: 10, augment: nil, helperCheckpoint: nil, prefetchDepth: 3, trainSamples: 0,
        memLoss: MemLossConfig())

    /// Checks values a run cannot start with; the message names the field and what was expected.
    public func validate() throws(TrainConfigError) {
        if epochs < 1 { throw .invalid(field: "epochs", value: "\(epochs)", expected: "an integer ≥ 1") }
        if batchSize < 1 { throw .invalid(field: "batchSize", value: "\(batchSize)", expected: "an integer ≥ 1") }
        if validationSize < 0 { throw .invalid(field: "validationSize", value: "\(validationSize)", expected: "≥ 0") }
        if evalEvery < 1 { throw .invalid(field: "evalEvery", value: "\(evalEvery)", expected: "an integer ≥ 1") }
        if logEvery < 1 { throw .invalid(field: "logEvery", value: "\(logEvery)", expected: "an integer ≥ 1") }
        if trainSamples < 0 { throw .invalid(field: "trainSamples", value: "\(trainSamples)", expected: "≥ 0 (0 = all)") }
        if prefetchDepth < 1 { throw .invalid(field: "prefetchDepth", value: "\(prefetchDepth)", expected: "≥ 1") }
        let numbers: [(NumericSetting, String, Double?)] = [
            (.width, "width", width), (.learningRate, "optimizer.learningRate", Double(optimizer.learningRate)),
            (.momentum, "optimizer.momentum", Double(optimizer.momentum)),
            (.weightDecay, "optimizer.weightDecay", Double(optimizer.weightDecay)),
            (.beta, "method.beta", method.beta.map(Double.init)),
            (.epsilon, "method.attack.epsilon", method.attack.map { Double($0.epsilon) }),
            (.stepSize, "method.attack.stepSize", method.attack.map { Double($0.stepSize) }),
            (.epsilon, "validationAttack.epsilon", Double(validationAttack.epsilon)),
            (.stepSize, "validationAttack.stepSize", Double(validationAttack.stepSize)),
            (.beta, "memLoss.beta", memLoss.map { Double($0.term.beta) }),
        ]
        for case let (setting, field, value?) in numbers where !setting.accepts(value) {
            throw .invalid(field: field, value: "\(value)", expected: setting.expected)
        }
        if let p = optimizer.problem { throw .invalid(field: "optimizer", value: "\(optimizer)", expected: p) }
        if let a = method.attack, let p = a.problem { throw .invalid(field: "method.attack", value: "\(a)", expected: p) }
        if let p = method.problem { throw .invalid(field: "method", value: method.name, expected: p) }
        if let p = validationAttack.problem {
            throw .invalid(field: "validationAttack", value: "\(validationAttack)", expected: p)
        }
        if attackInit == .memory && method.attack == nil {
            throw .invalid(field: "attackInit", value: "memory",
                           expected: "a method that makes adversarial examples (pgd-at, trades, mart, hat), not \(method.name)")
        }
        if attackInit == .memory, let m = memLoss, m.store.stride > 1 {
            // The warm start reads the newest window slot, generation e − s; "the sample's last
            // stored δ" (e − 1) is not in a strided window (docs/warm-start.md).
            throw .incompatible(
                problem: "attackInit = memory (--attack-init memory) with memLoss.stride = \(m.store.stride) "
                    + "(--mem-stride \(m.store.stride)): the warm start would come from generation e − \(m.store.stride), "
                    + "not from the sample's last stored δ (e − 1)",
                hint: "drop --mem-stride (stride 1), or pass --attack-init random to keep the strided MemLoss window")
        }
        if let m = memLoss {
            if let p = m.problem { throw .invalid(field: p.field, value: p.value, expected: p.expected) }
            if method.attack == nil {
                throw .invalid(field: m.store.recordOnly ? "memLoss.recordOnly" : "memLoss", value: m.store.recordOnly ? "true" : "on",
                               expected: "a method that makes adversarial examples (pgd-at, trades, mart, hat), not \(method.name)")
            }
        }
        for a in testAttacks {
            do { _ = try AttackSpec(parsing: a, epsilon: validationAttack.epsilon) } catch {
                throw .invalid(field: "testAttacks", value: a, expected: "\(error)")
            }
        }
        do { _ = try ModelSpec(parsing: model, width: width) } catch {
            throw .invalid(field: "model", value: model, expected: "\(error)")
        }
    }

    /// Checks the sizes of the opened data against this config, before anything is built from them.
    ///
    /// - Parameters: `trainCount` / `testCount` images of the train and test parts (nil: no test part),
    ///   `classCount` classes of the train labels, `dataName` the dataset's display name.
    /// - Throws: `.dataset` naming the dataset and its count: no training images, fewer than two classes,
    ///   a validation split that leaves nothing to train on, `trainSamples` or `testSamples` beyond what
    ///   the split has.
    public func checkData(trainCount: Int, testCount: Int?, classCount: Int, dataName: String) throws(TrainConfigError) {
        let what = "data '\(data)' (\(dataName))"
        if trainCount == 0 {
            throw .dataset(problem: "\(what) has 0 training images",
                           hint: "check the files the spec names; `memloss data info \(data)` shows their counts")
        }
        if classCount < 2 {
            throw .dataset(problem: "\(what) has labels of \(classCount) class\(classCount == 1 ? "" : "es") only; "
                           + "a classifier needs at least 2",
                           hint: "check the labels file; `memloss data info \(data)` shows the per-class counts")
        }
        if validationSize >= trainCount {
            throw .dataset(problem: "validationSize \(validationSize) would hold out all \(trainCount) training images of \(what)",
                           hint: "pass --validation-size N with N < \(trainCount) (at most \(trainCount / 2) are held out)")
        }
        let left = trainCount - min(validationSize, trainCount / 2)
        if trainSamples > left {
            throw .dataset(problem: "trainSamples \(trainSamples) exceeds the \(left) training images of \(what) "
                           + "(\(trainCount) minus \(trainCount - left) held out for validation)",
                           hint: "pass --train-samples \(left) or less (0 = all)")
        }
        if let testCount {
            if testCount == 0 {
                throw .dataset(problem: "\(what) has 0 test images",
                               hint: "check the test files the spec names; `memloss data info \(data)` shows their counts")
            }
            if testSamples > testCount {
                throw .dataset(problem: "testSamples \(testSamples) exceeds the \(testCount) test images of \(what)",
                               hint: "pass --test-samples \(testCount) or less (0 = all)")
            }
        }
    }

    /// Reads a JSON config file and lays its keys over `base`: keys absent from the file keep
    /// their value in `base`; an unknown key or a value of the wrong type is an error naming it.
    public static func load(file path: String, over base: TrainConfig) throws(TrainConfigError) -> TrainConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .file(path: path, problem: "cannot be read (missing or not a file)")
        }
        let overlay: [String: Any]
        do {
            guard let obj = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw TrainConfigError.file(path: path, problem: "top level must be a JSON object")
            }
            overlay = obj
        } catch let e as TrainConfigError { throw e } catch {
            throw .file(path: path, problem: "is not valid JSON (\(error.localizedDescription))")
        }
        let baseData: Data
        do { baseData = try JSONEncoder().encode(base) } catch { throw .file(path: path, problem: "\(error)") }
        guard var merged = (try? JSONSerialization.jsonObject(with: baseData)) as? [String: Any] else {
            throw .file(path: path, problem: "internal: base config did not encode")
        }
        for (key, value) in overlay {
            guard merged.keys.contains(key) || TrainConfig.optionalKeys.contains(key) else {
                throw .file(path: path, problem: "unknown key '\(key)'; expected one of "
                            + (Array(merged.keys) + TrainConfig.optionalKeys).sorted().joined(separator: ", "))
            }
            merged[key] = value
        }
        do {
            let out = try JSONSerialization.data(withJSONObject: merged)
            return try JSONDecoder().decode(TrainConfig.self, from: out)
        } catch let DecodingError.typeMismatch(_, ctx), let DecodingError.valueNotFound(_, ctx),
                let DecodingError.dataCorrupted(ctx) {
            let field = ctx.codingPath.map(\.stringValue).joined(separator: ".")
            throw .file(path: path, problem: "field '\(field)': \(ctx.debugDescription)")
        } catch let DecodingError.keyNotFound(key, ctx) {
            let field = (ctx.codingPath.map(\.stringValue) + [key.stringValue]).joined(separator: ".")
            throw .file(path: path, problem: "field '\(field)' is missing")
        } catch {
            throw .file(path: path, problem: "\(error)")
        }
    }

    /// Optional keys that the encoder leaves out when nil.
    static let optionalKeys = ["augment", "helperCheckpoint", "memLoss", "attackInit"]
}

// MARK: - Attack settings

/// Attack settings asked for by a front end (the CLI's `--method`, `--epsilon`, `--step-size`,
/// `--attack-steps`, `--val-step-size`, `--val-steps`); nil = not given. Resolved over a config by
/// `TrainConfig.applyAttackSettings(_:)`, which holds the rules.
public struct AttackSettings: Sendable, Equatable {
    /// A method name (`MethodConfig.names`): its preset replaces the configured method.
    public var method: String?
    /// ε in [0, 1] pixel units, and as the user wrote it (e.g. "8/255", kept for reports).
    public var epsilon: Float?
    public var epsilonText: String?
    /// The training attack's step size α and step count.
    public var stepSize: Float?
    public var steps: Int?
    /// The validation attack's (PGD-k) step size and step count.
    public var validationStepSize: Float?
    public var validationSteps: Int?

    public init(method: String? = nil, epsilon: Float? = nil, epsilonText: String? = nil, stepSize: Float? = nil,
                steps: Int? = nil, validationStepSize: Float? = nil, validationSteps: Int? = nil) {
        self.method = method; self.epsilon = epsilon; self.epsilonText = epsilonText
        self.stepSize = stepSize; self.steps = steps
        self.validationStepSize = validationStepSize; self.validationSteps = validationSteps
    }

    public var isEmpty: Bool { self == AttackSettings() }
}

extension TrainConfig {
    /// Lays `settings` over this config's method, training attack and validation attack:
    ///
    /// 1. `method` given: the method's preset (`MethodConfig.defaultConfig(named:)`: its attack's steps,
    ///    random start and α/ε ratio, its β, γ, h) replaces the configured method, at the current ε
    ///    (the configured training ε, or `epsilon` when given), not at the preset's own ε.
    /// 2. The training ε is `epsilon` when given, else the configured one. When the method preset was
    ///    applied or ε changed, α = ε · ratio unless `stepSize` is given, where ratio is the preset's
    ///    α/ε (PGD-AT and HAT 2/255 ÷ 8/255 = 1/4; TRADES and MART 0.007 ÷ 0.031 ≈ 0.226,
    ///    algorithms.md §2.3, §3, §4.2, §5.1) or, without `method`, the configured attack's α/ε.
    ///    `stepSize` and `steps` always win.
    /// 3. The validation attack (PGD-k, uniform start) takes the training ε (or `epsilon` for a method
    ///    without an attack). When its ε changes, its step becomes ε·`PGDConfig.evaluationStepFraction`
    ///    (= ε/4) unless `validationStepSize` is given; `validationSteps` replaces k.
    /// 4. `epsilonText` is `epsilonText` when given, and is rewritten as the validation ε's decimal when it
    ///    does not parse to that ε.
    ///
    /// With no settings nothing changes (the demo keeps ε = 0.3, α = 0.05 for both attacks).
    public mutating func applyAttackSettings(_ settings: AttackSettings) throws(TrainConfigError) {
        if let m = settings.method {
            guard let preset = MethodConfig.defaultConfig(named: m) else {
                throw .invalid(field: "method", value: m, expected: MethodConfig.names.joined(separator: ", "))
            }
            let epsilon = settings.epsilon ?? method.attack?.epsilon ?? validationAttack.epsilon
            method = preset
            if var a = preset.attack {
                a.stepSize = settings.stepSize ?? epsilon * a.stepSize / a.epsilon
                a.epsilon = epsilon
                method.attack = a
            }
        } else if let epsilon = settings.epsilon, var a = method.attack, epsilon != a.epsilon {
            // Keep the configured α/ε ratio (the demo's 0.05 / 0.3 = 1/6); a zero ε has no ratio, so the
            // method's preset gives it.
            let ratio: Float
            if a.epsilon > 0 { ratio = a.stepSize / a.epsilon } else {
                let p = MethodConfig.defaultConfig(named: method.name)?.attack ?? PGDConfig.madryCIFAR
                ratio = p.stepSize / p.epsilon
            }
            a.stepSize = epsilon * ratio
            a.epsilon = epsilon
            method.attack = a
        }
        if let stepSize = settings.stepSize { method.attack?.stepSize = stepSize }
        if let steps = settings.steps { method.attack?.steps = steps }
        if let text = settings.epsilonText { epsilonText = text }

        let validationEpsilon = method.attack?.epsilon ?? settings.epsilon ?? validationAttack.epsilon
        if validationEpsilon != validationAttack.epsilon {
            validationAttack.epsilon = validationEpsilon
            validationAttack.stepSize = validationEpsilon * PGDConfig.evaluationStepFraction
        }
        if let s = settings.validationStepSize { validationAttack.stepSize = s }
        if let k = settings.validationSteps { validationAttack.steps = k }
        // The reports and the checkpoints' `memloss.epsilon` (which `memloss eval` defaults to) must name
        // the ε used: a config file that sets the attack's ε but not `epsilonText` would leave the demo's "0.3".
        if parseEpsilon(epsilonText) != validationAttack.epsilon { epsilonText = "\(validationAttack.epsilon)" }
    }

    /// Two lines naming the resolved training and validation attacks (ε, α, steps, start), for
    /// `memloss train --print-config` and logs.
    public var attackSummary: String {
        "training attack (\(method.name)): " + (method.attack.map { "\($0)" } ?? "none")
            + (method.attack != nil && attackInit == .memory ? ", warm start from the memory bank (--attack-init memory)" : "")
            + "\nvalidation attack: \(validationAttack), on \(validationSamples) samples every \(evalEvery) epochs"
    }
}

// MARK: - Numeric ranges

/// The allowed values of each floating-point setting: one definition for `TrainConfig.validate()`
/// (config files) and the CLI's flag checks (`--lr inf` is refused when the flags are parsed).
public enum NumericSetting: Sendable {
    case learningRate, momentum, weightDecay, beta, gamma, epsilon, stepSize, width

    /// True if `value` is allowed (never for NaN or ±inf).
    public func accepts(_ value: Double) -> Bool {
        guard value.isFinite else { return false }
        switch self {
        case .learningRate, .weightDecay, .beta, .gamma: return value >= 0
        case .momentum: return value >= 0 && value <= 1
        case .epsilon: return value >= 0 && value <= 1
        case .stepSize: return value >= 0
        case .width: return value > 0 && value <= 16
        }
    }

    /// What is allowed, in words.
    public var expected: String {
        switch self {
        case .learningRate, .weightDecay, .beta, .gamma, .stepSize: return "a finite number ≥ 0"
        case .momentum: return "a finite number in [0, 1]"
        case .epsilon: return "a finite number in [0, 1] (or a fraction like 8/255)"
        case .width: return "a finite number in (0, 16]"
        }
    }
}

public enum TrainConfigError: Error, CustomStringConvertible, Equatable {
    case invalid(field: String, value: String, expected: String)
    case file(path: String, problem: String)
    /// The data do not fit the run (empty, one class, a split that leaves nothing).
    case dataset(problem: String, hint: String)
    /// Two settings, each valid alone, that a run cannot combine (named by field and flag).
    case incompatible(problem: String, hint: String)

    public var description: String {
        switch self {
        case .invalid(let f, let v, let e):
            return "config field '\(f)' = \(v) is invalid: expected \(e)\nhint: see `memloss train --help`"
        case .file(let p, let problem):
            return "config file \(p): \(problem)\nhint: write a JSON object with TrainConfig keys; "
                + "`memloss train --print-config` shows a complete example"
        case .dataset(let problem, let hint), .incompatible(let problem, let hint):
            return "\(problem)\nhint: \(hint)"
        }
    }
}

/// Parses ε written as a fraction ("8/255") or a decimal ("0.031").
public func parseEpsilon(_ text: String) -> Float? {
    let parts = text.split(separator: "/")
    if parts.count == 2, let a = Float(parts[0].trimmingCharacters(in: .whitespaces)),
       let b = Float(parts[1].trimmingCharacters(in: .whitespaces)), b != 0 { return a / b }
    if parts.count == 1, let v = Float(text.trimmingCharacters(in: .whitespaces)) { return v }
    return nil
}
