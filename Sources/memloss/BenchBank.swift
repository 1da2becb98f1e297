// BenchBank.swift: `memloss bench bank`: parses flags into a BankBenchConfig, runs MemlossBench.BankBench
// (bytes per entry per codec against a float32 3×32×32 image, codec throughput, the bank's write and
// read throughput, on SurrogatePGD's attack-shaped δ) and prints its report as text or JSON.

import ArgumentParser
import Foundation
import MemlossBench

struct BenchBank: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bank",
        abstract: "Memory bank: bytes per entry per codec, codec and bank read/write throughput.",
        discussion: """
            δ are synthetic (see the file banner); real runs differ, so re-measure with `membank stats` on a
            real bank. Times are single-thread codec times, and warm page cache for the bank read.
            """)

    @Option(help: "Perturbations per flavour.")
    var samples: Int = 2048

    @Option(help: "ε (L∞), in [0,1] pixel units.")
    var epsilon: Float = 8 / 255

    @Option(help: "Batch size of the bank read (prefetcher).")
    var batch: Int = 128

    @Option(help: "Window K of the bank read (K generations are written, then read back).")
    var window: Int = 2

    @Option(help: "Prefetch ring depth.")
    var depth: Int = 3

    @Option(help: "Directory for the temporary bank.")
    var scratch: String = NSTemporaryDirectory()

    @Option(help: "Seed of images, scorer and starts.")
    var seed: UInt64 = 0

    @Flag(help: "Print JSON.")
    var json = false

    func run() throws {
        var c = BankBenchConfig()
        c.samples = samples
        c.epsilon = epsilon
        c.batch = batch
        c.window = window
        c.depth = depth
        c.scratch = scratch
        c.seed = seed
        let report: BankBenchReport
        do { report = try BankBench.run(c) } catch let e as BankBenchError { throw ValidationError(e.description) }
        if json {
            try printJSON(report)
        } else {
            printText(report)
        }
    }

    // MARK: - Text output

    private func printText(_ r: BankBenchReport) {
        func f(_ x: Double, _ digits: Int = 0) -> String { String(format: "%.\(digits)f", x) }
        print("memloss bench bank: \(r.samples) δ per flavour, shape \(r.shape.map(String.init).joined(separator: "×")), "
              + "ε = \(r.epsilon), float32 image = \(r.float32ImageBytes) B, target ≤ \(r.targetBytes) B/entry, lz4 \(r.lz4Version)")
        print("\nflavours (10-step sign-PGD, α = ε/4):")
        for s in r.flavours {
            print("  \(s.flavour.padding(toLength: 9, withPad: " ", startingAt: 0)) distinct q8 levels/entry \(f(s.meanDistinctQ8Levels, 1)), "
                  + "saturated \(f(100 * s.saturatedFraction, 1))%  (generated in \(f(s.generationSeconds, 2)) s)")
        }
        print("\nbytes per entry (record + 8-byte index slot) and single-thread codec throughput (MB/s of float32 δ):")
        print("  flavour   codec    B/entry  payload  ×float32  target  lz4%   max err    bound      enc MB/s  dec MB/s  notes")
        for c in r.codecs {
            var notes = ""
            if let h = c.bitWidthHistogram {
                notes = "widths " + h.enumerated().filter { $0.element > 0 }.map { "\($0.offset)b:\($0.element)" }.joined(separator: " ")
                    + ", palette \(f(c.meanPaletteSize ?? 0, 1))"
                if let l = c.layoutHistogram { notes += ", layouts packed \(l[0]) planes \(l[1]) direct \(l[2])" }
            }
            print("  " + c.flavour.padding(toLength: 9, withPad: " ", startingAt: 0) + " " + c.codec.padding(toLength: 7, withPad: " ", startingAt: 0)
                  + String(format: " %8.0f %8.0f  %7.3f   %@  %4.0f  %9.2e  %9.2e  %8.0f  %8.0f  ",
                           c.bytesPerEntry, c.payloadBytesPerEntry, c.fractionOfFloat32Image, c.meetsTarget ? "yes" : " no",
                           100 * c.lz4Fraction, c.maxAbsError, c.errorBound, c.encodeMegabytesPerSecond, c.decodeMegabytesPerSecond)
                  + notes)
        }
        print("\nbank (flavour \(r.bank.first?.flavour ?? ""), fsync on seal; read through the prefetcher, warm page cache, no compute):")
        for b in r.bank {
            print("  \(b.codec.padding(toLength: 7, withPad: " ", startingAt: 0)) write \(f(b.writeEntriesPerSecond)) entries/s "
                  + "(\(f(b.writeMegabytesPerSecond)) MB/s of δ; append blocked \(f(b.appendBlockedSeconds, 3)) s, seal \(f(b.sealSeconds, 3)) s), "
                  + "segment \(b.segmentBytes) B; read \(f(b.readEntriesPerSecond)) entries/s (\(f(b.readMegabytesPerSecond)) MB/s of δ, "
                  + "\(b.readEntries) entries in \(b.readBatches) batches × K = \(b.generations)), consumer waited \(f(b.consumerWaitSeconds, 3)) s")
        }
        if let peak = r.peakRSSBytes { print("\npeak RSS \(f(Double(peak) / 1_048_576, 1)) MiB (includes all generated δ)") }
    }
}
