// BenchConv.swift: placeholder until implemented.
import ArgumentParser

struct BenchConv: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "conv", abstract: "Not implemented yet.")
    func run() throws { throw ValidationError("memloss: 'conv' is not implemented yet") }
}
