// swift-tools-version: 6.0
// memloss: adversarial training with MemLoss, an out-of-core memory bank, and Swift SIMD/BLAS kernels.
// Module layering (arrows point down only): see docs/design-notes.md and ../shared/docs/design.md §2.
import PackageDescription
import Foundation

// The SIMD kernels need a target CPU, or SIMD8 FMA turns into scalar `fmaf` library calls
// (systems.md §3). Default on x86_64: the build machine's vector ISA, since every user builds from
// source on the machine that trains: AVX-512 (`skylake-avx512`, the F/CD/BW/DQ/VL subset that Intel
// Skylake-SP and later and AMD Zen 4 and later share) when /proc/cpuinfo lists those flags, else the
// AVX2+FMA baseline (`haswell`). Override with MEMLOSS_TARGET_CPU=<cpu> (e.g. haswell for a binary
// that runs on any AVX2 machine, znver4), or MEMLOSS_TARGET_CPU=none for no flag.
// docs/kernels.md ("Vector width") has the decision and how to test both widths on one machine.
let avx512Flags = ["avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"]
let hostHasAVX512: Bool = {
    #if arch(x86_64) && os(Linux)
    guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
          let line = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return false }
    let flags = Set(line.split(separator: " ").map(String.init))
    return avx512Flags.allSatisfy(flags.contains)
    #else
    return false
    #endif
}()
let targetCPU: String? = {
    let env = ProcessInfo.processInfo.environment["MEMLOSS_TARGET_CPU"]
    if let env { return env == "none" ? nil : env }
    #if arch(x86_64)
    return hostHasAVX512 ? "skylake-avx512" : "haswell"
    #else
    return nil
    #endif
}()
/// Whether the chosen CPU has AVX-512 (then the conv kernels use 16-lane vectors: MEMLOSS_AVX512).
let targetHasAVX512: Bool = {
    guard let cpu = targetCPU else { return false }
    if cpu == "native" { return hostHasAVX512 }
    let avx512CPUs: Set<String> = ["skylake-avx512", "skx", "cascadelake", "cooperlake", "cannonlake", "icelake-client",
                                   "icelake-server", "rocketlake", "tigerlake", "sapphirerapids", "emeraldrapids",
                                   "graniterapids", "graniterapids-d", "diamondrapids", "znver4", "znver5"]
    return avx512CPUs.contains(cpu)
}()

let cpuFlags: [String] = targetCPU.map { ["-target-cpu", $0] } ?? []
let widthDefines: [SwiftSetting] = targetHasAVX512 ? [.define("MEMLOSS_AVX512")] : []

/// Hot numeric code: unchecked, CPU-targeted, no exclusivity checks. Applies in debug builds too,
/// so debug tests still run fast kernels. Never `-wmo` here (breaks debug builds, systems.md §3.6).
/// MEMLOSS_CHECKED=1 keeps bounds, overflow and exclusivity checks on (the long fuzz runs of
/// docs/fuzzing.md: an out-of-bounds read then traps instead of reading silently).
let checkedBuild = ProcessInfo.processInfo.environment["MEMLOSS_CHECKED"] == "1"
let kernelSettings: [SwiftSetting] = widthDefines + (checkedBuild ? (cpuFlags.isEmpty ? [] : [.unsafeFlags(cpuFlags)]) : [
    .unsafeFlags(["-Ounchecked"] + cpuFlags),
    .unsafeFlags(["-enforce-exclusivity=unchecked"]),
])
/// Other library code: CPU-targeted so inlined SIMD helpers keep their FMA.
let librarySettings: [SwiftSetting] = cpuFlags.isEmpty ? [] : [.unsafeFlags(cpuFlags)]

let package = Package(
    name: "memloss",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "memloss", targets: ["memloss"]),
        .executable(name: "membank", targets: ["membank"]),
        .library(name: "MemLossCore", targets: ["SystemIO", "Tensors", "Kernels", "Layers", "Models", "Datasets", "MemoryBank", "Attacks", "Training"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // System libraries (module map + shim header).
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"]), .brew(["openblas"])]),
        .systemLibrary(name: "CLZ4", pkgConfig: "liblz4",
                       providers: [.apt(["liblz4-dev"]), .brew(["lz4"])]),
        // Open MPI's C API for data-parallel training (docs/distributed.md); only Distributed imports it.
        .systemLibrary(name: "CMPI", pkgConfig: "ompi-c",
                       providers: [.apt(["libopenmpi-dev", "openmpi-bin"]), .brew(["open-mpi"])]),

        // Library modules, bottom to top.
        // The one I/O layer: mmap, atomic writes, /proc memory figures, the prefetch ring (Glibc/Foundation only).
        .target(name: "SystemIO", exclude: ["README.md"], swiftSettings: librarySettings),
        .target(name: "Tensors", dependencies: ["SystemIO"], exclude: ["README.md"], swiftSettings: kernelSettings),
        .target(name: "Kernels", dependencies: ["Tensors", "CBLAS"], exclude: ["README.md"], swiftSettings: kernelSettings),
        .target(name: "Layers", dependencies: ["SystemIO", "Tensors", "Kernels"], exclude: ["README.md"], swiftSettings: librarySettings),
        .target(name: "Models", dependencies: ["Tensors", "Kernels", "Layers"], exclude: ["README.md"], swiftSettings: librarySettings),
        .target(name: "Datasets", dependencies: ["SystemIO", "Tensors", "Kernels"], exclude: ["README.md"],
                resources: [.copy("Resources/mnist-5k")], swiftSettings: kernelSettings),
        .target(name: "MemoryBank", dependencies: ["SystemIO", "Tensors", "Kernels", "CLZ4"], exclude: ["README.md"],
                swiftSettings: kernelSettings),
        .target(name: "Attacks", dependencies: ["SystemIO", "Tensors", "Kernels", "Layers"], exclude: ["README.md"], swiftSettings: librarySettings),
        // Collective operations (rank, all-reduce, broadcast): SingleProcess or MPI (docs/distributed.md).
        .target(name: "Distributed", dependencies: ["CMPI"], exclude: ["README.md"], swiftSettings: librarySettings),
        .target(name: "Training", dependencies: ["SystemIO", "Tensors", "Kernels", "Layers", "Models", "Attacks", "Datasets", "MemoryBank",
                                                 "Distributed"],
                exclude: ["README.md"], swiftSettings: librarySettings),

        // Benchmarks as a library (`memloss bench scale|memory|bank`): Training's public API carries no bench types.
        .target(name: "MemlossBench",
                dependencies: ["Training", "Attacks", "Models", "Layers", "Kernels", "Tensors", "Datasets", "MemoryBank"],
                exclude: ["README.md"], swiftSettings: librarySettings),

        // Studies (`memloss study run|report`): a grid of ordinary training runs and their report. It
        // drives `memloss train`/`eval` as child processes and reads their run directories.
        .target(name: "Study", dependencies: ["SystemIO", "Training"], exclude: [], swiftSettings: librarySettings),

        // The bank inspection tool: MemoryBank + Datasets (to render clean views) + Tensors only, so it
        // builds without Layers/Models/Attacks/Training (docs/membank.md).
        .target(name: "MembankCore", dependencies: ["MemoryBank", "Datasets", "Tensors"], exclude: ["README.md"],
                swiftSettings: librarySettings),
        .executableTarget(
            name: "membank",
            dependencies: ["MembankCore", "MemoryBank", "Tensors",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: librarySettings),

        // Executable.
        .executableTarget(
            name: "memloss",
            dependencies: [
                "Tensors", "Kernels", "Layers", "Models", "Datasets", "MemoryBank", "Attacks", "Training", "MemlossBench", "Study",
                "Distributed",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: librarySettings),

        // Tests.
        .target(name: "_TestSupport", dependencies: ["Tensors", "Layers"], path: "Tests/_TestSupport",
                swiftSettings: librarySettings),
        .testTarget(name: "SystemIOTests", dependencies: ["SystemIO", "_TestSupport"]),
        .testTarget(name: "TensorsTests", dependencies: ["Tensors", "SystemIO", "_TestSupport"], exclude: ["Fuzz"]),
        .testTarget(name: "KernelsTests", dependencies: ["Kernels", "Tensors", "_TestSupport"]),
        .testTarget(name: "LayersTests", dependencies: ["Layers", "Kernels", "Tensors", "_TestSupport"]),
        .testTarget(name: "ModelsTests", dependencies: ["Models", "Layers", "Tensors", "_TestSupport"]),
        .testTarget(name: "DatasetsTests", dependencies: ["Datasets", "Tensors", "_TestSupport"], exclude: ["Fuzz"]),
        .testTarget(name: "MemoryBankTests", dependencies: ["MemoryBank", "SystemIO", "Kernels", "Tensors", "_TestSupport"],
                    exclude: ["Fixtures", "Fuzz"]),
        .testTarget(name: "AttacksTests",
                    dependencies: ["Attacks", "Models", "Layers", "Kernels", "Tensors", "Datasets", "_TestSupport"]),
        .testTarget(name: "MembankTests",
                    dependencies: ["MembankCore", "MemoryBank", "Datasets", "Attacks", "Models", "Layers", "Kernels", "Training",
                                   "Tensors", "SystemIO", "_TestSupport"]),
        .testTarget(name: "MemlossBenchTests",
                    dependencies: ["MemlossBench", "Training", "Models", "Layers", "Kernels", "Datasets", "MemoryBank", "Tensors",
                                   "_TestSupport"]),
        .testTarget(name: "StudyTests", dependencies: ["Study", "Training", "SystemIO", "_TestSupport"]),
        .testTarget(name: "DistributedTests", dependencies: ["Distributed", "Training", "Layers", "Tensors", "SystemIO", "_TestSupport"]),
        .testTarget(name: "TrainingTests",
                    dependencies: ["Training", "Attacks", "Models", "Layers", "Kernels", "Tensors", "Datasets", "MemoryBank", "_TestSupport"]),
    ],
    swiftLanguageModes: [.v5]
)
