// CLITests.swift: the `memloss` executable as a user meets it: bad flags, a missing dataset and a
// bad config file end with a clear message (naming what was wrong) and a non-zero exit status,
// never a stack trace; `memloss models --json` lists the reference parameter counts and
// `models --state-dict` a model's checkpoint entries; `--method` and
// `--epsilon` resolve the training and validation attacks (issue 12) and `--print-config` shows them.

import Foundation
import XCTest
import _TestSupport

final class CLITests: XCTestCase {
    private func run(_ args: [String]) throws -> (status: Int32, out: String, err: String) {
        try BuiltExecutable.run("memloss", args)
    }

    func test_unknownMethod_isRejectedWithTheValidNames() throws {
        let r = try run(["train", "--method", "bogus", "--print-config"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssert(r.err.contains("unknown method 'bogus'") && r.err.contains("trades"), r.err)
    }

    func test_badFlagValue_isRejected() throws {
        let r = try run(["train", "--epochs", "three"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssert(r.err.contains("epochs"), r.err)
        let e = try run(["train", "--epsilon", "8/0", "--print-config"])
        XCTAssertNotEqual(e.status, 0)
        XCTAssert(e.err.contains("--epsilon"), e.err)
    }

    func test_memLossFlags_parseIntoTheConfig_andBadValuesAreNamed() throws {
        let r = try run(["train", "--mem-k", "3", "--mem-stride", "2", "--mem-select", "hardest:0.5", "--mem-reduce", "sum",
                         "--mem-codec", "levels", "--mem-store", "ram", "--mem-weight", "uniform", "--print-config"])
        XCTAssertEqual(r.status, 0, r.err)
        let config = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any])
        let mem = try XCTUnwrap(config["memLoss"] as? [String: Any])
        XCTAssertEqual(mem["window"] as? Int, 3)
        XCTAssertEqual(mem["stride"] as? Int, 2)
        XCTAssertEqual(mem["select"] as? String, "hardest:0.5")
        XCTAssertEqual(mem["reduce"] as? String, "sum")
        XCTAssertEqual(mem["codec"] as? String, "levels")
        XCTAssertEqual(mem["store"] as? String, "ram")
        XCTAssertEqual(mem["weighting"] as? String, "uniform")
        let off = try run(["train", "--no-memloss", "--print-config"])
        XCTAssertEqual(off.status, 0, off.err)
        XCTAssertFalse(off.out.contains("memLoss"), "--no-memloss removes the term")
        for (flag, value) in [("--mem-select", "easiest"), ("--mem-codec", "q7"), ("--mem-store", "cloud"), ("--mem-reduce", "max")] {
            let bad = try run(["train", flag, value, "--print-config"])
            XCTAssertNotEqual(bad.status, 0)
            XCTAssert(bad.err.contains(flag) && bad.err.contains(value), bad.err)
        }
        let k0 = try run(["train", "--mem-k", "0", "--print-config"])
        XCTAssertNotEqual(k0.status, 0)
        XCTAssert(k0.err.contains("memLoss.window"), k0.err)
        let standard = try run(["train", "--method", "standard", "--print-config"])
        XCTAssertEqual(standard.status, 0, "the demo's MemLoss is dropped for a method without an attack: \(standard.err)")
        XCTAssertFalse(standard.out.contains("memLoss"))
        let both = try run(["train", "--method", "standard", "--memloss", "--print-config"])
        XCTAssertNotEqual(both.status, 0, "MemLoss asked for explicitly needs an attack")
        XCTAssert(both.err.contains("memLoss"), both.err)
    }

    /// The resolved attacks of `--print-config`: stdout's JSON and stderr's summary.
    private func printConfig(_ flags: [String]) throws -> (config: [String: Any], summary: String) {
        let r = try run(["train"] + flags + ["--print-config"])
        XCTAssertEqual(r.status, 0, r.err)
        let config = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any], r.out)
        return (config, r.err)
    }

    private func attack(_ config: [String: Any], _ key: String) throws -> [String: Any] {
        if key == "validationAttack" { return try XCTUnwrap(config[key] as? [String: Any]) }
        let method = try XCTUnwrap(config["method"] as? [String: Any])
        return try XCTUnwrap(method["attack"] as? [String: Any])
    }

    /// Bug (issue 12): `--method trades --epsilon 8/255` kept the demo's α = 0.05 (1.6 ε) and β = 1, and the
    /// validation attack kept α = 0.05 whatever ε was.
    func test_methodAndEpsilon_resolveThePresetsStepRatio_andTheValidationStepFollowsEpsilon() throws {
        let eps = 8.0 / 255
        let (trades, summary) = try printConfig(["--method", "trades", "--epsilon", "8/255"])
        let t = try attack(trades, "method")
        XCTAssertEqual(t["epsilon"] as? Double ?? -1, eps, accuracy: 1e-7)
        XCTAssertEqual(t["stepSize"] as? Double ?? -1, eps * 0.007 / 0.031, accuracy: 1e-6, "TRADES' α/ε = 0.007/0.031")
        XCTAssertEqual(t["steps"] as? Int, 10)
        XCTAssertEqual((trades["method"] as? [String: Any])?["beta"] as? Double, 6, "the TRADES preset's β")
        let v = try attack(trades, "validationAttack")
        XCTAssertEqual(v["epsilon"] as? Double ?? -1, eps, accuracy: 1e-7)
        XCTAssertEqual(v["stepSize"] as? Double ?? -1, eps / 4, accuracy: 1e-7, "validation PGD-k steps ε/4")
        XCTAssert(summary.contains("validation attack: PGD-10 linf ε \(Float(8) / 255) α \(Float(2) / 255)"), summary)
        XCTAssert(summary.contains("training attack (trades): PGD-10 linf ε \(Float(8) / 255)"), summary)

        for method in ["hat", "pgd-at"] {
            let (c, _) = try printConfig(["--method", method, "--epsilon", "8/255"])
            XCTAssertEqual(try attack(c, "method")["stepSize"] as? Double ?? -1, 2.0 / 255, accuracy: 1e-7, method)
        }
        // ε alone keeps the configured ratio (the demo's 0.05 / 0.3 = 1/6).
        let (alone, _) = try printConfig(["--epsilon", "0.15"])
        XCTAssertEqual(try attack(alone, "method")["stepSize"] as? Double ?? -1, 0.025, accuracy: 1e-7)
        XCTAssertEqual(try attack(alone, "validationAttack")["stepSize"] as? Double ?? -1, 0.0375, accuracy: 1e-7)
    }

    func test_explicitStepSizes_winOverTheRatios() throws {
        let (c, summary) = try printConfig(["--method", "trades", "--epsilon", "8/255", "--step-size", "0.01",
                                            "--attack-steps", "5", "--val-step-size", "0.003", "--val-steps", "20"])
        let t = try attack(c, "method"), v = try attack(c, "validationAttack")
        XCTAssertEqual(t["stepSize"] as? Double ?? -1, 0.01, accuracy: 1e-7)
        XCTAssertEqual(t["steps"] as? Int, 5)
        XCTAssertEqual(v["stepSize"] as? Double ?? -1, 0.003, accuracy: 1e-7)
        XCTAssertEqual(v["steps"] as? Int, 20)
        XCTAssert(summary.contains("validation attack: PGD-20 linf ε \(Float(8) / 255) α 0.003"), summary)
    }

    func test_demoDefaults_keepTheirAttacks() throws {
        let (c, summary) = try printConfig([])
        let t = try attack(c, "method"), v = try attack(c, "validationAttack")
        XCTAssertEqual(t["epsilon"] as? Double ?? -1, 0.3, accuracy: 1e-7)
        XCTAssertEqual(t["stepSize"] as? Double ?? -1, 0.05, accuracy: 1e-7)
        XCTAssertEqual(v["stepSize"] as? Double ?? -1, 0.05, accuracy: 1e-7)
        XCTAssertEqual((c["method"] as? [String: Any])?["beta"] as? Double, 1)
        XCTAssert(summary.contains("validation attack: PGD-10 linf ε 0.3 α 0.05"), summary)
    }

    func test_missingDataset_namesThePath() throws {
        let tmp = TempDirectory("cli-missing")
        let r = try run(["train", "--data", "cifar10:/nonexistent/cifar", "--out", tmp.path("run").path])
        XCTAssertEqual(r.status, 1)
        XCTAssert(r.err.contains("/nonexistent/cifar"), r.err)
        XCTAssertFalse(r.err.contains("Fatal error"), r.err)
    }

    func test_badConfigFile_namesTheKey() throws {
        let tmp = TempDirectory("cli-config")
        let f = tmp.path("c.json")
        try Data("{\"epochs\": 2, \"learningRate\": 0.1}".utf8).write(to: f)
        let r = try run(["train", "--config", f.path, "--print-config"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssert(r.err.contains("unknown key 'learningRate'") && r.err.contains(f.path), r.err)
    }

    func test_configFile_isOverriddenByFlags() throws {
        let tmp = TempDirectory("cli-override")
        let f = tmp.path("c.json")
        try Data("{\"epochs\": 2, \"batchSize\": 32}".utf8).write(to: f)
        let r = try run(["train", "--config", f.path, "--epochs", "5", "--print-config"])
        XCTAssertEqual(r.status, 0, r.err)
        let obj = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any]
        XCTAssertEqual(obj?["epochs"] as? Int, 5)
        XCTAssertEqual(obj?["batchSize"] as? Int, 32)
    }

    func test_modelsJSON_listsTheReferenceParameterCounts() throws {
        let r = try run(["models", "--json"])
        XCTAssertEqual(r.status, 0, r.err)
        let rows = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [[String: Any]])
        let counts = Dictionary(uniqueKeysWithValues: rows.map { ($0["name"] as! String, $0["parameters"] as! Int) })
        XCTAssertEqual(counts["smallcnn"], 312_202)
        XCTAssertEqual(counts["resnet18"], 11_173_962)
        XCTAssertEqual(counts["preactresnet18"], 11_172_170)
        XCTAssertEqual(counts["wrn-34-10"], 46_160_474)
    }

    /// `models --state-dict` (read by tools/compare_pytorch.py for its parity check): the checkpoint's
    /// PyTorch names, shapes and kinds in order, at the given width; a bad name is named.
    func test_modelsStateDict_listsTheCheckpointEntries_atTheWidth() throws {
        let r = try run(["models", "--state-dict", "resnet18", "--width", "0.25", "--json"])
        XCTAssertEqual(r.status, 0, r.err)
        let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any])
        XCTAssertEqual(report["model"] as? String, "resnet18×0.25")
        XCTAssertEqual(report["input_shape"] as? [Int], [3, 32, 32])
        let entries = try XCTUnwrap(report["state_dict"] as? [[String: Any]])
        XCTAssertEqual(entries.count, 122)
        XCTAssertEqual(entries.first?["name"] as? String, "conv1.weight")
        XCTAssertEqual(entries.first?["shape"] as? [Int], [16, 3, 3, 3])
        XCTAssertEqual(entries.last?["name"] as? String, "linear.bias")
        let byName = Dictionary(uniqueKeysWithValues: entries.map { ($0["name"] as! String, $0) })
        XCTAssertEqual(byName["layer2.0.shortcut.0.weight"]?["shape"] as? [Int], [32, 16, 1, 1])
        XCTAssertEqual(byName["bn1.running_var"]?["kind"] as? String, "buffer")
        XCTAssertEqual(byName["bn1.num_batches_tracked"]?["kind"] as? String, "counter")
        XCTAssertEqual(byName["bn1.num_batches_tracked"]?["shape"] as? [Int], [])
        let parameters = entries.filter { $0["kind"] as? String == "parameter" }
            .map { ($0["shape"] as! [Int]).reduce(1, *) }.reduce(0, +)
        XCTAssertEqual(report["parameters"] as? Int, parameters)
        XCTAssertEqual(parameters, 701_466)

        let bad = try run(["models", "--state-dict", "vgg16"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssert(bad.err.contains("--state-dict") && bad.err.contains("vgg16"), bad.err)
    }

    /// tools/test_study_replay_table.py: the replay table of docs/study.md from hand-made replay
    /// reports (means, sds, arm matching). Skipped without python3.
    func test_studyReplayTableTool_unitTestsPass() throws {
        let text = try runPythonTests("tools/test_study_replay_table.py")
        XCTAssertTrue(text.contains("Ran 1 test"), text)
    }

    /// Runs `python3 <repo>/<script> -v` with `environment` added; returns its output after
    /// asserting exit status 0. Skips without python3.
    private func runPythonTests(_ script: String, environment: [String: String] = [:],
                                file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", repo.appendingPathComponent(script).path, "-v"]
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let out = Pipe()
        process.standardOutput = out
        process.standardError = out
        try process.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        if process.terminationStatus == 127 { throw XCTSkip("python3 not found: \(text)") }
        XCTAssertEqual(process.terminationStatus, 0, text, file: file, line: line)
        return text
    }

    /// tools/test_compare_pytorch.py (plain python3, no torch) against this build's memloss: the
    /// comparison tool's pure parts, and that `models --state-dict` and `--print-config` still answer
    /// in the form it reads. Skipped without python3.
    func test_comparePyTorchTool_unitTestsPass_againstThisBinary() throws {
        let text = try runPythonTests("tools/test_compare_pytorch.py", environment: ["MEMLOSS_BIN": BuiltExecutable.url("memloss").path])
        // The torch tests may skip (plain python3); the live-binary ones must run against this build.
        let live = text.split(separator: "\n").filter { $0.contains("LiveBinaryTests") }
        XCTAssertEqual(live.count, 2, text)
        XCTAssert(live.allSatisfy { $0.hasSuffix("... ok") }, "the live-binary tests must pass here: \(text)")
    }
}
