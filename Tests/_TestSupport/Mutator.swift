// Mutator.swift: the seeded mutational fuzz driver shared by the parser fuzz tests (docs/fuzzing.md).
// A `Mutator` turns a corpus file into damaged variants (bit flips, interesting integers written over
// length and offset fields, truncation, insertion, deletion, duplicated chunks, splices of two corpus
// files); `Fuzz.run` feeds a parser `iterations` mutants per corpus file and counts executions. A
// parser "passes" a mutant when it returns or throws; a trap or a crash ends the test process, which
// fails the suite and names the seed and the iteration in the log printed just before each batch.
// Iterations come from MEMLOSS_FUZZ_ITERATIONS (default: a short run for the default suite).

import Foundation
import Tensors
import XCTest

/// The mutators' generator: Tensors' SplitMix64, so a mutant is reproducible from (seed, iteration).
public struct FuzzRandom {
    private var generator: SplitMix64
    public init(seed: UInt64) { generator = SplitMix64(seed: seed) }
    public mutating func next() -> UInt64 { generator.next() }
    /// Uniform in 0..<n (n > 0).
    public mutating func below(_ n: Int) -> Int { Int(next() % UInt64(max(n, 1))) }
}

/// Produces damaged variants of valid inputs.
public struct Mutator {
    /// Values that break length, count and offset checks when written over a field.
    public static let interestingIntegers: [UInt64] = [
        0, 1, 2, 7, 8, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x1_0000,
        0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF, 0x1_0000_0000, 0x7FFF_FFFF_FFFF_FFFF,
        0x8000_0000_0000_0000, 0xFFFF_FFFF_FFFF_FFFF, 0xFFFF_FFFF_FFFF_FFFE,
    ]
    /// Float bit patterns consumers must survive: NaN, ±inf, huge, subnormal, −0.
    public static let interestingFloats: [UInt32] = [0x7FC0_0000, 0x7F80_0000, 0xFF80_0000, 0x7F7F_FFFF, 0x0000_0001, 0x8000_0000]

    public var random: FuzzRandom
    /// Other valid inputs to splice from (may be empty).
    public var corpus: [[UInt8]]

    public init(seed: UInt64, corpus: [[UInt8]] = []) {
        random = FuzzRandom(seed: seed)
        self.corpus = corpus
    }

    /// One mutant of `input`: 1–4 stacked mutations.
    public mutating func mutate(_ input: [UInt8]) -> [UInt8] {
        var b = input
        for _ in 0..<(1 + random.below(4)) { b = mutateOnce(b) }
        return b
    }

    private mutating func mutateOnce(_ input: [UInt8]) -> [UInt8] {
        var b = input
        if b.isEmpty { return [UInt8(truncatingIfNeeded: random.next())] }
        switch random.below(10) {
        case 0, 1:  // flip one bit
            let i = random.below(b.count)
            b[i] ^= UInt8(1) << UInt8(random.below(8))
        case 2:  // set a byte to an edge value
            b[random.below(b.count)] = [0x00, 0xFF, 0x7F, 0x80, 0x20, 0x22, 0x7B, 0x7D][random.below(8)]
        case 3, 4:  // an interesting integer (little or big endian, 1/2/4/8 bytes) over a field
            let width = [1, 2, 4, 8][random.below(4)]
            guard b.count >= width else { return b }
            let at = random.below(b.count - width + 1)
            let v = Mutator.interestingIntegers[random.below(Mutator.interestingIntegers.count)]
            let bigEndian = random.below(4) == 0
            for k in 0..<width {
                let shift = UInt64(8 * (bigEndian ? width - 1 - k : k))
                b[at + k] = UInt8(truncatingIfNeeded: v >> shift)
            }
        case 5:  // a special float over 4 aligned bytes
            guard b.count >= 4 else { return b }
            let at = random.below(b.count / 4) * 4
            let v = Mutator.interestingFloats[random.below(Mutator.interestingFloats.count)]
            for k in 0..<4 { b[at + k] = UInt8(truncatingIfNeeded: v >> UInt32(8 * k)) }
        case 6:  // truncate
            b.removeLast(1 + random.below(b.count))
        case 7:  // delete a run
            let at = random.below(b.count)
            b.removeSubrange(at..<min(b.count, at + 1 + random.below(16)))
        case 8:  // insert random bytes or duplicate a chunk
            let at = random.below(b.count + 1)
            if random.below(2) == 0 {
                b.insert(contentsOf: (0..<(1 + random.below(16))).map { _ in UInt8(truncatingIfNeeded: random.next()) }, at: at)
            } else {
                let from = random.below(b.count)
                let chunk = Array(b[from..<min(b.count, from + 1 + random.below(64))])
                b.insert(contentsOf: chunk, at: at)
            }
        default:  // splice: this input's head with another's tail
            guard let other = corpus.isEmpty ? nil : corpus[random.below(corpus.count)], !other.isEmpty else {
                b[random.below(b.count)] = UInt8(truncatingIfNeeded: random.next())
                return b
            }
            let cut = random.below(b.count + 1), from = random.below(other.count)
            b = Array(b[..<cut]) + Array(other[from...])
        }
        return b
    }
}

/// Runs a parser over mutants of a corpus.
public enum Fuzz {
    /// Mutants per corpus file: MEMLOSS_FUZZ_ITERATIONS, else `defaultIterations`.
    public static func iterations(default defaultIterations: Int) -> Int {
        if let s = ProcessInfo.processInfo.environment["MEMLOSS_FUZZ_ITERATIONS"], let n = Int(s), n > 0 { return n }
        return defaultIterations
    }

    /// The seed base: MEMLOSS_FUZZ_SEED, else a fixed value (the default suite is reproducible).
    public static var seed: UInt64 {
        if let s = ProcessInfo.processInfo.environment["MEMLOSS_FUZZ_SEED"], let n = UInt64(s) { return n }
        return 0x6D65_6D6C_6F73_73
    }

    /// The committed corpus directory `Tests/<target>/Fuzz/<name>` (from this source file's path).
    public static func corpusDirectory(target: String, name: String, file: StaticString = #filePath) -> URL {
        URL(fileURLWithPath: "\(file)").deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent(target).appendingPathComponent("Fuzz").appendingPathComponent(name)
    }

    /// Every file of a corpus directory, sorted by name.
    public static func loadCorpus(_ directory: URL) throws -> [(name: String, bytes: [UInt8])] {
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { !$0.hasPrefix(".") }.sorted()
        return try names.map { ($0, Array(try Data(contentsOf: directory.appendingPathComponent($0)))) }
    }

    /// Feeds `body` every corpus input unchanged and `iterations` mutants of each; returns the
    /// number of executions. `body` returns normally or throws: both are fine; what it must not
    /// do is trap. Progress (seed, input) goes to stderr before each input, so a crash names it.
    @discardableResult
    public static func run(name: String, corpus: [(name: String, bytes: [UInt8])], iterations: Int,
                           _ body: ([UInt8]) -> Void) -> Int {
        var executions = 0
        let all = corpus.map(\.bytes)
        for (k, input) in corpus.enumerated() {
            let seed = Fuzz.seed &+ UInt64(k) &* 0x1_0000_0001
            FileHandle.standardError.write(Data("fuzz \(name): \(input.name), seed \(seed), \(iterations) mutants\n".utf8))
            body(input.bytes)
            executions += 1
            var m = Mutator(seed: seed, corpus: all)
            for _ in 0..<iterations {
                body(m.mutate(input.bytes))
                executions += 1
            }
        }
        return executions
    }
}
