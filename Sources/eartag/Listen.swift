// `eartag listen` and `eartag devices`: live tagging from a microphone, stdin or a file.
import ArgumentParser
import Foundation
import EarTagAudio
import EarTagEvents
import EarTagModel
import EarTagPipeline

/// `eartag listen`: continuous tagging with start/end events.
struct Listen: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Listen continuously (ALSA device, stdin or a file) and print start/end events as sounds are heard.")

    @OptionGroup var modelOptions: ModelOptions
    @Argument(help: "An audio file to process as fast as it decodes (instead of --device or --stdin).")
    var file: String?
    @Option(help: "ALSA capture device (see `eartag devices`).") var device: String?
    @Option(help: "ALSA configuration file defining the --device PCM (e.g. a `file` plugin PCM for tests).")
    var alsaConfig: String?
    @Flag(help: ArgumentHelp("Capture waits for processing instead of dropping audio (only for PCMs that are not real time, such as the ALSA file plugin).", visibility: .hidden))
    var losslessCapture = false
    @Flag(help: "Read audio from standard input: raw PCM (--rate, --channels, --sample-format) or a WAV stream.")
    var stdin = false
    @Option(help: "Raw stdin sample rate in Hz.") var rate: Int = 32000
    @Option(help: "Raw stdin channel count.") var channels: Int = 1
    @Option(help: "Raw stdin sample format: s16le, s32le, f32le.") var sampleFormat: String = "s16le"
    @Option(help: "Window length in seconds (the models were trained on 10 s).") var window: Double = 10
    @Option(help: "Hop between windows in seconds (a multiple of 0.01).") var hop: Double = 1
    @Option(help: "Default on threshold for a label to start.") var threshold: Float = EventConfig.defaultOn
    @Option(help: "Default off threshold (default 0.75 x --threshold).") var offThreshold: Float?
    @Option(help: "Per-label thresholds file: lines `LABEL,ON[,OFF]`.") var thresholds: String?
    @Option(help: "Only these labels (display names or mids, comma-separated; repeatable).") var labels: [String] = []
    @Option(help: "Never these labels (display names or mids, comma-separated; repeatable).") var exclude: [String] = []
    @Option(help: "Confirmation: a label starts when K of its last N windows reach the threshold, as K/N.")
    var confirm: String = "\(EventConfig.defaultConfirmHits)/\(EventConfig.defaultConfirmWindows)"
    @Option(help: "Seconds a label must stay below its off threshold before it ends.")
    var hold: Double = EventConfig.defaultHold
    @Option(help: "Seconds after an end before the same label may start again.")
    var cooldown: Double = EventConfig.defaultCooldown
    @Flag(help: "Also print a record for every window.") var windows = false
    @Flag(help: "With --windows, include every class score.") var allScores = false
    @Option(help: "Labels per window record.") var top: Int = 5
    @Option(help: "Output format: text or jsonl (flushed per line).") var format: OutputFormat = .text
    @Option(help: "Stop after this many seconds of audio.") var duration: Double?
    @Option(parsing: .unconditional, help: "Skip inference on windows quieter than this level (dBFS), e.g. -60.")
    var minDbfs: Double?
    @Option(help: "Threads for the engine.") var threads: Int = 1

    /// The parsed `--confirm K/N`.
    var confirmation: (Int, Int)? {
        let parts = confirm.split(separator: "/")
        guard parts.count == 2, let k = Int(parts[0]), let n = Int(parts[1]) else { return nil }
        return (k, n)
    }

    func validate() throws {
        let sources = (file != nil ? 1 : 0) + (device != nil ? 1 : 0) + (stdin ? 1 : 0)
        guard sources <= 1 else { throw ValidationError("give only one of FILE, --device, --stdin") }
        guard confirmation != nil else { throw ValidationError("--confirm must be K/N, e.g. 2/3 (got '\(confirm)')") }
        guard top >= 1 else { throw ValidationError("--top must be at least 1") }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
        _ = try PCMSampleFormat.parse(sampleFormat, name: "--sample-format")
    }

    func run() throws {
        let model = try modelOptions.load()
        let (k, n) = confirmation!
        let events = try fail {
            try EventConfig(options: EventOptions(
                labels: labels.isEmpty ? nil : try labels.flatMap { try LabelSelector.splitList($0) },
                exclude: try exclude.flatMap { try LabelSelector.splitList($0) }, thresholdFile: thresholds,
                on: threshold, off: offThreshold, confirmHits: k, confirmWindows: n, hold: hold, cooldown: cooldown),
                labels: model.labels, sampleRate: model.frontend.sampleRate)
        }
        var settings = StreamSettings()
        settings.windowSeconds = window
        settings.hopSeconds = hop
        settings.minDBFS = minDbfs
        settings.durationSeconds = duration
        settings.printWindows = windows
        settings.threads = threads
        let source: ListenSource
        if let file {
            source = .file(file)
        } else if stdin {
            let format = try fail {
                PCMStreamFormat(sampleRate: rate, channels: channels,
                                sampleFormat: try PCMSampleFormat.parse(sampleFormat, name: "--sample-format"))
            }
            source = .stdin(format)
        } else if let alsaConfig {
            let text = try fail {
                do { return try String(contentsOfFile: alsaConfig, encoding: .utf8) } catch {
                    throw StreamSettingsError(description: "\(alsaConfig): cannot read the ALSA configuration file")
                }
            }
            source = .device(.configuration(text: text, pcm: device ?? "default"), lossless: losslessCapture)
        } else {
            source = .device(.device(device ?? "default"), lossless: losslessCapture)
        }
        let printer = StreamRecordPrinter(format: format, top: top, allScores: allScores, labels: model.labels)
        let status = try fail {
            try ListenRunner(model: model, settings: settings, events: events, printer: printer).run(source)
        }
        if status != 0 { throw ExitCode(status) }
    }
}

/// `eartag devices`: list ALSA capture devices.
struct Devices: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List ALSA capture devices, with names that survive card renumbering (hw:CARD=...,DEV=...).")

    func run() throws {
        let devices = try fail { try listCaptureDevices() }
        if devices.isEmpty { printError("no capture devices found") }
        for d in devices { emit("\(d.name)\t\(d.description)\n") }
    }
}
