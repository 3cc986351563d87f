// `eartag listen`: one pipeline with interchangeable sources (file, stdin, ALSA) feeding the stream processor.
import FoundationEssentials
import Dispatch
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import EarTagPlatform
import Atomics
import EarTagAudio
import EarTagFrontend
import EarTagEvents
import EarTagModel

/// Where live audio comes from.
public enum ListenSource: Sendable {
    /// A file, processed as fast as it decodes (lossless).
    case file(String)
    /// Standard input: raw PCM in this format, or a WAV stream detected by its header (lossless).
    case stdin(PCMStreamFormat)
    /// An ALSA capture PCM (live: never stalls; the oldest audio is dropped and counted when processing lags).
    /// `lossless` makes the capture wait for processing instead: only for PCMs that are not real time (the `file`
    /// plugin), never for a microphone, whose driver would overrun.
    case device(CaptureSource, lossless: Bool)
}

/// Writes output lines to a file descriptor, noticing when the reader has gone away.
public final class LineWriter {
    private let fd: Int32
    /// True once a write failed (for example EPIPE: the reader closed the pipe).
    public private(set) var closed = false

    /// A writer on `fd` (standard output by default).
    public init(fd: Int32 = 1) { self.fd = fd }

    /// Writes the whole string unless the descriptor is closed; returns false once writing failed.
    @discardableResult
    public func write(_ s: String) -> Bool {
        guard !closed else { return false }
        var bytes = Array(s.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 {
                if errno == EINTR { continue }
                closed = true
                return false
            }
            offset += n
        }
        bytes.removeAll()
        return true
    }
}

/// Set by SIGINT and SIGTERM: the listener stops, flushes its events and exits 0.
let stopRequested = ManagedAtomic<Bool>(false)
/// Set by SIGHUP: the processing thread reloads the configuration between hops.
let reloadRequested = ManagedAtomic<Bool>(false)

/// What a SIGHUP reload may change while audio keeps flowing: events and output.
public struct LiveConfig {
    /// The new event configuration (nil: no events).
    public var events: EventConfig?
    /// The new record printer (format, top, ...).
    public var printer: StreamRecordPrinter
    /// Print a record per window.
    public var printWindows: Bool

    /// A reloadable configuration.
    public init(events: EventConfig?, printer: StreamRecordPrinter, printWindows: Bool) {
        self.events = events
        self.printer = printer
        self.printWindows = printWindows
    }
}

/// Runs `eartag listen` for one source until it ends, `--duration` is reached, a signal arrives or stdout closes.
public final class ListenRunner {
    private let processor: StreamProcessor
    private let printBox: PrinterBox
    private let out: LineWriter
    private let diagnostics: (LogLevel, String) -> Void
    /// Readiness, watchdog and status notifications to systemd (a no-op outside a `Type=notify` service).
    private let notifier: SystemdNotifier
    /// Model name shown in `STATUS=`.
    private let modelName: String
    /// Samples the live ring dropped because processing fell behind.
    public private(set) var droppedSamples: Int64 = 0
    /// Called on the processing thread after SIGHUP: the reloaded configuration, or an error to log (kept running).
    public var reload: (() throws -> LiveConfig)?
    /// Service bookkeeping of the processing loop (readiness, watchdog, status).
    private var service = ServiceState()

    /// Prepares the pipeline (model, frontend, engine, events); setup errors are thrown here.
    public init(model: AnyModel, settings: StreamSettings, events: EventConfig?, printer: StreamRecordPrinter,
                out: LineWriter = LineWriter(), modelName: String = "model", notifier: SystemdNotifier = SystemdNotifier(),
                diagnostics: @escaping (LogLevel, String) -> Void = { Log.write($1, level: $0) }) throws {
        let box = PrinterBox(printer)
        printBox = box
        self.out = out
        self.diagnostics = diagnostics
        self.notifier = notifier
        self.modelName = modelName
        processor = try StreamProcessor(model: model, settings: settings, events: events) { [out] record in
            if box.printing { out.write(box.printer.render(record)) }
            for o in box.observers { o.record(record) }
        }
    }

    /// Outputs beside standard output (metrics, MQTT, live view); set before `run`.
    public var observers: [ListenObserver] = [] {
        didSet {
            printBox.observers = observers
            let all = observers
            processor.onWindow = all.isEmpty ? nil : { stats, scores in for o in all { o.window(stats, scores: scores) } }
        }
    }

    /// False to keep records off standard output (the live view owns the terminal).
    public var printsRecords: Bool {
        get { printBox.printing }
        set { printBox.printing = newValue }
    }

    /// Runs the source to its end; returns the exit status (0 for a normal end, a signal or a closed stdout).
    public func run(_ source: ListenSource) throws -> Int32 {
        signal(SIGPIPE, SIG_IGN)
        ListenRunner.installSignalHandlers()
        switch source {
        case .file(let path):
            let audio = try loadAudio(path: path, targetRate: 32000)
            audio.samples.withUnsafeBufferPointer { all in
                var offset = 0
                let chunk = processor.hopSamples
                while offset < all.count, !shouldStop {
                    let n = min(chunk, all.count - offset)
                    let began = monotonicSeconds()
                    processor.consume(UnsafeBufferPointer(rebasing: all[offset..<(offset + n)]))
                    afterHop(busy: monotonicSeconds() - began, sourceName: path, ring: nil)
                    offset += n
                }
            }
        case .stdin(let format):
            let ring = SampleRing(capacity: ListenRunner.ringCapacity(hopSamples: processor.hopSamples, live: false),
                                  policy: .lossless)
            let source = try FileDescriptorSource(fileDescriptor: 0, name: "<stdin>", format: format, sink: ring)
            let failure = ManagedAtomic<Bool>(false)
            let message = ErrorBox()
            DetachedThread.start(name: "eartag-stdin", stackSize: 1 << 20) {
                do { try source.run() } catch {
                    message.set(String(describing: error))
                    failure.store(true, ordering: .releasing)
                }
                ring.close()
            }
            pump(ring, sourceName: "stdin")
            if failure.load(ordering: .acquiring), let m = message.get() {
                processor.finish()
                for o in observers { o.finish() }
                diagnostics(.error, m)
                return 1
            }
        case .device(let capture, let lossless):
            let ring = SampleRing(capacity: ListenRunner.ringCapacity(hopSamples: processor.hopSamples, live: !lossless),
                                  policy: lossless ? .lossless : .dropOldest)
            let name = capture.description
            let deaf = ManagedAtomic<Bool>(false)
            let alsa = AlsaCapture(configuration: AlsaCaptureConfiguration(source: capture), sink: ring) {
                [diagnostics] state, fault in
                switch state {
                case .deaf:
                    deaf.store(true, ordering: .relaxed)
                    diagnostics(.error, "\(name): DEAF, not capturing audio" + (fault.map { " (\($0))" } ?? "")
                                + "; reopening with backoff")
                case .listening:
                    deaf.store(false, ordering: .relaxed)
                    diagnostics(.info, "\(name): listening")
                default: break
                }
            }
            alsa.start()
            pump(ring, sourceName: name, xruns: { alsa.xruns }, reconnects: { alsa.reconnects },
                 deaf: { deaf.load(ordering: .relaxed) })
            _ = alsa.stop()
            if alsa.xruns > 0 { diagnostics(.warning, "\(name): \(alsa.xruns) overruns recovered") }
        }
        if stopRequested.load(ordering: .relaxed) { notifier.send("STOPPING=1") }
        processor.finish()
        for o in observers { o.finish() }
        if droppedSamples > 0 {
            diagnostics(.warning, "dropped \(droppedSamples) samples (\(String(printf: "%.2f", Double(droppedSamples) / 32000)) s) "
                        + "because processing fell behind")
        }
        return 0
    }

    /// Waits (at most `timeout`) until `ring` holds the samples that complete `processor`'s next window, at most
    /// `limit`, so that a hop's last sample wakes the processing loop at once. (Waiting for a whole hop after a
    /// timeout had consumed part of it slept until the next timeout: windows came up to 50 ms late.)
    public static func awaitNextWindow(_ ring: SampleRing, _ processor: StreamProcessor, limit: Int, timeout: Duration) {
        _ = ring.waitForSamples(min(processor.samplesToNextWindow, limit), timeout: timeout)
    }

    /// Samples the ring between a source and the processing loop holds (before `SampleRing` rounds up to a power
    /// of two). The processing loop takes one hop at a time and the frontend keeps the window, so the ring only
    /// absorbs the time one hop's analysis takes: two hops for lossless sources (the reader fills the next hop
    /// while one is analysed), and for live capture one hop plus `liveSlackSeconds`, the lateness processing may
    /// reach before the oldest audio is dropped. At hop 1 s: 65 536 (256 kB) and 131 072 samples (512 kB) instead
    /// of a window plus a hop (2 MB).
    public static func ringCapacity(hopSamples: Int, live: Bool, sampleRate: Int = 32000) -> Int {
        live ? hopSamples + Int(liveSlackSeconds * Double(sampleRate)) : 2 * hopSamples
    }

    /// Seconds processing may fall behind live capture before the ring drops the oldest audio.
    public static let liveSlackSeconds = 2.0

    /// True when the run should end early.
    private var shouldStop: Bool { stopRequested.load(ordering: .relaxed) || out.closed || processor.isComplete }

    /// Moves samples from the ring to the processor until the ring ends or the run should stop.
    private func pump(_ ring: SampleRing, sourceName: String, xruns: @escaping () -> Int? = { nil },
                      reconnects: @escaping () -> Int = { 0 }, deaf: @escaping () -> Bool = { false }) {
        var buffer = [Float](repeating: 0, count: processor.hopSamples)
        buffer.withUnsafeMutableBufferPointer { buf in
            while !shouldStop {
                ListenRunner.awaitNextWindow(ring, processor, limit: buf.count, timeout: .milliseconds(50))  // bounds SIGTERM-to-exit
                let r = ring.read(into: buf)
                if r.dropped > 0 { droppedSamples += r.dropped }
                var busy = 0.0
                if r.count > 0 {
                    let began = monotonicSeconds()
                    processor.consume(UnsafeBufferPointer(rebasing: buf[0..<r.count]))
                    busy = monotonicSeconds() - began
                }
                afterHop(busy: busy, sourceName: sourceName, ring: ring, xruns: xruns(), reconnects: reconnects(),
                         deaf: deaf())
                if r.isEndOfStream && r.count == 0 { break }
            }
        }
        if !ring.isClosed { ring.close() }
    }

    /// Between hops on the processing thread: readiness, watchdog pings, status and SIGHUP reloads.
    private func afterHop(busy: Double, sourceName: String, ring: SampleRing?, xruns: Int? = nil, reconnects: Int = 0,
                          deaf: Bool = false) {
        // READY=1 follows the first samples that reached the processor. WATCHDOG=1 (at most every WatchdogSec/2)
        // needs samples consumed since the previous ping: consume() analyses every window they complete (gated
        // ones included), so a stalled source or a stuck engine stops the pings and a quiet room does not.
        service.busySeconds += busy
        if !observers.isEmpty {
            let hop = HopStats(samplesConsumed: processor.samplesConsumed, busySeconds: service.busySeconds,
                               ringFill: ring?.fill ?? 0, ringCapacity: ring?.capacity ?? 0,
                               droppedSamples: droppedSamples, xruns: xruns ?? 0, reconnects: reconnects, deaf: deaf)
            for o in observers { o.hop(hop) }
        }
        if reloadRequested.exchange(false, ordering: .relaxed) { applyReload() }
        guard notifier.isEnabled else { return }
        let now = monotonicSeconds()
        let consumed = processor.samplesConsumed
        var statusDue = now - service.lastStatus >= 1 || deaf != service.deaf
        if !service.ready && consumed > 0 {
            service.ready = true
            notifier.send("READY=1")
            service.lastPing = now
            service.pingedAt = consumed
            statusDue = true
        }
        if let interval = notifier.watchdogInterval, service.ready, consumed > service.pingedAt,
           now - service.lastPing >= interval {
            notifier.send("WATCHDOG=1")
            service.lastPing = now
            service.pingedAt = consumed
        }
        if statusDue && service.ready {
            service.lastStatus = now
            service.deaf = deaf
            let audioSeconds = Double(consumed) / 32000
            let rtf = audioSeconds > 0 ? service.busySeconds / audioSeconds : 0
            var status = "STATUS=\(deaf ? "DEAF" : "listening"): \(sourceName), model \(modelName), "
                + "\(processor.windowsProcessed) windows, \(droppedSamples) samples dropped"
            if let xruns { status += ", \(xruns) xruns" }
            status += ", real-time factor \(String(printf: "%.3f", rtf))"
            notifier.send(status)
        }
    }

    /// Applies a SIGHUP reload on the processing thread, or logs why the running configuration is kept.
    private func applyReload() {
        guard let reload else {
            diagnostics(.warning, "SIGHUP ignored: no configuration file (--config) to reload")
            return
        }
        do {
            let live = try reload()
            try processor.reconfigure(events: live.events, printWindows: live.printWindows,
                                      printEvents: processor.settings.printEvents)
            printBox.printer = live.printer
            diagnostics(.info, "configuration reloaded at \(String(printf: "%.3f", Double(processor.lastWindowEnd) / 32000)) s "
                        + "of stream time (active events ended there)")
        } catch {
            diagnostics(.error, "reload failed, keeping the running configuration: "
                        + String(describing: error).split(whereSeparator: \.isNewline).joined(separator: " "))
        }
    }

    /// Routes SIGINT/SIGTERM to a clean stop and SIGHUP to a reload; idempotent, call before loading the model.
    public static func installSignalHandlers() {
        // Signals that arrive before the processing loop runs are acted on by its first iteration.
        ListenRunner.installOnce
    }

    /// Installs the signal handlers the first time it is read.
    private static let installOnce: Void = {
        for sig in [SIGINT, SIGTERM, SIGHUP] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler {
                if sig == SIGHUP { reloadRequested.store(true, ordering: .relaxed) }
                else { stopRequested.store(true, ordering: .relaxed) }
            }
            source.resume()
            signalSources.append(source)
        }
    }()
}

/// Keeps the signal sources alive for the life of the process.
nonisolated(unsafe) private var signalSources: [DispatchSourceSignal] = []

/// The printer in use; replaced by a reload, read by the emit closure (both on the processing thread).
final class PrinterBox {
    /// The current printer.
    var printer: StreamRecordPrinter
    /// Records go to standard output.
    var printing = true
    /// Outputs that also see every record.
    var observers: [ListenObserver] = []

    /// A box holding `printer`.
    init(_ printer: StreamRecordPrinter) { self.printer = printer }
}

/// An output of `eartag listen` beside standard output; every call is on the processing thread and must not block.
public protocol ListenObserver: AnyObject {
    /// After every analysed window, with its scores (valid only during the call).
    func window(_ stats: WindowStats, scores: UnsafeBufferPointer<Float>)
    /// Every record the processor emits (start/end events; windows when printed).
    func record(_ record: StreamRecord)
    /// After every hop of the processing loop.
    func hop(_ stats: HopStats)
    /// After the stream ended and the final events were emitted.
    func finish()
}

/// The processing loop's state after one hop.
public struct HopStats: Sendable {
    /// Samples given to the processor so far.
    public var samplesConsumed: Int64
    /// Seconds spent processing so far.
    public var busySeconds: Double
    /// Samples waiting in the ring buffer (0 for files).
    public var ringFill: Int
    /// Ring buffer capacity in samples (0 for files).
    public var ringCapacity: Int
    /// Samples the live ring dropped so far.
    public var droppedSamples: Int64
    /// ALSA overruns recovered so far.
    public var xruns: Int
    /// ALSA device reopens so far.
    public var reconnects: Int
    /// Capture is deaf (device lost or silent).
    public var deaf: Bool

    /// Processing seconds per second of audio (0 before any audio).
    public var realTimeFactor: Double {
        samplesConsumed > 0 ? busySeconds / (Double(samplesConsumed) / 32000) : 0
    }
}

/// Readiness, watchdog and status bookkeeping of the processing loop.
struct ServiceState {
    /// `READY=1` was sent.
    var ready = false
    /// Monotonic time of the last `WATCHDOG=1` (or of readiness).
    var lastPing = 0.0
    /// Samples consumed at the last ping.
    var pingedAt: Int64 = 0
    /// Monotonic time of the last `STATUS=`.
    var lastStatus = -1e9
    /// Capture was deaf at the last status.
    var deaf = false
    /// Seconds spent in the processor (for the real-time factor).
    var busySeconds = 0.0
}

/// Seconds on the monotonic clock.
func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// A message handed from the source thread to the processing thread.
final class ErrorBox: @unchecked Sendable {
    private let lock = Lock()
    private var value: String?

    /// Stores the message.
    func set(_ s: String) { lock.lock(); value = s; lock.unlock() }
    /// The stored message, if any.
    func get() -> String? { lock.lock(); defer { lock.unlock() }; return value }
}

/// `eartag tag --window W --hop H`: the per-window records of one file through the live pipeline's processor.
/// With `plotPath`, also writes an SVG of the file's spectrogram and its top labels' window scores.
public func tagWindows(path: String, model: AnyModel, settings: StreamSettings, printer: StreamRecordPrinter,
                       maxDurationSeconds: Double, out: LineWriter, plotPath: String? = nil) throws {
    var s = settings
    s.printWindows = true
    s.printEvents = false
    var filePrinter = printer
    filePrinter.file = path
    let audio = try loadAudio(path: path, targetRate: model.frontend.sampleRate, maxDurationSeconds: maxDurationSeconds)
    var plotted: [(start: Double, end: Double, scores: [Float])] = []
    let processor = try StreamProcessor(model: model, settings: s, events: nil) { record in
        out.write(filePrinter.render(record))
        if plotPath != nil, case let .window(start, end, scores, _, skipped) = record, !skipped {
            plotted.append((start, end, scores))
        }
    }
    if printer.format == .text { out.write("# \(path) (\(String(printf: "%.2f", audio.durationSeconds)) s)\n") }
    audio.samples.withUnsafeBufferPointer { all in
        var offset = 0
        while offset < all.count, !processor.isComplete, !out.closed {
            let n = min(processor.hopSamples, all.count - offset)
            processor.consume(UnsafeBufferPointer(rebasing: all[offset..<(offset + n)]))
            offset += n
        }
    }
    processor.finish()
    if printer.format == .text { out.write("\n") }
    if let plotPath {
        let mel = try LogMelFrontend(settings: model.frontend).compute(audio.samples)
        let plot = SpectrogramPlot(mel: mel.data, bins: mel.bins, frames: mel.frames,
                                   frameSeconds: Double(model.frontend.hopLength) / Double(model.frontend.sampleRate),
                                   windows: plotted, labels: model.labels, top: printer.top,
                                   title: "\(path): top labels per \(settings.windowSeconds) s window")
        do {
            try plot.svg().write(toFile: plotPath, atomically: true, encoding: .utf8)
        } catch {
            throw StreamSettingsError(description: "\(plotPath): cannot write the plot (\(fileErrorReason(error)))")
        }
    }
}

/// The ring is where sources deliver samples.
extension SampleRing: SampleSink {}
