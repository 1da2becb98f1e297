// Communicator.swift: the collective operations data-parallel training needs (docs/distributed.md
// §3): rank and world size, barrier, broadcast, in-place all-reduce sums, a gather of small blobs to
// rank 0, abort; the single-process implementation (every operation the identity, no MPI call);
// and the choice between it and MPI from the launcher's environment. The MPI implementation is
// MPICommunicator+Unsafe.swift. Nothing here knows models, tensors' meaning or training.

import Foundation

/// A group of `size` cooperating processes (ranks `0..<size`), all running the same program.
///
/// Every operation is collective: each rank calls the same operations in the same order with
/// matching lengths, or the job deadlocks (MPI's rule). Call from one thread only (the main thread
/// for `MPICommunicator`, which is initialised with `MPI_THREAD_FUNNELED`).
public protocol Communicator: AnyObject {
    /// This process's rank, `0..<size`; rank 0 is the one that writes files and prints.
    var rank: Int { get }
    /// Number of ranks (1 for a plain run).
    var size: Int { get }
    /// A short name for logs ("single process", "MPI (Open MPI …)").
    var name: String { get }

    /// Returns when every rank has called it.
    func barrier() throws(DistributedError)
    /// Rank `root`'s bytes on every rank (any length; the other ranks' arguments are ignored).
    func broadcast(bytes: [UInt8], root: Int) throws(DistributedError) -> [UInt8]
    /// Overwrites `values` with rank `root`'s; every rank passes the same count.
    func broadcast(_ values: inout [Float], root: Int) throws(DistributedError)
    /// `values[i] = Σ_ranks values[i]` on every rank, in place; every rank passes the same count.
    func allReduceSum(_ values: inout [Float]) throws(DistributedError)
    /// `values[i] = Σ_ranks values[i]` on every rank, in place (counters, double sums).
    func allReduceSum(_ values: inout [Double]) throws(DistributedError)
    /// Every rank's blob at `root`, indexed by rank (any lengths); `[]` on the other ranks.
    func gather(bytes: [UInt8], root: Int) throws(DistributedError) -> [[UInt8]]
    /// Stops every rank of the job with exit status `code` (MPI_Abort), after this rank has
    /// written `message` to stderr. The way out when one rank fails and the others may be waiting in
    /// a collective.
    func abort(code: Int32, message: String) -> Never
    /// Ends the communicator (MPI_Finalize); the last call. A no-op for a single process.
    func finalize()
}

extension Communicator {
    /// True on the rank that writes files and progress (rank 0).
    public var isRoot: Bool { rank == 0 }
}

// MARK: - Errors

/// A failed collective operation, as a value (MPI is set to return its errors, never to abort).
public enum DistributedError: Error, CustomStringConvertible, Equatable {
    /// MPI returned `code` from `operation`; `message` is MPI_Error_string's text.
    case mpi(operation: String, code: Int32, message: String)
    /// A rank argument outside `0..<size`, or counts that differ between ranks.
    case invalidArgument(operation: String, problem: String)
    /// The launcher's environment says the job has ranks but MPI could not start.
    case launch(problem: String)

    public var description: String {
        switch self {
        case .mpi(let op, let code, let message):
            return "MPI: \(op) failed with error \(code) (\(message))\nhint: another rank may have died; see the launcher's "
                + "output above (`mpirun` names the failed rank)"
        case .invalidArgument(let op, let problem):
            return "distributed: \(op): \(problem)\nhint: every rank must run the same command with the same data"
        case .launch(let problem):
            return "distributed: \(problem)\nhint: launch with `mpirun -np R memloss …` (docs/distributed.md §1), or run "
                + "without a launcher for one process"
        }
    }
}

// MARK: - Single process

/// The communicator of a plain run: one rank, every operation the identity, no MPI call at all.
public final class SingleProcess: Communicator {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public var name: String { "single process" }
    public func barrier() throws(DistributedError) {}
    public func broadcast(bytes: [UInt8], root: Int) throws(DistributedError) -> [UInt8] {
        try SingleProcess.check(root: root, "broadcast")
        return bytes
    }
    public func broadcast(_ values: inout [Float], root: Int) throws(DistributedError) {
        try SingleProcess.check(root: root, "broadcast")
    }
    public func allReduceSum(_ values: inout [Float]) throws(DistributedError) {}
    public func allReduceSum(_ values: inout [Double]) throws(DistributedError) {}
    public func gather(bytes: [UInt8], root: Int) throws(DistributedError) -> [[UInt8]] {
        try SingleProcess.check(root: root, "gather")
        return [bytes]
    }
    public func abort(code: Int32, message: String) -> Never {
        FileHandle.standardError.write(Data((message.hasSuffix("\n") ? message : message + "\n").utf8))
        exit(code)
    }
    public func finalize() {}

    private static func check(root: Int, _ op: String) throws(DistributedError) {
        guard root == 0 else { throw .invalidArgument(operation: op, problem: "root rank \(root) is outside 0..<1") }
    }
}

// MARK: - Launch detection

/// How this process was started: alone, or as one rank of an MPI job.
public enum Launch: Equatable, Sendable {
    case single
    /// Started by an MPI launcher (`mpirun`, `srun`, hydra) that announced `size` ranks (nil when
    /// only a rank variable was set).
    case mpi(size: Int?)

    /// Reads the launcher variables: Open MPI's `OMPI_COMM_WORLD_SIZE`, PMI's `PMI_SIZE` (MPICH,
    /// Slurm), PMIx's `PMIX_RANK`. None set: `.single`, so a plain `memloss train` never touches MPI.
    public static func detect(environment: [String: String] = ProcessInfo.processInfo.environment) -> Launch {
        for key in ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"] {
            if let v = environment[key] { return .mpi(size: Int(v)) }
        }
        if environment["PMIX_RANK"] != nil { return .mpi(size: nil) }
        return .single
    }

    /// This process's rank as the launcher announced it (`OMPI_COMM_WORLD_RANK`, `PMI_RANK`,
    /// `PMIX_RANK`), without initialising MPI: for messages printed before MPI starts (a flag the
    /// argument parser rejects). Nil without a launcher.
    public static func announcedRank(environment: [String: String] = ProcessInfo.processInfo.environment) -> Int? {
        for key in ["OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"] {
            if let v = environment[key], let r = Int(v) { return r }
        }
        return nil
    }
}

/// The communicator for this process: `SingleProcess` without a launcher, otherwise MPI
/// (initialised here, so call this from the main thread, once).
public func makeCommunicator(launch: Launch = .detect()) throws(DistributedError) -> any Communicator {
    switch launch {
    case .single: return SingleProcess()
    case .mpi: return try MPICommunicator()
    }
}
