// SystemIOError.swift: the one error every SystemIO operation throws: which system call step failed,
// on which path, and the `errno` text. Callers translate it into their own error type (DatasetError,
// MemoryBankError, SafeTensorsError) so messages keep naming the file and the step.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a file operation failed: the step (`"open"`, `"mmap"`, `"write temporary file"`, …), the path
/// it concerned, and the reason (`strerror(errno)` or a sentence).
public struct SystemIOError: Error, CustomStringConvertible, Equatable, Sendable {
    public var operation: String
    public var path: String
    public var reason: String
    /// The `errno` value, 0 when the failure was not a system call's.
    public var code: Int32

    public init(operation: String, path: String, reason: String, code: Int32 = 0) {
        self.operation = operation
        self.path = path
        self.reason = reason
        self.code = code
    }

    /// The failure of a system call that just set `errno` (or `code`).
    public static func posix(_ operation: String, _ path: String, code: Int32 = errno) -> SystemIOError {
        SystemIOError(operation: operation, path: path, reason: String(cString: strerror(code)), code: code)
    }

    public var description: String {
        "\(path): \(operation) failed: \(reason)\nhint: check that the path exists, its permissions and the free disk space of its directory."
    }
}
