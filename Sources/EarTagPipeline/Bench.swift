// The `eartag bench` measurement: frontend and engine time per 10 s clip, medians of repeated runs.
import FoundationEssentials
import Dispatch
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import EarTagPlatform
import EarTagFrontend
import EarTagModel
import EarTagEngine

/// Benchmark figures for one model on this machine.
public struct BenchResult: Sendable {
    public var model: String
    public var threads: Int
    public var runs: Int
    public var frontendMsPer10s: Double
    public var engineMsPer10s: Double
    /// Engine time for the first second of the clip (100 frames), median of its own runs.
    public var engineMsPer1s: Double
    public var macsPerClip: Int
    public var peakRSSMB: Double
    /// Frames of the mel the engine ran on (1000 for 10 s of audio).
    public var frames: Int = 1000
    /// Where the engine's input came from: `synthetic` or the `.npy` file given with `--mel`.
    public var melSource: String = "synthetic"

    /// Giga multiply-accumulates per second the engine time implies.
    public var gmacsPerSecond: Double { Double(macsPerClip) / (engineMsPer10s * 1e-3) / 1e9 }
    /// Seconds of audio processed per second of compute, frontend and engine together.
    public var realTimeFactor: Double { 10_000 / (frontendMsPer10s + engineMsPer10s) }

    /// One JSON object (stable key names, used by scripts).
    public var json: String {
        "{\"model\":\(jsonString(model)),\"threads\":\(threads),\"runs\":\(runs),"
            + "\"frontend_ms_per_10s\":\(fmt(frontendMsPer10s)),\"engine_ms_per_10s\":\(fmt(engineMsPer10s)),"
            + "\"engine_ms_per_1s\":\(fmt(engineMsPer1s)),"
            + "\"macs_per_10s\":\(macsPerClip),\"gmacs_per_s\":\(fmt(gmacsPerSecond)),"
            + "\"real_time_factor\":\(fmt(realTimeFactor)),\"peak_rss_mb\":\(fmt(peakRSSMB)),"
            + "\"frames\":\(frames),\"engine_ms\":\(fmt(engineMsPer10s)),\"mel\":\(jsonString(melSource))}"
    }

    /// Human-readable lines.
    public var text: String {
        """
        model: \(model)  threads: \(threads)  runs: \(runs) (median)
        frontend: \(fmt(frontendMsPer10s)) ms per 10 s clip
        engine:   \(fmt(engineMsPer10s)) ms per \(frames == 1000 ? "10 s clip" : "\(frames) frames")  (\(fmt(Double(macsPerClip) / 1e6)) MMAC, \
        \(fmt(gmacsPerSecond)) GMAC/s)
        engine:   \(fmt(engineMsPer1s)) ms per 1 s clip (100 frames)
        real-time factor: \(fmt(realTimeFactor))x  peak RSS: \(fmt(peakRSSMB)) MB
        """
    }

    private func fmt(_ v: Double) -> String { String(printf: "%.3f", v) }
}

/// Why a benchmark input was refused.
public enum BenchError: Error, CustomStringConvertible, Equatable {
    /// The `.npy` file is not a 2-D `[bins][frames]` array (leading 1s allowed).
    case melShape(String, [Int])
    /// More frames were asked for than the file holds.
    case melFrames(String, Int, Int)
    /// The mel has a different number of bins than the model's frontend.
    case melBins(String, Int, Int)

    public var description: String {
        switch self {
        case let .melShape(p, s): return "\(p): expected a mel of shape [bins, frames] (leading 1s allowed), got \(s)"
        case let .melFrames(p, k, t): return "\(p): --frames \(k) is outside 1...\(t), the frames the file holds"
        case let .melBins(p, b, m): return "\(p): the mel has \(b) bins, the model expects \(m)"
        }
    }
}

/// Runs the benchmark on a deterministic synthetic 10 s clip.
public enum Bench {
    /// Ten seconds of deterministic test audio at `rate`: tones plus pseudo-random noise.
    public static func syntheticClip(rate: Int) -> [Float] {
        var state: UInt32 = 0x12345678
        return (0..<(rate * 10)).map { i in
            state = state &* 1_664_525 &+ 1_013_904_223
            let noise = Float(Int32(bitPattern: state)) / Float(Int32.max)
            let t = Float(i) / Float(rate)
            return 0.3 * sinf(2 * .pi * 440 * t) + 0.2 * sinf(2 * .pi * 1234 * t) + 0.05 * noise
        }
    }

    /// Measures frontend and engine medians over `runs` runs after `warmup` unmeasured ones.
    ///
    /// The frontend always runs on the synthetic 10 s clip; the engine runs on `input` when given (a mel read with
    /// `loadMel`, so that another engine can be timed on the same values), else on that clip's mel.
    public static func run(model: AnyModel, threads: Int, runs: Int, warmup: Int = 3,
                           input: (mel: MelSpectrogram, source: String)? = nil) throws -> BenchResult {
        let audio = syntheticClip(rate: model.frontend.sampleRate)
        let frontend = try LogMelFrontend(settings: model.frontend)
        let synthetic = try frontend.compute(audio)
        let mel = input?.mel ?? synthetic
        guard mel.bins == model.frontend.nMels else {
            throw BenchError.melBins(input?.source ?? "synthetic", mel.bins, model.frontend.nMels)
        }
        let engine = try makeEngine(model, maxFrames: mel.frames, threads: threads)
        var logits = [Float](repeating: 0, count: engine.numClasses)
        var embedding = [Float](repeating: 0, count: engine.embeddingSize)
        var frontendTimes: [Double] = []
        var engineTimes: [Double] = []
        for i in 0..<(warmup + runs) {
            let t0 = now()
            _ = try frontend.compute(audio)
            let t1 = now()
            mel.data.withUnsafeBufferPointer { m in
                logits.withUnsafeMutableBufferPointer { l in
                    embedding.withUnsafeMutableBufferPointer { e in
                        engine.run(mel: m, frames: mel.frames, logits: l, embedding: e)
                    }
                }
            }
            let t2 = now()
            if i >= warmup {
                frontendTimes.append(t1 - t0)
                engineTimes.append(t2 - t1)
            }
        }
        // One second: the first 100 frames of every mel row, run on the same engine.
        let short = min(100, mel.frames)
        var shortMel = [Float](repeating: 0, count: mel.bins * short)
        for r in 0..<mel.bins { for f in 0..<short { shortMel[r * short + f] = mel.data[r * mel.frames + f] } }
        var shortTimes: [Double] = []
        for i in 0..<(warmup + runs) {
            let t0 = now()
            shortMel.withUnsafeBufferPointer { m in
                logits.withUnsafeMutableBufferPointer { l in
                    embedding.withUnsafeMutableBufferPointer { e in engine.run(mel: m, frames: short, logits: l, embedding: e) }
                }
            }
            if i >= warmup { shortTimes.append(now() - t0) }
        }
        return BenchResult(model: model.name, threads: threads, runs: runs,
                           frontendMsPer10s: median(frontendTimes) * 1e3, engineMsPer10s: median(engineTimes) * 1e3,
                           engineMsPer1s: median(shortTimes) * 1e3,
                           macsPerClip: engine.multiplyAccumulates(frames: mel.frames), peakRSSMB: peakRSSMegabytes(),
                           frames: mel.frames, melSource: input?.source ?? "synthetic")
    }

    /// Reads a model input mel from a `.npy` file (`[bins][frames]`, optionally with leading 1s, as EfficientAT's
    /// `(1, 1, 128, T)`), keeping the first `frames` frames when given.
    public static func loadMel(path: String, frames: Int?) throws -> MelSpectrogram {
        let a = try NumpyArray.read(path: path)
        let dims = Array(a.shape.drop(while: { $0 == 1 }))
        guard dims.count == 2, dims[0] > 0, dims[1] > 0 else {
            throw BenchError.melShape(path, a.shape)
        }
        let bins = dims[0], total = dims[1]
        let keep = frames ?? total
        guard keep >= 1, keep <= total else { throw BenchError.melFrames(path, keep, total) }
        var data = [Float](repeating: 0, count: bins * keep)
        for b in 0..<bins {
            for f in 0..<keep { data[b * keep + f] = a.data[b * total + f] }
        }
        return MelSpectrogram(bins: bins, frames: keep, data: data)
    }

    /// Monotonic time in seconds.
    static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) * 1e-9 }

    /// Median of a non-empty list.
    static func median(_ v: [Double]) -> Double {
        let s = v.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    /// Peak resident set size of this process (VmHWM), in MB; 0 where /proc is unavailable.
    public static func peakRSSMegabytes() -> Double {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let kb = line.split(separator: " ").compactMap { Double($0) }.first ?? 0
            return kb / 1024
        }
        return 0
    }
}
