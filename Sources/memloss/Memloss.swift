// Memloss.swift: the `memloss` command-line root. Subcommands live one per file; the CLI only
// parses flags into typed configs and calls library code (no defaults or math here). Under an MPI
// launcher, ranks other than 0 print a rejected flag's error once, tagged, without the usage.

import ArgumentParser
import Distributed
import Foundation

@main
struct Memloss: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "memloss",
        abstract: "Adversarial training with MemLoss on Linux CPUs (Swift, SIMD + OpenBLAS).",
        subcommands: [TrainCommand.self, EvalCommand.self, ExportCommand.self, ModelsCommand.self, BenchCommand.self,
                      DataCommand.self, StudyCommand.self],
        defaultSubcommand: nil)

    /// ArgumentParser's entry point, except under an MPI launcher on ranks other than 0: every rank
    /// parses the same flags, so a rejected flag would print the same error and usage R times.
    /// Those ranks print the error's first line once, tagged with the rank (rank 0 prints it all);
    /// every rank exits with the parser's status, normally (no MPI was started for a parse error).
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            guard let rank = Launch.announcedRank(), rank > 0 else { exit(withError: error) }
            let message = fullMessage(for: error)
            if let first = message.split(separator: "\n").first {
                FileHandle.standardError.write(Data("memloss (rank \(rank)): \(first)\n".utf8))
            }
            Foundation.exit(exitCode(for: error).rawValue)
        }
    }
}

/// Prints an error every rank of an MPI job agreed on, from rank 0, as ArgumentParser would, and
/// returns the exit code to throw in its place. It must be printed before the communicator is
/// finalised: the other ranks leave MPI_Finalize (a fence) as soon as rank 0 enters it and exit with
/// status 1, and mpirun then kills rank 0, so a message printed after `finalize()` (by
/// `exit(withError:)`) was lost in about half the runs of a 3-rank refusal.
func printedBeforeFinalize(_ error: Error) -> ExitCode {
    FileHandle.standardError.write(Data((Memloss.fullMessage(for: error) + "\n").utf8))
    return Memloss.exitCode(for: error)
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
