// Sample-rate conversion with libsoxr, exactly as librosa.resample(res_type="soxr_hq") via python-soxr does it.
// ref: /usr/include/soxr.h (libsoxr 0.1.3); librosa/core/audio.py resample(); python-soxr soxr.resample
import CSoxr

/// A libsoxr error: libsoxr reports failures as a static message string (`soxr_error_t`).
public struct SoxrError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The message libsoxr returned.
    public var message: String
    /// The message itself.
    public var description: String { message }
}

/// One thin wrapper per libsoxr call used.
public enum Soxr {
    /// `soxr_quality_spec(recipe, flags)`: a quality recipe such as `SOXR_HQ` (20-bit).  // ref: soxr.h
    public static func qualitySpec(recipe: Int32, flags: UInt = 0) -> soxr_quality_spec_t {
        soxr_quality_spec(UInt(recipe), flags)
    }

    /// `soxr_io_spec(itype, otype)`: sample formats in and out, e.g. `SOXR_FLOAT32_I` interleaved float.  // ref: soxr.h
    public static func ioSpec(input: soxr_datatype_t, output: soxr_datatype_t) -> soxr_io_spec_t {
        soxr_io_spec(input, output)
    }

    /// `soxr_oneshot`: resamples a whole interleaved float buffer in one call (input flushed);
    /// returns how many input frames were consumed and output frames produced.  // ref: soxr.h soxr_oneshot
    public static func oneshot(inputRate: Double, outputRate: Double, channels: Int,
                               input: UnsafeBufferPointer<Float>, output: UnsafeMutableBufferPointer<Float>,
                               io: soxr_io_spec_t, quality: soxr_quality_spec_t) throws -> (consumed: Int, produced: Int) {
        precondition(channels > 0)
        var ioSpec = io
        var qSpec = quality
        var idone = 0
        var odone = 0
        let err = soxr_oneshot(inputRate, outputRate, UInt32(channels),
                               input.baseAddress, input.count / channels, &idone,
                               output.baseAddress, output.count / channels, &odone,
                               &ioSpec, &qSpec, nil)
        if let err { throw SoxrError(message: String(cString: err)) }
        return (idone, odone)
    }

    /// `soxr_create`: a streaming resampler for interleaved samples; caller owns it (`delete`).  // ref: soxr.h soxr_create
    public static func create(inputRate: Double, outputRate: Double, channels: Int,
                              io: soxr_io_spec_t, quality: soxr_quality_spec_t) throws -> soxr_t {
        precondition(channels > 0)
        var ioSpec = io
        var qSpec = quality
        var err: soxr_error_t? = nil
        let handle = soxr_create(inputRate, outputRate, UInt32(channels), &err, &ioSpec, &qSpec, nil)
        if let err { throw SoxrError(message: String(cString: err)) }
        guard let handle else { throw SoxrError(message: "soxr_create returned no resampler") }
        return handle
    }

    /// `soxr_process`: feeds up to `inputFrames` frames (nil input = end of input, flush) and writes up to
    /// `outputFrames` frames; returns frames consumed and produced.  // ref: soxr.h soxr_process
    public static func process(_ handle: soxr_t, input: UnsafePointer<Float>?, inputFrames: Int,
                               output: UnsafeMutablePointer<Float>, outputFrames: Int) throws -> (consumed: Int, produced: Int) {
        var idone = 0
        var odone = 0
        let err = soxr_process(handle, input, inputFrames, &idone, output, outputFrames, &odone)
        if let err { throw SoxrError(message: String(cString: err)) }
        return (idone, odone)
    }

    /// `soxr_clear`: resets a resampler for a fresh signal with the same configuration.  // ref: soxr.h soxr_clear
    public static func clear(_ handle: soxr_t) throws {
        if let err = soxr_clear(handle) { throw SoxrError(message: String(cString: err)) }
    }

    /// `soxr_delay`: output samples currently held inside the resampler.  // ref: soxr.h soxr_delay
    public static func delay(_ handle: soxr_t) -> Double { soxr_delay(handle) }

    /// `soxr_delete`: frees a resampler from `create`.  // ref: soxr.h soxr_delete
    public static func delete(_ handle: soxr_t) { soxr_delete(handle) }
}

/// librosa's default resampler (`res_type="soxr_hq"`), mono float32.
public enum Resampler {
    /// Output length librosa enforces with `fix_length`: `int(np.ceil(n * (float(to) / from)))` in double precision.
    // ref: librosa.resample: ratio = float(target_sr) / orig_sr; n_samples = int(np.ceil(y.shape[-1] * ratio))
    public static func outputLength(inputLength n: Int, from: Int, to: Int) -> Int {
        Int((Double(n) * (Double(to) / Double(from))).rounded(.up))
    }

    /// Resamples mono float32 samples from one rate to another with soxr_oneshot at SOXR_HQ, float32 in and out;
    /// the result is zero-padded or cut to `outputLength` like librosa's `fix_length`. Same rate returns `x` as is.
    public static func resample(_ x: [Float], from: Int, to: Int) throws -> [Float] {
        guard from > 0, to > 0 else {
            throw AudioError.invalidParameters(file: "<samples>", detail: "resampling from \(from) Hz to \(to) Hz")
        }
        if from == to { return x }
        let n = outputLength(inputLength: x.count, from: from, to: to)
        if x.isEmpty || n == 0 { return [Float](repeating: 0, count: n) }
        // soxr may produce a few samples more than the rounded ratio; give it room, then fix the length.
        var out = [Float](repeating: 0, count: n + 16)
        let io = Soxr.ioSpec(input: SOXR_FLOAT32_I, output: SOXR_FLOAT32_I)
        let quality = Soxr.qualitySpec(recipe: SOXR_HQ, flags: 0)
        let produced: Int
        do {
            produced = try x.withUnsafeBufferPointer { inBuf in
                try out.withUnsafeMutableBufferPointer { outBuf in
                    try Soxr.oneshot(inputRate: Double(from), outputRate: Double(to), channels: 1,
                                     input: inBuf, output: outBuf, io: io, quality: quality).produced
                }
            }
        } catch let e as SoxrError {
            throw AudioError.resampleFailed(file: "<samples>", detail: e.message)
        }
        // librosa.util.fix_length: truncate or zero-pad to exactly n.
        if produced < n {
            for i in produced..<n { out[i] = 0 }
        }
        out.removeLast(out.count - n)
        return out
    }
}
