// ModelsCommand.swift: `memloss models [--json]`: every architecture with its input shape,
// parameter count and forward MACs, computed from the built model (not from a table); and
// `memloss models --state-dict MODEL [--width W] [--json]`: that model's checkpoint entries (PyTorch
// state_dict names, shapes, kinds), which tools/compare_pytorch.py checks its PyTorch twin against.

import ArgumentParser
import Foundation
import Layers
import Models

struct ModelsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "models",
        abstract: "List the model architectures with input shape, parameter count and forward MACs.")

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    @Option(help: "Number of classes.")
    var classes: Int = 10

    @Option(help: "Width multiplier applied to every channel count (1 = reference widths).")
    var width: Double = 1

    @Option(name: .customLong("state-dict"),
            help: "Print this model's state_dict (PyTorch names, shapes, kinds) instead of the list, e.g. resnet18.")
    var stateDict: String?

    func run() throws {
        if let stateDict { return try printStateDict(of: stateDict) }
        var rows: [[String: Any]] = []
        for base in ModelSpec.catalogue {
            var spec = base
            spec.classes = classes
            spec.width = width
            let model = spec.build(seed: 0)
            rows.append([
                "name": spec.name,
                "architecture": spec.architecture.rawValue,
                "input_shape": spec.inputShape,
                "classes": classes,
                "width": width,
                "parameters": model.parameterCount,
                "forward_macs": ModelSpec.forwardMACs(of: model),
            ])
        }
        if json {
            let data = try JSONSerialization.data(withJSONObject: rows, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        print("model".padding(toLength: 18, withPad: " ", startingAt: 0) + "input      "
              + "parameters".leftPadded(14) + "fwd MACs/img".leftPadded(16))
        for r in rows {
            let shape = (r["input_shape"] as! [Int]).map(String.init).joined(separator: "×")
            print((r["name"] as! String).padding(toLength: 18, withPad: " ", startingAt: 0)
                  + shape.padding(toLength: 11, withPad: " ", startingAt: 0)
                  + grouped(r["parameters"] as! Int).leftPadded(14)
                  + grouped(r["forward_macs"] as! Int).leftPadded(16))
        }
    }
}

/// One checkpoint entry as `--state-dict` prints it.
struct StateDictEntry: Encodable {
    let name: String
    let shape: [Int]
    /// `parameter` (trained), `buffer` (BatchNorm running statistics) or `counter` (num_batches_tracked).
    let kind: String
}

/// The `--state-dict` report: the model and its entries in checkpoint order.
struct StateDictReport: Encodable {
    let model: String
    let architecture: String
    let classes: Int
    let width: Double
    let inputShape: [Int]
    let parameters: Int
    let stateDict: [StateDictEntry]

    enum CodingKeys: String, CodingKey {
        case model, architecture, classes, width, parameters
        case inputShape = "input_shape", stateDict = "state_dict"
    }
}

extension ModelsCommand {
    /// Builds `name` at `--width` / `--classes` and prints its state_dict entries.
    func printStateDict(of name: String) throws {
        let spec: ModelSpec
        do { spec = try ModelSpec(parsing: name, classes: classes, width: width) } catch {
            throw ValidationError("--state-dict '\(name)': \(error)")
        }
        let model = spec.build(seed: 0)
        let entries = model.stateEntries(prefix: "").map { e -> StateDictEntry in
            let kind: String
            switch e.reference {
            case .parameter: kind = "parameter"
            case .buffer: kind = "buffer"
            case .counter: kind = "counter"
            }
            return StateDictEntry(name: e.name, shape: e.shape, kind: kind)
        }
        let report = StateDictReport(model: spec.name, architecture: spec.architecture.rawValue, classes: classes,
                                     width: width, inputShape: spec.inputShape, parameters: model.parameterCount,
                                     stateDict: entries)
        if json { return try printJSON(report) }
        print("\(report.model): \(grouped(report.parameters)) parameters, \(entries.count) state_dict entries")
        for e in entries {
            let shape = "[" + e.shape.map(String.init).joined(separator: ", ") + "]"
            print(e.name.padding(toLength: 40, withPad: " ", startingAt: 0) + shape.padding(toLength: 20, withPad: " ", startingAt: 0) + e.kind)
        }
    }
}

/// 11173962 → "11,173,962".
func grouped(_ n: Int) -> String {
    let s = String(n)
    var out = ""
    for (i, ch) in s.reversed().enumerated() {
        if i > 0 && i % 3 == 0 { out.append(",") }
        out.append(ch)
    }
    return String(out.reversed())
}

extension String {
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
