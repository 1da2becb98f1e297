// StudySpecTests.swift: the study spec (docs/study.md, "Spec format"): decoding, the cells it expands
// to (arms × grid points × seeds, named by their settings), the train arguments of a cell, and the
// errors for bad specs (each naming the file and the field).

import Foundation
import Study
import XCTest
import _TestSupport

final class StudySpecTests: XCTestCase {
    private let json = """
    {
      "format": "memloss-study/1",
      "name": "mini",
      "base": {"data": "demo", "epochs": 2, "width": 0.25},
      "arms": [
        {"name": "trades", "flags": {"memloss": false}},
        {"name": "trades+memloss", "flags": {"memloss": true, "mem-beta": 2}},
        {"name": "window", "flags": {"memloss": true}, "grid": {"mem-stride": [1, 2], "mem-k": [1, 4]}, "seeds": [0]}
      ],
      "seeds": [0, 1],
      "baseline": "trades",
      "evaluation": {"attacks": "pgd20,cw", "n": 1000, "autoattack": {"n": 500, "version": "standard", "arms": ["trades", "trades+memloss"]}}
    }
    """

    private func write(_ text: String) throws -> String {
        let dir = TempDirectory("study-spec")
        let url = dir.url.appendingPathComponent("spec.json")
        try Data(text.utf8).write(to: url)
        retained.append(dir)
        return url.path
    }
    private var retained: [TempDirectory] = []

    func test_cells_areArmsTimesGridPointsTimesSeeds_namedBySettings() throws {
        let spec = try StudySpec.load(try write(json))
        let names = spec.cells.map(\.name)
        XCTAssertEqual(names, [
            "trades_seed=0", "trades_seed=1", "trades+memloss_seed=0", "trades+memloss_seed=1",
            "window_mem-k=1_mem-stride=1_seed=0", "window_mem-k=1_mem-stride=2_seed=0",
            "window_mem-k=4_mem-stride=1_seed=0", "window_mem-k=4_mem-stride=2_seed=0",
        ])
        XCTAssertEqual(Set(spec.cells.map(\.group)).count, 6)
        let cell = spec.cells[6]
        XCTAssertEqual(cell.group, "window_mem-k=4_mem-stride=1")
        XCTAssertEqual(cell.trainArguments(out: "DIR/runs/x", evaluation: spec.evaluation), [
            "train", "--data", "demo", "--epochs", "2", "--mem-k", "4", "--mem-stride", "1", "--memloss", "--width", "0.25",
            "--seed", "0", "--test-attacks", "pgd20,cw", "--test-samples", "1000", "--out", "DIR/runs/x",
        ])
        XCTAssertEqual(spec.cells[0].trainArguments(out: "o", evaluation: spec.evaluation).prefix(8),
                       ["train", "--data", "demo", "--epochs", "2", "--no-memloss", "--width", "0.25"])
    }

    func test_badSpecs_nameTheFileAndTheField() throws {
        let cases: [(String, String, String)] = [
            (json.replacingOccurrences(of: "\"baseline\": \"trades\"", with: "\"baseline\": \"none\""), "baseline", "none"),
            (json.replacingOccurrences(of: "\"epochs\": 2", with: "\"seed\": 2"), "base.seed", "runner"),
            (json.replacingOccurrences(of: "\"name\": \"window\"", with: "\"name\": \"trades\""), "arms[2].name", "twice"),
            (json.replacingOccurrences(of: "\"name\": \"mini\"", with: "\"name\": \"a/b\""), "name", "letters"),
            (json.replacingOccurrences(of: "[1, 2]", with: "[]"), "arms[2].grid.mem-stride", "at least one"),
            (json.replacingOccurrences(of: "\"seeds\": [0, 1]", with: "\"seeds\": [1, 1]"), "arms[0].seeds", "distinct"),
            (json.replacingOccurrences(of: "memloss-study/1", with: "memloss-study/9"), "format", "memloss-study/1"),
            (json.replacingOccurrences(of: "\"n\": 500", with: "\"n\": 0"), "evaluation.autoattack.n", "> 0"),
            (json.replacingOccurrences(of: "\"seeds\": [0, 1],", with: ""), "seeds", "missing"),
            (json.replacingOccurrences(of: "\"mem-beta\": 2", with: "\"mem-beta\": [2]"), "arms[1].flags.mem-beta", "string, a number or a boolean"),
        ]
        for (text, field, words) in cases {
            let path = try write(text)
            XCTAssertThrowsError(try StudySpec.load(path), field) { e in
                let d = "\(e)"
                XCTAssertTrue(d.contains(path), d)
                XCTAssertTrue(d.contains("'\(field)'"), "expected field \(field): \(d)")
                XCTAssertTrue(d.contains(words), "expected '\(words)': \(d)")
                XCTAssertTrue(d.contains("hint:"), d)
            }
        }
        XCTAssertThrowsError(try StudySpec.load("/nonexistent/spec.json")) { e in XCTAssertTrue("\(e)".contains("cannot be read")) }
    }

    func test_flagValues_formatAsTheCommandLineWroteThem() {
        XCTAssertEqual(StudyFlagValue.number(2).arguments(flag: "mem-beta"), ["--mem-beta", "2"])
        XCTAssertEqual(StudyFlagValue.number(0.25).arguments(flag: "width"), ["--width", "0.25"])
        XCTAssertEqual(StudyFlagValue.text("8/255").arguments(flag: "epsilon"), ["--epsilon", "8/255"])
        XCTAssertEqual(StudyFlagValue.bool(true).arguments(flag: "memloss"), ["--memloss"])
        XCTAssertEqual(StudyFlagValue.bool(false).arguments(flag: "memloss"), ["--no-memloss"])
    }
}
