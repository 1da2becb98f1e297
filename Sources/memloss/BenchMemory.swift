// BenchMemory.swift: `memloss bench memory`: parses flags into a MemoryBenchConfig, runs
// MemlossBench.MemoryBench (the MemLoss step with the disk bank vs the in-RAM float32 memory on the same
// model, and every codec on the real attack's δ) and prints its report as text or JSON. Also the flag
// group `bench memory` and `bench scale` share (model, width, ε). Parsing and printing only.

import ArgumentParser
import Foundation
import MemlossBench
import Training

/// `--model`, `--width`, `--epsilon` as `bench memory` and `bench scale` parse them; absent = the
/// bench config's default.
struct BenchModelOptions: ParsableArguments {
    @Option(help: "Model name (must take the data's images; default: the bench's).")
    var model: String?
    @Option(help: "Width multiplier of the model (default: the bench's).")
    var width: Double?
    @Option(help: "ε (L∞) in (0, 1], as a fraction (8/255) or decimal (default: the bench's).")
    var epsilon: String?

    /// ε parsed and checked, or nil when not given.
    func parsedEpsilon() throws -> Float? {
        guard let epsilon else { return nil }
        guard let e = parseEpsilon(epsilon), e > 0, e <= 1 else { throw ValidationError("--epsilon '\(epsilon)' is not in (0, 1]") }
        return e
    }
}

struct BenchMemory: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "memory",
        abstract: "MemLoss step time with the disk bank vs the in-RAM float32 memory, and bytes per entry of real PGD δ per codec.",
        discussion: """
            Defaults: the embedded MNIST subset with SmallCNN×0.5 (--model smallcnn --width 0.5) and TRADES (10 steps,
            ε = 0.3 on 1-channel data, 8/255 otherwise). For CIFAR-sized
            δ pass e.g. --data synthetic:FILE (see `memloss data synth`) --model resnet18 --width 0.25 --epsilon 8/255.
            """)

    @Option(help: "Data source (as for `memloss train`).")
    var data: String = "demo"
    @OptionGroup var shared: BenchModelOptions
    @Option(help: "Batch size.")
    var batch: Int = 64
    @Option(help: "Batches per epoch (the population is the first batches × batch samples).")
    var batches: Int = 12
    @Option(help: "Window K (K epochs fill the memory; the next epoch is measured).")
    var window: Int = 1
    @Option(help: "Codec of the disk bank (f32, f16, q8, q4, levels, q8rc; q8rcn needs --per-sample-start-noise); every codec is also measured on the real δ.")
    var codec: String = "q8"
    @Option(help: "Attack steps (TRADES KL-PGD, step ε/4).")
    var attackSteps: Int = 10
    @Option(help: "Directory for the temporary bank.")
    var scratch: String = NSTemporaryDirectory()
    @Option(help: "Seed.")
    var seed: UInt64 = 1
    @Flag(help: "Print JSON.")
    var json = false
    @Option(help: "Write the float32 δ of the last fill epoch to this .npy file ([count, C, H, W]) and the clean images to <stem>-images.npy (codec analysis).")
    var dumpDeltas: String?
    @Flag(help: "Draw the attack's Gaussian start per sample from (seed, epoch, sample ID) (Tensors.StartNoise), the noise the q8rcn codec regenerates; without it q8rcn predicts nothing.")
    var perSampleStartNoise = false

    func run() throws {
        var c = MemoryBenchConfig()
        c.data = data
        if let model = shared.model { c.model = model }
        if let width = shared.width { c.width = width }
        c.epsilon = try shared.parsedEpsilon()
        c.batch = batch
        c.batches = batches
        c.window = window
        c.codec = codec
        c.attackSteps = attackSteps
        c.scratch = scratch
        c.seed = seed
        c.dumpDeltas = dumpDeltas
        c.perSampleStartNoise = perSampleStartNoise
        let report: MemoryBenchReport
        do { report = try MemoryBench.run(c) } catch let e as MemoryBenchError { throw ValidationError(e.description) }
        if json {
            try printJSON(report)
            return
        }
        printText(report)
    }

    private func printText(_ r: MemoryBenchReport) {
        func ms(_ s: Double) -> String { String(format: "%.1f ms", s * 1000) }
        print("memloss bench memory: \(r.model) on \(r.data) (\(r.shape.map(String.init).joined(separator: "×"))), TRADES "
              + "\(attackSteps)-step attack, ε = \(r.epsilon), batch \(r.batch), K = \(r.window), codec \(r.codec); "
              + "\(r.batches) measured steps per store, interleaved")
        print("  RAM (float32)  step mean \(ms(r.ram.meanStepSeconds)), median \(ms(r.ram.medianStepSeconds)); "
              + "lookup \(ms(r.ram.lookupSeconds)), record \(ms(r.ram.recordSeconds))")
        print("  disk bank      step mean \(ms(r.disk.meanStepSeconds)), median \(ms(r.disk.medianStepSeconds)); "
              + "lookup \(ms(r.disk.lookupSeconds)) (bank wait \(String(format: "%.3f", r.bankWaitSeconds)) s total), "
              + "record \(ms(r.disk.recordSeconds)) (writer blocked \(String(format: "%.3f", r.writerBlockedSeconds)) s)")
        print(String(format: "  disk vs RAM: %+.2f%% step time (target within ±3%%); mem term %.5f, mean |disk − RAM| %.2e; "
                     + "%.0f entries read per step", 100 * r.diskOverhead, r.memTermMean, r.memTermMeanAbsDifference,
                     r.entriesReadPerStep))
        print(String(format: "  bank: %.0f bytes per entry in the last generation (float32 image %d B, %.1f× smaller)",
                     r.bankBytesPerEntry, r.float32ImageBytes, Double(r.float32ImageBytes) / max(r.bankBytesPerEntry, 1)))
        print("\ncodecs on the real δ of the last fill epoch (record + 8-byte index slot; "
              + "single-thread MB/s of float32 δ):")
        print("  codec    B/entry  ×float32  max err    bound      enc MB/s  dec MB/s")
        for c in r.codecs {
            print("  " + c.codec.padding(toLength: 7, withPad: " ", startingAt: 0)
                  + String(format: " %8.0f  %7.3f   %9.2e  %9.2e  %8.0f  %8.0f", c.bytesPerEntry, c.fractionOfFloat32Image,
                           c.maxAbsError, c.errorBound, c.encodeMegabytesPerSecond, c.decodeMegabytesPerSecond))
        }
        if let p = r.peakRSSBytes { print(String(format: "\npeak RSS %.1f MiB", Double(p) / 1_048_576)) }
    }
}
