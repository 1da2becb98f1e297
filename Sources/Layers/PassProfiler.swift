// PassProfiler.swift: an opt-in wall-clock profile of a model's forward and backward passes, keyed by
// what the pass is for (attack forward/backward, outer forward/backward, the MemLoss pass). An
// `AnyClassifier` with a profiler attached reports every pass into it; without one (the default) a
// pass pays one nil check. It changes no result: it only reads a clock around the pass. Not
// thread-safe: one training step at a time drives a model. Knows no methods or attacks by name.

import Dispatch

/// What a model pass is for, as `memloss bench step` reports it.
public enum ModelPass: Int, CaseIterable, Codable, Sendable, CustomStringConvertible {
    /// `.inference`-mode forward passes (the attack's; BatchNorm uses running statistics).
    case attackForward
    /// Backward passes without parameter gradients (the attack's input-gradient passes).
    case attackBackward
    /// `.training`-mode forward passes of the method's loss.
    case outerForward
    /// Backward passes that accumulate parameter gradients.
    case outerBackward
    /// A region a caller marks as the MemLoss term (its forward, loss and backward together).
    case memLoss

    /// Stable name used in reports and JSON.
    public var description: String {
        switch self {
        case .attackForward: return "attackForward"
        case .attackBackward: return "attackBackward"
        case .outerForward: return "outerForward"
        case .outerBackward: return "outerBackward"
        case .memLoss: return "memLoss"
        }
    }

    /// How `AnyClassifier` classifies a forward pass by its mode.
    public static func forward(_ mode: ForwardMode) -> ModelPass { mode == .inference ? .attackForward : .outerForward }

    /// How `AnyClassifier` classifies a backward pass by its targets.
    public static func backward(_ targets: GradientTargets) -> ModelPass {
        targets.contains(.parameters) ? .outerBackward : .attackBackward
    }
}

/// Accumulated wall time and counts of model passes, per `ModelPass`.
///
/// Intervals do not nest: while one is open (a `.memLoss` region, say), the passes inside it are
/// part of that interval and are not recorded again, so the totals never count a second twice.
public final class PassProfiler {
    /// What `begin` hands to `end`: the pass (nil: nested, not measured) and its start, ns.
    public struct Token {
        let pass: ModelPass?
        let start: UInt64
    }

    private var nanoseconds = [Int](repeating: 0, count: ModelPass.allCases.count)
    private var counts = [Int](repeating: 0, count: ModelPass.allCases.count)
    private var isOpen = false

    public init() {}

    /// Opens an interval of `pass` (or a nested, unmeasured one if an interval is open).
    public func begin(_ pass: ModelPass) -> Token {
        if isOpen { return Token(pass: nil, start: 0) }
        isOpen = true
        return Token(pass: pass, start: DispatchTime.now().uptimeNanoseconds)
    }

    /// Closes an interval `begin` opened and adds it to its pass.
    public func end(_ token: Token) {
        guard let pass = token.pass else { return }
        nanoseconds[pass.rawValue] += Int(DispatchTime.now().uptimeNanoseconds &- token.start)
        counts[pass.rawValue] += 1
        isOpen = false
    }

    /// Runs `body` as one interval of `pass`.
    public func measure<R>(_ pass: ModelPass, _ body: () throws -> R) rethrows -> R {
        let token = begin(pass)
        defer { end(token) }
        return try body()
    }

    /// Seconds accumulated for `pass`.
    public func seconds(_ pass: ModelPass) -> Double { Double(nanoseconds[pass.rawValue]) / 1e9 }

    /// Intervals recorded for `pass`.
    public func count(_ pass: ModelPass) -> Int { counts[pass.rawValue] }

    /// Zeroes every total (an open interval still closes normally).
    public func reset() {
        for i in nanoseconds.indices { nanoseconds[i] = 0; counts[i] = 0 }
    }
}

extension AnyClassifier {
    /// Opens a `pass` interval on the attached profiler (nil without one); close it with `endPass`.
    /// Callers mark regions the mode/targets rule would misfile (the MemLoss term, a clean
    /// inference pass that is no attack).
    public func beginPass(_ pass: ModelPass) -> PassProfiler.Token? { profiler?.begin(pass) }

    /// Closes an interval `beginPass` opened.
    public func endPass(_ token: PassProfiler.Token?) {
        if let token { profiler?.end(token) }
    }
}
