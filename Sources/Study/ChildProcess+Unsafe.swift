// ChildProcess+Unsafe.swift: the study runner's child processes (`memloss train`, `memloss eval`), spawned
// with posix_spawn rather than Foundation's Process, which puts each child in a process group of its own
// (a terminal's Ctrl-C and a test's kill of the runner's group would then miss it) and passes on the
// runner's ignored signals. Spec: the runner's rules in StudyRunner.swift. No study logic here.

import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How a child process ended.
public enum ChildTermination: Sendable, Equatable, CustomStringConvertible {
    case exited(Int32)
    case signaled(Int32)

    public var succeeded: Bool { self == .exited(0) }

    /// `exit 1` or `signal 9 (SIGKILL)`.
    public var description: String {
        switch self {
        case .exited(let code): return "exit \(code)"
        case .signaled(let s): return "signal \(s)\(ChildTermination.signalNames[s].map { " (\($0))" } ?? "")"
        }
    }

    static let signalNames: [Int32: String] = [SIGHUP: "SIGHUP", SIGINT: "SIGINT", SIGQUIT: "SIGQUIT", SIGILL: "SIGILL",
                                               SIGABRT: "SIGABRT", SIGBUS: "SIGBUS", SIGFPE: "SIGFPE", SIGKILL: "SIGKILL",
                                               SIGSEGV: "SIGSEGV", SIGPIPE: "SIGPIPE", SIGTERM: "SIGTERM", SIGTRAP: "SIGTRAP"]
}

/// A running child: its pid and the read end of its stderr pipe.
///
/// The child runs in the caller's process group with default dispositions for the signals a runner
/// may ignore (INT, TERM, HUP, QUIT, PIPE) and an empty signal mask; stdin is /dev/null, stdout goes to
/// the caller's descriptor, stderr to a pipe (`readStderr` copies it on and keeps its tail).
struct SpawnedChild {
    let pid: pid_t
    private let stderrDescriptor: Int32

    /// Starts `executable arguments…` with the caller's environment.
    /// - Throws: `StudyRunError.spawn` naming the executable and the errno text.
    static func spawn(executable: String, arguments: [String], stdout: Int32) throws -> SpawnedChild {
        var fds: [Int32] = [-1, -1]
        // Both ends close on exec: the child gets its stderr only through the dup2 below.
        guard pipe(&fds) == 0, fcntl(fds[0], F_SETFD, FD_CLOEXEC) == 0, fcntl(fds[1], F_SETFD, FD_CLOEXEC) == 0 else {
            throw StudyRunError.spawn(executable: executable, reason: "pipe: " + String(cString: strerror(errno)))
        }
        var actions = posix_spawn_file_actions_t()
        var attributes = posix_spawnattr_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawnattr_init(&attributes)
        defer {
            posix_spawn_file_actions_destroy(&actions)
            posix_spawnattr_destroy(&attributes)
        }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, stdout, 1)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 2)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for s in [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE] { sigaddset(&defaults, s) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var pid: pid_t = 0
        let status = posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
        close(fds[1])
        guard status == 0 else {
            close(fds[0])
            throw StudyRunError.spawn(executable: executable, reason: String(cString: strerror(status)))
        }
        return SpawnedChild(pid: pid, stderrDescriptor: fds[0])
    }

    /// Reads the child's stderr to its end, appending every chunk to `copy` (the cell's log), and
    /// returns the last `keepBytes` bytes of it.
    func readStderr(copyingTo copy: Int32, keepBytes: Int = 64 << 10) -> Data {
        var tail = Data()
        var buffer = [UInt8](repeating: 0, count: 8192)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(stderrDescriptor, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            buffer.withUnsafeBytes { raw in
                var offset = 0
                while offset < n {
                    let w = write(copy, raw.baseAddress! + offset, n - offset)
                    if w < 0 && errno == EINTR { continue }
                    if w <= 0 { break }  // the log is best effort; the tail below still names the failure
                    offset += w
                }
            }
            tail.append(contentsOf: buffer[0..<n])
            if tail.count > 2 * keepBytes { tail = tail.suffix(keepBytes) }
        }
        close(stderrDescriptor)
        return tail.suffix(keepBytes)
    }

    /// Waits for the child to end (retrying on EINTR).
    func wait() -> ChildTermination {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            if errno != EINTR { return .exited(-1) }
        }
        let signal = status & 0x7f
        return signal == 0 ? .exited((status >> 8) & 0xff) : .signaled(signal)
    }
}
