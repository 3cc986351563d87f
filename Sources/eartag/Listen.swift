// `eartag listen` and `eartag devices`: live tagging from a microphone, stdin or a file.
import ArgumentParser
import FoundationEssentials
import EarTagPlatform
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import EarTagAudio
import EarTagEvents
import EarTagModel
import EarTagPipeline

/// `eartag listen`: continuous tagging with start/end events.
struct Listen: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Listen continuously (ALSA device, stdin or a file) and print start/end events as sounds are heard.",
        discussion: "Settings come from the command line, then --config FILE (TOML), then the defaults. "
            + "SIGHUP reloads the file's [events] and [output] settings without dropping audio.")

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "TOML configuration file ([source], [model], [window], [events], [output]); flags override it.")
    var config: String?
    @Argument(help: "An audio file to process as fast as it decodes (instead of --device or --stdin).")
    var file: String?
    @Option(help: "ALSA capture device (see `eartag devices`).") var device: String?
    @Option(help: "ALSA configuration file defining the --device PCM (e.g. a `file` plugin PCM for tests).")
    var alsaConfig: String?
    @Flag(help: ArgumentHelp("Capture waits for processing instead of dropping audio (only for PCMs that are not real time, such as the ALSA file plugin).", visibility: .hidden))
    var losslessCapture = false
    @Flag(help: "Read audio from standard input: raw PCM (--rate, --channels, --sample-format) or a WAV stream.")
    var stdin = false
    @Option(help: "Raw stdin sample rate in Hz (default 32000).") var rate: Int?
    @Option(help: "Raw stdin channel count (default 1).") var channels: Int?
    @Option(help: "Raw stdin sample format: s16le, s32le, f32le (default s16le).") var sampleFormat: String?
    @Option(help: "Window length in seconds (default 10, what the models were trained on).") var window: Double?
    @Option(help: "Hop between windows in seconds, a multiple of 0.01 (default 1).") var hop: Double?
    @Option(help: "Default on threshold for a label to start (default \(EventConfig.defaultOn)).") var threshold: Float?
    @Option(help: "Default off threshold (default 0.75 x --threshold).") var offThreshold: Float?
    @Option(help: "Per-label thresholds file: lines `LABEL,ON[,OFF]`.") var thresholds: String?
    @Option(help: "Only these labels (display names or mids, comma-separated; repeatable).") var labels: [String] = []
    @Option(help: "Never these labels (display names or mids, comma-separated; repeatable).") var exclude: [String] = []
    @Option(help: "Confirmation: a label starts when K of its last N windows reach the threshold, as K/N (default \(EventConfig.defaultConfirmHits)/\(EventConfig.defaultConfirmWindows)).")
    var confirm: String?
    @Option(help: "Seconds a label must stay below its off threshold before it ends (default \(EventConfig.defaultHold)).")
    var hold: Double?
    @Option(help: "Seconds after an end before the same label may start again (default \(EventConfig.defaultCooldown)).")
    var cooldown: Double?
    @Flag(inversion: .prefixedNo, help: "Also print a record for every window.") var windows: Bool?
    @Flag(help: "With --windows, include every class score.") var allScores = false
    @Option(help: "Labels per window record (default 5).") var top: Int?
    @Option(help: "Output format: text or jsonl, flushed per line (default text).") var format: OutputFormat?
    @Option(help: "Stop after this many seconds of audio.") var duration: Double?
    @Option(parsing: .unconditional, help: "Skip inference on windows quieter than this level (dBFS), e.g. -60.")
    var minDbfs: Double?
    @Option(help: "Threads for the engine (default 1).") var threads: Int?
    @Option(help: "Publish events to an MQTT 3.1.1 broker: mqtt://[USER[:PASSWORD]@]HOST[:PORT] (no TLS).")
    var mqtt: String?
    @Option(help: "MQTT client id (default eartag-<source>).") var mqttClientId: String?
    @Option(help: "MQTT topic prefix (default eartag).") var mqttPrefix: String?
    @Option(help: "This listener's name in MQTT topics and Home Assistant (default the host name).")
    var mqttSource: String?
    @Option(help: "Home Assistant discovery prefix (default homeassistant).") var mqttDiscoveryPrefix: String?
    @Option(help: "MQTT messages held while the broker is away (default 1000; the oldest unsent is dropped beyond).")
    var mqttQueue: Int?
    @Option(help: "Serve Prometheus metrics at http://HOST:PORT/metrics (a loopback address, e.g. 127.0.0.1:9464).")
    var metrics: String?
    @Flag(help: "Allow --metrics on a non-loopback address.") var metricsAllowRemote = false
    @Option(help: "Write the metrics atomically to this file (node_exporter's textfile collector).") var metricsFile: String?
    @Option(help: "Seconds between --metrics-file writes (default 15).") var metricsInterval: Double?
    @Flag(help: "Show a live terminal view (top labels with bars, level, real-time factor) instead of printing records.")
    var view = false

    /// `K/N` parsed, or nil when malformed.
    static func parseConfirm(_ text: String) -> (Int, Int)? {
        let parts = text.split(separator: "/")
        guard parts.count == 2, let k = Int(parts[0]), let n = Int(parts[1]) else { return nil }
        return (k, n)
    }

    func validate() throws {
        let sources = (file != nil ? 1 : 0) + (device != nil ? 1 : 0) + (stdin ? 1 : 0)
        guard sources <= 1 else { throw ValidationError("give only one of FILE, --device, --stdin") }
        if let confirm, Self.parseConfirm(confirm) == nil {
            throw ValidationError("--confirm must be K/N, e.g. 2/3 (got '\(confirm)')")
        }
        if let top { guard top >= 1 else { throw ValidationError("--top must be at least 1") } }
        if let threads { guard threads >= 1 else { throw ValidationError("--threads must be at least 1") } }
        if let sampleFormat { _ = try PCMSampleFormat.parse(sampleFormat, name: "--sample-format") }
    }

    /// The settings a running listener cannot change (a reload that changes them needs a restart).
    struct RestartKeys: Equatable {
        var source: String
        var model: String?
        var window: Double
        var hop: Double
        var minDBFS: Double?
        var threads: Int
        var mqtt: MqttSettings?
        var metrics: MetricsAddress?
        var metricsFile: String?
        var metricsInterval: Double
    }

    /// Command line over configuration file over defaults.
    struct Resolved {
        var source: ListenSource
        var restart: RestartKeys
        var settings: StreamSettings
        var events: EventOptions
        var format: OutputFormat
        var windows: Bool
        var top: Int
    }

    /// Merges the flags with the file's settings (a flag given explicitly wins).
    func resolve(_ f: ListenFileSettings) throws -> Resolved {
        let source: ListenSource
        let sourceName: String
        let commandLineSource = file != nil || device != nil || stdin
        let fileSource = commandLineSource ? nil : f.file.flatMap { $0.isEmpty ? nil : $0 }
        let rawFormat = PCMStreamFormat(
            sampleRate: rate ?? f.rate ?? 32000, channels: channels ?? f.channels ?? 1,
            sampleFormat: try PCMSampleFormat.parse(sampleFormat ?? f.sampleFormat ?? "s16le", name: "--sample-format"))
        if let path = file ?? fileSource {
            source = .file(path)
            sourceName = "file \(path)"
        } else if stdin || (!commandLineSource && f.stdin == true) {
            source = .stdin(rawFormat)
            sourceName = "stdin \(rawFormat.sampleRate) Hz \(rawFormat.channels) ch \(rawFormat.sampleFormat.rawValue)"
        } else {
            let name = device ?? (commandLineSource ? nil : f.device) ?? "default"
            if let alsaConfig {
                let text: String
                do { text = try String(contentsOfFile: alsaConfig, encoding: .utf8) } catch {
                    throw StreamSettingsError(description: "\(alsaConfig): cannot read the ALSA configuration file")
                }
                source = .device(.configuration(text: text, pcm: name), lossless: losslessCapture)
            } else {
                source = .device(.device(name), lossless: losslessCapture)
            }
            sourceName = "device \(name)"
        }
        var settings = StreamSettings()
        settings.windowSeconds = window ?? f.window ?? 10
        settings.hopSeconds = hop ?? f.hop ?? 1
        settings.minDBFS = minDbfs ?? f.minDBFS
        settings.durationSeconds = duration
        settings.printWindows = windows ?? f.windows ?? false
        settings.threads = threads ?? f.threads ?? 1
        let (k, n) = confirm.flatMap(Self.parseConfirm)
            ?? (f.confirmHits ?? EventConfig.defaultConfirmHits, f.confirmWindows ?? EventConfig.defaultConfirmWindows)
        let events = EventOptions(
            labels: labels.isEmpty ? f.labels : try labels.flatMap { try LabelSelector.splitList($0) },
            exclude: exclude.isEmpty ? (f.exclude ?? []) : try exclude.flatMap { try LabelSelector.splitList($0) },
            thresholdFile: thresholds ?? f.thresholdsFile, on: threshold ?? f.threshold ?? EventConfig.defaultOn,
            off: offThreshold ?? (threshold == nil ? f.offThreshold : nil), confirmHits: k, confirmWindows: n,
            hold: hold ?? f.hold ?? EventConfig.defaultHold, cooldown: cooldown ?? f.cooldown ?? EventConfig.defaultCooldown)
        let mqttSettings = try (mqtt ?? f.mqttURL).map {
            try MqttSettings(url: $0, clientId: mqttClientId ?? f.mqttClientId, topicPrefix: mqttPrefix ?? f.mqttTopicPrefix,
                             source: mqttSource ?? f.mqttSource, discoveryPrefix: mqttDiscoveryPrefix ?? f.mqttDiscoveryPrefix,
                             queueCapacity: mqttQueue ?? f.mqttQueue)
        }
        let metricsAddress = try (metrics ?? f.metricsListen).map {
            try MetricsAddress($0, allowRemote: metricsAllowRemote || f.metricsAllowRemote == true)
        }
        let restart = RestartKeys(source: sourceName, model: modelOptions.model ?? f.modelPath,
                                  window: settings.windowSeconds, hop: settings.hopSeconds, minDBFS: settings.minDBFS,
                                  threads: settings.threads, mqtt: mqttSettings, metrics: metricsAddress,
                                  metricsFile: metricsFile ?? f.metricsFile,
                                  metricsInterval: metricsInterval ?? f.metricsInterval ?? 15)
        return Resolved(source: source, restart: restart, settings: settings, events: events,
                        format: format ?? f.format ?? .text, windows: settings.printWindows, top: top ?? f.top ?? 5)
    }

    func run() throws {
        ListenRunner.installSignalHandlers()
        // Syntax, keys and values are checked before the model loads; label names once its labels are known.
        let early = try fail { try config.map { try ListenConfig.load(path: $0) } ?? ListenFileSettings() }
        let located = try fail { try ModelLocator.locate(modelOptions.model, configured: early.modelPath) }
        let model = try fail { try ModelLocator.load(located) }
        let fileSettings = try fail { try config.map { try ListenConfig.load(path: $0, labels: model.labels) } ?? early }
        let resolved = try fail { try resolve(fileSettings) }
        let events = try fail {
            try EventConfig(options: resolved.events, labels: model.labels, sampleRate: model.frontend.sampleRate)
        }
        let printer = StreamRecordPrinter(format: resolved.format, top: resolved.top, allScores: allScores,
                                          labels: model.labels)
        let modelPath = located.path
        let status = try fail {
            let runner = try ListenRunner(model: model, settings: resolved.settings, events: events, printer: printer,
                                          modelName: PathText.lastComponent(modelPath))
            if let config {
                runner.reload = {
                    let next = try self.resolve(try ListenConfig.load(path: config, labels: model.labels))
                    if next.restart != resolved.restart {
                        throw StreamSettingsError(description: "\(config): source, model, window, threads, mqtt or metrics "
                                                  + "changed; "
                                                  + "these need a restart (systemctl restart eartag)")
                    }
                    let events = try EventConfig(options: next.events, labels: model.labels,
                                                 sampleRate: model.frontend.sampleRate)
                    return LiveConfig(events: events, printer: StreamRecordPrinter(
                        format: next.format, top: next.top, allScores: self.allScores, labels: model.labels),
                        printWindows: next.windows)
                }
            }
            let outputs = try ListenOutputs(resolved.restart, model: model, events: events,
                                            allowList: resolved.events.labels != nil, modelName: modelPath,
                                            view: view ? (top ?? 10) : nil)
            runner.observers = outputs.observers
            runner.printsRecords = !view
            outputs.start()
            var failed = true
            defer { outputs.stop(drain: !failed) }
            let status = try runner.run(resolved.source)
            failed = false
            return status
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

/// The outputs beside standard output that the flags ask for: metrics (endpoint and file), MQTT, live view.
struct ListenOutputs {
    /// In call order: metrics, MQTT publisher, live view.
    var observers: [ListenObserver] = []
    private var client: MqttClient?
    private var server: MetricsServer?
    private var file: MetricsFileWriter?

    /// Sets up every output (binding the metrics port, writing the metrics file once); errors are setup errors.
    init(_ keys: Listen.RestartKeys, model: AnyModel, events: EventConfig, allowList: Bool, modelName: String,
         view rows: Int?) throws {
        let name = PathText.deletingPathExtension(PathText.lastComponent(modelName))
        let metrics = ListenMetrics(labels: model.labels, version: eartagVersion, model: name)
        if let address = keys.metrics { server = try MetricsServer(address: address, render: metrics.render) }
        if let path = keys.metricsFile {
            file = try MetricsFileWriter(path: path, interval: keys.metricsInterval, render: metrics.render)
        }
        if server != nil || file != nil { observers.append(metrics) }
        if let settings = keys.mqtt {
            let c = MqttClient(settings: settings)
            metrics.mqtt = c.stats
            client = c
            observers.append(HomeAssistantPublisher(client: c, labels: model.labels,
                                                    allowList: allowList ? events.watchedClasses : nil,
                                                    modelName: name, version: eartagVersion))
        }
        if let rows { observers.append(LiveView(labels: model.labels, rows: rows, title: "\(keys.source), model \(name)")) }
    }

    /// Starts the threads (MQTT connects, the metrics endpoint serves, the file is rewritten periodically).
    func start() {
        client?.start()
        server?.start()
        file?.start()
    }

    /// Stops the MQTT client (after draining its queue unless the run failed), then the metrics (the file gets
    /// the final values).
    func stop(drain: Bool) {
        client?.close(drain: drain)
        server?.stop()
        file?.stop()
    }
}
