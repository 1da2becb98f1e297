// DataCommand.swift: `memloss data info|synth|convert`: inspect a dataset spec, write a synthetic
// `.mlds` set, or convert any dataset to `.mlds`. Parses flags into library values and prints; all
// reading, generation and defaults live in the Datasets module.

import ArgumentParser
import Datasets
import Foundation

extension DatasetPartition: ExpressibleByArgument {}

struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data",
        abstract: "Inspect, generate and convert datasets.",
        discussion: """
            Data specs and the files they read:
              demo                embedded MNIST subset (4,000 train / 1,000 test)
              mnist:DIR           train-images-idx3-ubyte, train-labels-idx1-ubyte,
                                  t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte
              cifar10:DIR         cifar-10-batches-bin/ data_batch_1..5.bin,
                                  test_batch.bin
              cifar100:DIR[:coarse]
                                  cifar-100-binary/ train.bin, test.bin
              svhn:DIR            train_32x32.mat, test_32x32.mat (MATLAB v5)
              npy:IMG,LBL[,TIMG,TLBL][:nhwc|:nchw]
                                  uint8 images .npy, integer labels .npy
              synthetic:FILE[,TEST]
                                  .mlds files (memloss data synth / convert)
              PATH                a directory in one of these layouts, or .mlds
            """,
        subcommands: [DataInfo.self, DataSynth.self, DataConvert.self])
}

struct DataInfo: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info",
        abstract: "Count, shape, classes, per-class counts and format of a dataset.")

    @Argument(help: "Data spec or path (default: the embedded demo set).")
    var spec: String = "demo"

    @Option(help: "Only this part (train or test); default: both when available.")
    var part: DatasetPartition?

    @Flag(help: "Print JSON.")
    var json = false

    func run() throws {
        let source = try DataSource(parsing: spec)
        let parts: [DatasetPartition] = part.map { [$0] } ?? (source.hasTestSet ? [.train, .test] : [.train])
        var summaries: [DatasetSummary] = []
        for p in parts { summaries.append(try source.open(p).summary) }
        if json {
            try printJSON(summaries)
            return
        }
        print("spec: \(source)")
        for (p, s) in zip(parts, summaries) {
            print("")
            print("[\(p.rawValue)] \(s.name)")
            print("  format      \(s.formatName)")
            print("  files       \(s.files.joined(separator: "\n              "))")
            print("  samples     \(s.count)")
            print("  shape       \(s.channels)×\(s.height)×\(s.width) (C×H×W, uint8)")
            print("  classes     \(s.classCount)")
            print("  per class   " + s.classCounts.enumerated().map { "\($0.offset):\($0.element)" }.joined(separator: " "))
            print("  on disk     \(formatBytes(s.bytesOnDisk))")
        }
    }
}

struct DataSynth: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "synth",
        abstract: "Write a learnable synthetic dataset (.mlds), deterministic from the seed.",
        discussion: "Defaults come from SyntheticSpec.standard: \(SyntheticSpec.standard.count) samples, "
            + "\(SyntheticSpec.standard.shape), \(SyntheticSpec.standard.classCount) classes, seed \(SyntheticSpec.standard.seed).")

    @Option(help: "Output file (.mlds).")
    var out: String

    @Option(help: "Number of samples N.")
    var count: Int?

    @Option(help: "Image shape C,H,W (e.g. 3,32,32).")
    var shape: String?

    @Option(help: "Number of classes (1...256).")
    var classes: Int?

    @Option(help: "Generator seed.")
    var seed: UInt64?

    func run() throws {
        var spec = SyntheticSpec.standard
        if let count { spec.count = count }
        if let shape { spec.shape = try parseShape(shape) }
        if let classes { spec.classCount = classes }
        if let seed { spec.seed = seed }
        try spec.validate()
        let total = spec.count
        let start = Date()
        var lastReport = 0
        try SyntheticGenerator(spec).write(to: out) { done in
            if done - lastReport >= max(1, total / 10) || done == total {
                lastReport = done
                FileHandle.standardError.write(Data("  \(done)/\(total) samples\n".utf8))
            }
        }
        let seconds = Date().timeIntervalSince(start)
        let size = spec.fileSize
        print("wrote \(out): \(spec.count) × \(spec.shape), \(spec.classCount) classes, seed \(spec.seed), "
              + "\(formatBytes(size)) in \(String(format: "%.1f", seconds)) s "
              + "(\(String(format: "%.0f", Double(size) / 1e6 / max(seconds, 1e-9))) MB/s)")
    }
}

struct DataConvert: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Write one part of any dataset to the project's mappable .mlds format.")

    @Argument(help: "Data spec or path.")
    var spec: String

    @Option(help: "Which part to convert.")
    var part: DatasetPartition = .train

    @Option(help: "Output file (.mlds).")
    var out: String

    func run() throws {
        let dataset = try DataSource(parsing: spec).open(part)
        let start = Date()
        try dataset.writeMLDS(to: out)
        print("wrote \(out): \(dataset.count) × \(dataset.shape) from \(dataset.name) "
              + "in \(String(format: "%.1f", Date().timeIntervalSince(start))) s")
    }
}

/// Parses "C,H,W" (or "CxHxW").
func parseShape(_ text: String) throws -> ImageShape {
    let parts = text.split(whereSeparator: { $0 == "," || $0 == "x" || $0 == "×" }).map { Int($0.trimmingCharacters(in: .whitespaces)) }
    guard parts.count == 3, let c = parts[0], let h = parts[1], let w = parts[2] else {
        throw ValidationError("--shape must be C,H,W (e.g. 3,32,32), got '\(text)'")
    }
    return ImageShape(channels: c, height: h, width: w)
}

/// "4.30 GB (4,300,000,000 bytes)"-style sizes, decimal units.
func formatBytes(_ n: Int) -> String {
    let units: [(Double, String)] = [(1e9, "GB"), (1e6, "MB"), (1e3, "kB")]
    for (scale, unit) in units where Double(n) >= scale {
        return String(format: "%.2f", Double(n) / scale) + " \(unit) (\(n) bytes)"
    }
    return "\(n) bytes"
}
