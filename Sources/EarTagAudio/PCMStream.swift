// Live byte-stream audio input (stdin or any file descriptor): raw PCM or a WAV stream, decoded incrementally,
// averaged to mono, resampled to the model rate and written to a SampleSink.
// ref: Microsoft RIFF/WAVE spec (RIFF size WAVE; chunks: 4-byte id, 4-byte little-endian size, body, pad to even)
// ref: WAVEFORMATEX (wFormatTag, nChannels, nSamplesPerSec, nAvgBytesPerSec, nBlockAlign, wBitsPerSample, cbSize)
// ref: WAVEFORMATEXTENSIBLE (wValidBitsPerSample, dwChannelMask, SubFormat GUID xxxxxxxx-0000-0010-8000-00AA00389B71)
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Atomics

/// Sample encodings a byte stream may carry (names as ffmpeg's raw formats; all little-endian, interleaved).
public enum PCMSampleFormat: String, CaseIterable, Sendable {
    /// Unsigned 8-bit (WAV's 8-bit PCM), 128 = silence.
    case u8
    /// Signed 16-bit integer.
    case s16le
    /// Signed 24-bit integer packed in 3 bytes (ALSA's S24_3LE, ffmpeg's s24le).
    case s24le
    /// Signed 32-bit integer.
    case s32le
    /// IEEE 754 32-bit float.
    case f32le
    /// IEEE 754 64-bit float.
    case f64le

    /// Bytes per sample of one channel.
    public var bytesPerSample: Int {
        switch self {
        case .u8: return 1
        case .s16le: return 2
        case .s24le: return 3
        case .s32le, .f32le: return 4
        case .f64le: return 8
        }
    }

    /// True for the floating-point encodings.
    public var isFloat: Bool { self == .f32le || self == .f64le }

    /// Parses a `--sample-format` value; unknown names are refused with the list of accepted ones.
    public static func parse(_ text: String, name: String = "<stdin>") throws -> PCMSampleFormat {
        if let f = PCMSampleFormat(rawValue: text.lowercased()) { return f }
        let known = allCases.map(\.rawValue).joined(separator: ", ")
        throw AudioError.invalidParameters(file: name, detail: "unsupported sample format '\(text)' (expected one of \(known))")
    }
}

/// Rate, channel count and encoding of an interleaved PCM byte stream.
public struct PCMStreamFormat: Equatable, Sendable, CustomStringConvertible {
    /// Frames per second.
    public var sampleRate: Int
    /// Interleaved channels.
    public var channels: Int
    /// Encoding of each sample.
    public var sampleFormat: PCMSampleFormat

    /// Accepted sample rates in Hz.
    public static let rateRange = 1000...768_000
    /// Accepted channel counts.
    public static let channelRange = 1...64

    /// A stream format (validate with `validate(name:)`).
    public init(sampleRate: Int, channels: Int, sampleFormat: PCMSampleFormat) {
        self.sampleRate = sampleRate
        self.channels = channels
        self.sampleFormat = sampleFormat
    }

    /// Bytes per interleaved frame.
    public var bytesPerFrame: Int { channels * sampleFormat.bytesPerSample }

    /// E.g. "48000 Hz, 2 channels, s16le".
    public var description: String {
        "\(sampleRate) Hz, \(channels) channel\(channels == 1 ? "" : "s"), \(sampleFormat.rawValue)"
    }

    /// Throws `invalidParameters` naming the stream when the rate or channel count is absurd.
    public func validate(name: String) throws {
        guard Self.rateRange.contains(sampleRate) else {
            throw AudioError.invalidParameters(file: name, detail: "sample rate \(sampleRate) Hz is outside"
                + " \(Self.rateRange.lowerBound)...\(Self.rateRange.upperBound) Hz")
        }
        guard Self.channelRange.contains(channels) else {
            throw AudioError.invalidParameters(file: name, detail: "\(channels) channels is outside"
                + " \(Self.channelRange.lowerBound)...\(Self.channelRange.upperBound)")
        }
    }
}

/// Incremental decoder of an audio byte stream into mono float32 at the stream's own rate. Bytes may be split
/// anywhere (inside a sample, a frame or the header). If the stream starts with `RIFF....WAVE` (or RF64/BW64) the WAV
/// header is parsed and its format replaces the one given; otherwise bytes are raw PCM in the given format.
/// Integer PCM is scaled like libsndfile (x / 2^(bits-1)), channels are averaged like `downmixToMono`.
/// Float samples are sanitised: NaN/inf become 0, magnitudes are clamped to `floatLimit`. Not thread-safe.
public final class PCMStreamDecoder {
    /// Name used in errors, e.g. "<stdin>".
    public let name: String
    /// The format given by the caller (flags).
    public let requestedFormat: PCMStreamFormat
    /// The format being decoded: the requested one, or the WAV header's once parsed.
    public private(set) var format: PCMStreamFormat
    /// True once the format is final (raw stream detected, or WAV header parsed up to `data`).
    public private(set) var formatKnown = false
    /// True when the stream carries a WAV header.
    public private(set) var isWAV = false
    /// Human notes about the header (e.g. it overrides the requested format; odd block align), for warnings.
    public private(set) var notes: [String] = []
    /// Largest number of mono samples handed to `emit` at once.
    public let blockFrames: Int
    /// Bytes pushed so far.
    public private(set) var bytesIn: Int64 = 0
    /// Mono samples emitted so far.
    public private(set) var framesOut: Int64 = 0
    /// Bytes not decoded as audio: an incomplete frame at the end, chunks after a WAV `data` chunk.
    public private(set) var bytesDiscarded: Int64 = 0
    /// Float samples that were NaN or infinite (replaced by 0) or beyond `floatLimit` (clamped).
    public private(set) var sanitisedSamples: Int64 = 0
    /// Float-encoded samples are clamped to +-floatLimit (60 dB over full scale), so garbage cannot overflow later stages.
    public static let floatLimit: Float = 1024

    /// Where the parser is in the stream.
    private enum State {
        /// Collecting the first bytes to decide between WAV and raw.
        case detect
        /// Collecting an 8-byte chunk header (id, size).
        case chunkHeader
        /// Collecting `collect` more bytes of the fmt chunk, then skipping `skipAfter`.
        case fmtBody(collect: Int, skipAfter: Int64)
        /// Skipping the rest of a chunk.
        case skip(Int64)
        /// Decoding audio; `remaining` declared data bytes left, nil = until end of stream.
        case audio(remaining: Int64?)
        /// At the declared end of `data`: collecting `length` bytes to see whether a chunk header follows.
        case probe(length: Int)
        /// After the audio: discarding everything.
        case trailer
        /// `finish` was called.
        case finished
    }

    /// Parser state.
    private var state: State
    /// Header bytes being collected (first bytes, chunk header, fmt body, probe).
    private let header: UnsafeMutableBufferPointer<UInt8>
    /// Valid bytes in `header`.
    private var headerCount = 0
    /// The WAV format parsed from `fmt `, waiting for `data`.
    private var wavFormat: PCMStreamFormat?
    /// An incomplete frame carried over to the next push.
    private let carry: UnsafeMutableRawBufferPointer
    /// Valid bytes in `carry`.
    private var carryCount = 0
    /// Mono output block.
    private let out: UnsafeMutableBufferPointer<Float>
    /// Valid samples in `out`.
    private var outCount = 0

    /// Capacity of `header`: the largest fmt body kept (WAVEFORMATEXTENSIBLE is 40 bytes; the rest is skipped).
    private static let headerCapacity = 64
    /// Stream magics accepted as WAV (RF64/BW64 carry 0xFFFFFFFF sizes; the stream is read to its end anyway).
    private static let magics: [[UInt8]] = [Array("RIFF".utf8), Array("RF64".utf8), Array("BW64".utf8)]
    /// Chunk ids that, right after the declared end of `data`, mark the audio as finished.
    private static let trailerIDs: [[UInt8]] = ["LIST", "id3 ", "ID3 ", "JUNK", "junk", "PAD ", "cue ", "smpl",
        "inst", "bext", "iXML", "acid", "fact", "PEAK", "_PMX", "afsp", "labl", "note", "ltxt", "plst", "SyLp",
        "DISP", "umid", "axml", "cart"].map { Array($0.utf8) }
    /// Chunk and form ids the parser looks for.
    private static let waveID = Array("WAVE".utf8), fmtID = Array("fmt ".utf8), dataID = Array("data".utf8)

    /// A decoder for a stream named `name` in `format` (overridden by a WAV header when `detectWAV`).
    /// Allocates all buffers here; `push` does not allocate (except a note string once, when a WAV header is parsed).
    public init(name: String = "<stdin>", format: PCMStreamFormat, detectWAV: Bool = true,
                blockFrames: Int = 4096) throws {
        try format.validate(name: name)
        guard blockFrames > 0, blockFrames <= 1 << 24 else {
            throw AudioError.invalidParameters(file: name, detail: "decoder block of \(blockFrames) frames")
        }
        self.name = name
        requestedFormat = format
        self.format = format
        self.blockFrames = blockFrames
        header = .allocate(capacity: Self.headerCapacity)
        header.initialize(repeating: 0)
        carry = .allocate(byteCount: PCMStreamFormat.channelRange.upperBound * 8, alignment: 8)
        out = .allocate(capacity: blockFrames)
        out.initialize(repeating: 0)
        if detectWAV {
            state = .detect
        } else {
            state = .audio(remaining: nil)
            formatKnown = true
        }
    }

    /// Frees the buffers.
    deinit {
        header.deallocate()
        carry.deallocate()
        out.deallocate()
    }

    /// Decodes the next bytes of the stream; `emit` receives mono samples at `format.sampleRate` (blocks of at most
    /// `blockFrames`, valid only during the call). Throws on a malformed or unsupported WAV header.
    public func push(_ bytes: UnsafeRawBufferPointer, emit: (UnsafeBufferPointer<Float>) throws -> Void) throws {
        if case .finished = state { preconditionFailure("PCMStreamDecoder.push after finish") }
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        bytesIn += Int64(bytes.count)
        var p = base
        var left = bytes.count
        while left > 0 {
            switch state {
            case .detect:
                let n = collect(p, left, upTo: 12)
                p += n; left -= n
                try detect(emit: emit)
            case .chunkHeader:
                let n = collect(p, left, upTo: 8)
                p += n; left -= n
                if headerCount == 8 { try chunkHeaderComplete() }
            case .fmtBody(let want, let skipAfter):
                let n = collect(p, left, upTo: want)
                p += n; left -= n
                if headerCount == want {
                    try parseFmt(bodyBytes: want)
                    headerCount = 0
                    state = skipAfter > 0 ? .skip(skipAfter) : .chunkHeader
                }
            case .skip(let remaining):
                let n = Int(min(Int64(left), remaining))
                p += n; left -= n
                state = remaining - Int64(n) > 0 ? .skip(remaining - Int64(n)) : .chunkHeader
            case .audio(let remaining):
                if let remaining {
                    let n = Int(min(Int64(left), remaining))
                    try decodeAudio(UnsafeRawPointer(p), n, emit: emit)
                    p += n; left -= n
                    if remaining - Int64(n) > 0 {
                        state = .audio(remaining: remaining - Int64(n))
                    } else {
                        headerCount = 0
                        state = .probe(length: 4 + probePad)
                    }
                } else {
                    try decodeAudio(UnsafeRawPointer(p), left, emit: emit)
                    p += left; left = 0
                }
            case .probe(let length):
                let n = collect(p, left, upTo: length)
                p += n; left -= n
                if headerCount == length { try probeComplete(emit: emit) }
            case .trailer:
                bytesDiscarded += Int64(left)
                left = 0
            case .finished:
                left = 0
            }
        }
        try emitPending(emit)
    }

    /// Ends the stream: emits what is left and drops an incomplete frame. Throws when the stream ended inside a
    /// WAV header (before `data`).
    public func finish(emit: (UnsafeBufferPointer<Float>) throws -> Void) throws {
        switch state {
        case .detect:
            if headerCount >= 4 {
                throw AudioError.malformedFile(file: name, detail: "stream ended inside the WAV header after"
                    + " \(bytesIn) byte\(bytesIn == 1 ? "" : "s")")
            }
            // Fewer than 4 bytes that happen to start like "RIFF": raw audio after all.
            try startRaw(emit: emit)
        case .chunkHeader, .fmtBody, .skip:
            let detail = wavFormat == nil ? "before the fmt chunk" : "before the data chunk"
            throw AudioError.malformedFile(file: name, detail: "stream ended inside the WAV header after"
                + " \(bytesIn) bytes, \(detail)")
        case .probe:
            let n = headerCount
            headerCount = 0
            state = .audio(remaining: nil)
            try decodeAudio(UnsafeRawPointer(header.baseAddress!), n, emit: emit)
        case .audio, .trailer, .finished:
            break
        }
        bytesDiscarded += Int64(carryCount)
        carryCount = 0
        state = .finished
        try emitPending(emit)
    }

    // MARK: header parsing

    /// Extra probe byte when the data chunk has an odd size (its pad byte comes before the next chunk id).
    private var probePad = 0

    /// Copies up to `upTo - headerCount` bytes into `header`; returns how many were taken.
    private func collect(_ p: UnsafeRawPointer, _ left: Int, upTo: Int) -> Int {
        let n = min(left, upTo - headerCount)
        UnsafeMutableRawPointer(header.baseAddress! + headerCount).copyMemory(from: p, byteCount: n)
        headerCount += n
        return n
    }

    /// True when `header[at..<at+4]` equals `id`.
    private func headerHas(_ id: [UInt8], at: Int) -> Bool {
        (0..<4).allSatisfy { header[at + $0] == id[$0] }
    }

    /// Little-endian UInt16 of `header` at a byte offset.
    private func u16(_ at: Int) -> Int { Int(header[at]) | Int(header[at + 1]) << 8 }
    /// Little-endian UInt32 of `header` at a byte offset.
    private func u32(_ at: Int) -> Int64 { Int64(u16(at)) | Int64(u16(at + 2)) << 16 }

    /// After collecting first bytes: switch to raw when they cannot start a WAV magic; to chunks on `RIFF....WAVE`.
    private func detect(emit: (UnsafeBufferPointer<Float>) throws -> Void) throws {
        let k = min(headerCount, 4)
        let couldBeWAV = Self.magics.contains { magic in (0..<k).allSatisfy { header[$0] == magic[$0] } }
        if !couldBeWAV { return try startRaw(emit: emit) }
        guard headerCount == 12 else { return }
        guard headerHas(Self.waveID, at: 8) else {
            let form = String(decoding: header[8..<12].map { (32...126).contains($0) ? $0 : 63 }, as: UTF8.self)
            throw AudioError.unrecognisedFormat(file: name, detail: "RIFF stream of type '\(form)', not WAVE")
        }
        isWAV = true
        headerCount = 0
        state = .chunkHeader
    }

    /// Decides the stream is raw PCM in the requested format and decodes the bytes collected so far as audio.
    private func startRaw(emit: (UnsafeBufferPointer<Float>) throws -> Void) throws {
        formatKnown = true
        state = .audio(remaining: nil)
        let n = headerCount
        headerCount = 0
        try decodeAudio(UnsafeRawPointer(header.baseAddress!), n, emit: emit)
    }

    /// Acts on an 8-byte chunk header: parse `fmt `, start audio at `data`, skip anything else.
    private func chunkHeaderComplete() throws {
        let size = u32(4)
        let isFmt = headerHas(Self.fmtID, at: 0)
        let isData = headerHas(Self.dataID, at: 0)
        headerCount = 0
        if isFmt {
            guard size >= 16 else {
                throw AudioError.malformedFile(file: name, detail: "WAV fmt chunk of \(size) bytes (at least 16 needed)")
            }
            let keep = Int(min(size, Int64(Self.headerCapacity)))
            state = .fmtBody(collect: keep, skipAfter: size - Int64(keep) + (size & 1))
        } else if isData {
            guard let wav = wavFormat else {
                throw AudioError.malformedFile(file: name, detail: "WAV data chunk before the fmt chunk")
            }
            if wav != requestedFormat {
                notes.append("WAV header says \(wav); using it instead of the requested \(requestedFormat)")
            }
            format = wav
            formatKnown = true
            // Sizes 0 and 0xFFFFFFFF are streaming placeholders: read to the end of the stream.
            let declared: Int64? = (size == 0 || size == 0xFFFF_FFFF) ? nil : size
            probePad = Int(size & 1)
            state = .audio(remaining: declared)
        } else {
            state = size + (size & 1) > 0 ? .skip(size + (size & 1)) : .chunkHeader
        }
    }

    /// Parses a collected fmt body (WAVEFORMATEX / WAVEFORMATEXTENSIBLE) into `wavFormat`.
    private func parseFmt(bodyBytes: Int) throws {
        var tag = u16(0)
        let channels = u16(2)
        let rate = Int(u32(4))
        let blockAlign = u16(12)
        let bits = u16(14)
        if tag == 0xFFFE {  // WAVE_FORMAT_EXTENSIBLE: the real tag is the first 2 bytes of the SubFormat GUID
            guard bodyBytes >= 40, u16(16) >= 22 else {
                throw AudioError.malformedFile(file: name, detail: "WAVE_FORMAT_EXTENSIBLE fmt chunk of \(bodyBytes)"
                    + " bytes (40 needed)")
            }
            let guidTail: [UInt8] = [0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71]
            guard (0..<14).allSatisfy({ header[26 + $0] == guidTail[$0] }) else {
                throw AudioError.unsupportedEncoding(file: name, detail: "WAVE_FORMAT_EXTENSIBLE with a non-standard"
                    + " SubFormat GUID")
            }
            tag = u16(24)
        }
        let sampleFormat: PCMSampleFormat
        switch (tag, bits) {
        case (1, 1...8): sampleFormat = .u8
        case (1, 9...16): sampleFormat = .s16le
        case (1, 17...24): sampleFormat = .s24le
        case (1, 25...32): sampleFormat = .s32le
        case (3, 32): sampleFormat = .f32le
        case (3, 64): sampleFormat = .f64le
        case (1, _), (3, _):
            throw AudioError.unsupportedEncoding(file: name, detail: "WAV \(tag == 1 ? "PCM" : "float") with \(bits)"
                + " bits per sample (supported: PCM 8/16/24/32, float 32/64)")
        default:
            throw AudioError.unsupportedEncoding(file: name, detail: "WAV format tag 0x\(String(tag, radix: 16))"
                + " (supported: PCM and IEEE float)")
        }
        var wav = PCMStreamFormat(sampleRate: rate, channels: channels, sampleFormat: sampleFormat)
        try wav.validate(name: name)
        // Integer samples sit in containers of blockAlign / channels bytes (e.g. 24 valid bits in 4 bytes).
        if blockAlign != wav.bytesPerFrame {
            let container = blockAlign % channels == 0 ? blockAlign / channels : 0
            if tag == 1, container > sampleFormat.bytesPerSample, container <= 4 {
                wav.sampleFormat = container == 4 ? .s32le : container == 3 ? .s24le : .s16le
                notes.append("WAV \(bits)-bit samples in \(container)-byte containers, read as \(wav.sampleFormat)")
            } else {
                notes.append("WAV block align \(blockAlign) does not match \(channels) x \(bits)-bit; using"
                    + " \(wav.bytesPerFrame)")
            }
        }
        wavFormat = wav
    }

    /// At the declared end of `data`: a known chunk id means the audio ended (rest discarded); otherwise the size
    /// was bogus and the probed bytes are audio.
    private func probeComplete(emit: (UnsafeBufferPointer<Float>) throws -> Void) throws {
        let length = headerCount
        if Self.trailerIDs.contains(where: { headerHas($0, at: length - 4) }) {
            bytesDiscarded += Int64(length)
            headerCount = 0
            state = .trailer
        } else {
            headerCount = 0
            state = .audio(remaining: nil)
            try decodeAudio(UnsafeRawPointer(header.baseAddress!), length, emit: emit)
        }
    }

    // MARK: audio

    /// Decodes `count` bytes of interleaved audio, completing a carried partial frame first.
    private func decodeAudio(_ src: UnsafeRawPointer, _ count: Int,
                             emit: (UnsafeBufferPointer<Float>) throws -> Void) throws {
        let frameBytes = format.bytesPerFrame
        var p = src
        var left = count
        if carryCount > 0 {
            let n = min(left, frameBytes - carryCount)
            (carry.baseAddress! + carryCount).copyMemory(from: p, byteCount: n)
            carryCount += n
            p += n; left -= n
            if carryCount < frameBytes { return }
            try convert(UnsafeRawPointer(carry.baseAddress!), frames: 1, emit: emit)
            carryCount = 0
        }
        let frames = left / frameBytes
        if frames > 0 { try convert(p, frames: frames, emit: emit) }
        let rest = left - frames * frameBytes
        if rest > 0 {
            carry.baseAddress!.copyMemory(from: p + frames * frameBytes, byteCount: rest)
            carryCount = rest
        }
    }

    /// Converts whole frames into the mono block, emitting each time the block fills.
    private func convert(_ src: UnsafeRawPointer, frames: Int, emit: (UnsafeBufferPointer<Float>) throws -> Void) throws {
        let frameBytes = format.bytesPerFrame
        var done = 0
        while done < frames {
            let n = min(frames - done, blockFrames - outCount)
            convertFrames(src + done * frameBytes, frames: n, into: out.baseAddress! + outCount)
            outCount += n
            done += n
            if outCount == blockFrames { try emitPending(emit) }
        }
    }

    /// Emits the mono block if it holds samples.
    private func emitPending(_ emit: (UnsafeBufferPointer<Float>) throws -> Void) throws {
        guard outCount > 0 else { return }
        let n = outCount
        outCount = 0
        framesOut += Int64(n)
        try emit(UnsafeBufferPointer(start: out.baseAddress, count: n))
    }

    /// Converts `frames` interleaved frames to mono floats, one specialised loop per encoding.
    private func convertFrames(_ src: UnsafeRawPointer, frames: Int, into dst: UnsafeMutablePointer<Float>) {
        let ch = format.channels
        switch format.sampleFormat {
        case .u8:
            Self.mix(src, frames, ch, 1, dst) { p, o in (Float(p.load(fromByteOffset: o, as: UInt8.self)) - 128) * (1 / 128) }
        case .s16le:
            Self.mix(src, frames, ch, 2, dst) { p, o in
                Float(Int16(littleEndian: p.loadUnaligned(fromByteOffset: o, as: Int16.self))) * (1 / 32768)
            }
        case .s24le:
            Self.mix(src, frames, ch, 3, dst) { p, o in
                let b0 = UInt32(p.load(fromByteOffset: o, as: UInt8.self))
                let b1 = UInt32(p.load(fromByteOffset: o + 1, as: UInt8.self))
                let b2 = UInt32(p.load(fromByteOffset: o + 2, as: UInt8.self))
                let v = Int32(bitPattern: (b0 << 8) | (b1 << 16) | (b2 << 24)) >> 8   // sign-extended 24-bit value
                return Float(v) * (1 / 8_388_608)
            }
        case .s32le:
            Self.mix(src, frames, ch, 4, dst) { p, o in
                Float(Int32(littleEndian: p.loadUnaligned(fromByteOffset: o, as: Int32.self))) * (1 / 2_147_483_648)
            }
        case .f32le:
            Self.mix(src, frames, ch, 4, dst) { p, o in
                Float(bitPattern: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: o, as: UInt32.self)))
            }
            sanitise(dst, frames)
        case .f64le:
            Self.mix(src, frames, ch, 8, dst) { p, o in
                Float(Double(bitPattern: UInt64(littleEndian: p.loadUnaligned(fromByteOffset: o, as: UInt64.self))))
            }
            sanitise(dst, frames)
        }
    }

    /// Channel mean as `downmixToMono` computes it (sum from 0 in channel order, divide by the count; mono as is).
    @inline(__always)
    private static func mix(_ src: UnsafeRawPointer, _ frames: Int, _ channels: Int, _ bytes: Int,
                            _ dst: UnsafeMutablePointer<Float>, _ load: (UnsafeRawPointer, Int) -> Float) {
        if channels == 1 {
            for f in 0..<frames { dst[f] = load(src, f * bytes) }
            return
        }
        let count = Float(channels)
        let frameBytes = channels * bytes
        for f in 0..<frames {
            var sum: Float = 0
            let base = f * frameBytes
            for c in 0..<channels { sum += load(src, base + c * bytes) }
            dst[f] = sum / count
        }
    }

    /// Replaces NaN/inf by 0 and clamps to +-floatLimit (float encodings only; also catches overflow in the sum).
    private func sanitise(_ dst: UnsafeMutablePointer<Float>, _ frames: Int) {
        sanitisedSamples += Int64(sanitiseSamples(dst, count: frames))
    }
}

/// Reads audio from a file descriptor (0 = stdin) until end of file: blocking reads of about 20 ms of audio, decoded
/// by `PCMStreamDecoder` (raw or WAV), mono, resampled to `targetRate` by `StreamResampler`, written to a `SampleSink`.
/// Lossless: every sample reaches the sink (which may block). `run` on one thread; counters readable from any.
public final class FileDescriptorSource {
    /// The descriptor read (not closed by this class).
    public let fileDescriptor: Int32
    /// Name for errors, e.g. "<stdin>".
    public let name: String
    /// Output rate in Hz (the model's 32 kHz).
    public let targetRate: Int
    /// Bytes per read call.
    public let readSize: Int
    /// The stream decoder (its `format`, `isWAV` and `notes` describe the input once known).
    public let decoder: PCMStreamDecoder
    /// Where samples go.
    public let sink: SampleSink
    /// Called once, on the `run` thread, when the first audio arrives (the format, raw or from the WAV header, is final).
    public var onFormatKnown: ((PCMStreamFormat) -> Void)?

    /// Resampler for the decoded format, created when the format is known.
    private var resampler: StreamResampler?
    /// The read buffer.
    private let buffer: UnsafeMutableRawBufferPointer
    /// Bytes read so far.
    private let bytesCounter = ManagedAtomic<Int64>(0)
    /// Samples written to the sink so far.
    private let samplesCounter = ManagedAtomic<Int64>(0)

    /// Bytes read from the descriptor so far.
    public var bytesRead: Int64 { bytesCounter.load(ordering: .relaxed) }
    /// Samples (at `targetRate`) written to the sink so far.
    public var samplesDelivered: Int64 { samplesCounter.load(ordering: .relaxed) }
    /// Frames decoded at the source rate so far (read on the `run` thread or after it returns).
    public var sourceFrames: Int64 { decoder.framesOut }

    /// A source reading `fileDescriptor` in `format` (a WAV header overrides it when `detectWAV`).
    public init(fileDescriptor: Int32 = 0, name: String = "<stdin>", format: PCMStreamFormat, detectWAV: Bool = true,
                targetRate: Int = 32000, sink: SampleSink, readMilliseconds: Int = 20) throws {
        guard PCMStreamFormat.rateRange.contains(targetRate) else {
            throw AudioError.invalidParameters(file: name, detail: "target rate \(targetRate) Hz")
        }
        decoder = try PCMStreamDecoder(name: name, format: format, detectWAV: detectWAV)
        self.fileDescriptor = fileDescriptor
        self.name = name
        self.targetRate = targetRate
        self.sink = sink
        let bytesPerMs = Double(format.sampleRate * format.bytesPerFrame) / 1000
        readSize = min(max(Int((bytesPerMs * Double(max(1, readMilliseconds))).rounded(.up)), 256), 1 << 20)
        buffer = .allocate(byteCount: readSize, alignment: 16)
    }

    /// Frees the read buffer.
    deinit { buffer.deallocate() }

    /// Reads to end of file, delivering everything (the resampler is flushed at the end). Throws on read errors,
    /// a malformed/truncated WAV header, or an input with no bytes / no complete frame.
    public func run() throws {
        while true {
            let n = read(fileDescriptor, buffer.baseAddress, readSize)
            if n < 0 {
                let e = errno
                if e == EINTR { continue }
                throw AudioError.readFailed(file: name, detail: "read error: \(String(cString: strerror(e)))")
            }
            if n == 0 { break }
            bytesCounter.wrappingIncrement(by: Int64(n), ordering: .relaxed)
            try decoder.push(UnsafeRawBufferPointer(rebasing: buffer[0..<n])) { try deliver($0) }
        }
        try decoder.finish { try deliver($0) }
        if bytesRead == 0 { throw AudioError.emptyFile(file: name) }
        if decoder.framesOut == 0 { throw AudioError.noSamples(file: name) }
        resampler?.flush { write($0) }
    }

    /// Resamples decoded mono samples (creating the resampler on the first block) and writes them to the sink.
    private func deliver(_ mono: UnsafeBufferPointer<Float>) throws {
        if resampler == nil {
            resampler = try StreamResampler(from: decoder.format.sampleRate, to: targetRate,
                                            maxInputChunk: decoder.blockFrames)
            onFormatKnown?(decoder.format)
        }
        resampler!.process(mono) { write($0) }
    }

    /// Writes to the sink and counts.
    private func write(_ samples: UnsafeBufferPointer<Float>) {
        sink.write(samples)
        samplesCounter.wrappingIncrement(by: Int64(samples.count), ordering: .relaxed)
    }
}
