// SystemStats.swift: process facts the metrics and benches report: peak and current resident set size
// and the other /proc/self/status sizes (Linux), resetting the peak (VmHWM), the kernel's page cache
// from /proc/meminfo, and a monotonic clock. Nothing here changes behaviour.

import Foundation

public enum SystemStats {
    /// Peak resident set size in bytes (VmHWM), or 0 where /proc is unavailable.
    public static var peakRSSBytes: Int { processStatus()["VmHWM"] ?? 0 }
    /// Current resident set size in bytes (VmRSS).
    public static var currentRSSBytes: Int { processStatus()["VmRSS"] ?? 0 }

    /// The size fields of /proc/self/status in bytes ("VmHWM", "VmRSS", "RssAnon", "RssFile", …);
    /// empty off Linux.
    public static func processStatus() -> [String: Int] {
        kilobyteFields(of: "/proc/self/status")
    }

    /// The kernel's page cache, system-wide, in bytes: `Cached` of /proc/meminfo (file pages held in
    /// RAM, any process's; reclaimable, not charged to anyone's RSS). nil off Linux.
    public static var pageCacheBytes: Int? { kilobyteFields(of: "/proc/meminfo")["Cached"] }

    /// Resets VmHWM to the current RSS (writes "5" to /proc/self/clear_refs, Linux ≥ 4.0), so a
    /// later `peakRSSBytes` covers only what ran after this call. Returns false where unsupported.
    @discardableResult
    public static func resetPeakRSS() -> Bool {
        guard let h = FileHandle(forWritingAtPath: "/proc/self/clear_refs") else { return false }
        defer { try? h.close() }
        do {
            try h.write(contentsOf: Data("5".utf8))
            return true
        } catch {
            return false
        }
    }

    /// "Name:   123 kB" lines of a /proc file, in bytes.
    private static func kilobyteFields(of path: String) -> [String: Int] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [:] }
        var out: [String: Int] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2 else { continue }
            let fields = parts[1].split(whereSeparator: { $0 == " " || $0 == "\t" })
            if fields.count == 2, fields[1] == "kB", let v = Int(fields[0]) { out[String(parts[0])] = v * 1024 }
        }
        return out
    }

    /// Seconds on a monotonic clock.
    public static var now: Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
}
