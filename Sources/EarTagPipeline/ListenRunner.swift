// `eartag listen`: one pipeline with interchangeable sources (file, stdin, ALSA) feeding the stream processor.
import Foundation
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
            let n = bytes.withUnsafeMutableBytes { Foundation.write(fd, $0.baseAddress! + offset, $0.count - offset) }
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

/// Runs `eartag listen` for one source until it ends, `--duration` is reached, a signal arrives or stdout closes.
public final class ListenRunner {
    private let processor: StreamProcessor
    private let printer: StreamRecordPrinter
    private let out: LineWriter
    private let diagnostics: (String) -> Void
    /// Samples the live ring dropped because processing fell behind.
    public private(set) var droppedSamples: Int64 = 0

    /// Prepares the pipeline (model, frontend, engine, events); setup errors are thrown here.
    public init(model: FloatModel, settings: StreamSettings, events: EventConfig?, printer: StreamRecordPrinter,
                out: LineWriter = LineWriter(), diagnostics: @escaping (String) -> Void = ListenRunner.stderrLine)
        throws {
        self.printer = printer
        self.out = out
        self.diagnostics = diagnostics
        var emitted: ((StreamRecord) -> Void)?
        processor = try StreamProcessor(model: model, settings: settings, events: events) { emitted?($0) }
        emitted = { [printer, out] in out.write(printer.render($0)) }
    }

    /// Writes `eartag: MESSAGE` to standard error.
    public static func stderrLine(_ message: String) {
        FileHandle.standardError.write(Data("eartag: \(message)\n".utf8))
    }

    /// Runs the source to its end; returns the exit status (0 for a normal end, a signal or a closed stdout).
    public func run(_ source: ListenSource) throws -> Int32 {
        signal(SIGPIPE, SIG_IGN)
        installStopHandlers()
        switch source {
        case .file(let path):
            let audio = try loadAudio(path: path, targetRate: 32000)
            audio.samples.withUnsafeBufferPointer { all in
                var offset = 0
                let chunk = processor.hopSamples
                while offset < all.count, !shouldStop {
                    let n = min(chunk, all.count - offset)
                    processor.consume(UnsafeBufferPointer(rebasing: all[offset..<(offset + n)]))
                    offset += n
                }
            }
        case .stdin(let format):
            let ring = SampleRing(capacity: processor.windowSamples, policy: .lossless)
            let source = try FileDescriptorSource(fileDescriptor: 0, name: "<stdin>", format: format, sink: ring)
            let failure = ManagedAtomic<Bool>(false)
            let message = ErrorBox()
            let thread = Thread {
                do { try source.run() } catch {
                    message.set(String(describing: error))
                    failure.store(true, ordering: .releasing)
                }
                ring.close()
            }
            thread.start()
            pump(ring)
            if failure.load(ordering: .acquiring), let m = message.get() {
                processor.finish()
                diagnostics(m)
                return 1
            }
        case .device(let capture, let lossless):
            let ring = SampleRing(capacity: processor.windowSamples + processor.hopSamples,
                                  policy: lossless ? .lossless : .dropOldest)
            let name = capture.description
            let alsa = AlsaCapture(configuration: AlsaCaptureConfiguration(source: capture), sink: ring) {
                [diagnostics] state, fault in
                switch state {
                case .deaf: diagnostics("\(name): DEAF, not capturing audio" + (fault.map { " (\($0))" } ?? "")
                                        + "; reopening with backoff")
                case .listening: diagnostics("\(name): listening")
                default: break
                }
            }
            alsa.start()
            pump(ring)
            _ = alsa.stop()
            if alsa.xruns > 0 { diagnostics("\(name): \(alsa.xruns) overruns recovered") }
        }
        processor.finish()
        if droppedSamples > 0 {
            diagnostics("dropped \(droppedSamples) samples (\(String(format: "%.2f", Double(droppedSamples) / 32000)) s) "
                        + "because processing fell behind")
        }
        return 0
    }

    /// True when the run should end early.
    private var shouldStop: Bool { stopRequested.load(ordering: .relaxed) || out.closed || processor.isComplete }

    /// Moves samples from the ring to the processor until the ring ends or the run should stop.
    private func pump(_ ring: SampleRing) {
        var buffer = [Float](repeating: 0, count: processor.hopSamples)
        buffer.withUnsafeMutableBufferPointer { buf in
            while !shouldStop {
                _ = ring.waitForSamples(processor.hopSamples, timeout: .milliseconds(200))
                let r = ring.read(into: buf)
                if r.dropped > 0 { droppedSamples += r.dropped }
                if r.count > 0 { processor.consume(UnsafeBufferPointer(rebasing: buf[0..<r.count])) }
                if r.isEndOfStream && r.count == 0 { break }
            }
        }
        if !ring.isClosed { ring.close() }
    }

    /// Routes SIGINT and SIGTERM to `stopRequested` (once per process).
    private func installStopHandlers() {
        ListenRunner.installOnce
    }

    /// Installs the signal handlers the first time it is read.
    private static let installOnce: Void = {
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { stopRequested.store(true, ordering: .relaxed) }
            source.resume()
            signalSources.append(source)
        }
    }()
}

/// Keeps the signal sources alive for the life of the process.
nonisolated(unsafe) private var signalSources: [DispatchSourceSignal] = []

/// A message handed from the source thread to the processing thread.
final class ErrorBox: @unchecked Sendable {
    private let lock = NSLock()
    private var value: String?

    /// Stores the message.
    func set(_ s: String) { lock.lock(); value = s; lock.unlock() }
    /// The stored message, if any.
    func get() -> String? { lock.lock(); defer { lock.unlock() }; return value }
}

/// `eartag tag --window W --hop H`: the per-window records of one file through the live pipeline's processor.
/// With `plotPath`, also writes an SVG of the file's spectrogram and its top labels' window scores.
public func tagWindows(path: String, model: FloatModel, settings: StreamSettings, printer: StreamRecordPrinter,
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
    if printer.format == .text { out.write("# \(path) (\(String(format: "%.2f", audio.durationSeconds)) s)\n") }
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
            throw StreamSettingsError(description: "\(plotPath): cannot write the plot (\(error.localizedDescription))")
        }
    }
}

/// The ring is where sources deliver samples.
extension SampleRing: SampleSink {}
