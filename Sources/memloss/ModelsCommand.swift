// ModelsCommand.swift: `memloss models [--json]`: every architecture with its input shape,
// parameter count and forward MACs, computed from the built model (not from a table).

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

    func run() throws {
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
