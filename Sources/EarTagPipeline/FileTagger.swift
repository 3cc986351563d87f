// Whole-file tagging: decode -> 32 kHz mono -> log-mel -> float engine -> sigmoid scores.
// ref: EfficientAT inference.py (librosa.load(sr=32000, mono=True); mel(waveform); model(spec); sigmoid).
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import EarTagAudio
import EarTagFrontend
import EarTagModel
import EarTagEngine

/// What tagging one file produced.
public struct TaggingResult: Sendable {
    /// The path as the caller gave it.
    public var file: String
    public var durationSeconds: Double
    /// Raw model outputs, one per class in model order.
    public var logits: [Float]
    /// sigmoid(logits), one per class in model order.
    public var scores: [Float]
    /// Global average of the last feature map.
    public var embedding: [Float]

    /// A result from its parts.
    public init(file: String, durationSeconds: Double, logits: [Float], scores: [Float], embedding: [Float]) {
        self.file = file
        self.durationSeconds = durationSeconds
        self.logits = logits
        self.scores = scores
        self.embedding = embedding
    }

    /// Class indices ordered by descending score (ties by index), at most `count`.
    public func topIndices(_ count: Int) -> [Int] { topClassIndices(scores, count) }
}

/// Class indices ordered by descending score (ties by lower index first), at most `count`.
public func topClassIndices(_ scores: [Float], _ count: Int) -> [Int] {
    let order = scores.indices.sorted { scores[$0] != scores[$1] ? scores[$0] > scores[$1] : $0 < $1 }
    return Array(order.prefix(max(0, count)))
}

/// Errors of the file tagger that are not the decoder's, frontend's or engine's own.
public enum TaggingError: Error, CustomStringConvertible, Equatable {
    case tooShort(String, samples: Int)

    public var description: String {
        switch self {
        case let .tooShort(file, samples):
            return "\(file): audio is too short to analyse (\(samples) samples at 32 kHz)"
        }
    }
}

/// Tags whole files with one loaded model; many files share the model, frontend and engine buffers.
public final class FileTagger {
    public let model: AnyModel
    public let threads: Int
    /// Longest input accepted, in seconds.
    public let maxDurationSeconds: Double
    private let frontend: LogMelFrontend
    private var engine: InferenceEngine?
    private var engineFrames = 0

    /// Prepares the frontend; the engine is prepared on first use and grown when a longer file arrives.
    public init(model: AnyModel, threads: Int = 1, maxDurationSeconds: Double = 600) throws {
        self.model = model
        self.threads = threads
        self.maxDurationSeconds = maxDurationSeconds
        self.frontend = try LogMelFrontend(settings: model.frontend)
    }

    /// Decodes, resamples and tags one file.
    public func tag(path: String) throws -> TaggingResult {
        let audio = try loadAudio(path: path, targetRate: model.frontend.sampleRate,
                                  maxDurationSeconds: maxDurationSeconds)
        return try tag(samples: audio.samples, file: path, durationSeconds: audio.durationSeconds)
    }

    /// Tags mono samples already at the model's sample rate.
    public func tag(samples: [Float], file: String, durationSeconds: Double) throws -> TaggingResult {
        let mel: MelSpectrogram
        do {
            mel = try frontend.compute(samples)
        } catch {
            throw TaggingError.tooShort(file, samples: samples.count)
        }
        let engine = try engineFor(frames: mel.frames)
        var logits = [Float](repeating: 0, count: engine.numClasses)
        var embedding = [Float](repeating: 0, count: engine.embeddingSize)
        mel.data.withUnsafeBufferPointer { m in
            logits.withUnsafeMutableBufferPointer { l in
                embedding.withUnsafeMutableBufferPointer { e in
                    engine.run(mel: m, frames: mel.frames, logits: l, embedding: e)
                }
            }
        }
        let scores = logits.map { 1 / (1 + expf(-$0)) }
        return TaggingResult(file: file, durationSeconds: durationSeconds, logits: logits, scores: scores,
                             embedding: embedding)
    }

    /// Returns an engine sized for at least `frames`, re-preparing a larger one when needed.
    private func engineFor(frames: Int) throws -> InferenceEngine {
        if let e = engine, frames <= engineFrames { return e }
        // Round up to whole 10 s clips so a batch of similar files prepares once.
        let tenSeconds = model.frontend.sampleRate * 10 / model.frontend.hopLength + 1
        let size = max(frames, ((frames + tenSeconds - 1) / tenSeconds) * tenSeconds)
        engine = nil
        let e = try makeEngine(model, maxFrames: size, threads: threads)
        engine = e
        engineFrames = size
        return e
    }
}
