// BenchConv.swift: `memloss bench conv` — GFLOP/s of Conv2D.forward / backwardInput / backwardWeight on
// every distinct conv shape of ResNet-18 (CIFAR) and SmallCNN, next to BLAS.gemm on the equivalent
// single GEMM, all measured in one run. Only measures and prints; the whole-model images/s section
// (`benchWholeModel()`) is appended later at the marked extension point.

import ArgumentParser
import Dispatch
import Foundation
import Kernels
import Models
import Tensors

struct BenchConv: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conv",
        abstract: "Conv2D kernel throughput (GFLOP/s) on ResNet-18 and SmallCNN shapes vs. BLAS sgemm.")

    @Flag(help: "Print one JSON object instead of a table.")
    var json = false

    @Option(help: "Batch size N of every shape (default \(ConvBenchConfig.standard.batch)).")
    var batch: Int?

    @Option(name: .customLong("min-time"),
            help: "Seconds of timed repetitions per kernel and shape; the best repetition counts (default \(ConvBenchConfig.standard.minTime)).")
    var minTime: Double?

    @Option(name: .customLong("model"), parsing: .singleValue,
            help: "Only the shapes of this model (resnet18, resnet18×0.25, smallcnn); repeatable. Default: all.")
    var models: [String] = []

    @Flag(name: .customLong("skip-whole-model"), help: "Skip the whole-model section.")
    var skipWholeModel = false

    @Flag(name: .customLong("dispatch-table"),
          help: "After the tables, print the measured per-shape choices as Swift entries for Conv2D.measuredChoices.")
    var dispatchTable = false

    @Flag(help: "Smoke test: batch \(ConvBenchConfig.quick.batch), min-time \(ConvBenchConfig.quick.minTime) unless given.")
    var quick = false

    func run() throws {
        var config = quick ? ConvBenchConfig.quick : ConvBenchConfig.standard
        if let batch { config.batch = batch }
        if let minTime { config.minTime = minTime }
        guard config.batch >= 1 else { throw ValidationError("--batch must be at least 1") }
        guard config.minTime >= 0 else { throw ValidationError("--min-time must not be negative") }

        var report = ConvBenchReport(
            blasConfiguration: BLAS.configuration,
            workers: Parallel.workerCount,
            date: ISO8601DateFormatter().string(from: Date()),
            batch: config.batch,
            minTimeSeconds: config.minTime,
            sgemmPolicy: ConvBench.sgemmPolicy,
            kernels: [],
            modelTotals: [])
        if !json { printHeader(report) }

        ConvBench.warmUp()
        // Section 1: per-shape kernels. Rows are printed as soon as they are measured.
        if !json { print(ConvBenchRow.tableHeader) }
        let known = Set(ConvBench.shapes(batch: 1).map(\.model))
        for name in models where !known.contains(name) {
            throw ValidationError("--model \(name): expected one of \(known.sorted().joined(separator: ", "))")
        }
        for shape in ConvBench.shapes(batch: config.batch) where models.isEmpty || models.contains(shape.model) {
            let row = ConvBench.measure(shape, minTime: config.minTime)
            report.kernels.append(row)
            if !json { print(row.tableLine); fflush(stdout) }
        }
        // Section 2: per-model totals over every conv layer (shapes weighted by how often they occur).
        report.modelTotals = ConvBenchTotal.totals(of: report.kernels)
        if dispatchTable && !json {
            print("")
            print("// Conv2D.measuredChoices\(WideVector.scalarCount == 16 ? "AVX512" : "AVX2") from this run (direct where gemm took ≥ \(ConvBench.directMargin)× its time, then winograd where that choice took ≥ \(ConvBench.directMargin)× its):")
            for line in ConvBench.dispatchEntries(report.kernels) { print(line) }
        }
        if !json {
            print("")
            print(ConvBenchTotal.tableHeader)
            for total in report.modelTotals { print(total.tableLine) }
        }

        // Section 3: whole models, a full training step (train-mode forward, CE, backward to
        // parameters and input) at the same batch.
        if !json {
            print("")
            print("whole model, training step (fwd + CE + bwd to params and input), batch \(config.batch):")
            print("model              s/step    img/s   GF/s (3×fwd MACs)   fwd-only img/s")
        }
        let steps = quick ? 1 : 3
        for spec in [ModelSpec(.resNet18), ModelSpec(.smallCNN)] where !skipWholeModel {
            let r = benchWholeModel(spec, batch: config.batch, steps: steps)
            report.wholeModel.append(r)
            if !json {
                print(String(format: "%-16@ %8.3f %8.1f %12.1f %16.1f", r.model, r.secondsPerStep, r.imagesPerSecond,
                             r.gflops, r.forwardOnlyImagesPerSecond))
                fflush(stdout)
            }
        }

        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        }
    }

    private func printHeader(_ report: ConvBenchReport) {
        print("memloss bench conv — \(report.date)")
        print("BLAS: \(report.blasConfiguration)")
        print("direct kernels: \(VectorISA.description)")
        print("workers: \(report.workers); batch \(report.batch); best of repetitions over ≥ \(report.minTimeSeconds) s per cell")
        print("GF/s = 2·MACs / time; bwd-input and bwd-weight cost the same MACs as forward; fwd includes the shift + ReLU epilogue.")
        print("sgemm: \(report.sgemmPolicy)")
        print("")
    }
}

// MARK: - Configuration and report

/// Batch size and timing budget of the conv benchmark; the CLI only overrides these.
struct ConvBenchConfig {
    /// ResNet-18 training batch of this project.
    var batch = 128
    /// Seconds of timed repetitions per cell; about 3–5 repetitions of the largest shapes.
    var minTime = 0.5

    static let standard = ConvBenchConfig()
    static let quick = ConvBenchConfig(batch: 16, minTime: 0.05)
}

/// Everything `bench conv` measured, in one JSON-encodable value.
struct ConvBenchReport: Codable {
    var blasConfiguration: String
    var workers: Int
    var date: String
    var batch: Int
    var minTimeSeconds: Double
    var sgemmPolicy: String
    var kernels: [ConvBenchRow]
    var modelTotals: [ConvBenchTotal]
    var wholeModel: [WholeModelResult] = []
}

/// One conv shape: MACs and GFLOP/s of the three kernels and of the equivalent GEMM.
struct ConvBenchRow: Codable {
    var model: String
    var layer: String
    /// Number of conv layers of `model` with this shape.
    var uses: Int
    var geometry: String
    var n, c, h, w, k, r, s, stride, padding, p, q: Int
    var macs: Int
    /// GEMM dimensions of the equivalent single product: M = K, N = batch·P·Q, K = C·R·S.
    var gemmM, gemmN, gemmK: Int
    /// Best wall time of one call, seconds.
    var forwardSeconds, backwardInputSeconds, backwardWeightSeconds, sgemmSeconds: Double
    var forwardGFLOPS: Double
    var backwardInputGFLOPS: Double
    var backwardWeightGFLOPS: Double
    var sgemmGFLOPS: Double
    var forwardPercentOfSgemm: Double
    /// The direct SIMD kernel (Conv2D+Direct.swift) on the same shape; backward-input is nil where the
    /// direct kernel does not apply (stride 2). The fields above are the im2col + sgemm path.
    var directForwardSeconds: Double
    var directBackwardInputSeconds: Double?
    var directForwardGFLOPS: Double
    var directBackwardInputGFLOPS: Double?
    var directBackwardWeightSeconds: Double
    var directBackwardWeightGFLOPS: Double
    /// Winograd F(2×2, 3×3) (Conv2D+Winograd.swift) on the same shape; nil where it does not apply.
    var winogradForwardSeconds: Double?
    var winogradBackwardInputSeconds: Double?
    var winogradForwardGFLOPS: Double?
    var winogradBackwardInputGFLOPS: Double?
    /// What `Conv2D.algorithm(for:_:)` runs for this shape (the committed table or the rule).
    var dispatchedForward: ConvAlgorithm
    var dispatchedBackwardInput: ConvAlgorithm
    var dispatchedBackwardWeight: ConvAlgorithm

    static var tableHeader: String {
        let head = pad("model", 9) + pad("layer", 20) + pad("shape", 40) + lpad("GMAC", 7)
        return head + lpad("fwd", 8) + lpad("bwd-in", 8) + lpad("bwd-w", 8) + lpad("sgemm", 8) + lpad("fwd/sgemm", 11)
            + lpad("d-fwd", 8) + lpad("d-bwd-in", 9) + lpad("d-bwd-w", 8) + lpad("w-fwd", 8) + lpad("w-bwd-in", 9)
            + lpad("use fwd/in/w", 26) + "\n" + String(repeating: "-", count: 187)
    }

    var tableLine: String {
        let gmac = Double(macs) / 1e9
        let head = Self.pad(model, 9) + Self.pad(layer, 20) + Self.pad(geometry, 40) + Self.lpad(Self.fixed(gmac, 2), 7)
        let rates = Self.lpad(Self.fixed(forwardGFLOPS, 1), 8) + Self.lpad(Self.fixed(backwardInputGFLOPS, 1), 8)
            + Self.lpad(Self.fixed(backwardWeightGFLOPS, 1), 8) + Self.lpad(Self.fixed(sgemmGFLOPS, 1), 8)
        let direct = Self.lpad(Self.fixed(directForwardGFLOPS, 1), 8)
            + Self.lpad(directBackwardInputGFLOPS.map { Self.fixed($0, 1) } ?? "-", 9)
            + Self.lpad(Self.fixed(directBackwardWeightGFLOPS, 1), 8)
            + Self.lpad(winogradForwardGFLOPS.map { Self.fixed($0, 1) } ?? "-", 8)
            + Self.lpad(winogradBackwardInputGFLOPS.map { Self.fixed($0, 1) } ?? "-", 9)
        let use = Self.lpad([dispatchedForward, dispatchedBackwardInput, dispatchedBackwardWeight]
            .map(\.rawValue).joined(separator: "/"), 26)
        return head + rates + Self.lpad(Self.fixed(forwardPercentOfSgemm, 0) + "%", 11) + direct + use
    }

    static func fixed(_ x: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", x) }
    static func pad(_ s: String, _ width: Int) -> String {
        s.count >= width ? s + " " : s + String(repeating: " ", count: width - s.count)
    }
    static func lpad(_ s: String, _ width: Int) -> String {
        s.count >= width ? " " + s : String(repeating: " ", count: width - s.count) + s
    }
}

/// All conv layers of one model at the benchmark batch: summed best times (each shape × its `uses`)
/// and the resulting GFLOP/s — the conv share of one training step (forward + both backward passes).
struct ConvBenchTotal: Codable {
    var model: String
    var convLayers: Int
    var macs: Int
    var forwardMilliseconds, backwardInputMilliseconds, backwardWeightMilliseconds, sgemmMilliseconds: Double
    var forwardGFLOPS, backwardInputGFLOPS, backwardWeightGFLOPS, sgemmGFLOPS: Double

    static func totals(of rows: [ConvBenchRow]) -> [ConvBenchTotal] {
        var models: [String] = []
        for row in rows where !models.contains(row.model) { models.append(row.model) }
        return models.map { model in
            let mine = rows.filter { $0.model == model }
            func sum(_ value: (ConvBenchRow) -> Double) -> Double {
                mine.reduce(0) { $0 + Double($1.uses) * value($1) }
            }
            let macs = mine.reduce(0) { $0 + $1.uses * $1.macs }
            let flop = 2 * Double(macs)
            let (fwd, bin, bw, gemm) = (sum(\.forwardSeconds), sum(\.backwardInputSeconds),
                                        sum(\.backwardWeightSeconds), sum(\.sgemmSeconds))
            return ConvBenchTotal(
                model: model, convLayers: mine.reduce(0) { $0 + $1.uses }, macs: macs,
                forwardMilliseconds: 1e3 * fwd, backwardInputMilliseconds: 1e3 * bin,
                backwardWeightMilliseconds: 1e3 * bw, sgemmMilliseconds: 1e3 * gemm,
                forwardGFLOPS: flop / fwd / 1e9, backwardInputGFLOPS: flop / bin / 1e9,
                backwardWeightGFLOPS: flop / bw / 1e9, sgemmGFLOPS: flop / gemm / 1e9)
        }
    }

    static var tableHeader: String {
        let head = ConvBenchRow.pad("model totals", 16) + ConvBenchRow.lpad("layers", 7) + ConvBenchRow.lpad("GMAC", 8)
        return head + ConvBenchRow.lpad("fwd ms", 9) + ConvBenchRow.lpad("bwd-in ms", 11) + ConvBenchRow.lpad("bwd-w ms", 10)
            + ConvBenchRow.lpad("sgemm ms", 10) + "   GF/s fwd / bwd-in / bwd-w / sgemm"
    }

    var tableLine: String {
        let head = ConvBenchRow.pad(model, 16) + ConvBenchRow.lpad("\(convLayers)", 7)
            + ConvBenchRow.lpad(ConvBenchRow.fixed(Double(macs) / 1e9, 2), 8)
        let times = ConvBenchRow.lpad(ConvBenchRow.fixed(forwardMilliseconds, 1), 9)
            + ConvBenchRow.lpad(ConvBenchRow.fixed(backwardInputMilliseconds, 1), 11)
            + ConvBenchRow.lpad(ConvBenchRow.fixed(backwardWeightMilliseconds, 1), 10)
            + ConvBenchRow.lpad(ConvBenchRow.fixed(sgemmMilliseconds, 1), 10)
        let rates = [forwardGFLOPS, backwardInputGFLOPS, backwardWeightGFLOPS, sgemmGFLOPS]
            .map { ConvBenchRow.fixed($0, 1) }.joined(separator: " / ")
        return head + times + "   " + rates
    }
}

// MARK: - Measurement

enum ConvBench {
    struct Shape {
        var model: String
        var layer: String
        var geometry: ConvGeometry
        /// How many conv layers of the model have this shape (for the per-model totals).
        var uses: Int
    }

    static let sgemmPolicy = "BLAS.gemm (1 BLAS thread) on the equivalent single GEMM M=K, N=batch·P·Q, K=C·R·S, "
        + "split into one contiguous column block of N per worker and run with Parallel.forEachChunk (all cores)"

    /// The distinct conv shapes of ResNet-18 (CIFAR variant, 32×32 input) and SmallCNN (28×28 input).
    static func shapes(batch n: Int) -> [Shape] {
        resNet18Shapes(batch: n, width: 1) + resNet18Shapes(batch: n, width: 0.25) + smallCNNShapes(batch: n)
    }

    /// The distinct conv shapes of ResNet-18 (CIFAR variant, 32×32 input) at a channel width factor.
    static func resNet18Shapes(batch n: Int, width: Double) -> [Shape] {
        let model = width == 1 ? "resnet18" : "resnet18×\(width)"
        let (c1, c2, c3, c4) = (scaled(64, width), scaled(128, width), scaled(256, width), scaled(512, width))
        func conv(_ layer: String, c: Int, hw: Int, k: Int, kernel: Int, stride: Int, padding: Int, uses: Int = 1) -> Shape {
            Shape(model: model, layer: layer,
                  geometry: ConvGeometry(n: n, c: c, h: hw, w: hw, k: k, kernel: kernel, stride: stride, padding: padding),
                  uses: uses)
        }
        return [
            conv("conv1 (stem)", c: 3, hw: 32, k: c1, kernel: 3, stride: 1, padding: 1),
            conv("layer1 3×3", c: c1, hw: 32, k: c1, kernel: 3, stride: 1, padding: 1, uses: 4),
            conv("layer2.0.conv1 s2", c: c1, hw: 32, k: c2, kernel: 3, stride: 2, padding: 1),
            conv("layer2 3×3", c: c2, hw: 16, k: c2, kernel: 3, stride: 1, padding: 1, uses: 3),
            conv("layer3.0.conv1 s2", c: c2, hw: 16, k: c3, kernel: 3, stride: 2, padding: 1),
            conv("layer3 3×3", c: c3, hw: 8, k: c3, kernel: 3, stride: 1, padding: 1, uses: 3),
            conv("layer4.0.conv1 s2", c: c3, hw: 8, k: c4, kernel: 3, stride: 2, padding: 1),
            conv("layer4 3×3", c: c4, hw: 4, k: c4, kernel: 3, stride: 1, padding: 1, uses: 3),
            conv("layer2.0 shortcut", c: c1, hw: 32, k: c2, kernel: 1, stride: 2, padding: 0),
            conv("layer3.0 shortcut", c: c2, hw: 16, k: c3, kernel: 1, stride: 2, padding: 0),
            conv("layer4.0 shortcut", c: c3, hw: 8, k: c4, kernel: 1, stride: 2, padding: 0),
        ]
    }

    /// Channels of a layer at a width factor, as the models scale them (at least 1).
    static func scaled(_ channels: Int, _ width: Double) -> Int { max(1, Int((Double(channels) * width).rounded())) }

    /// The conv shapes of SmallCNN (28×28 input, width 1).
    static func smallCNNShapes(batch n: Int) -> [Shape] {
        func conv(_ model: String, _ layer: String, c: Int, hw: Int, k: Int, kernel: Int, stride: Int, padding: Int,
                  uses: Int = 1) -> Shape {
            Shape(model: model, layer: layer,
                  geometry: ConvGeometry(n: n, c: c, h: hw, w: hw, k: k, kernel: kernel, stride: stride, padding: padding),
                  uses: uses)
        }
        return [
            conv("smallcnn", "conv1", c: 1, hw: 28, k: 32, kernel: 3, stride: 1, padding: 0),
            conv("smallcnn", "conv2", c: 32, hw: 26, k: 32, kernel: 3, stride: 1, padding: 0),
            conv("smallcnn", "conv3", c: 32, hw: 12, k: 64, kernel: 3, stride: 1, padding: 0),
            conv("smallcnn", "conv4", c: 64, hw: 10, k: 64, kernel: 3, stride: 1, padding: 0),
        ]
    }

    /// Runs every kernel and a GEMM once on several shapes (small batch), so that no measured cell pays
    /// for first-touch page faults or OpenBLAS's cold-shape slowdown (systems.md §2).
    static func warmUp() {
        let picks = [0, 1, 3, 5, 7]
        let all = shapes(batch: 4)
        for index in picks {
            var buffers = Buffers(all[index].geometry)
            buffers.forward()
            buffers.backwardInput()
            buffers.backwardWeight()
        }
        for index in picks {
            let g = all[index].geometry
            var gemm = GemmBuffers(m: g.k, n: g.n * g.p * g.q, k: g.c * g.r * g.s)
            gemm.run()
        }
    }

    /// Measures one shape: three conv kernels and the equivalent GEMM.
    static func measure(_ shape: Shape, minTime: Double) -> ConvBenchRow {
        let g = shape.geometry
        let flop = 2 * Double(g.forwardMACs)
        // Conv buffers are freed before the GEMM's (layer1's B alone is 300 MB at batch 128).
        let (forward, backwardInput, backwardWeight, directForward, directBackwardInput, winogradForward, winogradBackwardInput):
            (Double, Double, Double, Double, Double?, Double?, Double?) = {
            var buffers = Buffers(g)
            return (bestSeconds(minTime: minTime) { buffers.forward(.gemm) },
                    bestSeconds(minTime: minTime) { buffers.backwardInput(.gemm) },
                    bestSeconds(minTime: minTime) { buffers.backwardWeight(.gemm) },
                    bestSeconds(minTime: minTime) { buffers.forward(.direct) },
                    Conv2D.supports(.direct, .backwardInput, g)
                        ? bestSeconds(minTime: minTime) { buffers.backwardInput(.direct) } : nil,
                    Conv2D.supports(.winograd, .forward, g)
                        ? bestSeconds(minTime: minTime) { buffers.forward(.winograd) } : nil,
                    Conv2D.supports(.winograd, .backwardInput, g)
                        ? bestSeconds(minTime: minTime) { buffers.backwardInput(.winograd) } : nil)
        }()
        let directBackwardWeight: Double = {
            var buffers = Buffers(g)
            return bestSeconds(minTime: minTime) { buffers.backwardWeight(.direct) }
        }()
        let m = g.k, n = g.n * g.p * g.q, k = g.c * g.r * g.s
        var gemm = GemmBuffers(m: m, n: n, k: k)
        let sgemm = bestSeconds(minTime: minTime) { gemm.run() }
        let rate = { (seconds: Double) in flop / seconds / 1e9 }
        return ConvBenchRow(
            model: shape.model, layer: shape.layer, uses: shape.uses, geometry: g.description,
            n: g.n, c: g.c, h: g.h, w: g.w, k: g.k, r: g.r, s: g.s, stride: g.strideH, padding: g.padH,
            p: g.p, q: g.q, macs: g.forwardMACs, gemmM: m, gemmN: n, gemmK: k,
            forwardSeconds: forward, backwardInputSeconds: backwardInput,
            backwardWeightSeconds: backwardWeight, sgemmSeconds: sgemm,
            forwardGFLOPS: rate(forward), backwardInputGFLOPS: rate(backwardInput),
            backwardWeightGFLOPS: rate(backwardWeight), sgemmGFLOPS: rate(sgemm),
            forwardPercentOfSgemm: 100 * sgemm / forward,
            directForwardSeconds: directForward, directBackwardInputSeconds: directBackwardInput,
            directForwardGFLOPS: rate(directForward), directBackwardInputGFLOPS: directBackwardInput.map(rate),
            directBackwardWeightSeconds: directBackwardWeight, directBackwardWeightGFLOPS: rate(directBackwardWeight),
            winogradForwardSeconds: winogradForward, winogradBackwardInputSeconds: winogradBackwardInput,
            winogradForwardGFLOPS: winogradForward.map(rate), winogradBackwardInputGFLOPS: winogradBackwardInput.map(rate),
            dispatchedForward: Conv2D.algorithm(for: .forward, g),
            dispatchedBackwardInput: Conv2D.algorithm(for: .backwardInput, g),
            dispatchedBackwardWeight: Conv2D.algorithm(for: .backwardWeight, g))
    }

    /// A faster path replaces the reference one for a pass only when the slower takes at least this
    /// factor of its time (a margin against run-to-run noise: ties stay with the simpler path). The order
    /// is GEMM, then direct, then Winograd.
    static let directMargin = 1.03

    /// The pass's choice from its measured seconds: the direct kernel when the GEMM path takes
    /// ≥ `directMargin` × its time, then Winograd when the choice so far takes ≥ `directMargin` × its.
    static func pick(gemm: Double, direct: Double?, winograd: Double?) -> ConvAlgorithm {
        var choice = ConvAlgorithm.gemm, best = gemm
        if let direct, best >= directMargin * direct { choice = .direct; best = direct }
        if let winograd, best >= directMargin * winograd { choice = .winograd }
        return choice
    }

    /// One Swift dictionary entry per measured shape for `Conv2D.measuredChoices`.
    static func dispatchEntries(_ rows: [ConvBenchRow]) -> [String] {
        var seen = Set<String>()
        return rows.compactMap { row in
            let key = "ShapeKey(c: \(row.c), h: \(row.h), w: \(row.w), k: \(row.k), kernel: \(row.r), stride: \(row.stride), padding: \(row.padding))"
            guard seen.insert(key).inserted else { return nil }
            let gf = { (x: Double?) in x.map { String(format: "%.0f", $0) } ?? "–" }
            let forward = pick(gemm: row.forwardSeconds, direct: row.directForwardSeconds, winograd: row.winogradForwardSeconds)
            let backwardInput = pick(gemm: row.backwardInputSeconds, direct: row.directBackwardInputSeconds,
                                     winograd: row.winogradBackwardInputSeconds)
            let backwardWeight = pick(gemm: row.backwardWeightSeconds, direct: row.directBackwardWeightSeconds, winograd: nil)
            return "        \(key): [.forward: .\(forward), .backwardInput: .\(backwardInput), .backwardWeight: .\(backwardWeight)],"
                + "  // \(row.model) \(row.layer): GF/s gemm/direct/winograd fwd \(gf(row.forwardGFLOPS))/\(gf(row.directForwardGFLOPS))/"
                + "\(gf(row.winogradForwardGFLOPS)), bwd-in \(gf(row.backwardInputGFLOPS))/\(gf(row.directBackwardInputGFLOPS))/"
                + "\(gf(row.winogradBackwardInputGFLOPS)), bwd-w \(gf(row.backwardWeightGFLOPS))/\(gf(row.directBackwardWeightGFLOPS))"
        }
    }

    /// Best wall time of `body` in seconds: one untimed call, then timed calls until their total
    /// reaches `minTime` (at least one).
    static func bestSeconds(minTime: Double, _ body: () -> Void) -> Double {
        body()
        var best = Double.infinity
        var total = 0.0
        repeat {
            let start = DispatchTime.now().uptimeNanoseconds
            body()
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            best = min(best, seconds)
            total += seconds
        } while total < minTime
        return best
    }

    /// Inputs and outputs of one conv shape, filled with seeded values.
    struct Buffers {
        let g: ConvGeometry
        var input, weight, bias, output, dOutput, dInput, dWeight, dBias: Tensor

        init(_ g: ConvGeometry) {
            self.g = g
            var rng = SplitMix64(seed: 0xC0_4E_2D)
            input = .randomUniform(shape: [g.n, g.c, g.h, g.w], low: -1, high: 1, rng: &rng)
            weight = .randomUniform(shape: [g.k, g.c, g.r, g.s], low: -0.1, high: 0.1, rng: &rng)
            bias = .randomUniform(shape: [g.k], low: -0.1, high: 0.1, rng: &rng)
            dOutput = .randomUniform(shape: [g.n, g.k, g.p, g.q], low: -1, high: 1, rng: &rng)
            output = Tensor(zeros: [g.n, g.k, g.p, g.q])
            dInput = Tensor(zeros: [g.n, g.c, g.h, g.w])
            dWeight = Tensor(zeros: [g.k, g.c, g.r, g.s])
            dBias = Tensor(zeros: [g.k])
        }

        /// The forward pass on `algorithm` (or the dispatched one when nil) with the epilogue every
        /// inference-mode pass of a folded conv → BN → ReLU runs: `y = max(0, acc + shift)` (the
        /// GEMM path adds it in a pass after the product, the direct kernel in registers).
        mutating func forward(_ algorithm: ConvAlgorithm? = nil) {
            Conv2D.forward(input, weight: weight, geometry: g, scale: nil, shift: bias, residual: nil, relu: true,
                           into: &output, algorithm: algorithm)
        }

        /// The backward-input pass on `algorithm`, or on the dispatched one when nil.
        mutating func backwardInput(_ algorithm: ConvAlgorithm? = nil) {
            Conv2D.backwardInput(dOutput, weight: weight, geometry: g, into: &dInput, algorithm: algorithm)
        }

        /// The backward-weight pass (with bias) on `algorithm`, or on the dispatched one when nil.
        mutating func backwardWeight(_ algorithm: ConvAlgorithm? = nil) {
            Conv2D.backwardWeight(dOutput, input: input, geometry: g, dWeight: &dWeight, dBias: &dBias, algorithm: algorithm)
        }
    }

    /// `C [m, n] = A [m, k] · B [k, n]` split into one contiguous column block of C and B per worker.
    struct GemmBuffers {
        let m, n, k: Int
        var a, b, c: Tensor

        init(m: Int, n: Int, k: Int) {
            self.m = m; self.n = n; self.k = k
            var rng = SplitMix64(seed: 0x5_6E_33)
            a = .randomUniform(shape: [m, k], low: -0.1, high: 0.1, rng: &rng)
            b = .randomUniform(shape: [k, n], low: -1, high: 1, rng: &rng)
            c = Tensor(zeros: [m, n])
        }

        mutating func run() {
            BLAS.parallelGEMM(a, b, into: &c)
        }
    }
}
