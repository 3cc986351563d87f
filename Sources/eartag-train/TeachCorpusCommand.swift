// `eartag-train corpus build`: turn a plan of recordings (tools/make-corpus writes one) into a corpus folder.
import ArgumentParser
import Foundation
import EarTagPipeline
import EarTagTraining

/// `eartag-train corpus`: corpus tools.
struct Corpus: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Corpus tools (`make corpus` runs `corpus build`).", subcommands: [CorpusBuild.self])
}

/// `eartag-train corpus build`: decode, tile or cut, mix, and write clips plus manifest.csv.
struct CorpusBuild: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "build",
        abstract: "Build a corpus of 10 s, 32 kHz mono WAV clips and its manifest.csv from a plan of recordings.",
        discussion: """
            PLAN is tab-separated: package, file (as shown in the manifest), path, licence; one recording a line. \
            Recordings shorter than 10 s are tiled to 10 s, longer ones cut into at most --max-segments evenly \
            spread 10 s segments; silent segments and unreadable files are skipped with a warning. The split \
            (train or validation, 10%) is fixed by a hash of package/file, and mixtures only pair clips of one split.
            """)

    @Option(help: ArgumentHelp("The plan (TSV: package, file, path, licence).", valueName: "PLAN"))
    var plan: String
    @Option(name: [.short, .customLong("output")], help: ArgumentHelp("Corpus folder to write.", valueName: "DIR"))
    var output: String
    @Option(help: "Most 10 s segments taken from one long recording.") var maxSegments: Int = 3
    @Option(help: "Mixtures of two clips to add.") var mixtures: Int = 0
    @Option(help: "Seed of the mixture choices.") var seed: UInt64 = 1
    @Option(help: "Decoding threads.") var jobs: Int = 1

    func validate() throws {
        guard maxSegments >= 1 else { throw ValidationError("--max-segments must be at least 1") }
        guard mixtures >= 0 else { throw ValidationError("--mixtures must not be negative") }
        guard jobs >= 1 else { throw ValidationError("--jobs must be at least 1") }
    }

    func run() throws {
        var options = CorpusBuildOptions()
        options.maxSegmentsPerFile = maxSegments
        options.mixtures = mixtures
        options.seed = seed
        options.jobs = jobs
        let sources = try teachFail { try CorpusBuilder.readPlan(plan) }
        let start = Date()
        let rows = try teachFail {
            try CorpusBuilder.build(sources, output: output, options: options, warn: { Log.warning($0) })
        }
        let validation = rows.filter { $0.split == .validation }.count
        print(String(format: "%@: %d clips (%d validation) from %d recordings in %.1f s", output, rows.count, validation,
                     sources.count, Date().timeIntervalSince(start)))
    }
}
