// The `eartag` command line: parse, call a module, print.
import ArgumentParser
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import EarTagPlatform
import EarTagModel
import EarTagEngine
import EarTagPipeline

/// Root command.
@main
struct EarTag: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eartag",
        abstract: "Tag sounds with EfficientAT MobileNetV3 models (527 AudioSet classes).",
        subcommands: [Tag.self, Listen.self, Devices.self, Import.self, Quantize.self, Labels.self, Bench.self,
                      TeachForward.self, TrainForward.self])
}

/// The `--model` option shared by every command that runs a model.
struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "Model file (.safetensors). Default: $EARTAG_MODEL, then (listen) the --config file's [model] path, then "
            + "PREFIX/share/eartag/default.safetensors beside the executable, /usr/local/share/eartag, "
            + "/usr/share/eartag, then ./Weights/default.safetensors.",
        valueName: "MODEL"))
    var model: String?

    /// Loads the model or exits with a one-line error.
    func load() throws -> AnyModel {
        try fail { try ModelLocator.load(model) }
    }
}

/// Prints `eartag: MESSAGE` on stderr (`<3>MESSAGE` when stderr is the journal).
func printError(_ message: String) {
    Log.error(message)
}

/// Runs `body`, turning any error into a one-line message and exit status 1.
func fail<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let e as ExitCode {
        throw e
    } catch {
        printError(oneLine(error))
        throw ExitCode(1)
    }
}

/// The error's description on a single line.
func oneLine(_ error: Error) -> String {
    String(describing: error).split(whereSeparator: \.isNewline).joined(separator: " ")
}

/// Writes text to stdout without buffering surprises between files.
func emit(_ s: String) {
    writeAll(fd: 1, s)
}

extension OutputFormat: ExpressibleByArgument {}

/// `eartag tag`: tag whole audio files.
struct Tag: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Tag audio files (WAV, FLAC, OGG, MP3; any rate, resampled to 32 kHz mono).")

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Number of top labels per file.") var top: Int = 10
    @Option(help: "Output format: text (EfficientAT's `Label: 0.727`) or jsonl (one object per file).")
    var format: OutputFormat = .text
    @Flag(help: "Also print the score of every class, in model order.") var allScores = false
    @Flag(help: "Also print the embedding (pooled last feature map).") var embedding = false
    @Option(help: "Threads for the engine.") var threads: Int = 1
    @Option(help: "Longest file accepted, in seconds (the whole file is analysed in one pass).")
    var maxDuration: Double = 600
    @Option(help: "Per-window results: window length in seconds (as `eartag listen`).") var window: Double?
    @Option(help: "Per-window results: hop between windows in seconds (default 1 with --window).") var hop: Double?
    @Option(help: "With --window: write an SVG of the spectrogram and the top labels' scores over time (one file).")
    var plot: String?
    @Argument(help: "Audio files.") var files: [String]

    func validate() throws {
        guard top >= 1 else { throw ValidationError("--top must be at least 1") }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
        guard maxDuration > 0 else { throw ValidationError("--max-duration must be positive") }
        guard !files.isEmpty else { throw ValidationError("give at least one audio file") }
        if plot != nil {
            guard files.count == 1 else { throw ValidationError("--plot takes exactly one audio file") }
        }
    }

    func run() throws {
        let model = try modelOptions.load()
        if window != nil || hop != nil || plot != nil { return try runWindows(model) }
        let tagger = try fail { try FileTagger(model: model, threads: threads, maxDurationSeconds: maxDuration) }
        let printer = ResultPrinter(format: format, top: top, allScores: allScores, embedding: embedding,
                                    labels: model.labels, modelName: model.name)
        var failures = 0
        for file in files {
            do {
                emit(printer.render(try tagger.tag(path: file)))
            } catch {
                printError(oneLine(error))
                failures += 1
            }
        }
        if failures > 0 { throw ExitCode(1) }
    }

    /// `--window`/`--hop`: window records for each file through the streaming processor.
    func runWindows(_ model: AnyModel) throws {
        var settings = StreamSettings()
        settings.windowSeconds = window ?? 10
        settings.hopSeconds = hop ?? 1
        settings.threads = threads
        let printer = StreamRecordPrinter(format: format, top: top, allScores: allScores, labels: model.labels)
        let out = LineWriter()
        var failures = 0
        for file in files {
            do {
                try tagWindows(path: file, model: model, settings: settings, printer: printer,
                               maxDurationSeconds: maxDuration, out: out, plotPath: plot)
            } catch {
                printError(oneLine(error))
                failures += 1
            }
        }
        if failures > 0 { throw ExitCode(1) }
    }
}

/// `eartag import`: convert an EfficientAT PyTorch checkpoint to EarTag's safetensors weights file.
struct Import: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Import an EfficientAT MN checkpoint (.pt) as a safetensors model file, without running Python.")

    @Argument(help: "EfficientAT checkpoint, e.g. mn04_as_mAP_432.pt.") var checkpoint: String
    @Option(name: .shortAndLong, help: "Output model file (.safetensors).") var output: String
    @Option(help: "Strides of the four down-sampling stages (the state dict does not record them).")
    var strides: String = "2,2,2,2"
    @Flag(help: "The model was built with dilated=True.") var dilated = false
    @Option(help: "Labels CSV (index,mid,display_name). Default: class_labels_indices.csv beside the checkpoint.")
    var labels: String?
    @Option(help: "Model name recorded in the file. Default: from the checkpoint's file name.") var name: String?

    /// The parsed `--strides` list.
    var strideList: [Int] { strides.split(separator: ",").compactMap { Int($0.trimmingSpaces()) } }

    func validate() throws {
        let parts = strides.split(separator: ",", omittingEmptySubsequences: false)
        guard parts.count == 4, strideList.count == 4, strideList.allSatisfy({ $0 == 1 || $0 == 2 }) else {
            throw ValidationError("--strides must be four values of 1 or 2, e.g. 2,2,2,2 (got '\(strides)')")
        }
    }

    func run() throws {
        let model = try fail {
            try CheckpointImporter.importCheckpoint(path: checkpoint, strides: strideList, dilated: dilated,
                                                    labelsPath: labels, name: name)
        }
        try fail { try ModelFile.save(model, to: output) }
        let a = model.architecture
        emit("\(output): \(model.name), width \(a.widthMult), \(a.blocks.count) blocks, \(a.head.rawValue) head, "
             + "\(a.numClasses) classes, \(model.tensors.values.reduce(0) { $0 + $1.count }) parameters\n")
    }
}

/// `eartag quantize`: post-training int8 quantization of a float model, calibrated on real audio.
struct Quantize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Quantize a float model to int8, calibrating on audio files or folders (see docs/quantization.md).")

    @OptionGroup var modelOptions: ModelOptions
    @Option(parsing: .upToNextOption, help: "Calibration audio: files and/or folders (searched recursively).")
    var calibrate: [String] = []
    @Option(name: .shortAndLong, help: "Output int8 model file (.safetensors).") var output: String
    @Option(help: "Range choice: mse, minmax or percentile (99.99).") var method: String = "mse"
    @Option(help: "At most this many calibration files.") var maxFiles: Int = 200
    @Option(help: "Rounds of empirical bias correction, 0-4 (0 disables).") var biasCorrection: Int = 1
    @Option(help: "Bits of the stem output, 16 or 8 (16 only where the engine has 16-bit kernels for it).")
    var stemBits: Int = 16

    func validate() throws {
        guard !calibrate.isEmpty else { throw ValidationError("give calibration audio with --calibrate FILE_OR_DIR...") }
        guard ["minmax", "percentile", "mse"].contains(method) else {
            throw ValidationError("--method must be minmax, percentile or mse (got '\(method)')")
        }
        guard maxFiles >= 1 else { throw ValidationError("--max-files must be at least 1") }
        guard stemBits == 8 || stemBits == 16 else { throw ValidationError("--stem-bits must be 8 or 16 (got \(stemBits))") }
        guard (0...4).contains(biasCorrection) else {
            throw ValidationError("--bias-correction must be 0...4 (got \(biasCorrection))")
        }
    }

    func run() throws {
        guard case .float(let float) = try modelOptions.load() else {
            printError("\((try? ModelLocator.resolve(modelOptions.model)) ?? "the model"): already an int8 model; "
                       + "quantize a float model")
            throw ExitCode(1)
        }
        let files = try fail { try Calibration.audioFiles(calibrate, limit: maxFiles) }
        let mels = try fail { try Calibration.mels(files: files, frontend: float.frontend) { printError($0) } }
        var options = QuantizerOptions(biasCorrectionRounds: biasCorrection, stemOutputBits: stemBits)
        switch method {
        case "percentile": options.rangeMethod = .percentile(99.99)
        case "minmax": options.rangeMethod = .minMax
        default: options.rangeMethod = .mse
        }
        let quantized = try fail { try Quantizer.quantize(float, calibration: mels, options: options) }
        try fail { try quantized.save(to: output) }
        emit("\(output): \(float.name) int8, calibrated on \(mels.count) windows from \(files.count) files\n")
    }
}

/// `eartag labels`: print the model's class labels.
struct Labels: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the model's labels as CSV (index,mid,display_name), in model output order.")

    @OptionGroup var modelOptions: ModelOptions

    func run() throws {
        let model = try modelOptions.load()
        var out = "index,mid,display_name\n"
        for l in model.labels { out += "\(l.index),\(csvField(l.mid)),\(csvField(l.displayName))\n" }
        emit(out)
    }

    /// A CSV field, quoted when it holds a comma, quote or newline.
    func csvField(_ s: String) -> String {
        guard s.contains(where: { $0 == "," || $0 == "\"" || $0.isNewline }) else { return s }
        return "\"" + s.replacing("\"", with: "\"\"") + "\""
    }
}

/// `eartag bench`: time the frontend and engine on a 10 s clip.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure milliseconds per 10 s clip for the frontend and the engine (median of repeated runs).")

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Threads for the engine.") var threads: Int = 1
    @Option(help: "Measured runs (after 3 warm-up runs).") var runs: Int = 30
    @Flag(help: "Print one JSON object.") var json = false
    @Flag(help: "Benchmark the live pipeline instead: per-hop latency and CPU over a long synthetic stream.")
    var stream = false
    @Option(help: "With --stream: seconds of audio to stream.") var seconds: Double = 600
    @Option(help: "With --stream: window length in seconds.") var window: Double = 10
    @Option(help: "With --stream: hop in seconds.") var hop: Double = 1
    @Option(help: ArgumentHelp("Time the engine on this mel (.npy, [bins, frames]) instead of the synthetic clip's.",
                               valueName: "MEL.npy"))
    var mel: String?
    @Option(help: "With --mel: use only the first N frames (100 frames = 1 s).") var frames: Int?

    func validate() throws {
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
        guard runs >= 1 else { throw ValidationError("--runs must be at least 1") }
        guard seconds > 0 else { throw ValidationError("--seconds must be positive") }
        if frames != nil && mel == nil { throw ValidationError("--frames needs --mel") }
        if stream && mel != nil { throw ValidationError("--mel does not apply to --stream") }
    }

    func run() throws {
        let model = try modelOptions.load()
        if stream {
            let r = try fail {
                try EarTagPipeline.Bench.runStream(model: model, seconds: seconds, windowSeconds: window,
                                                   hopSeconds: hop, threads: threads)
            }
            emit((json ? r.json : r.text) + "\n")
            return
        }
        let input = try mel.map { path in (try fail { try EarTagPipeline.Bench.loadMel(path: path, frames: frames) }, path) }
        let result = try fail {
            try EarTagPipeline.Bench.run(model: model, threads: threads, runs: runs,
                                         input: input.map { (mel: $0.0, source: $0.1) })
        }
        emit((json ? result.json : result.text) + "\n")
    }
}
