// DataCommand.swift: placeholder until implemented.
import ArgumentParser

struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "data", abstract: "Not implemented yet.")
    func run() throws { throw ValidationError("memloss: 'data' is not implemented yet") }
}
