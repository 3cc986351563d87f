// Kaldi-style triangular mel filterbank, computed with torchaudio's float32 arithmetic, stored sparsely.
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A mel filterbank as one contiguous run of non-zero weights per filter.
public struct MelFilterbank: Sendable, Equatable {
    /// Number of mel filters.
    public let filterCount: Int
    /// Number of power-spectrum bins the filterbank is defined on (`nFFT / 2 + 1`; the Nyquist bin has weight 0).
    public let spectrumBins: Int
    /// First FFT bin of filter m.
    public let firstBin: [Int]
    /// Number of consecutive bins (weights) of filter m; 0 for an empty filter.
    public let binCount: [Int]
    /// Offset of filter m's first weight in `weights`.
    public let weightOffset: [Int]
    /// All filters' weights, filter after filter.
    public let weights: [Float]
    /// One past the highest bin any filter uses.
    public let usedBins: Int

    /// Builds torchaudio's `kaldi.get_mel_banks(nMels, nFFT, sampleRate, fmin, fmax)` (no VTLN) plus EfficientAT's zero Nyquist column.
    public init(nMels: Int, nFFT: Int, sampleRate: Int, fmin: Double, fmax: Double) {
        precondition(nMels > 0 && nFFT >= 2 && nFFT % 2 == 0 && sampleRate > 0, "invalid mel filterbank parameters")
        // ref: torchaudio/compliance/kaldi.py get_mel_banks: num_fft_bins = window_length_padded / 2,
        //      nyquist = 0.5 * sample_freq; high_freq <= 0 means an offset from Nyquist.
        let numFFTBins = nFFT / 2
        let nyquist = 0.5 * Double(sampleRate)
        let high = fmax <= 0 ? fmax + nyquist : fmax
        // ref: kaldi.py get_mel_banks: fft_bin_width = sample_freq / window_length_padded (Python double).
        let fftBinWidth = Double(sampleRate) / Double(nFFT)
        // ref: kaldi.py mel_scale_scalar: 1127 * ln(1 + f / 700), in double; delta over num_bins + 1.
        let melLow = 1127.0 * Glibc.log(1.0 + fmin / 700.0)
        let melHigh = 1127.0 * Glibc.log(1.0 + high / 700.0)
        let melDelta = (melHigh - melLow) / Double(nMels + 1)
        // The scalars enter float32 tensor arithmetic, so torch rounds them to float32 first.
        let melLow32 = Float(melLow), melDelta32 = Float(melDelta), binWidth32 = Float(fftBinWidth)

        // ref: kaldi.py get_mel_banks: mel = mel_scale(fft_bin_width * arange(num_fft_bins)), float32 tensor ops:
        //      1127 * log(1 + freq / 700).
        var binMel = [Float](repeating: 0, count: numFFTBins)
        for k in 0..<numFFTBins {
            let freq = binWidth32 * Float(k)
            binMel[k] = Float(1127.0) * logf(Float(1.0) + freq / Float(700.0))
        }

        var first = [Int](), counts = [Int](), offsets = [Int](), flat = [Float]()
        var used = 0
        for m in 0..<nMels {
            // ref: kaldi.py get_mel_banks: left/center/right_mel = mel_low + (bin + 0/1/2) * mel_freq_delta (float32).
            let b = Float(m)
            let left = melLow32 + b * melDelta32
            let center = melLow32 + (b + 1) * melDelta32
            let right = melLow32 + (b + 2) * melDelta32
            var row = [Float](repeating: 0, count: numFFTBins)
            var lo = Int.max, hi = -1
            for k in 0..<numFFTBins {
                // ref: kaldi.py get_mel_banks: up_slope, down_slope; bins = max(0, min(up_slope, down_slope)).
                let up = (binMel[k] - left) / (center - left)
                let down = (right - binMel[k]) / (right - center)
                let w = max(Float(0), min(up, down))
                row[k] = w
                if w > 0 { lo = min(lo, k); hi = max(hi, k) }
            }
            offsets.append(flat.count)
            if hi >= 0 {
                first.append(lo)
                counts.append(hi - lo + 1)
                flat.append(contentsOf: row[lo...hi])
                used = max(used, hi + 1)
            } else {
                first.append(0)
                counts.append(0)
            }
        }
        // ref: EfficientAT models/preprocess.py: mel_basis padded with one zero column (Nyquist bin weight 0).
        filterCount = nMels
        spectrumBins = numFFTBins + 1
        firstBin = first
        binCount = counts
        weightOffset = offsets
        weights = flat
        usedBins = used
    }

    /// The dense weight matrix [filter][spectrumBins], row-major (for tests and inspection).
    public func dense() -> [Float] {
        var out = [Float](repeating: 0, count: filterCount * spectrumBins)
        for m in 0..<filterCount {
            for j in 0..<binCount[m] { out[m * spectrumBins + firstBin[m] + j] = weights[weightOffset[m] + j] }
        }
        return out
    }
}
