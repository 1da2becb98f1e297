// JSONValue.swift: a small Codable JSON tree, so `membank info --json` can embed the bank's
// `createdBy` settings as structured JSON (key order kept) instead of an escaped string. Parsing
// goes through JSONSerialization; nothing here knows about banks.

import Foundation

/// A JSON value with object key order preserved.
public enum JSONValue: Codable, Equatable, Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([(key: String, value: JSONValue)])

    /// Parses `text` as JSON; text that is not a JSON object or array becomes `.string(text)`.
    public init(parsingOrText text: String) {
        guard let data = text.data(using: .utf8),
              let object = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]),
              object is [String: Any] || object is [Any] else {
            self = .string(text)
            return
        }
        self = JSONValue(foundation: object, order: JSONValue.keyOrder(in: text))
    }

    private init(foundation value: Any, order: [String: Int]) {
        switch value {
        case is NSNull: self = .null
        case let n as NSNumber:
            // JSONSerialization boxes true/false as NSNumbers of ObjC type "c" (char), numbers otherwise.
            if String(cString: n.objCType) == "c" { self = .bool(n.boolValue) } else { self = .number(n.doubleValue) }
        case let s as String: self = .string(s)
        case let a as [Any]: self = .array(a.map { JSONValue(foundation: $0, order: order) })
        case let d as [String: Any]:
            let keys = d.keys.sorted { (order[$0] ?? Int.max, $0) < (order[$1] ?? Int.max, $1) }
            self = .object(keys.map { ($0, JSONValue(foundation: d[$0]!, order: order)) })
        default: self = .string("\(value)")
        }
    }

    /// First position of each `"key":` in the text (good enough to keep the writer's key order).
    private static func keyOrder(in text: String) -> [String: Int] {
        var order: [String: Int] = [:]
        let scalars = Array(text.unicodeScalars)
        var i = 0, position = 0
        while i < scalars.count {
            guard scalars[i] == "\"" else { i += 1; continue }
            var j = i + 1, key = ""
            while j < scalars.count && scalars[j] != "\"" {
                if scalars[j] == "\\" { j += 1 }
                if j < scalars.count { key.unicodeScalars.append(scalars[j]) }
                j += 1
            }
            var k = j + 1
            while k < scalars.count && (scalars[k] == " " || scalars[k] == "\n" || scalars[k] == "\t" || scalars[k] == "\r") { k += 1 }
            if k < scalars.count && scalars[k] == ":" && order[key] == nil {
                order[key] = position
                position += 1
            }
            i = j + 1
        }
        return order
    }

    public static func == (a: JSONValue, b: JSONValue) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case let (.bool(x), .bool(y)): return x == y
        case let (.number(x), .number(y)): return x == y
        case let (.string(x), .string(y)): return x == y
        case let (.array(x), .array(y)): return x == y
        case let (.object(x), .object(y)): return x.map(\.key) == y.map(\.key) && x.map(\.value) == y.map(\.value)
        default: return false
        }
    }

    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public func encode(to encoder: Encoder) throws {
        switch self {
        case .null:
            var c = encoder.singleValueContainer()
            try c.encodeNil()
        case .bool(let b):
            var c = encoder.singleValueContainer()
            try c.encode(b)
        case .number(let n):
            var c = encoder.singleValueContainer()
            // JSON has no NaN/±∞ (JSONEncoder throws on them): such a createdBy value prints as a string.
            if !n.isFinite { try c.encode("\(n)") } else if n == n.rounded() && abs(n) < 1e15 { try c.encode(Int64(n)) } else { try c.encode(n) }
        case .string(let s):
            var c = encoder.singleValueContainer()
            try c.encode(s)
        case .array(let a):
            var c = encoder.unkeyedContainer()
            for v in a { try c.encode(v) }
        case .object(let fields):
            var c = encoder.container(keyedBy: Key.self)
            for (k, v) in fields { try c.encode(v, forKey: Key(stringValue: k)) }
        }
    }

    public init(from decoder: Decoder) throws {
        if let c = try? decoder.container(keyedBy: Key.self) {
            self = .object(try c.allKeys.map { ($0.stringValue, try c.decode(JSONValue.self, forKey: $0)) })
        } else if var c = try? decoder.unkeyedContainer() {
            var items: [JSONValue] = []
            while !c.isAtEnd { items.append(try c.decode(JSONValue.self)) }
            self = .array(items)
        } else {
            let c = try decoder.singleValueContainer()
            if c.decodeNil() { self = .null }
            else if let b = try? c.decode(Bool.self) { self = .bool(b) }
            else if let n = try? c.decode(Double.self) { self = .number(n) }
            else { self = .string(try c.decode(String.self)) }
        }
    }

    /// Pretty text: `key: value` lines, nested objects indented (for the human `info` output).
    public func outline(indent: String = "  ") -> [String] {
        switch self {
        case .object(let fields):
            return fields.flatMap { (k, v) -> [String] in
                switch v {
                case .object(let inner) where !inner.isEmpty: return ["\(indent)\(k):"] + v.outline(indent: indent + "  ")
                default: return ["\(indent)\(k): \(v.inline)"]
                }
            }
        default: return [indent + inline]
        }
    }

    /// One-line JSON-like rendering.
    public var inline: String {
        switch self {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .number(let n): return n == n.rounded() && abs(n) < 1e15 ? String(Int64(n)) : "\(n)"
        case .string(let s): return s
        case .array(let a): return "[" + a.map(\.inline).joined(separator: ", ") + "]"
        case .object(let f): return "{" + f.map { "\($0.key): \($0.value.inline)" }.joined(separator: ", ") + "}"
        }
    }
}
