// SystemStats.swift: process facts the metrics and benches report, under the names Training's users
// know: peak and current resident set size, the /proc/self/status sizes, resetting the peak (VmHWM),
// the kernel's page cache, and a monotonic clock. The reading is SystemIO's ProcessMemory (the one
// /proc reader); this file only names it for Training's callers. Nothing here changes behaviour.

import Foundation
import SystemIO

public enum SystemStats {
    /// Peak resident set size in bytes (VmHWM), or 0 where /proc is unavailable.
    public static var peakRSSBytes: Int { ProcessMemory.peakResidentBytes }
    /// Current resident set size in bytes (VmRSS).
    public static var currentRSSBytes: Int { ProcessMemory.currentResidentBytes }

    /// The size fields of /proc/self/status in bytes ("VmHWM", "VmRSS", "RssAnon", "RssFile", …);
    /// empty off Linux.
    public static func processStatus() -> [String: Int] { ProcessMemory.status() }

    /// The kernel's page cache, system-wide, in bytes (`Cached` of /proc/meminfo); nil off Linux.
    public static var pageCacheBytes: Int? { ProcessMemory.pageCacheBytes }

    /// Resets VmHWM to the current RSS (Linux ≥ 4.0), so a later `peakRSSBytes` covers only what ran
    /// after this call. Returns false where unsupported.
    @discardableResult
    public static func resetPeakRSS() -> Bool { ProcessMemory.resetPeak() }

    /// Seconds on a monotonic clock.
    public static var now: Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
}
