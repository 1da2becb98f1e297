// Inflater.swift: a small zlib/DEFLATE decoder (RFC 1950/1951) in pure Swift, streaming its
// output to a sink through a 32 KiB window, so a compressed MAT-file element of any size is inflated
// with bounded RAM. Needed because Foundation on Linux has no zlib API and the package links no zlib.
// Decoding only; no compressor. Stored, fixed-Huffman and dynamic-Huffman blocks; Adler-32 checked.

import Foundation
import SystemIO

/// Why a DEFLATE stream was rejected.
struct InflateError: Error, CustomStringConvertible {
    let reason: String
    var description: String { reason }
}

/// How many bytes a caller lets one zlib stream inflate to: a fixed cap, optionally tightened once
/// the first `prefixBytes` of output are known (a container's own size field inside the compressed
/// data, e.g. a MAT-file's miMATRIX tag). The inflater throws as soon as its output would pass the
/// limit, before handing those bytes to its sink, so memory and disk use stay bounded by it.
struct InflateLimit {
    /// Output above this many bytes is refused.
    var maximumBytes: Int
    /// How many leading output bytes `fromPrefix` needs (0: no prefix rule; at most a few KiB).
    var prefixBytes: Int = 0
    /// Given the first `prefixBytes` output bytes, the total the stream must not exceed (it may also
    /// throw, e.g. when the declared size is itself implausible). A stream ending before it has
    /// produced `prefixBytes` bytes never calls it.
    var fromPrefix: (([UInt8]) throws -> Int)? = nil

    /// No limit beyond what `Int` can count.
    static let unlimited = InflateLimit(maximumBytes: .max)
}

/// Canonical Huffman decoding table: a 9-bit direct lookup plus a canonical walk for longer codes.
private struct Huffman {
    static let fastBits = 9
    var counts = [Int](repeating: 0, count: 16)
    var symbols: [Int] = []
    /// Indexed by the next 9 stream bits: (symbol << 4) | length, or 0 if the code is longer.
    var fast = [Int](repeating: 0, count: 1 << fastBits)

    init(lengths: [Int]) throws {
        for l in lengths { counts[l] += 1 }
        counts[0] = 0
        var left = 1
        for len in 1...15 {
            left = left * 2 - counts[len]
            if left < 0 { throw InflateError(reason: "over-subscribed Huffman code") }
        }
        var offsets = [Int](repeating: 0, count: 16)
        for len in 1..<15 { offsets[len + 1] = offsets[len] + counts[len] }
        symbols = [Int](repeating: 0, count: lengths.count)
        for (sym, l) in lengths.enumerated() where l != 0 {
            symbols[offsets[l]] = sym
            offsets[l] += 1
        }
        // Fast table: canonical codes of length ≤ 9, bit-reversed (DEFLATE sends codes MSB first
        // inside an LSB-first bit stream).
        var nextCode = [Int](repeating: 0, count: 16)
        var code = 0
        for len in 1...15 {
            nextCode[len] = code
            code = (code + counts[len]) << 1
        }
        for (sym, l) in lengths.enumerated() where l != 0 {
            let c = nextCode[l]
            nextCode[l] += 1
            guard l <= Huffman.fastBits else { continue }
            var reversed = 0
            for b in 0..<l where c & (1 << b) != 0 { reversed |= 1 << (l - 1 - b) }
            var i = reversed
            while i < (1 << Huffman.fastBits) {
                fast[i] = (sym << 4) | l
                i += 1 << l
            }
        }
    }
}

/// Decodes one zlib stream from `input`, passing the output to `sink` in chunks.
struct Inflater {
    private let input: UnsafeRawBufferPointer
    private var position = 0
    private var bitBuffer: UInt64 = 0
    private var bitCount = 0
    private var window: [UInt8] = []
    private let sink: ([UInt8], Int) throws -> Void
    /// The current output cap (`InflateLimit.maximumBytes`, tightened by its prefix rule).
    private var limit: Int
    /// The prefix rule, until it has been applied.
    private var pendingPrefix: (bytes: Int, rule: ([UInt8]) throws -> Int)?
    /// Output size at which `checkOutput` must look again: the limit, or the prefix length first.
    private var nextCheck: Int
    private var adlerA: UInt32 = 1
    private var adlerB: UInt32 = 0
    private(set) var totalOut = 0

    /// Flushes happen when the window holds this many bytes; the last 32 KiB are kept for matches.
    private static let flushThreshold = 1 << 22
    private static let historyBytes = 1 << 15

    /// - Parameter sink: receives (buffer, count): the first `count` bytes of `buffer` are output.
    init(input: UnsafeRawBufferPointer, limit: InflateLimit, sink: @escaping ([UInt8], Int) throws -> Void) {
        self.input = input
        self.sink = sink
        let cap = max(0, limit.maximumBytes)
        self.limit = cap
        if let rule = limit.fromPrefix, limit.prefixBytes > 0 {
            pendingPrefix = (limit.prefixBytes, rule)
            nextCheck = min(limit.prefixBytes, Inflater.above(cap))
        } else {
            pendingPrefix = nil
            nextCheck = Inflater.above(cap)
        }
        window.reserveCapacity(Inflater.flushThreshold + 1024)
    }

    /// Inflates a zlib stream (2-byte header, DEFLATE blocks, Adler-32) and returns the bytes consumed
    /// and produced.
    /// - Parameter limit: output cap; the stream is refused (`InflateError`) as soon as it would
    ///   pass it, and `sink` never receives more than the limit allows.
    static func inflateZlib(_ input: UnsafeRawBufferPointer, limit: InflateLimit = .unlimited,
                            sink: @escaping ([UInt8], Int) throws -> Void) throws -> (consumed: Int, produced: Int) {
        var z = Inflater(input: input, limit: limit, sink: sink)
        guard input.count >= 2 else { throw InflateError(reason: "zlib header missing") }
        let cmf = Int(input[0]), flg = Int(input[1])
        guard cmf & 0x0F == 8, (cmf << 8 | flg) % 31 == 0 else { throw InflateError(reason: "bad zlib header \(cmf) \(flg)") }
        guard flg & 0x20 == 0 else { throw InflateError(reason: "zlib preset dictionary not supported") }
        z.position = 2
        try z.inflateBlocks()
        try z.flush(all: true)
        // Adler-32 trailer, big-endian, after byte alignment.
        z.bitBuffer = 0
        z.position -= z.bitCount / 8
        z.bitCount = 0
        guard z.position + 4 <= input.count else { throw InflateError(reason: "zlib Adler-32 trailer missing") }
        var stored: UInt32 = 0
        for i in 0..<4 { stored = stored << 8 | UInt32(input[z.position + i]) }
        guard stored == (z.adlerB << 16 | z.adlerA) else { throw InflateError(reason: "Adler-32 mismatch (corrupt data)") }
        return (z.position + 4, z.totalOut)
    }

    // MARK: - Bits

    @inline(__always)
    private mutating func refill() {
        while bitCount <= 56 && position < input.count {
            bitBuffer |= UInt64(input[position]) << UInt64(bitCount)
            position += 1
            bitCount += 8
        }
    }

    @inline(__always)
    private mutating func bits(_ n: Int) throws -> Int {
        if n == 0 { return 0 }
        if bitCount < n {
            refill()
            if bitCount < n { throw InflateError(reason: "compressed data ends early") }
        }
        let v = Int(bitBuffer & ((1 << UInt64(n)) - 1))
        bitBuffer >>= UInt64(n)
        bitCount -= n
        return v
    }

    private mutating func decode(_ h: Huffman) throws -> Int {
        if bitCount < 15 { refill() }
        let e = h.fast[Int(bitBuffer & UInt64((1 << Huffman.fastBits) - 1))]
        if e != 0 && e & 15 <= bitCount {
            bitBuffer >>= UInt64(e & 15)
            bitCount -= e & 15
            return e >> 4
        }
        // Canonical walk, one bit at a time (codes longer than 9 bits).
        var code = 0, first = 0, index = 0
        for len in 1...15 {
            code |= try bits(1)
            let count = h.counts[len]
            if code - first < count { return h.symbols[index + code - first] }
            index += count
            first = (first + count) << 1
            code <<= 1
        }
        throw InflateError(reason: "invalid Huffman code")
    }

    // MARK: - Output

    @inline(__always)
    private mutating func emit(_ byte: UInt8) {
        window.append(byte)
    }

    /// The first output size past `limit` (saturating, so an unlimited stream is never re-checked).
    private static func above(_ limit: Int) -> Int { limit == .max ? .max : limit + 1 }

    /// Output so far (flushed plus pending).
    private var produced: Int { totalOut + window.count }

    /// Applies the limit once `produced` reaches `nextCheck`; cheap otherwise. Called after every
    /// symbol (≤ 258 bytes) and before every flush, so the sink never sees bytes past the limit.
    @inline(__always)
    private mutating func checkOutput() throws {
        if produced >= nextCheck { try applyLimit() }
    }

    private mutating func applyLimit() throws {
        if let prefix = pendingPrefix, produced >= prefix.bytes {
            pendingPrefix = nil
            // The prefix is still in the window: every flush checks first, and the first flush comes
            // at 4 MiB of output (`prefixBytes` is documented to be far smaller).
            guard totalOut == 0 else { throw InflateError(reason: "size prefix of \(prefix.bytes) bytes is longer than the window") }
            limit = min(limit, max(0, try prefix.rule(Array(window[0..<prefix.bytes]))))
        }
        if produced > limit {
            throw InflateError(reason: "the output exceeds its limit of \(limit) bytes")
        }
        nextCheck = pendingPrefix.map { min($0.bytes, Inflater.above(limit)) } ?? Inflater.above(limit)
    }

    private mutating func flush(all: Bool) throws {
        try checkOutput()
        let keep = all ? 0 : Inflater.historyBytes
        let n = window.count - keep
        guard n > 0 else { return }
        // Adler-32 over the flushed bytes; the modulo is deferred for up to 5552 bytes (zlib's NMAX).
        var a = adlerA, b = adlerB
        var i = 0
        while i < n {
            let end = min(n, i + 5552)
            while i < end {
                a &+= UInt32(window[i])
                b &+= a
                i += 1
            }
            a %= 65521
            b %= 65521
        }
        adlerA = a
        adlerB = b
        try sink(window, n)
        totalOut += n
        window.removeFirst(n)
    }

    // MARK: - Blocks

    private static let lengthBase = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59,
                                     67, 83, 99, 115, 131, 163, 195, 227, 258]
    private static let lengthExtra = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0]
    private static let distanceBase = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769,
                                       1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577]
    private static let distanceExtra = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10,
                                        11, 11, 12, 12, 13, 13]
    private static let codeLengthOrder = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]

    private static let fixedTables: (Huffman, Huffman) = {
        var lengths = [Int](repeating: 8, count: 288)
        for i in 144..<256 { lengths[i] = 9 }
        for i in 256..<280 { lengths[i] = 7 }
        return (try! Huffman(lengths: lengths), try! Huffman(lengths: [Int](repeating: 5, count: 30)))
    }()

    private mutating func inflateBlocks() throws {
        var last = false
        while !last {
            last = try bits(1) == 1
            switch try bits(2) {
            case 0: try storedBlock()
            case 1: try codesBlock(Inflater.fixedTables.0, Inflater.fixedTables.1)
            case 2:
                let (lit, dist) = try dynamicTables()
                try codesBlock(lit, dist)
            default: throw InflateError(reason: "invalid block type 3")
            }
            if window.count >= Inflater.flushThreshold { try flush(all: false) }
        }
    }

    private mutating func storedBlock() throws {
        // Discard the bits up to the byte boundary, then LEN and NLEN.
        _ = try bits(bitCount % 8)
        let len = try bits(16), nlen = try bits(16)
        guard len == (~nlen & 0xFFFF) else { throw InflateError(reason: "stored block length check failed") }
        for _ in 0..<len { emit(UInt8(try bits(8))) }
        try checkOutput()
    }

    private mutating func dynamicTables() throws -> (Huffman, Huffman) {
        let nlen = try bits(5) + 257, ndist = try bits(5) + 1, ncode = try bits(4) + 4
        guard nlen <= 286, ndist <= 30 else { throw InflateError(reason: "bad dynamic block counts") }
        var codeLengths = [Int](repeating: 0, count: 19)
        for i in 0..<ncode { codeLengths[Inflater.codeLengthOrder[i]] = try bits(3) }
        let lencode = try Huffman(lengths: codeLengths)
        var lengths = [Int](repeating: 0, count: nlen + ndist)
        var i = 0
        while i < nlen + ndist {
            let sym = try decode(lencode)
            if sym < 16 {
                lengths[i] = sym
                i += 1
                continue
            }
            var repeatValue = 0, count: Int
            switch sym {
            case 16:
                guard i > 0 else { throw InflateError(reason: "repeat with no previous length") }
                repeatValue = lengths[i - 1]
                count = 3 + (try bits(2))
            case 17: count = 3 + (try bits(3))
            default: count = 11 + (try bits(7))
            }
            guard i + count <= nlen + ndist else { throw InflateError(reason: "too many code lengths") }
            for _ in 0..<count {
                lengths[i] = repeatValue
                i += 1
            }
        }
        guard lengths[256] != 0 else { throw InflateError(reason: "no end-of-block code") }
        return (try Huffman(lengths: Array(lengths[0..<nlen])), try Huffman(lengths: Array(lengths[nlen...])))
    }

    private mutating func codesBlock(_ lit: Huffman, _ dist: Huffman) throws {
        while true {
            let sym = try decode(lit)
            if sym < 256 {
                emit(UInt8(sym))
                try checkOutput()
                continue
            }
            if sym == 256 { return }
            let li = sym - 257
            guard li < 29 else { throw InflateError(reason: "invalid length symbol \(sym)") }
            let length = Inflater.lengthBase[li] + (try bits(Inflater.lengthExtra[li]))
            let ds = try decode(dist)
            guard ds < 30 else { throw InflateError(reason: "invalid distance symbol \(ds)") }
            let distance = Inflater.distanceBase[ds] + (try bits(Inflater.distanceExtra[ds]))
            guard distance <= window.count else { throw InflateError(reason: "distance \(distance) beyond the output") }
            let start = window.count - distance
            for k in 0..<length { window.append(window[start + k]) }
            try checkOutput()
            if window.count >= Inflater.flushThreshold + 1024 { try flush(all: false) }
        }
    }
}

// MARK: - MAT-file inflation cache

/// Turns a MAT-file with miCOMPRESSED elements into an equivalent uncompressed v5 file, once.
enum MATInflate {
    /// Largest uncompressed copy written, in bytes, whatever the file declares (16 GiB: SVHN's largest
    /// file, `extra_32x32.mat`, is 1.6 GB uncompressed).
    static let maximumInflatedBytes = 16 << 30
    /// DEFLATE's largest possible expansion: 258 output bytes per 2-bit length/distance pair gives
    /// 1032:1, so an element declaring more than `compressed × 1032` (plus the zlib framing) is
    /// refused before inflating.
    static let maximumDeflateRatio = 1032

    /// Path of an uncompressed copy of `f` (inflating it now unless a copy for the same path, size and
    /// modification time exists, `DatasetCache.path(for:suffix:)`). RAM stays bounded: elements stream
    /// through a 4 MiB window. Each element must inflate to exactly the miMATRIX its first 8 inflated
    /// bytes declare; inflation stops as soon as it would pass that size, `maximumDeflateRatio`
    /// times the compressed size, or `maximumBytes` in total.
    /// - Precondition: `MATFile(f)` accepted `f` (its top-level elements lie inside the file).
    /// - Throws: `DatasetError.wrongFormat` / `.inconsistentSize` naming `f`, the element's offset and
    ///   the sizes; `.cannotWrite` for the cache. No cache file or temporary is left on any error.
    static func cachedUncompressedCopy(of f: MappedFile, maximumBytes: Int = maximumInflatedBytes) throws -> String {
        let target = DatasetCache.path(for: f, suffix: "inflated.mat")
        if FileManager.default.fileExists(atPath: target) { return target }
        try DatasetCache.write(target) { out in
            try out.append(f.bytes(at: 0, upTo: 128))
            var pos = 128
            while pos + 8 <= f.count {
                let (type, bytes, dataOffset, _) = MATFile.tag(f, at: pos)
                let end = min(f.count, dataOffset + bytes)
                if type == MATFile.miCOMPRESSED {
                    let produced = try inflateElement(f, at: pos, compressed: dataOffset..<end,
                                                      budget: maximumBytes - out.bytesWritten, into: out)
                    let pad = MATFile.padded(produced) - produced
                    if pad > 0 { try out.append([UInt8](repeating: 0, count: pad)) }
                    pos = end
                } else {
                    let next = min(f.count, dataOffset + MATFile.padded(bytes))
                    guard next - pos <= maximumBytes - out.bytesWritten else { throw tooLarge(f, maximumBytes) }
                    try out.append(f.bytes(at: pos, upTo: next - pos))
                    let pad = MATFile.padded(next - pos) - (next - pos)
                    if pad > 0 { try out.append([UInt8](repeating: 0, count: pad)) }
                    pos = next
                }
            }
        }
        return target
    }

    /// Inflates the miCOMPRESSED element at `pos` (zlib data in `compressed`) into `out`; returns the
    /// bytes produced, which equal its inner tag's 8 bytes plus the size that tag declares.
    private static func inflateElement(_ f: MappedFile, at pos: Int, compressed: Range<Int>, budget: Int,
                                       into out: AtomicFileWriter) throws -> Int {
        let element = "the miCOMPRESSED element at offset \(pos) (\(compressed.count) compressed bytes)"
        var declared = 0
        let ratioBound = compressed.count * maximumDeflateRatio + 64
        let limit = InflateLimit(maximumBytes: budget, prefixBytes: 8) { tag in
            let type = Int(tag[0]) | Int(tag[1]) << 8 | Int(tag[2]) << 16 | Int(tag[3]) << 24
            let bytes = Int(tag[4]) | Int(tag[5]) << 8 | Int(tag[6]) << 16 | Int(tag[7]) << 24
            guard type == MATFile.miMATRIX else {
                throw DatasetError.wrongFormat(path: f.path, expected: "a miMATRIX element (type 14) inside \(element)",
                                               found: "an element of type \(type & 0xFFFF) (tag word \(type))")
            }
            declared = 8 + bytes
            guard declared <= ratioBound else {
                throw DatasetError.inconsistentSize(
                    path: f.path, field: "inflated size of \(element)", found: "\(declared) bytes declared by its miMATRIX tag",
                    expected: "at most \(ratioBound) bytes (DEFLATE expands at most \(maximumDeflateRatio):1)")
            }
            guard declared <= budget else { throw tooLarge(f, budget) }
            return declared
        }
        let produced: Int
        do {
            produced = try f.withBytes(at: compressed.lowerBound, length: compressed.count) { raw in
                try Inflater.inflateZlib(raw, limit: limit) { buffer, n in try out.append(buffer, count: n) }.produced
            }
        } catch let e as InflateError {
            if declared > 0 && e.reason.hasPrefix("the output exceeds") {
                throw DatasetError.inconsistentSize(path: f.path, field: "inflated size of \(element)",
                                                    found: "more than \(declared) bytes",
                                                    expected: "\(declared) bytes (its miMATRIX tag + the \(declared - 8) bytes it declares)")
            }
            throw DatasetError.wrongFormat(path: f.path, expected: "valid zlib data in \(element)", found: e.reason)
        }
        guard produced >= 8, produced == declared else {
            throw DatasetError.inconsistentSize(path: f.path, field: "inflated size of \(element)", found: "\(produced) bytes",
                                                expected: produced < 8 ? "at least an 8-byte miMATRIX tag"
                                                                       : "\(declared) bytes (its miMATRIX tag + the size it declares)")
        }
        return produced
    }

    private static func tooLarge(_ f: MappedFile, _ limit: Int) -> DatasetError {
        .unsupported(path: f.path, feature: "an uncompressed size above the \(limit)-byte limit for inflated MAT-file copies",
                     hint: "re-save the file without compression (scipy.io.savemat(..., do_compression=False)) and point the spec at it")
    }
}
