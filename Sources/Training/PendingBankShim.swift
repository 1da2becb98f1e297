// TEMPORARY (never lands): stands in for helper D's bank API until its branch is merged.
import MemoryBank
public struct OpenGenerationMark: Codable, Sendable, Equatable { public var generation: Int }
extension Bank {
    func checkpointOpenGeneration() throws(MemoryBankError) -> OpenGenerationMark {
        throw .io(path: directory.path, operation: "checkpoint", reason: "pending helper D")
    }
}
