// StepBenchTests.swift: `memloss bench step` at test size (MemlossBench/StepBench.swift) and the two
// profilers under it (Kernels/KernelProfile.swift, Layers/PassProfiler.swift): the phases partition the
// step and each phase a method has is measured; the kernel counters see SmallCNN's four convs per
// forward and nothing when off; profiling changes no bit of a step; bad flags give named errors.
// Speed is never asserted.

import Datasets
import Foundation
import Kernels
import Layers
import MemlossBench
import Models
import Tensors
import Training
import XCTest
import _TestSupport

final class StepBenchTests: XCTestCase {
    /// A tiny run: SmallCNN ×0.25, batch 4, a 1-step attack, 1 warm-up and 2 timed steps.
    private func tinyConfig(_ method: String, scratch: TempDirectory) -> StepBenchConfig {
        var c = StepBenchConfig()
        c.method = method
        c.width = 0.25
        c.batch = 4
        c.attackSteps = 1
        c.steps = 2
        c.warmup = 1
        c.scratch = scratch.url.path
        return c
    }

    /// Phases the report must show as measured (> 0) and as absent (exactly 0).
    private func assertPhases(_ r: StepBenchReport, measured: [String], absent: [String], _ label: String,
                              file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(Set(r.phases.keys), Set(StepBench.phaseNames), label, file: file, line: line)
        let sum = r.phases.values.reduce(0, +)
        XCTAssertEqual(sum, r.medianStepSeconds, accuracy: 1e-9 + 1e-9 * r.medianStepSeconds, "\(label): phases sum to the step",
                       file: file, line: line)
        // With 2 timed steps every median is a mean, so `other` is the mean of per-step remainders, each
        // ≥ 0 unless a phase were counted twice or outside the step.
        XCTAssertGreaterThanOrEqual(r.phases["other"]!, -1e-9, "\(label): the measured phases fit inside the step",
                                    file: file, line: line)
        for name in measured { XCTAssertGreaterThan(r.phases[name]!, 0, "\(label): \(name)", file: file, line: line) }
        for name in absent { XCTAssertEqual(r.phases[name]!, 0, "\(label): \(name)", file: file, line: line) }
        XCTAssertEqual(r.steps, 2, label, file: file, line: line)
        XCTAssertLessThanOrEqual(r.minStepSeconds, r.medianStepSeconds, label, file: file, line: line)
        XCTAssertLessThanOrEqual(r.medianStepSeconds, r.maxStepSeconds, label, file: file, line: line)
    }

    func test_stepBench_phasesPartitionTheStep_andEachMethodShowsItsOwnPhases() throws {
        let dir = TempDirectory("bench-step")
        let outer = ["outerForward", "outerBackward", "optimizer", "dataWait"]
        let standard = try StepBench.run(tinyConfig("standard", scratch: dir))
        assertPhases(standard, measured: outer, absent: ["attackForward", "attackBackward", "memLoss", "bankWait", "bankRecord"],
                     "standard")
        XCTAssertNil(standard.memory)
        // One training forward (4 convs), one parameter backward (4 weight gradients, 3 input gradients:
        // conv1's input gradient is never needed) per step.
        XCTAssertEqual(standard.kernels["convForward"]?.calls, 4)
        XCTAssertEqual(standard.kernels["convBackwardWeight"]?.calls, 4)
        XCTAssertEqual(standard.kernels["convBackwardInput"]?.calls, 3)
        XCTAssertNotNil(standard.kernels["convForward"]?.gflops)
        XCTAssertNil(standard.kernels["pooling"]?.gflops, "pooling counts no MACs")
        XCTAssertEqual(standard.kernels["batchNorm"]?.calls, 0, "SmallCNN has no BatchNorm")

        let trades = try StepBench.run(tinyConfig("trades", scratch: dir))
        assertPhases(trades, measured: outer + ["attackForward", "attackBackward"], absent: ["memLoss", "bankWait", "bankRecord"],
                     "trades")
        XCTAssertEqual(trades.settings.config.attackSteps, 1)

        var c = tinyConfig("trades", scratch: dir)
        c.memLoss = true
        c.memoryWindow = 1
        let mem = try StepBench.run(c)
        assertPhases(mem, measured: outer + ["attackForward", "attackBackward", "memLoss", "bankWait", "bankRecord"], absent: [],
                     "trades + MemLoss")
        XCTAssertEqual(mem.memory?.entriesPresentPerStep, Double(c.batch * c.memoryWindow), "every sample has its K entries")
        XCTAssertGreaterThan(mem.memory?.entriesUsedPerStep ?? 0, 0)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.url.path), [], "data and bank deleted after")

        var off = tinyConfig("trades", scratch: dir)
        off.profile = false
        let unprofiled = try StepBench.run(off)
        assertPhases(unprofiled, measured: ["optimizer", "dataWait", "other"],
                     absent: ["attackForward", "attackBackward", "outerForward", "outerBackward", "memLoss"], "profilers off")
        XCTAssertTrue(unprofiled.kernels.isEmpty)
        XCTAssertEqual(unprofiled.lastLoss.bitPattern, trades.lastLoss.bitPattern, "profiling changes no loss")
    }

    func test_kernelProfile_countsSmallCNNsFourConvsPerForward_andNothingWhenOff() {
        let spec = ModelSpec(.smallCNN, width: 0.25)
        let net = spec.build(seed: 3)
        let n = 2
        let x = Tensor(shape: [n, 1, 28, 28], values: seededUniform(n * 784, low: 0, high: 1, seed: 5))

        KernelProfile.reset()
        _ = net.logits(x, mode: .inference)
        XCTAssertFalse(KernelProfile.isEnabled)
        XCTAssertTrue(KernelProfile.snapshot().values.allSatisfy { $0 == KernelCounters() }, "profiling off: nothing counted")

        KernelProfile.start()
        _ = net.logits(x, mode: .inference)
        KernelProfile.stop()
        let s = KernelProfile.snapshot()
        XCTAssertEqual(s[.convForward]?.calls, 4)
        XCTAssertEqual(s[.linear]?.calls, 3)
        XCTAssertEqual(s[.pooling]?.calls, 2)
        XCTAssertEqual(s[.convBackwardInput]?.calls, 0)
        XCTAssertEqual((s[.convForward]?.macs ?? 0) + (s[.linear]?.macs ?? 0), n * ModelSpec.forwardMACs(of: net),
                       "conv + linear MACs are the model's forward MACs")
        XCTAssertGreaterThan(s[.convForward]?.nanoseconds ?? 0, 0)

        // Calls made after stop(), or on another thread while profiling, are not counted.
        _ = net.logits(x, mode: .inference)
        XCTAssertEqual(KernelProfile.snapshot(), s)
        KernelProfile.start()
        let done = expectation(description: "other thread")
        Thread.detachNewThread {
            _ = net.logits(x, mode: .inference)
            done.fulfill()
        }
        wait(for: [done], timeout: 60)
        KernelProfile.stop()
        XCTAssertEqual(KernelProfile.snapshot()[.convForward]?.calls, 0, "only the profiled thread counts")
    }

    func test_fusedConvForward_countsOnce() {
        let g = Conv2D.geometry(input: [2, 3, 6, 6], weight: [4, 3, 3, 3], stride: 1, padding: 1)
        let x = Tensor(shape: [2, 3, 6, 6], values: seededUniform(216, seed: 1))
        let w = Tensor(shape: [4, 3, 3, 3], values: seededUniform(108, seed: 2))
        let scale = Tensor(shape: [4], values: [1, 2, 3, 4])
        KernelProfile.start()
        _ = Conv2D.forward(x, weight: w, geometry: g, scale: scale, shift: nil, residual: nil, relu: true)
        KernelProfile.stop()
        let s = KernelProfile.snapshot()
        XCTAssertEqual(s[.convForward]?.calls, 1, "the fused forward calls the plain one: counted once")
        XCTAssertEqual(s[.convForward]?.macs, g.forwardMACs)
        XCTAssertEqual(s[.elementwise]?.calls, 0, "the epilogue's elementwise work is part of the conv")
    }

    func test_profilingOnAndOff_giveBitwiseIdenticalSteps() throws {
        let dir = TempDirectory("bench-step-bitwise")
        let dataset = try Dataset.makeSynthetic(SyntheticSpec(count: 8, shape: ImageShape(channels: 1, height: 28, width: 28),
                                                              classCount: 10, seed: 4), path: dir.path("d.mlds").path)
        let loader = BatchLoader(dataset: dataset, augmentation: .none, seed: 4)
        var config = MethodConfig.defaultConfig(named: "trades")!
        config.attack?.steps = 2
        let method = try makeMethod(config, helper: nil)

        func run(profiled: Bool) throws -> (losses: [UInt32], parameters: [[Float]]) {
            let net = ModelSpec(.smallCNN, width: 0.25).build(seed: 7)
            let optimizer = SGD(parameters: net.namedParameters, config: SGDConfig(learningRate: 0.05, momentum: 0.9, weightDecay: 5e-4))
            let store = RAMMemoryStore(config: MemoryStoreConfig(window: 1, kind: .ram), sampleCount: dataset.count,
                                       shape: dataset.shape.dimensions)
            let step = TrainingStep(model: net, method: method, optimizer: optimizer, memory: store, seed: 9)
            let profiler = PassProfiler()
            if profiled {
                net.profiler = profiler
                KernelProfile.start()
            }
            defer { KernelProfile.stop() }
            var losses: [UInt32] = []
            // Epoch 0 fills the memory; epoch 1 runs the MemLoss term on it.
            for epoch in 0..<2 {
                let plan = EpochPlan(count: dataset.count, seed: 4, epoch: epoch, batchSize: 4)
                try store.beginEpoch(epoch, plan: plan)
                for b in 0..<plan.batchCount {
                    let outcome = try step.run(loader.load(ids: plan.batchIDs(b), epoch: epoch, index: b),
                                               globalStep: epoch * plan.batchCount + b, learningRate: 0.05)
                    losses.append(outcome.loss.bitPattern)
                    if epoch == 1 { XCTAssertGreaterThan(outcome.memory?.entriesUsed ?? 0, 0) }
                }
                _ = try store.endEpoch()
            }
            if profiled {
                XCTAssertGreaterThan(profiler.seconds(.memLoss), 0)
                XCTAssertGreaterThan(profiler.count(.attackBackward), 0)
                XCTAssertGreaterThan(KernelProfile.snapshot()[.convForward]?.calls ?? 0, 0)
            }
            return (losses, net.parameters.map { $0.value.scalars })
        }
        let on = try run(profiled: true), off = try run(profiled: false)
        XCTAssertEqual(on.losses, off.losses, "losses bit for bit")
        XCTAssertEqual(on.parameters.count, off.parameters.count)
        for (a, b) in zip(on.parameters, off.parameters) {
            XCTAssertEqual(a.map(\.bitPattern), b.map(\.bitPattern), "parameters bit for bit")
        }
    }

    func test_passProfiler_doesNotNest_andClassifiesByModeAndTargets() {
        XCTAssertEqual(ModelPass.forward(.inference), .attackForward)
        XCTAssertEqual(ModelPass.forward(.training), .outerForward)
        XCTAssertEqual(ModelPass.backward(.input), .attackBackward)
        XCTAssertEqual(ModelPass.backward(.parameters), .outerBackward)
        XCTAssertEqual(ModelPass.backward(.all), .outerBackward)
        let p = PassProfiler()
        p.measure(.memLoss) { _ = p.measure(.outerForward) { usleep(1000) } }
        XCTAssertEqual(p.count(.memLoss), 1)
        XCTAssertEqual(p.count(.outerForward), 0, "a pass inside an open interval is part of it")
        XCTAssertGreaterThanOrEqual(p.seconds(.memLoss), 0.001)
        p.reset()
        XCTAssertEqual(p.seconds(.memLoss), 0)
    }

    func test_badFlags_giveErrorsNamingTheFlag() throws {
        func assertRejected(_ edit: (inout StepBenchConfig) -> Void, _ flag: String, line: UInt = #line) {
            var c = StepBenchConfig()
            edit(&c)
            XCTAssertThrowsError(try c.validate(), line: line) { e in
                XCTAssert("\(e)".contains(flag), "\(e) names \(flag)", line: line)
            }
        }
        assertRejected({ $0.method = "sgd" }, "--method")
        assertRejected({ $0.method = "hat" }, "--method")
        assertRejected({ $0.model = "vgg" }, "unknown model 'vgg'")
        assertRejected({ $0.width = 0 }, "width")
        assertRejected({ $0.batch = 0 }, "--batch")
        assertRejected({ $0.steps = 0 }, "--steps")
        assertRejected({ $0.warmup = -1 }, "--warmup")
        assertRejected({ $0.attackSteps = 0 }, "--attack-steps")
        assertRejected({ $0.memLoss = true; $0.memoryWindow = 0 }, "--mem-k")
        XCTAssertNoThrow(try StepBenchConfig().validate())

        let r = try BuiltExecutable.run("memloss", ["bench", "step", "--batch", "0"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssert(r.err.contains("--batch '0': expected an integer ≥ 1"), r.err)
        let m = try BuiltExecutable.run("memloss", ["bench", "step", "--method", "nope"])
        XCTAssertNotEqual(m.status, 0)
        XCTAssert(m.err.contains("--method 'nope'"), m.err)
    }
}
