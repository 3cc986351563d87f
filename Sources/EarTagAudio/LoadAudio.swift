// librosa.load(path, sr=target, mono=True) for EarTag: libsndfile float32 decode, channel mean, soxr HQ resample.
// ref: librosa/core/audio.py load() -> __soundfile_load() (soundfile.SoundFile.read(dtype=float32)), to_mono(), resample()
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Mono audio at `sampleRate`, plus what the source file was.
public struct DecodedAudio: Sendable, Equatable {
    /// Mono float32 samples at `sampleRate` (librosa.load's `y`).
    public var samples: [Float]
    /// Rate of `samples` in Hz (the requested target rate).
    public var sampleRate: Int
    /// The file's own sample rate in Hz.
    public var sourceSampleRate: Int
    /// The file's channel count before averaging to mono.
    public var sourceChannels: Int
    /// Frames decoded from the file (at `sourceSampleRate`).
    public var sourceFrames: Int
    /// Short format description, e.g. "WAV 24-bit PCM", "FLAC 16-bit", "OGG Vorbis", "MP3".
    public var formatName: String
    /// Length of `samples` in seconds.
    public var durationSeconds: Double { sampleRate > 0 ? Double(samples.count) / Double(sampleRate) : 0 }

    /// Memberwise initialiser, public so other modules can build fixtures.
    public init(samples: [Float], sampleRate: Int, sourceSampleRate: Int, sourceChannels: Int, sourceFrames: Int,
                formatName: String) {
        self.samples = samples
        self.sampleRate = sampleRate
        self.sourceSampleRate = sourceSampleRate
        self.sourceChannels = sourceChannels
        self.sourceFrames = sourceFrames
        self.formatName = formatName
    }
}

/// Safety limits applied before any sample buffer is allocated.
public enum AudioLimits {
    /// Files claiming more audio than this (4 hours) are refused.
    public static let maxDurationSeconds: Double = 4 * 3600
    /// Channel counts above this are refused as hostile.
    public static let maxChannels = 1024
    /// Largest byte stream (e.g. stdin) read into memory: 2 GiB.
    public static let maxStreamBytes: Int64 = 1 << 31
    /// Bytes of a file's start inspected for a RIFF/WAVE `data` chunk.
    static let headerProbeBytes = 1 << 16
}

/// Decodes any libsndfile-readable file to mono float32 at `targetRate`, like `librosa.load(path, sr=targetRate, mono=True)`.
public func loadAudio(path: String, targetRate: Int = 32000) throws -> DecodedAudio {
    try loadAudio(path: path, targetRate: targetRate, maxDurationSeconds: AudioLimits.maxDurationSeconds)
}

/// `loadAudio(path:targetRate:)` with an explicit duration limit in seconds.
public func loadAudio(path: String, targetRate: Int, maxDurationSeconds: Double) throws -> DecodedAudio {
    let size = try checkRegularReadableFile(path)
    if size == 0 { throw AudioError.emptyFile(file: path) }
    if let chunk = WAVDataChunk.locate(prefix: readPrefix(path, count: AudioLimits.headerProbeBytes), fileSize: size),
       chunk.isTruncated {
        throw AudioError.truncated(file: path, declaredBytes: chunk.declaredBytes, actualBytes: chunk.availableBytes)
    }
    let file = try SoundFile(readingPath: path)
    defer { file.close() }
    return try decode(file, targetRate: targetRate, maxDurationSeconds: maxDurationSeconds, checkTruncation: true)
}

/// Decodes a complete audio file held in memory (e.g. a WAV read from stdin); `name` appears in error messages.
/// With `stream: true`, a WAV header's placeholder sizes (0, 0xFFFFFFFF, or more than arrived, as encoders writing
/// to a pipe leave them) mean "all bytes present" instead of an error; otherwise a short `data` chunk is `.truncated`.
public func loadAudio(bytes: [UInt8], name: String = "<stdin>", targetRate: Int = 32000,
                      maxDurationSeconds: Double = AudioLimits.maxDurationSeconds,
                      stream: Bool = false) throws -> DecodedAudio {
    if bytes.isEmpty { throw AudioError.emptyFile(file: name) }
    var input = bytes
    if let chunk = WAVDataChunk.locate(prefix: Array(bytes.prefix(AudioLimits.headerProbeBytes)),
                                       fileSize: Int64(bytes.count)) {
        if stream {
            input = chunk.patchedForStream(bytes)
        } else if chunk.isTruncated {
            throw AudioError.truncated(file: name, declaredBytes: chunk.declaredBytes, actualBytes: chunk.availableBytes)
        }
    }
    let file = try SoundFile(readingBytes: input, name: name)
    defer { file.close() }
    return try decode(file, targetRate: targetRate, maxDurationSeconds: maxDurationSeconds, checkTruncation: !stream)
}

/// Reads every frame of an open file, averages to mono and resamples to `targetRate`; with `checkTruncation`, a data
/// chunk that libsndfile's log says is shorter than declared (AIFF, AU, CAF, ...; WAV is checked before opening) fails.
func decode(_ file: SoundFile, targetRate: Int, maxDurationSeconds: Double,
            checkTruncation: Bool) throws -> DecodedAudio {
    let info = file.info
    let name = file.name
    if checkTruncation, let short = file.dataSizeShortfall() {
        throw AudioError.truncated(file: name, declaredBytes: short.declaredBytes, actualBytes: short.actualBytes)
    }
    guard targetRate > 0 else {
        throw AudioError.invalidParameters(file: name, detail: "target rate \(targetRate) Hz")
    }
    // The stdin decoder's rate range: below it a tiny file could resample into hours of output.
    guard PCMStreamFormat.rateRange.contains(info.sampleRate), info.channels > 0,
          info.channels <= AudioLimits.maxChannels else {
        throw AudioError.invalidParameters(file: name, detail: "\(info.sampleRate) Hz, \(info.channels) channel(s)")
    }
    guard info.frames > 0 else { throw AudioError.noSamples(file: name) }
    let known = info.frames != Int64.max   // libsndfile reports SF_COUNT_MAX for unknown-length streams
    let maxFrames = Int64((maxDurationSeconds * Double(info.sampleRate)).rounded(.down))
    if known && info.frames > maxFrames {
        throw AudioError.tooLong(file: name, seconds: Double(info.frames) / Double(info.sampleRate),
                                 limitSeconds: maxDurationSeconds)
    }
    let interleaved = try readAllFrames(file, limit: known ? Int(info.frames) : Int(maxFrames),
                                        refuseBeyondLimit: !known, maxDurationSeconds: maxDurationSeconds)
    let frames = interleaved.count / info.channels
    if frames == 0 { throw AudioError.noSamples(file: name) }
    var mono = downmixToMono(interleaved, channels: info.channels)
    // Float files may hold NaN, inf or huge values: the same finite, clamped samples the stdin decoder gives.
    mono.withUnsafeMutableBufferPointer { _ = sanitiseSamples($0.baseAddress!, count: $0.count) }
    let samples: [Float]
    do {
        samples = try Resampler.resample(mono, from: info.sampleRate, to: targetRate)
    } catch let e as AudioError {
        throw e.renamed(name)
    }
    return DecodedAudio(samples: samples, sampleRate: targetRate, sourceSampleRate: info.sampleRate,
                        sourceChannels: info.channels, sourceFrames: frames,
                        formatName: SoundFile.formatName(info.format))
}

/// Reads up to `limit` frames in blocks (like soundfile's `read(frames=-1)`, which stops at `info.frames`);
/// for unknown-length streams, hitting the limit with more data pending is an error.
func readAllFrames(_ file: SoundFile, limit: Int, refuseBeyondLimit: Bool,
                   maxDurationSeconds: Double) throws -> [Float] {
    let channels = file.info.channels
    let block = 1 << 16
    var out = [Float]()
    // Never trust a header for the allocation: reserve at most 2^22 samples (16 MB, whatever the channel count),
    // grow only as data really arrives.
    out.reserveCapacity(min(refuseBeyondLimit ? block : limit, (1 << 22) / channels) * channels)
    var scratch = [Float](repeating: 0, count: block * channels)
    var total = 0
    while total < limit || refuseBeyondLimit {
        let want = refuseBeyondLimit ? block : min(block, limit - total)
        let got = scratch.withUnsafeMutableBufferPointer { file.readFrames(into: $0, frames: want) }
        if let err = file.currentError() {
            throw AudioError.readFailed(file: file.name, detail: err.message)
        }
        if got <= 0 { break }
        if refuseBeyondLimit && total + got > limit {
            throw AudioError.tooLong(file: file.name, seconds: Double(total + got) / Double(file.info.sampleRate),
                                     limitSeconds: maxDurationSeconds)
        }
        out.append(contentsOf: scratch[0..<(got * channels)])
        total += got
        if got < want { break }
    }
    return out
}

/// Replaces NaN/inf by 0 and clamps to +-`PCMStreamDecoder.floatLimit` in place; returns how many samples changed.
/// Invariant afterwards: every sample is finite with |x| <= floatLimit (1024).
func sanitiseSamples(_ p: UnsafeMutablePointer<Float>, count: Int) -> Int {
    let limit = PCMStreamDecoder.floatLimit
    var changed = 0
    for i in 0..<count {
        let v = p[i]
        if v.isFinite && abs(v) <= limit { continue }
        p[i] = v.isFinite ? (v > 0 ? limit : -limit) : 0
        changed += 1
    }
    return changed
}

/// Channel mean in float32, librosa `to_mono` (`np.mean(y, axis=0)`): sum channels in order, then divide by count.
// ref: librosa.core.audio.to_mono; numpy add.reduce starts from 0 and adds sequentially for fewer than 8 channels
public func downmixToMono(_ interleaved: [Float], channels: Int) -> [Float] {
    precondition(channels > 0)
    if channels == 1 { return interleaved }
    let frames = interleaved.count / channels
    let count = Float(channels)
    var mono = [Float](repeating: 0, count: frames)
    interleaved.withUnsafeBufferPointer { src in
        mono.withUnsafeMutableBufferPointer { dst in
            for f in 0..<frames {
                var sum: Float = 0
                let base = f * channels
                for c in 0..<channels { sum += src[base + c] }
                dst[f] = sum / count
            }
        }
    }
    return mono
}

/// Checks the path names a readable regular file and returns its size; typed errors otherwise.
func checkRegularReadableFile(_ path: String) throws -> Int64 {
    var st = stat()
    if stat(path, &st) != 0 {
        let e = errno
        if e == ENOENT || e == ENOTDIR { throw AudioError.fileNotFound(file: path) }
        if e == EACCES { throw AudioError.permissionDenied(file: path) }
        throw AudioError.systemError(file: path, detail: String(cString: strerror(e)))
    }
    if (st.st_mode & S_IFMT) != S_IFREG { throw AudioError.notARegularFile(file: path) }
    // Open for real (not access(), which checks the real rather than the effective user).
    let fd = open(path, O_RDONLY)
    if fd < 0 {
        let e = errno
        if e == EACCES || e == EPERM { throw AudioError.permissionDenied(file: path) }
        throw AudioError.systemError(file: path, detail: String(cString: strerror(e)))
    }
    close(fd)
    return Int64(st.st_size)
}

/// The first `count` bytes of a file (fewer if the file is shorter); empty on any error.
func readPrefix(_ path: String, count: Int) -> [UInt8] {
    guard let fp = fopen(path, "rb") else { return [] }
    defer { fclose(fp) }
    var buffer = [UInt8](repeating: 0, count: count)
    let n = buffer.withUnsafeMutableBytes { fread($0.baseAddress, 1, count, fp) }
    return Array(buffer.prefix(n))
}

/// Reads a file descriptor (e.g. 0 for stdin) to its end, refusing more than `maxBytes`; `name` is for errors.
/// Feed the result to `loadAudio(bytes:name:stream: true)` to decode a WAV (or any format) piped in.
public func readAllBytes(fileDescriptor fd: Int32, name: String = "<stdin>",
                         maxBytes: Int64 = AudioLimits.maxStreamBytes) throws -> [UInt8] {
    var out = [UInt8]()
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            let e = errno
            if e == EINTR { continue }
            throw AudioError.systemError(file: name, detail: String(cString: strerror(e)))
        }
        if n == 0 { break }
        if Int64(out.count + n) > maxBytes { throw AudioError.inputTooLarge(file: name, limitBytes: maxBytes) }
        out.append(contentsOf: chunk[0..<n])
    }
    return out
}
