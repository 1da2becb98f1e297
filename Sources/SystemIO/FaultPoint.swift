// FaultPoint.swift: named points in the durable-write sequences (checkpoint commit, bank seal, mid-epoch
// checkpoint) where the crash tests kill a real process. `FaultPoint.hit("checkpoint.afterPointer")`
// costs one dictionary-free comparison when the variables below are unset, which is always the case
// outside the tests:
//
//   MEMLOSS_KILL_AT=name[#n]   the process sends itself SIGKILL at the n-th hit (default 1) of `name`
//   MEMLOSS_FAULT_LOG=path     every hit appends "name\n" to `path` (O_APPEND, unbuffered), so a test
//                              can list the points a run passes and then kill it at each of them.

import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Fault-injection points for the kill tests (docs/checkpoints.md, "Crash tests").
public enum FaultPoint {
    private struct Target { var name: String; var occurrence: Int }

    private static let configuration: (target: Target?, logDescriptor: Int32) = {
        let env = ProcessInfo.processInfo.environment
        var target: Target? = nil
        if let spec = env["MEMLOSS_KILL_AT"], !spec.isEmpty {
            let parts = spec.split(separator: "#", maxSplits: 1).map(String.init)
            target = Target(name: parts[0], occurrence: parts.count > 1 ? max(1, Int(parts[1]) ?? 1) : 1)
        }
        var fd: Int32 = -1
        if let path = env["MEMLOSS_FAULT_LOG"], !path.isEmpty {
            fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        }
        return (target, fd)
    }()

    /// Hits of the target so far, under its lock.
    private final class Counter: @unchecked Sendable {
        let lock = NSLock()
        var hits = 0
    }
    private static let counter = Counter()

    /// Whether any fault variable is set (callers may skip building a name when false).
    public static var isActive: Bool { configuration.target != nil || configuration.logDescriptor >= 0 }

    /// Marks that the process reached point `name`: logs it and, at the chosen occurrence, dies
    /// by SIGKILL (no cleanup, no buffered output flushed: what `kill -9` does).
    public static func hit(_ name: String) {
        let config = configuration
        guard config.target != nil || config.logDescriptor >= 0 else { return }
        counter.lock.lock()
        defer { counter.lock.unlock() }
        if config.logDescriptor >= 0 {
            FileHandle(fileDescriptor: config.logDescriptor, closeOnDealloc: false).write(Data((name + "\n").utf8))
        }
        guard let target = config.target, target.name == name else { return }
        counter.hits += 1
        if counter.hits == target.occurrence { kill(getpid(), SIGKILL) }
    }
}
