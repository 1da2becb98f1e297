// KernelProfile.swift: opt-in timers for the kernels' public pointer-level entry points, per kernel
// family (nanoseconds, call counts, multiply-adds), accumulated atomically. Off by default: each entry
// point then pays one relaxed atomic load and a branch. Only the thread that started the profile is
// counted, and only the outermost measured call on it (a fused conv that calls the plain one, a linear
// that accumulates its bias through Elementwise), so no time is counted twice. Knows no layers.

import Dispatch
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The kernel families `KernelProfile` keeps apart (`memloss bench step`, docs/performance.md).
public enum KernelFamily: Int, CaseIterable, Codable, Sendable, CustomStringConvertible {
    /// `Conv2D.forward` (plain and with a fused epilogue); MACs = `ConvGeometry.forwardMACs`.
    case convForward
    /// `Conv2D.backwardInput`; MACs = `forwardMACs`.
    case convBackwardInput
    /// `Conv2D.backwardWeight`; MACs = `forwardMACs`.
    case convBackwardWeight
    /// `Linear.forward`, `backwardInput`, `backwardWeight` (one GEMM each); MACs = N·in·out.
    case linear
    /// The four `BatchNorm2D` passes (no MACs counted: bandwidth-bound).
    case batchNorm
    /// `Elementwise`, `Activation`, `Dropout` and `Perturbation` (attack steps and projections).
    case elementwise
    /// `Pooling` (max, average, global average; forward and backward).
    case pooling
    /// `Loss` (softmax, log-softmax, cross-entropy, KL).
    case loss

    /// Stable name used in reports and JSON (`convForward`, …).
    public var description: String {
        switch self {
        case .convForward: return "convForward"
        case .convBackwardInput: return "convBackwardInput"
        case .convBackwardWeight: return "convBackwardWeight"
        case .linear: return "linear"
        case .batchNorm: return "batchNorm"
        case .elementwise: return "elementwise"
        case .pooling: return "pooling"
        case .loss: return "loss"
        }
    }

    /// Whether the family's calls report multiply-adds (so a GFLOP/s figure means something).
    public var countsMACs: Bool {
        switch self {
        case .convForward, .convBackwardInput, .convBackwardWeight, .linear: return true
        case .batchNorm, .elementwise, .pooling, .loss: return false
        }
    }
}

/// What `KernelProfile` accumulated for one family.
public struct KernelCounters: Equatable, Sendable {
    public var nanoseconds: Int
    public var calls: Int
    /// Multiply-adds of the counted calls (0 for families that do not count them).
    public var macs: Int

    public init(nanoseconds: Int = 0, calls: Int = 0, macs: Int = 0) {
        self.nanoseconds = nanoseconds; self.calls = calls; self.macs = macs
    }

    public var seconds: Double { Double(nanoseconds) / 1e9 }

    /// `2 · macs / seconds / 10⁹` (one multiply-add = 2 FLOPs), nil without MACs or time.
    public var gflops: Double? {
        guard macs > 0, nanoseconds > 0 else { return nil }
        return 2 * Double(macs) / Double(nanoseconds)
    }
}

/// Per-family kernel timers (see the file banner).
///
/// Use in a public entry point, as its first line:
/// ```
/// let profile = KernelProfile.begin(.convForward, macs: g.forwardMACs); defer { KernelProfile.end(profile) }
/// ```
/// Bench code calls `start()` on the thread that runs the work, `stop()`, then reads `snapshot()`.
/// Profiling changes no result: it only reads a clock around the call.
public enum KernelProfile {
    /// What `begin` hands to `end`: the family (−1: not measured), the start time and the MACs.
    public struct Token {
        @usableFromInline let family: Int
        @usableFromInline let start: UInt64
        @usableFromInline let macs: Int

        @usableFromInline init(family: Int, start: UInt64, macs: Int) {
            self.family = family; self.start = start; self.macs = macs
        }

        @usableFromInline static let none = Token(family: -1, start: 0, macs: 0)
    }

    /// One family's counters.
    final class Slot: Sendable {
        let nanoseconds = Atomic<Int>(0)
        let calls = Atomic<Int>(0)
        let macs = Atomic<Int>(0)
    }

    /// The profiled thread's id, 0 when profiling is off.
    static let profiledThread = Atomic<UInt>(0)
    /// 1 while the profiled thread is inside a measured call (nested calls are not measured).
    static let depth = Atomic<Int>(0)
    static let slots: [Slot] = KernelFamily.allCases.map { _ in Slot() }

    /// Whether a profile is running.
    public static var isEnabled: Bool { profiledThread.load(ordering: .relaxed) != 0 }

    /// Clears the counters and starts counting the calls made on the calling thread.
    public static func start() {
        reset()
        depth.store(0, ordering: .relaxed)
        profiledThread.store(currentThreadID(), ordering: .releasing)
    }

    /// Stops counting (the counters keep their values).
    public static func stop() { profiledThread.store(0, ordering: .releasing) }

    /// Zeroes every counter.
    public static func reset() {
        for s in slots {
            s.nanoseconds.store(0, ordering: .relaxed)
            s.calls.store(0, ordering: .relaxed)
            s.macs.store(0, ordering: .relaxed)
        }
    }

    /// The counters of every family (zero for families with no call).
    public static func snapshot() -> [KernelFamily: KernelCounters] {
        var out: [KernelFamily: KernelCounters] = [:]
        for f in KernelFamily.allCases {
            let s = slots[f.rawValue]
            out[f] = KernelCounters(nanoseconds: s.nanoseconds.load(ordering: .relaxed), calls: s.calls.load(ordering: .relaxed),
                                    macs: s.macs.load(ordering: .relaxed))
        }
        return out
    }

    /// Starts measuring one call of `family` if a profile runs on this thread and no measured call
    /// is already open on it; otherwise returns a token `end` ignores. `macs` is evaluated only when
    /// the call is measured.
    @inline(__always)
    public static func begin(_ family: KernelFamily, macs: @autoclosure () -> Int = 0) -> Token {
        let thread = profiledThread.load(ordering: .relaxed)
        if thread == 0 { return .none }
        return beginMeasured(family, thread: thread, macs: macs())
    }

    /// Ends a call `begin` started (no-op for an unmeasured token).
    @inline(__always)
    public static func end(_ token: Token) {
        if token.family < 0 { return }
        endMeasured(token)
    }

    @usableFromInline
    static func beginMeasured(_ family: KernelFamily, thread: UInt, macs: Int) -> Token {
        guard currentThreadID() == thread, depth.load(ordering: .relaxed) == 0 else { return .none }
        depth.store(1, ordering: .relaxed)
        return Token(family: family.rawValue, start: DispatchTime.now().uptimeNanoseconds, macs: macs)
    }

    @usableFromInline
    static func endMeasured(_ token: Token) {
        let elapsed = DispatchTime.now().uptimeNanoseconds &- token.start
        let s = slots[token.family]
        s.nanoseconds.wrappingAdd(Int(elapsed), ordering: .relaxed)
        s.calls.wrappingAdd(1, ordering: .relaxed)
        s.macs.wrappingAdd(token.macs, ordering: .relaxed)
        depth.store(0, ordering: .relaxed)
    }

    /// A nonzero id of the calling thread.
    static func currentThreadID() -> UInt {
        #if canImport(Glibc)
        return UInt(pthread_self())
        #else
        return UInt(bitPattern: pthread_self())
        #endif
    }
}
