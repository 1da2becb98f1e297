// ModelsCommand.swift: placeholder until implemented.
import ArgumentParser

struct ModelsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "models", abstract: "Not implemented yet.")
    func run() throws { throw ValidationError("memloss: 'models' is not implemented yet") }
}
