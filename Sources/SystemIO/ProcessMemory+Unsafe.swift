// ProcessMemory+Unsafe.swift: the per-batch reading of /proc/self/statm with plain open/read into a
// small stack-sized buffer (no Foundation, no allocation beyond the buffer), so the data and bank
// prefetchers can measure their file-backed RSS after every batch. The parser is in ProcessMemory.swift.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension ProcessMemory {
    /// This process's file-backed (+ shared memory) resident bytes: field 3 of /proc/self/statm × the
    /// page size; nil off Linux. Cheap enough to call once per batch (one small read).
    public static func residentFileBytes() -> Int? {
        #if os(Linux)
        let fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC)
        if fd < 0 { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 160)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0, let pages = parseStatmSharedPages(buffer[0..<n]) else { return nil }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
        #else
        return nil
        #endif
    }
}
