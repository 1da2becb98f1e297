// LZ4+Unsafe.swift: the two liblz4 block calls the bank uses (fast compression, safe decompression),
// over raw buffers. Policy (when to keep the LZ4 block) is in RecordCodec; this is only the binding.

import CLZ4

enum LZ4 {
    /// `LZ4_compress_default` of `count` bytes into at most `capacity` bytes.
    /// - Returns: the compressed size, or nil when the block does not fit in `capacity` (liblz4 stops
    ///   early and returns 0: that is how the "save at least 10%" rule costs no extra pass).
    static func compress(_ source: UnsafeRawPointer, count: Int, into destination: UnsafeMutableRawPointer,
                         capacity: Int) -> Int? {
        guard count > 0, capacity > 0 else { return nil }
        let n = LZ4_compress_default(source.assumingMemoryBound(to: CChar.self),
                                     destination.assumingMemoryBound(to: CChar.self), Int32(count), Int32(capacity))
        return n > 0 ? Int(n) : nil
    }

    /// `LZ4_decompress_safe`: never reads or writes out of bounds; returns the decoded size, or a
    /// negative value for a malformed block (a corruption signal, systems.md R6).
    static func decompress(_ source: UnsafeRawPointer, count: Int, into destination: UnsafeMutableRawPointer,
                           capacity: Int) -> Int {
        Int(LZ4_decompress_safe(source.assumingMemoryBound(to: CChar.self),
                                destination.assumingMemoryBound(to: CChar.self), Int32(count), Int32(capacity)))
    }

    /// Worst-case compressed size of `count` bytes.
    static func bound(_ count: Int) -> Int { Int(LZ4_compressBound(Int32(count))) }

    /// The linked liblz4 version, e.g. "1.9.4" (bench reports).
    static var version: String { String(cString: LZ4_versionString()) }
}
