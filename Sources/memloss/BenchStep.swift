// BenchStep.swift: `memloss bench step`: parses flags into a StepBenchConfig, runs MemlossBench.StepBench
// (the real TrainingStep timed over the data prefetcher, split into phases and kernel families) and
// prints its report as a table or JSON (`medianStepSeconds` at the top level). Parsing and printing only.

import ArgumentParser
import Foundation
import MemlossBench

struct BenchStep: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "step",
        abstract: "Time the whole training step (median of n), split into phases and kernel families.",
        discussion: """
            Times the real TrainingStep on a temporary synthetic set of the model's shape, read through the data
            prefetcher; warm-up steps are not timed. With --memloss a temporary disk bank is first filled with K
            generations by real steps. Example:
              memloss bench step --method trades --model resnet18 --width 0.25 --batch 128 --attack-steps 10 --json
            Run it on an idle machine: the figures mean nothing on a busy one.
            """)

    @Option(help: "Training method: \(StepBench.methods.joined(separator: ", ")) (default trades).")
    var method: String?
    @Option(help: "Model name: smallcnn, resnet18, preactresnet18, wrn-D-K (default smallcnn).")
    var model: String?
    @Option(help: "Width multiplier of the model (default 1).")
    var width: Double?
    @Option(help: "Batch size (default 128).")
    var batch: Int?
    @Option(help: "Steps of the training attack (default 10).")
    var attackSteps: Int?
    @Flag(help: "Add the MemLoss term over a temporary disk bank filled with K generations first.")
    var memloss = false
    @Option(name: .customLong("mem-k"), help: "K, generations of the MemLoss window (default 1).")
    var memK: Int?
    @Option(help: "Timed steps (default 5).")
    var steps: Int?
    @Option(help: "Untimed warm-up steps before them (default 1).")
    var warmup: Int?
    @Flag(inversion: .prefixedNo, help: "Attach the pass and kernel profilers to the timed steps.")
    var profile = true
    @Flag(help: "Print the MEMLOSS_THREADS and OPENBLAS/OMP thread variables in the header.")
    var threadsNote = false
    @Option(help: "Directory for the temporary dataset and bank (default: the system temporary directory).")
    var scratch: String?
    @Flag(help: "Print one JSON object.")
    var json = false

    func run() throws {
        var c = StepBenchConfig()
        if let method { c.method = method }
        if let model { c.model = model }
        if let width { c.width = width }
        if let batch { c.batch = batch }
        if let attackSteps { c.attackSteps = attackSteps }
        c.memLoss = memloss
        if let memK {
            guard memloss else { throw ValidationError("--mem-k needs --memloss") }
            c.memoryWindow = memK
        }
        if let steps { c.steps = steps }
        if let warmup { c.warmup = warmup }
        c.profile = profile
        if let scratch { c.scratch = scratch }
        let report: StepBenchReport
        do { report = try StepBench.run(c) } catch let e as StepBenchError { throw ValidationError(e.description) }
        if json {
            try printJSON(report)
        } else {
            printTable(report)
        }
    }

    /// The thread-count environment variables that change the figures, as `NAME=value` (unset ones omitted).
    private var threadVariables: String {
        let env = ProcessInfo.processInfo.environment
        let set = ["MEMLOSS_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"].compactMap { k in env[k].map { "\(k)=\($0)" } }
        return set.isEmpty ? "none set" : set.joined(separator: " ")
    }

    private func printTable(_ r: StepBenchReport) {
        func ms(_ s: Double) -> String { String(format: "%9.2f ms", s * 1000) }
        func pct(_ s: Double) -> String { String(format: "%6.1f%%", 100 * s / max(r.medianStepSeconds, 1e-12)) }
        let c = r.settings.config
        print("memloss bench step  \(r.date)")
        print("  cpu      \(r.cpu.model) (family \(r.cpu.family)); \(r.workers) workers; \(r.cpu.kernels ?? "kernel width not recorded")")
        print("  blas     \(r.blas)")
        if threadsNote { print("  threads  \(threadVariables)") }
        let attack = r.settings.epsilon.map { e in
            String(format: "%d-step attack, ε = %.4f, α = %.4f", c.attackSteps, e, r.settings.stepSize ?? 0)
        } ?? "no attack"
        print("  settings \(c.method), \(r.settings.model) (\(r.settings.inputShape.map(String.init).joined(separator: "×")), "
              + "\(r.settings.parameters) parameters), batch \(c.batch), \(attack)"
              + (c.memLoss ? ", MemLoss K = \(c.memoryWindow)" : "") + "; \(r.steps) timed step\(r.steps == 1 ? "" : "s") after \(c.warmup) warm-up"
              + (c.profile ? "" : "; profilers off"))
        print(String(format: "  step     median %@  (min %@, max %@), %.1f img/s", ms(r.medianStepSeconds), ms(r.minStepSeconds),
                     ms(r.maxStepSeconds), r.imagesPerSecond))
        print(String(format: "  buffers  %.1f large tensor buffers reused, %.1f newly allocated per step (pool holds %.1f MiB)",
                     r.tensorPool.hitsPerStep, r.tensorPool.missesPerStep, Double(r.tensorPool.retainedBytes) / 1_048_576))
        if let m = r.memory {
            print(String(format: "  memory   %.1f entries used, %.1f present per step", m.entriesUsedPerStep, m.entriesPresentPerStep))
        }
        print("\n  phase (median of the timed steps)     time    share")
        for name in StepBench.phaseNames {
            let s = r.phases[name] ?? 0
            print("  " + name.padding(toLength: 20, withPad: " ", startingAt: 0) + "  " + ms(s) + "  " + pct(s))
        }
        guard !r.kernels.isEmpty else { return }
        print("\n  kernel family (per step)            time    share   calls   GFLOP/s")
        for name in r.kernels.keys.sorted(by: { r.kernels[$0]!.seconds > r.kernels[$1]!.seconds }) {
            let k = r.kernels[name]!
            print("  " + name.padding(toLength: 20, withPad: " ", startingAt: 0) + "  " + ms(k.seconds) + "  " + pct(k.seconds)
                  + String(format: "  %6.0f", k.calls) + "  " + (k.gflops.map { String(format: "%8.1f", $0) } ?? "       –"))
        }
        let kernelSeconds = r.kernels.values.reduce(0) { $0 + $1.seconds }
        print("  " + "all kernels".padding(toLength: 20, withPad: " ", startingAt: 0) + "  " + ms(kernelSeconds) + "  " + pct(kernelSeconds)
              + "  (mean per step; the step column is a median)")
    }
}
