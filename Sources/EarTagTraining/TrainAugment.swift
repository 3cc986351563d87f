// Training-mode frontend and augmentation, deterministic given a seed: waveform gain and roll, the mel's fmin/fmax
// jitter, frequency and time masking, and mixup (targets mixed too).
// ref: EfficientAT models/preprocess.py AugmentMelSTFT.forward (training: fmin + randint(fmin_aug_range),
// fmax + fmax_aug_range // 2 - randint(fmax_aug_range); log(mel + 1e-5); FrequencyMasking / TimeMasking; then
// (x + 4.5) / 5), helpers/mixup.py (lambda ~ Beta(a, a), max(lambda, 1 - lambda), random permutation),
// datasets/audioset.py (gain_augment in dB, roll by a random shift).
import EarTagFrontend
import EarTagModel
import Foundation

/// Augmentation settings (EfficientAT's AudioSet recipe where it has one).
public struct AugmentationSettings: Sendable, Equatable {
    /// fmin + U{0, ..., fminRange - 1} Hz (10).
    public var fminRange = 10
    /// fmax + fmaxRange / 2 - U{0, ..., fmaxRange - 1} Hz (2000).
    public var fmaxRange = 2000
    /// Largest frequency mask, in mel bins (torchaudio FrequencyMasking(48)); 0: off.
    public var frequencyMask = 48
    /// Largest time mask, in frames (torchaudio TimeMasking(192)); 0: off.
    public var timeMask = 192
    /// Mixup Beta(alpha, alpha) (0.3); 0: off.
    public var mixupAlpha = 0.3
    /// Gain drawn from U{-gainDB, ..., gainDB} dB; 0: off.
    public var gainDB = 0
    /// Waveform roll by U{-rollRange, ..., rollRange} samples; 0: off.
    public var rollRange = 0

    /// EfficientAT's AudioSet settings (gain and roll off, as in its default run).
    public init() {}

    /// Everything off (eval-mode inputs).
    public static let none: AugmentationSettings = {
        var a = AugmentationSettings()
        a.fminRange = 0; a.fmaxRange = 0; a.frequencyMask = 0; a.timeMask = 0; a.mixupAlpha = 0
        return a
    }()
}

/// Uniform integer in 0..<n (0 when n <= 0).
@inline(__always)
func randomInt(_ n: Int, _ rng: inout TrainingRandom) -> Int {
    n <= 0 ? 0 : Int(rng.next() % UInt64(n))
}

/// Computes training inputs: an augmented log-mel per clip.
public final class TrainingFrontend {
    /// The model's frontend settings (the base of every jitter).
    public let settings: FrontendSettings
    public let augmentation: AugmentationSettings
    /// Used for frame counts only (not thread-safe for computing).
    private let plain: LogMelFrontend

    /// A frontend for `settings` with `augmentation`.
    public init(settings: FrontendSettings = .efficientAT, augmentation: AugmentationSettings = AugmentationSettings()) throws {
        self.settings = settings
        self.augmentation = augmentation
        plain = try LogMelFrontend(settings: settings)
    }

    /// Frames of a clip of `samples` samples.
    public func frames(samples: Int) -> Int { plain.frameCount(sampleCount: samples) }


    /// The log-mel [mels][frames] of `waveform`; training applies gain, roll, fmin/fmax jitter and masking.
    /// Thread-safe: every call builds its own LogMelFrontend (its scratch buffers cannot be shared; building one
    /// costs about a millisecond against seconds of training per clip).
    public func mel(_ waveform: [Float], training: Bool, rng: inout TrainingRandom) throws -> [Float] {
        guard training else { return try LogMelFrontend(settings: settings).compute(waveform).data }
        let a = augmentation
        var x = waveform
        if a.gainDB > 0 {
            let db = randomInt(2 * a.gainDB + 1, &rng) - a.gainDB
            let amp = Float(Foundation.pow(10, Double(db) / 20))
            for i in x.indices { x[i] *= amp }
        }
        if a.rollRange > 0, !x.isEmpty {
            let shift = randomInt(2 * a.rollRange + 1, &rng) - a.rollRange
            let n = x.count, s = ((shift % n) + n) % n
            if s != 0 { x = Array(x[(n - s)...] + x[..<(n - s)]) }  // torch.roll: element i moves to i + shift
        }
        var s = settings
        let nyquist = Double(s.sampleRate) / 2
        if a.fminRange > 0 { s.fmin += Double(randomInt(a.fminRange, &rng)) }
        if a.fmaxRange > 0 {
            let base = s.fmax <= 0 ? s.fmax + nyquist : s.fmax
            s.fmax = min(nyquist, base + Double(a.fmaxRange / 2 - randomInt(a.fmaxRange, &rng)))
        }
        var mel = try LogMelFrontend(settings: s).compute(x).data
        let bins = s.nMels, frames = mel.count / bins
        // Masks fill with 0 in the log domain, i.e. normAdd / normDiv after normalisation.
        let fill = Float(s.normAdd / s.normDiv)
        if a.frequencyMask > 0, let r = maskRange(size: bins, parameter: a.frequencyMask, &rng) {
            for b in r { for f in 0..<frames { mel[b * frames + f] = fill } }
        }
        if a.timeMask > 0, let r = maskRange(size: frames, parameter: a.timeMask, &rng) {
            for b in 0..<bins { for f in r { mel[b * frames + f] = fill } }
        }
        return mel
    }

    /// torchaudio mask_along_axis: value = U[0, p), start = floor(U[0, size - value)), masks start..<start + floor(value).
    func maskRange(size: Int, parameter: Int, _ rng: inout TrainingRandom) -> Range<Int>? {
        let value = rng.uniform() * Double(parameter)
        let start = Int(rng.uniform() * max(0, Double(size) - value))
        let end = min(size, start + Int(value))
        return start < end ? start..<end : nil
    }
}

/// Mixup of a batch: x_i = lambda_i x_i + (1 - lambda_i) x_perm(i), targets likewise.
public enum Mixup {
    /// Per-sample weights lambda (>= 0.5) and the partner permutation.
    public static func draw(batch: Int, alpha: Double, rng: inout TrainingRandom) -> (lambda: [Float], partner: [Int]) {
        var perm = Array(0..<batch)
        for i in stride(from: batch - 1, to: 0, by: -1) { perm.swapAt(i, randomInt(i + 1, &rng)) }
        let lambda = (0..<batch).map { _ -> Float in
            let l = rng.beta(alpha, alpha)
            return Float(max(l, 1 - l))
        }
        return (lambda, perm)
    }

    /// Mixes rows of `rows` ([batch][width]) in place with `lambda` and `partner`.
    public static func apply(_ rows: inout [Float], width: Int, lambda: [Float], partner: [Int]) {
        let original = rows
        for i in lambda.indices {
            let l = lambda[i], j = partner[i]
            for k in 0..<width { rows[i * width + k] = l * original[i * width + k] + (1 - l) * original[j * width + k] }
        }
    }
}

/// A waveform cut or tiled to exactly `length` samples: long clips from `offset`, short ones repeated.
public func fitClip(_ waveform: [Float], length: Int, offset: Int = 0) -> [Float] {
    guard !waveform.isEmpty else { return [Float](repeating: 0, count: length) }
    if waveform.count >= length {
        let start = min(max(0, offset), waveform.count - length)
        return Array(waveform[start..<(start + length)])
    }
    var out = [Float]()
    out.reserveCapacity(length)
    while out.count < length { out += waveform.prefix(length - out.count) }
    return out
}
