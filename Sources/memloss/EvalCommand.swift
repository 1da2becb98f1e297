// EvalCommand.swift: `memloss eval`: clean and robust accuracy of a checkpoint under named
// attacks, with the per-sample worst case; JSON or a table. The model and data come from the
// checkpoint's metadata unless given.

import ArgumentParser
import Attacks
import Datasets
import Foundation
import Layers
import Models
import Tensors
import Training

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval", abstract: "Evaluate a checkpoint: clean accuracy, robust accuracy per attack, worst case.")

    @Option(help: "A .safetensors checkpoint written by memloss.")
    var checkpoint: String
    @Option(help: "Comma-separated attacks: natural, fgsm, pgd20, pgdN, cw, cwN.")
    var attack: String = "pgd20"
    @Option(help: "Number of test samples (0 = all).")
    var n: Int = 0
    @Option(help: "ε (fraction or decimal); default: the one recorded in the checkpoint.")
    var epsilon: String?
    @Option(help: "Data source; default: the one recorded in the checkpoint (its test split).")
    var data: String?
    @Option(help: "Model name; default: the one recorded in the checkpoint.")
    var model: String?
    @Option(help: "Width multiplier; default: the one recorded in the checkpoint.")
    var width: Double?
    @Option(help: "Seed of the attacks' random starts.")
    var seed: UInt64 = 0
    @Flag(help: "Print JSON.")
    var json = false
    @Option(help: "Also write the JSON result to this file.")
    var output: String?

    func run() throws {
        let url = URL(fileURLWithPath: checkpoint)
        let meta: [String: String]
        do { meta = try SafeTensorsFile.read(from: url).metadata } catch {
            throw ValidationError("\(error)")
        }
        guard let modelName = model ?? meta["memloss.model"] else {
            throw ValidationError("\(checkpoint) has no memloss.model metadata; pass --model and --width")
        }
        let dataSpec = data ?? meta["memloss.data"] ?? "demo"
        let epsText = epsilon ?? meta["memloss.epsilon"] ?? "8/255"
        guard let eps = parseEpsilon(epsText) else { throw ValidationError("--epsilon '\(epsText)' is not a number or fraction") }
        let source: DataSource
        let testSet: Dataset
        do {
            source = try DataSource(parsing: dataSpec)
            testSet = try source.open(source.hasTestSet ? .test : .train)
        } catch { throw ValidationError("\(error)") }
        let spec: ModelSpec
        do {
            spec = try ModelSpec(parsing: modelName, classes: Int(meta["memloss.classes"] ?? "") ?? testSet.classCount,
                                 width: width ?? Double(meta["memloss.width"] ?? "") ?? 1)
        } catch { throw ValidationError("\(error)") }
        let net = spec.build(seed: 0)
        do { _ = try Checkpoint.load(into: net.stateEntries(prefix: ""), from: url) } catch {
            throw ValidationError("\(error)")
        }
        var attacks: [(name: String, spec: AttackSpec)] = []
        for name in attack.split(separator: ",").map(String.init) {
            do { attacks.append((name, try AttackSpec(parsing: name, epsilon: eps))) } catch {
                throw ValidationError("--attack \(name): \(error)")
            }
        }
        let count = n > 0 ? min(n, testSet.count) : testSet.count
        let r = Evaluation.run(model: net, dataset: testSet, ids: Array(0..<count), attacks: attacks,
                               epsilonText: epsText, epsilon: eps, seed: seed)
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try enc.encode(r)
        if let output { try Data(data).write(to: URL(fileURLWithPath: output)) }
        if json {
            print(String(decoding: data, as: UTF8.self))
            return
        }
        print("checkpoint \(checkpoint): \(spec.name) on \(dataSpec) (\(source.hasTestSet ? "test" : "train") split), "
              + "n = \(r.n), ε = \(r.epsilonText) = \(r.epsilon), BN \(r.bnMode), seed \(r.seed)")
        print(String(format: "  natural     %.2f%%", r.cleanAccuracy * 100))
        for a in r.attacks { print(String(format: "  %-10@  %.2f%%", a.attack, a.accuracy * 100)) }
        print(String(format: "  worst case  %.2f%%", r.worstCaseAccuracy * 100))
    }
}

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write a checkpoint's weights as a plain safetensors file with PyTorch state_dict names.")

    @Option(help: "A .safetensors checkpoint written by memloss.")
    var checkpoint: String
    @Option(help: "Output .safetensors file.")
    var out: String

    func run() throws {
        let file: SafeTensorsFile
        do { file = try SafeTensorsFile.read(from: URL(fileURLWithPath: checkpoint)) } catch {
            throw ValidationError("\(error)")
        }
        guard let modelName = file.metadata["memloss.model"] else {
            throw ValidationError("\(checkpoint) has no memloss.model metadata: not a memloss checkpoint")
        }
        // Rebuild the model and load through the checked path, so an exported file always has
        // exactly the architecture's names, shapes and dtypes.
        let spec: ModelSpec
        do {
            spec = try ModelSpec(parsing: modelName, classes: Int(file.metadata["memloss.classes"] ?? "") ?? 10,
                                 width: Double(file.metadata["memloss.width"] ?? "") ?? 1)
        } catch { throw ValidationError("\(error)") }
        let net = spec.build(seed: 0)
        do {
            _ = try Checkpoint.load(into: net.stateEntries(prefix: ""), from: URL(fileURLWithPath: checkpoint))
            try Checkpoint.save(model: net.stateEntries(prefix: ""), to: URL(fileURLWithPath: out),
                                metadata: ["format": "pt", "memloss.model": modelName,
                                           "memloss.width": file.metadata["memloss.width"] ?? "1"])
        } catch { throw ValidationError("\(error)") }
        print("wrote \(out): \(net.stateEntries(prefix: "").count) tensors (\(spec.name)); "
              + "load in PyTorch with safetensors.torch.load_file + model.load_state_dict")
    }
}
