// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "FGBI",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "FGBI", targets: ["FGBI"]),
        .library(name: "FGBICoordination", targets: ["FGBICoordination"]),
        .executable(name: "fgbi", targets: ["fgbi"]),
        .executable(name: "fgbi-fuzz", targets: ["FGBIFuzz"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.4.0"),
    ],
    targets: [
        // The thin C shim: kernel ABI backports, wrappers for static-inline liburing and xxhash, hot loops.
        .target(
            name: "CSupport",
            path: "CSupport",
            linkerSettings: [
                .linkedLibrary("xxhash"),
                .linkedLibrary("uring"),
                .linkedLibrary("lz4"),
                .linkedLibrary("zstd"),
                .linkedLibrary("crypto"),
            ]
        ),
        // The KVM ioctls of the example VMM, apart so that only the KVM example links them.
        .target(
            name: "CKVM",
            path: "CKVM"
        ),
        // The replicator library: memory, tracking and everything above it.
        .target(
            name: "FGBI",
            dependencies: [
                "CSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        // OpenSSL's TLS, for https:// etcd endpoints.
        .systemLibrary(name: "COpenSSL", path: "Sources/COpenSSL", providers: [.apt(["libssl-dev"])]),
        // Coordination with the rest of a cluster: an etcd v3 client over etcd's JSON gateway, over TLS or not.
        .target(
            name: "FGBICoordination",
            dependencies: [
                "FGBI",
                "COpenSSL",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Fault-tracking diagnostics: epoch traces recorded, analysed and drawn (`fgbi trace`), the kernel's
        // capabilities reported (`fgbi probe`).
        .target(
            name: "FGBIDiagnostics",
            dependencies: ["FGBI", "CSupport"]
        ),
        // The lab: what tests, benchmarks and fuzzing need from inside the library (fuzz entry points, network
        // namespaces, the raw stream sender the send benchmarks compare), reaching its `package` symbols.
        // Production code never links it.
        .target(
            name: "FGBILab",
            dependencies: ["FGBI", "CSupport"]
        ),
        // The machine's floor for FGBI's hot steps, in plain C (`fgbi bench floor`); the benchmarks' ratios use it.
        .target(
            name: "CFloor",
            dependencies: ["CSupport"]
        ),
        // Benchmarks that `fgbi bench` runs; kept out of the library so embedders do not carry them.
        .target(
            name: "FGBIBench",
            dependencies: ["FGBI", "FGBILab", "FGBIDiagnostics", "FGBICoordination", "CSupport", "CFloor"]
        ),
        // LMDB, for the in-process database example.
        .systemLibrary(name: "CLMDB", pkgConfig: "lmdb", providers: [.apt(["liblmdb-dev"])]),
        // Real guests replicated end to end (`fgbi example`): an LMDB database in-process, a KVM guest.
        .target(
            name: "FGBIExamples",
            dependencies: ["FGBI", "FGBIBench", "CSupport", "CKVM", "CLMDB"]
        ),
        .executableTarget(
            name: "fgbi",
            dependencies: [
                "FGBI",
                "FGBICoordination",
                "FGBILab",
                "FGBIDiagnostics",
                "FGBIBench",
                "FGBIExamples",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        // Fuzz targets for the decoders of untrusted bytes: libFuzzer with Scripts/fuzz, a corpus replay otherwise.
        .executableTarget(
            name: "FGBIFuzz",
            dependencies: ["FGBI", "FGBILab", "FGBIDiagnostics", "FGBIBench"]
        ),
        .testTarget(
            name: "FGBITests",
            dependencies: [
                "FGBI", "FGBILab", "FGBIDiagnostics", "FGBICoordination", "FGBIBench", "FGBIExamples", "CSupport",
                "fgbi",
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
