// EfficientAT's log-mel frontend (`AugmentMelSTFT`, eval mode) on FFTW, matching the PyTorch reference to ~2e-5.
//
// Incremental (streaming) form. With y the pre-emphasized signal (length L = N - 1), frame i reads only its
// *span* y[i*hop - 400 ..< i*hop + 400] (winLength 800 samples, the non-zero part of the 1024-point window),
// reflected at both ends as torch's center=True padding does (y[-j] = y[j], y[L-1+j] = y[L-1-j]).
// `computeFrame(span:into:stride:)` computes exactly one frame from such a span; the batch path runs the same
// steps 8 frames per block, two frames per complex FFT, so the two agree to float rounding (~1e-5), not bitwise.
// An incremental frontend keeps the pre-emphasized history (plus one raw sample of lookback for the
// pre-emphasis), builds each new frame's span and calls `computeFrame`. The left reflection only involves
// y[1...400], so every frame with i*hop + 400 <= L (samples so far) is final, the first ones included. Frames with
// i*hop + 400 > L (at most the last two, for hop 320) read the right reflection, which depends on where the
// signal currently ends: a stream emits them only provisionally, if at all, and recomputes them when more audio
// arrives, or at flush exactly as the batch path does at the true end.
// `StreamingLogMel` goes further: it computes frames with the internal `computeFramePair` / `computeFrameBlock`,
// which pair frames as the batch path does, so its windows are bitwise equal to `compute` of the same samples.
import CFFTW
import EarTagModel
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A log-mel spectrogram laid out [mel bin][frame], row-major, like EfficientAT's `(128, T)` model input.
public struct MelSpectrogram: Sendable, Equatable {
    /// Number of mel bins (rows).
    public var bins: Int
    /// Number of frames (columns).
    public var frames: Int
    /// `bins * frames` values, bin after bin.
    public var data: [Float]

    /// Wraps existing values; `data.count` must equal `bins * frames`.
    public init(bins: Int, frames: Int, data: [Float]) {
        precondition(data.count == bins * frames, "mel spectrogram \(bins) x \(frames) needs \(bins * frames) values")
        self.bins = bins
        self.frames = frames
        self.data = data
    }

    /// The value of one bin at one frame.
    public subscript(bin: Int, frame: Int) -> Float { data[bin * frames + frame] }
}

/// Errors raised by the frontend.
public enum FrontendError: Error, Equatable, CustomStringConvertible {
    /// The input is shorter than reflect padding allows (PyTorch's `torch.stft` raises here too).
    case inputTooShort(sampleCount: Int, minimum: Int)
    /// The caller's output buffer does not hold exactly bins x frames values.
    case outputSizeMismatch(expected: Int, actual: Int)
    /// A frame span passed to `computeFrame` has the wrong length.
    case spanLengthMismatch(expected: Int, actual: Int)
    /// The settings cannot describe a valid frontend.
    case invalidSettings(String)

    /// Human-readable description.
    public var description: String {
        switch self {
        case .inputTooShort(let n, let minimum):
            return "audio too short for the log-mel frontend: \(n) samples, need at least \(minimum)"
        case .outputSizeMismatch(let expected, let actual):
            return "mel output buffer holds \(actual) values, expected \(expected)"
        case .spanLengthMismatch(let expected, let actual):
            return "frame span has \(actual) samples, expected \(expected)"
        case .invalidSettings(let why): return "invalid frontend settings: \(why)"
        }
    }
}

/// Computes EfficientAT log-mel spectrograms; reuses its scratch buffers, so use one instance per thread.
public final class LogMelFrontend {
    /// Frames processed together by the batch path (one SIMD lane each).
    public static let blockWidth = 8
    /// The settings this frontend was built with.
    public let settings: FrontendSettings
    /// The sparse mel filterbank.
    public let filterbank: MelFilterbank
    /// Number of mel bins per frame.
    public let bins: Int
    /// Samples of the padded, pre-emphasized signal that one frame reads (the window's non-zero length).
    public let spanLength: Int
    /// Where a frame's span starts inside its nFFT-sample analysis window (the window's left zero padding).
    public let spanOffset: Int
    /// Reflect padding on each end of the pre-emphasized signal (`nFFT / 2`).
    public let padding: Int
    /// Hop between frames, in samples.
    public let hop: Int
    /// Shortest input accepted: the pre-emphasized signal must be longer than the reflect padding.
    public var minimumSampleCount: Int { padding + 2 }

    private let nFFT: Int
    private let preemphasis: Float
    private let logOffset: Float
    private let normAdd: Float
    private let normDiv: Float
    /// The Hann window's non-zero part (`spanLength` values).
    private let window: UnsafeMutablePointer<Float>
    /// Split complex FFT input: real part = first frame of a pair, imaginary part = second frame.
    private let fftRe: FFTWBuffer<Float>
    private let fftIm: FFTWBuffer<Float>
    private let outRe: FFTWBuffer<Float>
    private let outIm: FFTWBuffer<Float>
    private let plan: SplitComplexFFTPlan
    /// Power spectra of the current block, [bin][lane].
    private let power: UnsafeMutablePointer<SIMD8<Float>>
    private let powerBins: Int
    /// One edge frame's span, rebuilt with reflect padding by the batch path.
    private let staging: UnsafeMutablePointer<Float>
    private let filterFirst: UnsafeMutablePointer<Int>
    private let filterCount: UnsafeMutablePointer<Int>
    private let filterOffset: UnsafeMutablePointer<Int>
    private let filterWeights: UnsafeMutablePointer<Float>

    /// Builds the window, the sparse mel filterbank, the FFTW plan (ESTIMATE: instant and the same in every
    /// frontend, see `SplitComplexFFTPlan`) and scratch buffers.
    /// Upper bounds on settings (EfficientAT uses 32000 Hz, nFFT 1024, 128 mels, hop 320).
    public static let maxSampleRate = 768_000, maxFFT = 1 << 15, maxMels = 512, maxHop = 1 << 20

    public init(settings: FrontendSettings = .efficientAT) throws {
        let s = settings
        guard s.sampleRate > 0 else { throw FrontendError.invalidSettings("sampleRate must be positive") }
        guard s.nFFT >= 4, s.nFFT % 2 == 0 else { throw FrontendError.invalidSettings("nFFT must be even and >= 4") }
        guard s.winLength > 0, s.winLength <= s.nFFT else {
            throw FrontendError.invalidSettings("winLength must be in 1...nFFT")
        }
        guard s.hopLength > 0 else { throw FrontendError.invalidSettings("hopLength must be positive") }
        guard s.nMels > 0 else { throw FrontendError.invalidSettings("nMels must be positive") }
        let nyquist = Double(s.sampleRate) / 2
        let fmax = s.fmax <= 0 ? s.fmax + nyquist : s.fmax
        guard s.fmin >= 0, fmax > s.fmin, fmax <= nyquist else {
            throw FrontendError.invalidSettings("need 0 <= fmin < fmax <= sampleRate / 2")
        }
        guard s.logOffset > 0, s.logOffset.isFinite else { throw FrontendError.invalidSettings("logOffset must be positive") }
        guard s.normDiv != 0 else { throw FrontendError.invalidSettings("normDiv must not be zero") }
        // Settings come from model files written by strangers: bound what sizes buffers, and keep the arithmetic finite.
        guard s.sampleRate <= Self.maxSampleRate, s.nFFT <= Self.maxFFT, s.nMels <= Self.maxMels,
              s.hopLength <= Self.maxHop else {
            throw FrontendError.invalidSettings("sampleRate <= \(Self.maxSampleRate), nFFT <= \(Self.maxFFT), "
                                                + "nMels <= \(Self.maxMels) and hopLength <= \(Self.maxHop) are required")
        }
        guard [s.preemphasis, s.normAdd, s.normDiv].allSatisfy(\.isFinite) else {
            throw FrontendError.invalidSettings("preemphasis, normAdd and normDiv must be finite")
        }

        self.settings = s
        nFFT = s.nFFT
        bins = s.nMels
        spanLength = s.winLength
        // ref: torch.stft pads a shorter window with (n_fft - win_length) // 2 zeros on the left.
        spanOffset = (s.nFFT - s.winLength) / 2
        // ref: torch.stft center=True pads n_fft // 2 on both ends (EfficientAT preprocess.py: center=True).
        padding = s.nFFT / 2
        hop = s.hopLength
        preemphasis = Float(s.preemphasis)
        logOffset = Float(s.logOffset)
        normAdd = Float(s.normAdd)
        normDiv = Float(s.normDiv)

        // FFTW resources first: they are the only steps that can throw, so nothing below can leak on failure.
        fftRe = try FFTWBuffer(count: s.nFFT)
        fftIm = try FFTWBuffer(count: s.nFFT)
        outRe = try FFTWBuffer(count: s.nFFT)
        outIm = try FFTWBuffer(count: s.nFFT)
        // Plan first, then zero the inputs (a planner may use the buffers as scratch).
        plan = try SplitComplexFFTPlan(size: s.nFFT, realIn: fftRe, imagIn: fftIm, realOut: outRe, imagOut: outIm)
        fftRe.pointer.update(repeating: 0, count: s.nFFT)
        fftIm.pointer.update(repeating: 0, count: s.nFFT)

        // ref: EfficientAT preprocess.py: window = torch.hann_window(win_length, periodic=False), which torch
        //      computes in float32 as 0.5 - 0.5 * cos(n * (2 pi / (win_length - 1))).
        window = .allocate(capacity: spanLength)
        let step = Float(2.0 * Double.pi / Double(max(1, spanLength - 1)))
        for n in 0..<spanLength {
            window[n] = spanLength == 1 ? 1 : Float(0.5) - Float(0.5) * cosf(Float(n) * step)
        }

        // ref: EfficientAT preprocess.py: get_mel_banks(n_mels, n_fft, sr, fmin, fmax, vtln_warp_factor=1.0),
        //      padded with a zero Nyquist column.
        filterbank = MelFilterbank(nMels: s.nMels, nFFT: s.nFFT, sampleRate: s.sampleRate, fmin: s.fmin, fmax: fmax)
        powerBins = max(1, filterbank.usedBins)
        filterFirst = .allocate(capacity: bins)
        filterCount = .allocate(capacity: bins)
        filterOffset = .allocate(capacity: bins)
        for m in 0..<bins {
            filterFirst[m] = filterbank.firstBin[m]
            filterCount[m] = filterbank.binCount[m]
            filterOffset[m] = filterbank.weightOffset[m]
        }
        filterWeights = .allocate(capacity: max(1, filterbank.weights.count))
        for (i, w) in filterbank.weights.enumerated() { filterWeights[i] = w }

        power = .allocate(capacity: powerBins)
        power.initialize(repeating: SIMD8(), count: powerBins)
        staging = .allocate(capacity: spanLength)
        staging.initialize(repeating: 0, count: spanLength)

    }

    deinit {
        window.deallocate()
        power.deallocate()
        staging.deallocate()
        filterFirst.deallocate()
        filterCount.deallocate()
        filterOffset.deallocate()
        filterWeights.deallocate()
    }

    /// Number of frames for `sampleCount` input samples: 1 + (sampleCount - 1) / hop (0 when there is no sample);
    /// `compute` itself needs at least `minimumSampleCount` samples.
    public func frameCount(sampleCount: Int) -> Int {
        // ref: EfficientAT preprocess.py: the pre-emphasis conv leaves N - 1 samples; torch.stft center=True
        //      then yields 1 + (N - 1) // hop_length frames.
        guard sampleCount >= 1 else { return 0 }
        return 1 + (sampleCount - 1) / hop
    }

    /// Computes the log-mel spectrogram of a mono waveform at `settings.sampleRate`; refuses (`inputTooShort`) fewer
    /// than `minimumSampleCount` samples, as torch.stft does. Non-finite samples give NaN in the frames that see them.
    public func compute(_ samples: [Float]) throws -> MelSpectrogram {
        let n = samples.count
        guard n >= minimumSampleCount else {
            throw FrontendError.inputTooShort(sampleCount: n, minimum: minimumSampleCount)
        }
        let frames = frameCount(sampleCount: n)
        let total = bins * frames
        var failure: Error?
        let data = [Float](unsafeUninitializedCapacity: total) { buffer, initialized in
            do {
                try samples.withUnsafeBufferPointer { try compute($0, into: buffer) }
            } catch {
                failure = error
                buffer.initialize(repeating: 0)
            }
            initialized = total
        }
        if let failure { throw failure }
        return MelSpectrogram(bins: bins, frames: frames, data: data)
    }

    /// Allocation-free batch computation into `output` ([bin][frame], exactly bins x frameCount values, all overwritten);
    /// throws `inputTooShort` or `outputSizeMismatch`.
    public func compute(_ samples: UnsafeBufferPointer<Float>, into output: UnsafeMutableBufferPointer<Float>) throws {
        let n = samples.count
        guard n >= minimumSampleCount, let x = samples.baseAddress else {
            throw FrontendError.inputTooShort(sampleCount: n, minimum: minimumSampleCount)
        }
        let frames = frameCount(sampleCount: n)
        guard output.count == bins * frames, let out = output.baseAddress else {
            throw FrontendError.outputSizeMismatch(expected: bins * frames, actual: output.count)
        }
        var f0 = 0
        while f0 < frames {
            let lanes = min(Self.blockWidth, frames - f0)
            var lane = 0
            while lane < lanes {
                loadFrame(f0 + lane, samples: x, count: n, into: fftRe.pointer)
                if lane + 1 < lanes {
                    loadFrame(f0 + lane + 1, samples: x, count: n, into: fftIm.pointer)
                } else {
                    clearSpan(fftIm.pointer)
                }
                transformPair(lane: lane)
                lane += 2
            }
            melBlock(lanes: lanes, output: out + f0, rowStride: frames)
            f0 += lanes
        }
    }

    /// Computes one frame from its span of the padded, pre-emphasized signal and writes its `bins` values to `column[m * stride]`.
    public func computeFrame(span: UnsafeBufferPointer<Float>, into column: UnsafeMutablePointer<Float>,
                             stride: Int) throws {
        guard span.count == spanLength, let p = span.baseAddress else {
            throw FrontendError.spanLengthMismatch(expected: spanLength, actual: span.count)
        }
        loadWindowed(span: p, into: fftRe.pointer)
        clearSpan(fftIm.pointer)
        transformPair(lane: 0)
        melBlock(lanes: 1, output: column, rowStride: stride)
    }

    /// Computes one or two frames from their spans with one complex FFT, exactly as the batch path computes the pair
    /// (first frame in the real part, second or zeros in the imaginary part), so results are bitwise equal to the
    /// batch's for the same pair; writes frame k's bins to `firstColumn[m * stride]` / `secondColumn[m * stride]`.
    /// `scratch` holds 2 x bins values. Used by `StreamingLogMel`.
    func computeFramePair(first: UnsafePointer<Float>, second: UnsafePointer<Float>?,
                          into firstColumn: UnsafeMutablePointer<Float>, _ secondColumn: UnsafeMutablePointer<Float>?,
                          stride: Int, scratch: UnsafeMutablePointer<Float>) {
        loadWindowed(span: first, into: fftRe.pointer)
        if let second { loadWindowed(span: second, into: fftIm.pointer) } else { clearSpan(fftIm.pointer) }
        transformPair(lane: 0)
        melBlock(lanes: 2, output: scratch, rowStride: 2)
        for m in 0..<bins { firstColumn[m * stride] = scratch[2 * m] }
        if let secondColumn {
            for m in 0..<bins { secondColumn[m * stride] = scratch[2 * m + 1] }
        }
    }

    /// Computes `count` (1...8) frames from consecutive spans (`spanLength` values each) as one batch block: frames
    /// (0,1), (2,3), ... share a complex FFT and the last odd one pairs with zeros, exactly like the batch path, so
    /// values are bitwise equal to the batch's for the same pairs. Writes frame l's bins to `block[m * 8 + l]`
    /// (`block` holds 8 x bins values). Used by `StreamingLogMel`.
    func computeFrameBlock(spans: UnsafePointer<Float>, count: Int, into block: UnsafeMutablePointer<Float>) {
        precondition(count >= 1 && count <= Self.blockWidth, "a frame block holds 1...\(Self.blockWidth) frames")
        var lane = 0
        while lane < count {
            loadWindowed(span: spans + lane * spanLength, into: fftRe.pointer)
            if lane + 1 < count {
                loadWindowed(span: spans + (lane + 1) * spanLength, into: fftIm.pointer)
            } else {
                clearSpan(fftIm.pointer)
            }
            transformPair(lane: lane)
            lane += 2
        }
        melBlock(lanes: count, output: block, rowStride: Self.blockWidth)
    }

    /// Loads frame i's windowed span into FFT input `target`, pre-emphasizing on the fly and reflect-padding at the ends.
    @inline(__always)
    private func loadFrame(_ i: Int, samples x: UnsafePointer<Float>, count n: Int,
                           into target: UnsafeMutablePointer<Float>) {
        // ref: EfficientAT preprocess.py: conv1d with kernel [[-0.97, 1]] (valid): y[j] = x[j+1] - 0.97 x[j].
        let c = preemphasis
        let length = n - 1
        let start = i * hop + spanOffset - padding  // index into y of the span's first sample
        if start >= 0 && start + spanLength <= length {
            // Interior frame: pre-emphasis fused with the window (same float operations as the span path).
            let src = x + start
            let input = target + spanOffset
            let w = window
            for k in 0..<spanLength { input[k] = w[k] * (src[k + 1] - c * src[k]) }
        } else {
            // ref: torch.stft center=True, pad_mode='reflect': y[-j] = y[j], y[L-1+j] = y[L-1-j] (no edge repeat).
            for k in 0..<spanLength {
                var j = start + k
                if j < 0 { j = -j } else if j >= length { j = 2 * (length - 1) - j }
                staging[k] = x[j + 1] - c * x[j]
            }
            loadWindowed(span: UnsafePointer(staging), into: target)
        }
    }

    /// Loads a span of the padded, pre-emphasized signal into FFT input `target`, multiplied by the window.
    @inline(__always)
    private func loadWindowed(span: UnsafePointer<Float>, into target: UnsafeMutablePointer<Float>) {
        // ref: torch.stft(n_fft, hop, win_length, window zero-padded to n_fft centred); the zeros around the
        //      span stay in the FFT inputs from init (FFTW_PRESERVE_INPUT keeps them).
        let input = target + spanOffset
        let w = window
        for k in 0..<spanLength { input[k] = w[k] * span[k] }
    }

    /// Zeroes the span region of FFT input `target` (an absent second frame of a pair).
    @inline(__always)
    private func clearSpan(_ target: UnsafeMutablePointer<Float>) {
        (target + spanOffset).update(repeating: 0, count: spanLength)
    }

    /// Transforms the loaded pair (real part: frame in `lane`, imaginary part: frame in `lane + 1`) and stores
    /// both power spectra into those SIMD lanes of `power`.
    @inline(__always)
    private func transformPair(lane: Int) {
        plan.execute(realIn: fftRe.pointer, imagIn: fftIm.pointer, realOut: outRe.pointer, imagOut: outIm.pointer)
        // Z = FFT(a + i b): A[k] = (Z[k] + conj Z[N-k]) / 2, B[k] = (Z[k] - conj Z[N-k]) / 2i.
        // ref: EfficientAT preprocess.py: power = real^2 + imag^2 (view_as_real, ** 2, sum(-1)).
        let zr = outRe.pointer, zi = outIm.pointer
        let dst = UnsafeMutableRawPointer(power).assumingMemoryBound(to: Float.self) + lane
        let width = Self.blockWidth
        dst[0] = zr[0] * zr[0]
        dst[1] = zi[0] * zi[0]
        let n = nFFT
        for k in 1..<powerBins {
            let r0 = zr[k], i0 = zi[k], r1 = zr[n - k], i1 = zi[n - k]
            let ar = r0 + r1, ai = i0 - i1
            let br = r0 - r1, bi = i0 + i1
            dst[k * width] = Float(0.25) * (ar * ar + ai * ai)
            dst[k * width + 1] = Float(0.25) * (br * br + bi * bi)
        }
    }

    /// Applies the mel filterbank, log and normalisation to the first `lanes` power spectra; writes output[m * rowStride + lane].
    @inline(__always)
    private func melBlock(lanes: Int, output: UnsafeMutablePointer<Float>, rowStride: Int) {
        let offset = SIMD8<Float>(repeating: logOffset)
        let add = SIMD8<Float>(repeating: normAdd)
        let div = SIMD8<Float>(repeating: normDiv)
        for m in 0..<bins {
            // ref: EfficientAT preprocess.py: melspec = mel_basis @ power (sparse rows here).
            let p = power + filterFirst[m]
            let w = filterWeights + filterOffset[m]
            var acc = SIMD8<Float>()
            for j in 0..<filterCount[m] { acc += SIMD8(repeating: w[j]) * p[j] }
            // ref: EfficientAT preprocess.py: (melspec + 0.00001).log(), then (melspec + 4.5) / 5.
            let v = (fastLog(acc + offset) + add) / div
            let row = output + m * rowStride
            if lanes == Self.blockWidth {
                UnsafeMutableRawPointer(row).storeBytes(of: v, as: SIMD8<Float>.self)
            } else {
                for l in 0..<lanes { row[l] = v[l] }
            }
        }
    }
}
