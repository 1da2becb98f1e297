// TextFormat.swift: plain-text output helpers of the `membank` reports: number formatting (4
// significant digits), percentages, byte counts, right-padding, and a column-aligned table. No
// terminal control codes, so the output pipes and diffs cleanly.

import Foundation

/// A number with 4 significant digits (`%.4g`); integers print without a decimal point.
func fmt(_ v: Double) -> String {
    if v.isNaN { return "nan" }
    if v == v.rounded() && abs(v) < 1e9 { return String(Int64(v)) }
    return String(format: "%.4g", v)
}

/// `0.1234` → "12.34%".
func percent(_ share: Double) -> String { String(format: "%.2f%%", share * 100) }

/// `123456` → "123,456 B (120.6 KiB)".
func bytes(_ n: Int) -> String {
    let grouped = group(n)
    if n < 1024 { return "\(grouped) B" }
    let units = ["KiB", "MiB", "GiB", "TiB"]
    var v = Double(n) / 1024, u = 0
    while v >= 1024 && u < units.count - 1 { v /= 1024; u += 1 }
    return "\(grouped) B (\(String(format: "%.1f", v)) \(units[u]))"
}

/// `1234567` → "1,234,567".
func group(_ n: Int) -> String {
    let digits = String(n.magnitude)
    var out = ""
    for (i, ch) in digits.enumerated() {
        if i > 0 && (digits.count - i) % 3 == 0 { out += "," }
        out.append(ch)
    }
    return (n < 0 ? "-" : "") + out
}

/// `s` padded with spaces on the right to `width` characters.
func pad(_ s: String, _ width: Int) -> String { s.count >= width ? s : s + String(repeating: " ", count: width - s.count) }

/// A table with a header row; the first column is left-aligned, the others right-aligned.
struct Table {
    var header: [String]
    var rows: [[String]]

    func render(indent: String = "  ") -> String {
        let all = [header] + rows
        let widths = (0..<header.count).map { c in all.map { $0.indices.contains(c) ? $0[c].count : 0 }.max() ?? 0 }
        var out = ""
        for row in all {
            var line = indent
            for (c, cell) in row.enumerated() {
                let gap = String(repeating: " ", count: max(0, widths[c] - cell.count))
                line += c == 0 ? cell + gap : "  " + gap + cell
            }
            out += line + "\n"
        }
        return out
    }
}
