// The live pipeline's consumer side: samples -> incremental log-mel -> engine -> events -> records.
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import EarTagFrontend
import EarTagModel
import EarTagEngine
import EarTagEvents

/// Settings of the sliding-window analysis.
public struct StreamSettings: Sendable {
    /// Window length in seconds (default 10, what the models were trained on).
    public var windowSeconds: Double = 10
    /// Hop between windows in seconds; a multiple of the 10 ms STFT hop.
    public var hopSeconds: Double = 1
    /// Windows whose level is below this many dBFS skip inference (scores count as zero); nil: never skip.
    public var minDBFS: Double?
    /// Stop after this much audio, in seconds; nil: run until the source ends.
    public var durationSeconds: Double?
    /// Emit a record for every window.
    public var printWindows = false
    /// Emit start/end events.
    public var printEvents = true
    /// Engine threads.
    public var threads = 1

    public init() {}
}

/// Why the stream settings cannot be used.
public struct StreamSettingsError: Error, CustomStringConvertible {
    public var description: String

    /// An error with this one-line message.
    public init(description: String) { self.description = description }
}

/// Consumes 32 kHz mono samples and produces window and event records, without allocating per hop.
public final class StreamProcessor {
    public private(set) var settings: StreamSettings
    public let windowSamples: Int
    public let hopSamples: Int
    private let sampleRate: Int
    private let frontend: StreamingLogMel
    private let engine: InferenceEngine
    private var detector: EventDetector?
    private let numClasses: Int
    private let emit: (StreamRecord) -> Void
    private var mel: [Float]
    private var logits: [Float]
    private var embedding: [Float]
    private var scores: [Float]
    private let zeroScores: [Float]
    private var eventStart: [Int64]
    private let level: LevelMeter
    /// Samples accepted so far (stream time in samples).
    public private(set) var samplesConsumed: Int64 = 0
    /// Windows analysed (including gated ones).
    public private(set) var windowsProcessed = 0
    /// Windows whose inference was skipped by the level gate.
    public private(set) var windowsSkipped = 0
    /// Largest number of samples the `--duration` limit allows, or nil.
    private let sampleLimit: Int64?
    private var emittedWindow = false
    /// End (in samples) of the last window analysed.
    public private(set) var lastWindowEnd: Int64 = 0
    /// Called after every analysed window (gated ones too) with its scores, on the processing thread; must not
    /// block. Used by the metrics, the MQTT publisher and the live view.
    public var onWindow: ((WindowStats, UnsafeBufferPointer<Float>) -> Void)?

    /// Validates the settings and prepares frontend, engine and detector for the model.
    public init(model: AnyModel, settings: StreamSettings, events: EventConfig?,
                emit: @escaping (StreamRecord) -> Void) throws {
        self.settings = settings
        sampleRate = model.frontend.sampleRate
        let hop = model.frontend.hopLength
        let w = Int((settings.windowSeconds * Double(sampleRate)).rounded())
        let h = Int((settings.hopSeconds * Double(sampleRate)).rounded())
        guard settings.windowSeconds.isFinite, w >= sampleRate / 2 else {
            throw StreamSettingsError(description: "--window must be at least 0.5 seconds (got \(settings.windowSeconds))")
        }
        guard settings.hopSeconds.isFinite, h >= hop, h % hop == 0 else {
            throw StreamSettingsError(description:
                "--hop must be a positive multiple of \(Double(hop) / Double(sampleRate)) s (got \(settings.hopSeconds))")
        }
        guard h <= w else {
            throw StreamSettingsError(description: "--hop (\(settings.hopSeconds) s) must not exceed --window")
        }
        if let d = settings.durationSeconds, !(d > 0) {
            throw StreamSettingsError(description: "--duration must be positive (got \(d))")
        }
        windowSamples = w
        hopSamples = h
        let rate = Double(model.frontend.sampleRate)
        sampleLimit = settings.durationSeconds.map { Int64(($0 * rate).rounded()) }
        // One window plus one hop is all the frontend must hold (consume pushes what fits, then takes windows out);
        // the default 2 x window would double its sample buffer (4 MB instead of 2 MB at W = 10 s).
        frontend = try StreamingLogMel(settings: model.frontend, windowSamples: w, hopSamples: h, bufferCapacity: w + h)
        engine = try makeEngine(model, maxFrames: frontend.framesPerWindow, threads: settings.threads)
        numClasses = model.architecture.numClasses
        detector = try events.map { try EventDetector(config: $0, numClasses: model.architecture.numClasses) }
        self.emit = emit
        mel = [Float](repeating: 0, count: model.frontend.nMels * frontend.framesPerWindow)
        logits = [Float](repeating: 0, count: engine.numClasses)
        embedding = [Float](repeating: 0, count: engine.embeddingSize)
        scores = [Float](repeating: 0, count: engine.numClasses)
        zeroScores = [Float](repeating: 0, count: engine.numClasses)
        eventStart = [Int64](repeating: 0, count: engine.numClasses)
        level = LevelMeter(blockSize: hop, windowBlocks: w / hop, hopBlocks: h / hop)
    }

    /// Samples still missing before the next window is complete (at least 1).
    public var samplesToNextWindow: Int {
        max(1, Int(frontend.nextWindowStart + Int64(windowSamples) - samplesConsumed))
    }

    /// True once the `--duration` limit has been reached.
    public var isComplete: Bool { sampleLimit.map { samplesConsumed >= $0 } ?? false }

    /// Feeds samples (32 kHz mono); analyses every window they complete. Returns false once the duration is reached.
    @discardableResult
    public func consume(_ samples: UnsafeBufferPointer<Float>) -> Bool {
        var input = samples
        if let limit = sampleLimit {
            let room = Int(max(0, limit - samplesConsumed))
            input = UnsafeBufferPointer(rebasing: samples.prefix(room))
        }
        var offset = 0
        while offset < input.count {
            // The frontend buffers one window plus one hop: push what fits, then take the windows it completes.
            let n = min(input.count - offset, frontend.freeCapacity)
            let chunk = UnsafeBufferPointer(rebasing: input[offset..<(offset + n)])
            frontend.push(chunk)
            level.push(chunk)
            samplesConsumed += Int64(n)
            offset += n
            analyseAvailableWindows()
        }
        return !isComplete
    }

    /// Ends the stream: analyses a short stream's only window, then ends every active event at the stream's end.
    public func finish() {
        if !emittedWindow {
            let info = mel.withUnsafeMutableBufferPointer { frontend.finalPartialWindow(into: $0) }
            if let info { analyse(start: info.start, end: info.end, frames: info.frames) }
        }
        detector?.finish(at: samplesConsumed) { handle($0) }
    }

    /// Applies a reloaded event configuration between hops (window, hop, gate and engine stay as they are).
    public func reconfigure(events: EventConfig?, printWindows: Bool, printEvents: Bool) throws {
        // Events active now end at the end of the last window analysed; the fresh detector starts with empty
        // confirmation histories and no cooldowns and takes the following windows.
        let next = try events.map { try EventDetector(config: $0, numClasses: numClasses) }
        detector?.finish(at: lastWindowEnd) { handle($0) }
        detector = next
        settings.printWindows = printWindows
        settings.printEvents = printEvents
    }

    /// Runs every full window the frontend has ready.
    private func analyseAvailableWindows() {
        while true {
            let began = onWindow == nil ? 0 : monotonicSeconds()
            let info = mel.withUnsafeMutableBufferPointer { frontend.nextWindow(into: $0) }
            guard let info else { return }
            analyse(start: info.start, end: info.end, frames: info.frames, began: began)
        }
    }

    /// Gates, runs the engine on the mel in `mel`, updates events and emits records for one window.
    private func analyse(start: Int64, end: Int64, frames: Int, began: Double = 0) {
        emittedWindow = true
        var inferenceSeconds = 0.0
        lastWindowEnd = end
        windowsProcessed += 1
        let dbfs = level.windowDBFS(start: start, end: end)
        let skipped = settings.minDBFS.map { dbfs < $0 } ?? false
        if skipped {
            windowsSkipped += 1
        } else {
            let inferenceBegan = onWindow == nil ? 0 : monotonicSeconds()
            defer { if onWindow != nil { inferenceSeconds = monotonicSeconds() - inferenceBegan } }
            mel.withUnsafeBufferPointer { m in
                logits.withUnsafeMutableBufferPointer { l in
                    embedding.withUnsafeMutableBufferPointer { e in
                        engine.run(mel: UnsafeBufferPointer(rebasing: m.prefix(frames * engine.melBins)), frames: frames,
                                   logits: l, embedding: e)
                    }
                }
            }
            for i in logits.indices { scores[i] = 1 / (1 + expf(-logits[i])) }
        }
        let rate = Double(sampleRate)
        if settings.printWindows {
            emit(.window(startSeconds: Double(start) / rate, endSeconds: Double(end) / rate,
                         scores: skipped ? [] : scores, levelDBFS: dbfs, skipped: skipped))
        }
        if let detector {
            let hop = Int64(min(hopSamples, Int(end - start)))
            (skipped ? zeroScores : scores).withUnsafeBufferPointer { s in
                detector.process(scores: s, windowStart: start, windowEnd: end, hop: hop) { handle($0) }
            }
        }
        if let onWindow {
            let stats = WindowStats(startSample: start, endSample: end, levelDBFS: dbfs, skipped: skipped,
                                    inferenceSeconds: inferenceSeconds,
                                    analysisSeconds: began > 0 ? monotonicSeconds() - began : inferenceSeconds,
                                    hopSeconds: Double(hopSamples) / rate)
            (skipped ? zeroScores : scores).withUnsafeBufferPointer { onWindow(stats, $0) }
        }
    }

    /// Turns a detector event into a record.
    private func handle(_ e: Event) {
        guard settings.printEvents else { return }
        let rate = Double(sampleRate)
        switch e.kind {
        case .start:
            eventStart[e.classIndex] = e.sample
            emit(.start(label: e.classIndex, timeSeconds: Double(e.sample) / rate, wallTime: Date(), score: e.peak))
        case .end:
            emit(.end(label: e.classIndex, timeSeconds: Double(e.sample) / rate, wallTime: Date(), peak: e.peak,
                      mean: e.mean, startSeconds: Double(eventStart[e.classIndex]) / rate))
        }
    }
}

/// One analysed window as observers see it (no allocation).
public struct WindowStats: Sendable {
    /// First sample of the window (stream time).
    public var startSample: Int64
    /// One past the last sample.
    public var endSample: Int64
    /// RMS level of the window in dBFS.
    public var levelDBFS: Double
    /// The level gate skipped inference (scores are all zero).
    public var skipped: Bool
    /// Seconds in the engine (0 when skipped).
    public var inferenceSeconds: Double
    /// Seconds from asking the frontend for the window to the end of its events (frontend + engine + events).
    public var analysisSeconds: Double
    /// The hop in seconds: a window whose analysis takes longer finished after the next one was due.
    public var hopSeconds: Double
}

/// Tracks the energy of the stream in fixed blocks so any window's level is a sum over its blocks.
final class LevelMeter {
    private let blockSize: Int
    private var energies: [Double]
    private var partial: Double = 0
    private var partialCount = 0
    /// Number of complete blocks seen.
    private var blocks: Int64 = 0

    /// A meter remembering enough blocks for one window plus one hop.
    init(blockSize: Int, windowBlocks: Int, hopBlocks: Int) {
        self.blockSize = blockSize
        energies = [Double](repeating: 0, count: windowBlocks + hopBlocks + 2)
    }

    /// Adds samples.
    func push(_ samples: UnsafeBufferPointer<Float>) {
        for x in samples {
            partial += Double(x) * Double(x)
            partialCount += 1
            if partialCount == blockSize {
                energies[Int(blocks % Int64(energies.count))] = partial
                blocks += 1
                partial = 0
                partialCount = 0
            }
        }
    }

    /// RMS level in dBFS of stream samples [start, end) (whole blocks still remembered; -infinity-safe floor -200).
    func windowDBFS(start: Int64, end: Int64) -> Double {
        let first = start / Int64(blockSize)
        let last = min(end / Int64(blockSize), blocks)
        let lowest = max(first, blocks - Int64(energies.count))
        var sum = 0.0
        var count: Int64 = 0
        if last > lowest {
            for b in lowest..<last {
                sum += energies[Int(b % Int64(energies.count))]
                count += Int64(blockSize)
            }
        }
        if end / Int64(blockSize) > blocks {  // a short stream's final partial block
            sum += partial
            count += Int64(partialCount)
        }
        guard count > 0 else { return -200 }
        return max(-200, 10 * log10(max(sum / Double(count), 1e-20)))
    }
}
