// `eartag teach` and `eartag train`: run `eartag-train teach|train` (as `git foo` runs `git-foo`), so the device
// binary holds no training code. The tool is looked for beside this executable, then on PATH.
import ArgumentParser
import FoundationEssentials
import EarTagPlatform
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Finds and execs `eartag-train`, replacing this process (arguments, stdio and exit status pass through).
enum TrainingTool {
    /// The executable's name.
    static let name = "eartag-train"

    /// Candidate paths in order: beside the running executable (as invoked, then resolved), then each PATH entry.
    static func candidates(argv0: String = CommandLine.arguments.first ?? "",
                           environment: [String: String] = ProcessInfo.processInfo.environment) -> [String] {
        var dirs: [String] = []
        if argv0.contains("/") { dirs.append(PathText.deletingLastComponent(argv0)) }
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            dirs.append(PathText.deletingLastComponent(exe))
        }
        dirs += (environment["PATH"] ?? "").split(separator: ":").map(String.init).filter { !$0.isEmpty }
        var seen = Set<String>()
        return dirs.map { PathText.appending($0, name) }.filter { seen.insert($0).inserted }
    }

    /// Execs `eartag-train SUBCOMMAND ARGUMENTS...`; returns only when it cannot, after a one-line error.
    static func exec(_ subcommand: String, _ arguments: [String]) -> Never {
        guard let tool = candidates().first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            printError("\(subcommand): \(name) is not installed (looked beside eartag and on PATH): build it with"
                + " `swift build -c release --product \(name)`, then `make install` installs it beside eartag")
            exit(1)
        }
        let argv = [name, subcommand] + arguments
        var cArgs = argv.map { strdup($0) } + [nil]
        fflush(stdout)
        execv(tool, &cArgs)
        printError("\(subcommand): cannot run \(tool): \(String(cString: strerror(errno)))")
        exit(1)
    }
}

/// `eartag teach`: forwarded to `eartag-train teach`.
struct TeachForward: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "teach",
        abstract: "Store a teacher model's logits for a corpus (runs eartag-train teach; see its --help).")
    @Argument(parsing: .captureForPassthrough, help: "Arguments for eartag-train teach.") var arguments: [String] = []

    func run() throws { TrainingTool.exec("teach", arguments) }
}

/// `eartag train`: forwarded to `eartag-train train`.
struct TrainForward: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train or distil a student model (runs eartag-train train; see its --help).")
    @Argument(parsing: .captureForPassthrough, help: "Arguments for eartag-train train.") var arguments: [String] = []

    func run() throws { TrainingTool.exec("train", arguments) }
}
