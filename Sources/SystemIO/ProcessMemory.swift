// ProcessMemory.swift: the one reader of this process's memory figures (Linux /proc): the size fields
// of /proc/self/status (VmHWM, VmRSS, RssAnon, RssFile, …), resetting the peak (VmHWM), the kernel's
// page cache from /proc/meminfo, and the file-backed resident bytes from /proc/self/statm (the cheap
// one, read per batch by the prefetchers; its parser is in ProcessMemory+Unsafe.swift).
// Nothing here changes behaviour; off Linux every figure is absent.

import Foundation

/// Memory figures of this process (and the page cache of the system), read from /proc.
public enum ProcessMemory {
    /// Peak resident set size in bytes (VmHWM), or 0 where /proc is unavailable.
    public static var peakResidentBytes: Int { status()["VmHWM"] ?? 0 }
    /// Current resident set size in bytes (VmRSS), or 0 where /proc is unavailable.
    public static var currentResidentBytes: Int { status()["VmRSS"] ?? 0 }

    /// The size fields of /proc/self/status in bytes ("VmHWM", "VmRSS", "RssAnon", "RssFile", …);
    /// empty off Linux.
    public static func status() -> [String: Int] {
        kilobyteFields(of: "/proc/self/status")
    }

    /// The kernel's page cache, system-wide, in bytes: `Cached` of /proc/meminfo (file pages held in
    /// RAM, any process's; reclaimable, not charged to anyone's RSS). nil off Linux.
    public static var pageCacheBytes: Int? { kilobyteFields(of: "/proc/meminfo")["Cached"] }

    /// Resets VmHWM to the current RSS (writes "5" to /proc/self/clear_refs, Linux ≥ 4.0), so a
    /// later `peakResidentBytes` covers only what ran after this call. Returns false where unsupported,
    /// and also where the write is accepted but the peak is not reset: some kernels and sandboxes take
    /// the write and leave VmHWM at the lifetime peak (or report no VmHWM at all), which a caller
    /// would otherwise read as a peak of what ran after the call. The check: right after the write,
    /// VmHWM must be present and within `resetSlack` of VmRSS.
    @discardableResult
    public static func resetPeak() -> Bool {
        guard let h = FileHandle(forWritingAtPath: "/proc/self/clear_refs") else { return false }
        do {
            try h.write(contentsOf: Data("5".utf8))
            try? h.close()
        } catch {
            try? h.close()
            return false
        }
        return peakWasReset(status())
    }

    /// How far VmHWM may sit above VmRSS right after a reset (another thread may fault pages in
    /// between the write and the read): 16 MiB.
    public static let resetSlack = 16 << 20

    /// Whether a /proc/self/status read right after a reset shows the reset: VmHWM and VmRSS present
    /// and VmHWM ≤ VmRSS + `resetSlack`.
    public static func peakWasReset(_ status: [String: Int]) -> Bool {
        guard let peak = status["VmHWM"], let current = status["VmRSS"], peak > 0 else { return false }
        return peak <= current + resetSlack
    }

    /// "Name:   123 kB" lines of a /proc file, in bytes.
    static func kilobyteFields(of path: String) -> [String: Int] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [:] }
        return parseKilobyteFields(text)
    }

    /// Parses "Name:   123 kB" lines into bytes (123 · 1024); other lines are skipped.
    public static func parseKilobyteFields(_ text: String) -> [String: Int] {
        var out: [String: Int] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2 else { continue }
            let fields = parts[1].split(whereSeparator: { $0 == " " || $0 == "\t" })
            if fields.count == 2, fields[1] == "kB", let v = Int(fields[0]) { out[String(parts[0])] = v * 1024 }
        }
        return out
    }

    /// The third field of a /proc/self/statm line (resident file-backed + shared pages), in pages;
    /// nil when the text has fewer than three numbers. `statm` is "size resident shared text lib data dt".
    public static func parseStatmSharedPages<S: Sequence>(_ bytes: S) -> Int? where S.Element == UInt8 {
        var fields = 0, value = 0, inNumber = false
        for b in bytes {
            if b >= 0x30 && b <= 0x39 {
                value = value * 10 + Int(b - 0x30)
                inNumber = true
            } else if inNumber {
                fields += 1
                if fields == 3 { return value }
                value = 0
                inNumber = false
            }
        }
        return inNumber && fields == 2 ? value : nil
    }
}
