// CLITests.swift: the `memloss` executable as a user meets it: bad flags, a missing dataset and a
// bad config file end with a clear message (naming what was wrong) and a non-zero exit status,
// never a stack trace; `memloss models --json` lists the reference parameter counts.

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
}
