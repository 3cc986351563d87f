// swift-tools-version:6.1
// EarTag: streaming real-time sound tagger (EfficientAT MobileNetV3) for embedded Linux.
import PackageDescription

/// Optimisation for the numeric targets: release builds drop overflow and bounds checks in kernels only.
let kernelSettings: [SwiftSetting] = [.unsafeFlags(["-Ounchecked", "-wmo"], .when(configuration: .release))]

let package = Package(
    name: "EarTag",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "eartag", targets: ["eartag"]),
        .executable(name: "eartag-train", targets: ["eartag-train"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-atomics", from: "1.2.0"),
    ],
    targets: [
        // System libraries: each is imported by exactly one Swift module.
        .systemLibrary(name: "CSndFile", path: "Sources/CSndFile", pkgConfig: "sndfile",
                       providers: [.apt(["libsndfile1-dev"])]),
        .systemLibrary(name: "CSoxr", path: "Sources/CSoxr", pkgConfig: "soxr",
                       providers: [.apt(["libsoxr-dev"])]),
        .systemLibrary(name: "CALSA", path: "Sources/CALSA", pkgConfig: "alsa",
                       providers: [.apt(["libasound2-dev"])]),
        .systemLibrary(name: "CFFTW", path: "Sources/CFFTW", pkgConfig: "fftw3f",
                       providers: [.apt(["libfftw3-dev"])]),
        .systemLibrary(name: "CVorbisFile", path: "Sources/CVorbisFile", pkgConfig: "vorbisfile",
                       providers: [.apt(["libvorbis-dev"])]),

        // Runtime modules, in data-flow order. They import FoundationEssentials, never Foundation (which would link
        // FoundationInternationalization and ICU into `eartag`); EarTagPlatform has the POSIX stand-ins.
        .target(name: "EarTagPlatform"),
        .target(name: "EarTagAudio", dependencies: [
            "CSndFile", "CVorbisFile", "CSoxr", "CALSA", "EarTagPlatform",
            .product(name: "Atomics", package: "swift-atomics"),
        ]),
        .target(name: "EarTagFrontend", dependencies: ["CFFTW", "EarTagModel", "EarTagPlatform"],
                swiftSettings: kernelSettings),
        .target(name: "EarTagModel", dependencies: ["EarTagPlatform"]),
        // `-enable-builtin-module`: the dot4 kernel reaches LLVM's vpdpbusd intrinsic (Int8Dot4.swift).
        .target(name: "EarTagKernels",
                swiftSettings: kernelSettings + [.unsafeFlags(["-Xfrontend", "-enable-builtin-module"])]),
        // 8-lane int8 kernels for the 8-channel layers (stem, block 1's depthwise), imported only by EarTagEngine. A
        // module of its own so that whole-module inlining inside EarTagKernels stays as it was: a kernel added to
        // EarTagKernels once slowed every int8 kernel there by 60 % (docs/quantization.md "Speed").
        .target(name: "EarTagKernelsNarrow", dependencies: ["EarTagKernels"], swiftSettings: kernelSettings),
        .target(name: "EarTagEngine", dependencies: ["EarTagModel", "EarTagKernels", "EarTagKernelsNarrow", "EarTagPlatform"],
                swiftSettings: kernelSettings),
        .target(name: "EarTagEvents", dependencies: ["EarTagModel", "EarTagPlatform"]),
        .target(name: "EarTagPipeline",
                dependencies: ["EarTagAudio", "EarTagFrontend", "EarTagModel", "EarTagEngine", "EarTagEvents",
                               "EarTagPlatform", .product(name: "Atomics", package: "swift-atomics")]),
        .executableTarget(name: "eartag", dependencies: [
            "EarTagPipeline", "EarTagAudio", "EarTagFrontend", "EarTagModel", "EarTagEngine", "EarTagEvents",
            "EarTagPlatform", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        // Offline tools: the distillation trainer and its executable (never linked into `eartag`).
        .target(name: "EarTagTraining",
                dependencies: ["EarTagModel", "EarTagFrontend", "EarTagAudio", "EarTagKernels", "EarTagEngine"],
                swiftSettings: kernelSettings),
        .executableTarget(name: "eartag-train", dependencies: [
            "EarTagTraining", "EarTagPipeline", "EarTagModel", "EarTagEngine",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        // Tests mirror modules; EarTagTestSupport finds ../shared/reference and reads golden files.
        .target(name: "EarTagTestSupport", dependencies: ["EarTagModel"], path: "Tests/EarTagTestSupport"),
        .testTarget(name: "EarTagPlatformTests", dependencies: ["EarTagPlatform"]),
        .testTarget(name: "EarTagAudioTests", dependencies: ["EarTagAudio", "EarTagTestSupport"]),
        .testTarget(name: "EarTagFrontendTests",
                    dependencies: ["EarTagFrontend", "EarTagAudio", "EarTagTestSupport"]),
        .testTarget(name: "EarTagModelTests", dependencies: ["EarTagModel", "EarTagTestSupport"]),
        .testTarget(name: "EarTagKernelsTests", dependencies: ["EarTagKernels", "EarTagKernelsNarrow", "EarTagTestSupport"]),
        .testTarget(name: "EarTagEngineTests",
                    dependencies: ["EarTagEngine", "EarTagModel", "EarTagKernels", "EarTagTestSupport"]),
        .testTarget(name: "EarTagEventsTests", dependencies: ["EarTagEvents", "EarTagTestSupport"]),
        .testTarget(name: "EarTagPipelineTests", dependencies: ["EarTagPipeline", "EarTagTestSupport"]),
        .testTarget(name: "EarTagTrainingTests", dependencies: ["EarTagTraining", "EarTagTestSupport"]),
        .testTarget(name: "EarTagCLITests", dependencies: ["eartag", "eartag-train", "EarTagModel", "EarTagTestSupport"]),
    ],
    swiftLanguageModes: [.v5]
)
