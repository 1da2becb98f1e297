// BenchAllReduce.swift: `memloss bench allreduce`: parses flags, runs DataParallel's measurement of the
// per-step gradient all-reduce under mpirun (Training/DataParallel+Bench.swift) and prints it on rank 0.
// Parsing and printing only.

import ArgumentParser
import Distributed
import Foundation
import Models
import Training

struct BenchAllReduce: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "allreduce",
        abstract: "Time the per-step gradient all-reduce of a model across MPI ranks (bytes, ms per step).",
        discussion: """
            Launch it like training, e.g.
              mpirun -np 2 memloss bench allreduce --model smallcnn --width 0.5 --steps 200
            Without a launcher there is one rank and nothing to reduce (the times are 0). Run it on an idle
            machine: the figures mean nothing on a busy one.
            """)

    @Option(help: "Model name: smallcnn, resnet18, preactresnet18, wrn-D-K.")
    var model = "smallcnn"
    @Option(help: "Width multiplier of the model.")
    var width: Double = 1
    @Option(help: "Number of classes.")
    var classes = 10
    @Option(help: "Timed all-reduce calls.")
    var steps = 100
    @Option(help: "Untimed calls before them.")
    var warmup = 5
    @Flag(help: "Print one JSON object.")
    var json = false

    func run() throws {
        guard steps >= 1, warmup >= 0 else { throw ValidationError("--steps must be ≥ 1 and --warmup ≥ 0") }
        let spec: ModelSpec
        do { spec = try ModelSpec(parsing: model, classes: classes, width: width) } catch { throw ValidationError("\(error)") }
        let communicator: any Communicator
        do { communicator = try makeCommunicator() } catch { throw ValidationError("\(error)") }
        defer { communicator.finalize() }
        let m: AllReduceMeasurement
        do { m = try DataParallel(communicator: communicator).measureGradientAllReduce(spec: spec, steps: steps, warmup: warmup) } catch {
            if communicator.size > 1 { communicator.abort(code: 1, message: "memloss bench allreduce: \(error)") }
            throw ValidationError("\(error)")
        }
        guard communicator.rank == 0 else { return }
        if json { try printJSON(m) } else { print(m.text) }
    }
}
