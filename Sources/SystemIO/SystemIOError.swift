// SystemIOError.swift: the one error every SystemIO operation throws: which system call step failed,
// on which path, and the `errno` text. Callers translate it into their own error type (DatasetError,
// MemoryBankError, SafeTensorsError) so messages keep naming the file and the step. This is also the
// one place where a Foundation file error (NSError / CocoaError) becomes words: `SystemIOError.from`.

import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a file operation failed: the step (`"open"`, `"mmap"`, `"write temporary file"`, …), the path
/// it concerned, and the reason (`strerror(errno)` or a sentence).
///
/// `description` is one line `PATH: STEP failed: REASON` and a `hint:` line chosen by `code`
/// (ENOTDIR, EEXIST, EACCES, EPERM, EROFS, ENOSPC, ENOENT, … each get their own advice).
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

    /// Any error of a file operation on `path` as a `SystemIOError`: a `SystemIOError` is returned as
    /// it is; a Foundation error (`NSPOSIXErrorDomain`, or `NSCocoaErrorDomain` with its underlying
    /// POSIX error or its file error code) becomes its `errno` and `strerror` text, never the raw
    /// `Error Domain=… UserInfo=…` dump.
    public static func from(_ error: any Error, operation: String, path: String) -> SystemIOError {
        if let e = error as? SystemIOError { return e }
        if let code = posixCode(of: error as NSError) { return .posix(operation, path, code: code) }
        let ns = error as NSError
        let text = (ns.userInfo[NSLocalizedFailureReasonErrorKey] as? String) ?? ns.localizedDescription
        return SystemIOError(operation: operation, path: path,
                             reason: text.split(separator: "\n").first.map(String.init) ?? "unknown error")
    }

    /// A Foundation file error (`NSCocoaErrorDomain` or `NSPOSIXErrorDomain`) that reached a caller
    /// unconverted, with the path its `userInfo` names; nil for any other error.
    public static func fromFoundation(_ error: any Error, operation: String) -> SystemIOError? {
        if let e = error as? SystemIOError { return e }
        let ns = error as NSError
        guard ns.domain == NSCocoaErrorDomain || ns.domain == NSPOSIXErrorDomain else { return nil }
        let path = (ns.userInfo[NSFilePathErrorKey] as? String) ?? (ns.userInfo[NSURLErrorKey] as? URL)?.path
            ?? "(unknown path)"
        return from(error, operation: operation, path: path)
    }

    /// The `errno` behind a Foundation error, when there is one.
    static func posixCode(of ns: NSError) -> Int32? {
        if ns.domain == NSPOSIXErrorDomain { return Int32(truncatingIfNeeded: ns.code) }
        if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? any Error, let c = posixCode(of: underlying as NSError) {
            return c
        }
        guard ns.domain == NSCocoaErrorDomain else { return nil }
        switch CocoaError.Code(rawValue: ns.code) {
        case .fileNoSuchFile, .fileReadNoSuchFile: return ENOENT
        case .fileWriteNoPermission, .fileReadNoPermission: return EACCES
        case .fileWriteVolumeReadOnly: return EROFS
        case .fileWriteOutOfSpace: return ENOSPC
        case .fileWriteFileExists: return EEXIST
        case .fileWriteInvalidFileName, .fileReadInvalidFileName: return ENAMETOOLONG
        default: return nil
        }
    }

    /// What to do about a failure with this `errno`.
    public var hint: String {
        switch code {
        case ENOTDIR:
            return "a parent of the path is a regular file, not a directory; choose a path whose parents are directories"
        case EEXIST:
            return "something that is not a directory is in the way; remove it or choose another path"
        case EACCES:
            return "permission denied; choose a location you can write, or fix the permissions of its directory"
        case EPERM:
            return "the operation is not permitted there (an immutable or append-only file, see lsattr, or a "
                + "system file system such as /sys); choose another location"
        case EROFS:
            return "the file system is mounted read-only; choose a path on a writable file system"
        case ENOSPC, EDQUOT:
            return "the disk (or the quota) is full; free space or choose another file system"
        case ENOENT:
            return "a directory on the path does not exist (or the file system cannot hold new entries there); "
                + "create it or check the path"
        case ENAMETOOLONG:
            return "the path or one of its names is too long; choose a shorter path"
        default:
            return "check that the path exists, its permissions and the free disk space of its directory"
        }
    }

    public var description: String {
        "\(path): \(operation) failed: \(reason)\nhint: \(hint)"
    }
}
