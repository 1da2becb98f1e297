// CommunicatorTests.swift: the single-process communicator's identity semantics and the launcher
// detection (Sources/Distributed/Communicator.swift, docs/distributed.md §3). The multi-rank
// behaviour is tested by launching `mpirun` (MPITrainingTests.swift).

import Distributed
import XCTest

final class CommunicatorTests: XCTestCase {
    func test_singleProcess_isRankZeroOfOne_andEveryOperationIsTheIdentity() throws {
        let c = SingleProcess()
        XCTAssertEqual(c.rank, 0)
        XCTAssertEqual(c.size, 1)
        XCTAssertTrue(c.isRoot)
        try c.barrier()
        XCTAssertEqual(try c.broadcast(bytes: [1, 2, 3], root: 0), [1, 2, 3])
        var f: [Float] = [1.5, -2, .infinity]
        try c.broadcast(&f, root: 0)
        XCTAssertEqual(f, [1.5, -2, .infinity])
        try c.allReduceSum(&f)
        XCTAssertEqual(f, [1.5, -2, .infinity])
        var d: [Double] = [3, 4]
        try c.allReduceSum(&d)
        XCTAssertEqual(d, [3, 4])
        XCTAssertEqual(try c.gather(bytes: [9, 8], root: 0), [[9, 8]])
        c.finalize()
    }

    func test_singleProcess_rejectsARootOtherThanZero_withATypedError() {
        let c = SingleProcess()
        XCTAssertThrowsError(try c.broadcast(bytes: [1], root: 1)) { error in
            guard case DistributedError.invalidArgument(let op, let problem) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(op, "broadcast")
            XCTAssertTrue(problem.contains("0..<1"), problem)
            XCTAssertTrue("\(error)".contains("hint:"))
        }
        var f: [Float] = [1]
        XCTAssertThrowsError(try c.broadcast(&f, root: -1))
        XCTAssertThrowsError(try c.gather(bytes: [], root: 2))
    }

    func test_launchDetection_readsTheLauncherVariables_andDefaultsToSingle() throws {
        XCTAssertEqual(Launch.detect(environment: [:]), .single)
        XCTAssertEqual(Launch.detect(environment: ["PATH": "/usr/bin"]), .single)
        XCTAssertEqual(Launch.detect(environment: ["OMPI_COMM_WORLD_SIZE": "4"]), .mpi(size: 4))
        XCTAssertEqual(Launch.detect(environment: ["PMI_SIZE": "2"]), .mpi(size: 2))
        XCTAssertEqual(Launch.detect(environment: ["PMIX_RANK": "1"]), .mpi(size: nil))
        // No launcher: a SingleProcess, with no MPI call made.
        XCTAssertTrue(try makeCommunicator(launch: .single) is SingleProcess)
    }
}
