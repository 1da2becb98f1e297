// SystemStats.swift: process facts the metrics report: peak and current resident set size from
// /proc/self/status (Linux), and a monotonic clock. Nothing here changes behaviour.

import Foundation

public enum SystemStats {
    /// Peak resident set size in bytes (VmHWM), or 0 where /proc is unavailable.
    public static var peakRSSBytes: Int { statusField("VmHWM") }
    /// Current resident set size in bytes (VmRSS).
    public static var currentRSSBytes: Int { statusField("VmRSS") }

    private static func statusField(_ name: String) -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix(name + ":") {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            if parts.count >= 2, let kb = Int(parts[1]) { return kb * 1024 }
        }
        return 0
    }

    /// Seconds on a monotonic clock.
    public static var now: Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
}
