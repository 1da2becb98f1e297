// MPICommunicator+Unsafe.swift: `Communicator` over Open MPI's MPI_COMM_WORLD (CMPI shim).
// MPI_Init_thread with MPI_THREAD_FUNNELED: only the thread that created it (the main thread)
// calls MPI; the prefetch threads never do. Errors are returned (MPI_ERRORS_RETURN) and become
// `DistributedError.mpi`, never a trap. The raw buffer pointers MPI takes stay inside this file.

import CMPI
import Foundation

/// The world communicator of an MPI job (docs/distributed.md §3).
///
/// Counts above `Int32.max` elements are sent in chunks (MPI counts are `int`).
public final class MPICommunicator: Communicator {
    public let rank: Int
    public let size: Int
    public let name: String
    private let world: MPI_Comm
    private var finalized = false
    /// Elements per MPI call: MPI counts are C `int`.
    private static let maxChunk = Int(Int32.max)

    /// Initialises MPI (once per process; a second communicator reuses the running library).
    /// - Throws: `.launch` when MPI_Init_thread fails or cannot give `MPI_THREAD_FUNNELED`.
    public init() throws(DistributedError) {
        var already: Int32 = 0
        MPI_Initialized(&already)
        if already == 0 {
            var provided: Int32 = 0
            let rc = MPI_Init_thread(nil, nil, cmpi_thread_funneled(), &provided)
            guard rc == cmpi_success() else {
                throw .launch(problem: "MPI_Init_thread failed with error \(rc) (\(MPICommunicator.errorString(rc)))")
            }
            guard provided >= cmpi_thread_funneled() else {
                throw .launch(problem: "MPI provides thread level \(provided), below MPI_THREAD_FUNNELED (\(cmpi_thread_funneled()))")
            }
        }
        world = cmpi_comm_world()
        MPI_Comm_set_errhandler(world, cmpi_errors_return())
        var r: Int32 = 0, s: Int32 = 0
        MPI_Comm_rank(world, &r)
        MPI_Comm_size(world, &s)
        rank = Int(r); size = Int(s)
        var version = [CChar](repeating: 0, count: 256)
        var length: Int32 = 0
        MPI_Get_library_version(&version, &length)
        let library = String(decoding: version.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            .split(separator: ",").first.map(String.init) ?? "MPI"
        name = "MPI (\(library.trimmingCharacters(in: .whitespacesAndNewlines)), \(s) ranks)"
    }

    deinit { finalize() }

    // MARK: - Collectives

    public func barrier() throws(DistributedError) {
        try check(MPI_Barrier(world), "MPI_Barrier")
    }

    public func broadcast(bytes: [UInt8], root: Int) throws(DistributedError) -> [UInt8] {
        try checkRank(root, "broadcast")
        var count = [Int64(bytes.count)]
        try check(count.withUnsafeMutableBytes { p in MPI_Bcast(p.baseAddress, 1, cmpi_int64(), Int32(root), world) },
                  "MPI_Bcast (length)")
        var out = rank == root ? bytes : [UInt8](repeating: 0, count: Int(count[0]))
        try chunked(out.count) { (offset, n) throws(DistributedError) in
            try check(out.withUnsafeMutableBytes { p in MPI_Bcast(p.baseAddress! + offset, Int32(n), cmpi_byte(), Int32(root), world) },
                      "MPI_Bcast")
        }
        return out
    }

    public func broadcast(_ values: inout [Float], root: Int) throws(DistributedError) {
        try checkRank(root, "broadcast")
        try checkSameCount(values.count, "broadcast")
        try chunked(values.count) { (offset, n) throws(DistributedError) in
            try check(values.withUnsafeMutableBufferPointer { p in
                MPI_Bcast(p.baseAddress! + offset, Int32(n), cmpi_float(), Int32(root), world)
            }, "MPI_Bcast")
        }
    }

    public func allReduceSum(_ values: inout [Float]) throws(DistributedError) {
        try checkSameCount(values.count, "allReduceSum")
        try chunked(values.count) { (offset, n) throws(DistributedError) in
            try check(values.withUnsafeMutableBufferPointer { p in
                MPI_Allreduce(cmpi_in_place(), p.baseAddress! + offset, Int32(n), cmpi_float(), cmpi_op_sum(), world)
            }, "MPI_Allreduce")
        }
    }

    public func allReduceSum(_ values: inout [Double]) throws(DistributedError) {
        try checkSameCount(values.count, "allReduceSum")
        try chunked(values.count) { (offset, n) throws(DistributedError) in
            try check(values.withUnsafeMutableBufferPointer { p in
                MPI_Allreduce(cmpi_in_place(), p.baseAddress! + offset, Int32(n), cmpi_double(), cmpi_op_sum(), world)
            }, "MPI_Allreduce")
        }
    }

    public func gather(bytes: [UInt8], root: Int) throws(DistributedError) -> [[UInt8]] {
        try checkRank(root, "gather")
        guard bytes.count <= MPICommunicator.maxChunk else {
            throw .invalidArgument(operation: "gather", problem: "a blob of \(bytes.count) bytes exceeds \(Int32.max)")
        }
        var counts = [Int32](repeating: 0, count: rank == root ? size : 1)
        var mine = Int32(bytes.count)
        try check(counts.withUnsafeMutableBufferPointer { c in
            MPI_Gather(&mine, 1, cmpi_int32(), c.baseAddress, 1, cmpi_int32(), Int32(root), world)
        }, "MPI_Gather")
        var displacements = [Int32](repeating: 0, count: counts.count)
        var total = 0
        for i in counts.indices where rank == root {
            displacements[i] = Int32(total)
            total += Int(counts[i])
            guard total <= MPICommunicator.maxChunk else {
                throw .invalidArgument(operation: "gather", problem: "the blobs total more than \(Int32.max) bytes")
            }
        }
        var all = [UInt8](repeating: 0, count: max(total, 1))
        var send = bytes.isEmpty ? [0] : bytes
        let rc = send.withUnsafeMutableBytes { s in
            all.withUnsafeMutableBytes { a in
                counts.withUnsafeMutableBufferPointer { c in
                    displacements.withUnsafeMutableBufferPointer { d in
                        MPI_Gatherv(s.baseAddress, mine, cmpi_byte(), a.baseAddress, c.baseAddress, d.baseAddress,
                                    cmpi_byte(), Int32(root), world)
                    }
                }
            }
        }
        try check(rc, "MPI_Gatherv")
        guard rank == root else { return [] }
        return counts.indices.map { i in Array(all[Int(displacements[i])..<Int(displacements[i]) + Int(counts[i])]) }
    }

    public func abort(code: Int32, message: String) -> Never {
        FileHandle.standardError.write(Data((message.hasSuffix("\n") ? message : message + "\n").utf8))
        MPI_Abort(world, code)
        exit(code)  // MPI_Abort does not return; this keeps the type checker honest
    }

    public func finalize() {
        guard !finalized else { return }
        finalized = true
        var done: Int32 = 0
        MPI_Finalized(&done)
        if done == 0 { MPI_Finalize() }
    }

    // MARK: - Helpers

    /// Calls `body(offset, count)` over `0..<total` in chunks MPI's `int` counts can hold.
    private func chunked(_ total: Int, _ body: (Int, Int) throws(DistributedError) -> Void) throws(DistributedError) {
        var offset = 0
        while offset < total {
            let n = min(MPICommunicator.maxChunk, total - offset)
            try body(offset, n)
            offset += n
        }
    }

    /// Every rank must pass the same element count to a reduction: compared through a max/sum pair.
    private func checkSameCount(_ count: Int, _ op: String) throws(DistributedError) {
        var v: [Double] = [Double(count), -Double(count)]
        try check(v.withUnsafeMutableBufferPointer { p in
            MPI_Allreduce(cmpi_in_place(), p.baseAddress, 2, cmpi_double(), cmpi_op_max(), world)
        }, "MPI_Allreduce (count check)")
        guard v[0] == Double(count), -v[1] == Double(count) else {
            throw .invalidArgument(operation: op, problem: "ranks pass different element counts (\(Int(-v[1]))…\(Int(v[0])), "
                                   + "this rank \(count))")
        }
    }

    private func checkRank(_ r: Int, _ op: String) throws(DistributedError) {
        guard r >= 0 && r < size else { throw .invalidArgument(operation: op, problem: "root rank \(r) is outside 0..<\(size)") }
    }

    private func check(_ rc: Int32, _ op: String) throws(DistributedError) {
        guard rc != cmpi_success() else { return }
        throw .mpi(operation: op, code: rc, message: MPICommunicator.errorString(rc))
    }

    private static func errorString(_ rc: Int32) -> String {
        var buffer = [CChar](repeating: 0, count: Int(cmpi_max_error_string()) + 1)
        var length: Int32 = 0
        MPI_Error_string(rc, &buffer, &length)
        return String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
