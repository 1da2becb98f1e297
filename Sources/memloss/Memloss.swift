// Memloss.swift: the `memloss` command-line root. Subcommands live one per file; the CLI only
// parses flags into typed configs and calls library code (no defaults or math here).

import ArgumentParser
import Foundation

@main
struct Memloss: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "memloss",
        abstract: "Adversarial training with MemLoss on Linux CPUs (Swift, SIMD + OpenBLAS).",
        subcommands: [TrainCommand.self, EvalCommand.self, ExportCommand.self, ModelsCommand.self, BenchCommand.self,
                      DataCommand.self, StudyCommand.self],
        defaultSubcommand: nil)
}

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure kernel, model and data-pipeline throughput on this machine.",
        subcommands: [BenchConv.self, BenchData.self, BenchBank.self, BenchMemory.self, BenchScale.self, BenchStep.self,
                      BenchAllReduce.self])
}

/// Prints `value` as pretty, key-sorted JSON on stdout (every `--json` of the commands).
func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}
