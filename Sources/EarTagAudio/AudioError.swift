// EarTagAudio errors: every failure to turn a file into samples, as one-line messages naming the file.

/// Why an audio file could not be decoded; `description` is one line naming the file and the problem.
public enum AudioError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The path does not exist.
    case fileNotFound(file: String)
    /// The file exists but this process may not read it.
    case permissionDenied(file: String)
    /// The path is a directory or another non-regular file.
    case notARegularFile(file: String)
    /// The file holds 0 bytes.
    case emptyFile(file: String)
    /// libsndfile does not recognise the bytes as any audio format (SF_ERR_UNRECOGNISED_FORMAT).
    case unrecognisedFormat(file: String, detail: String)
    /// libsndfile recognised the format but the header is broken (SF_ERR_MALFORMED_FILE or a format-specific code).
    case malformedFile(file: String, detail: String)
    /// An Ogg stream whose Vorbis headers libsndfile would refuse (and leak on), refused before libsndfile opens it
    /// (libvorbisfile's header check and EarTag's Ogg page walk; docs/robustness.md, finding 14).
    case brokenOggVorbisHeader(file: String, detail: String)
    /// The container is known but its encoding is not supported (SF_ERR_UNSUPPORTED_ENCODING).
    case unsupportedEncoding(file: String, detail: String)
    /// An operating-system level failure inside libsndfile (SF_ERR_SYSTEM).
    case systemError(file: String, detail: String)
    /// The header is valid but declares no audio frames.
    case noSamples(file: String)
    /// A WAV `data` chunk declares more bytes than the file actually holds after the chunk header.
    case truncated(file: String, declaredBytes: Int64, actualBytes: Int64)
    /// The file claims more audio than the safety limit; refused before allocating.
    case tooLong(file: String, seconds: Double, limitSeconds: Double)
    /// A byte stream (stdin) delivered more than the limit for an in-memory file.
    case inputTooLarge(file: String, limitBytes: Int64)
    /// The header declares an impossible sample rate or channel count.
    case invalidParameters(file: String, detail: String)
    /// Decoding failed part-way through the sample data.
    case readFailed(file: String, detail: String)
    /// libsoxr refused to resample.
    case resampleFailed(file: String, detail: String)
    /// Writing an audio file (test fixtures, exports) failed.
    case writeFailed(file: String, detail: String)

    /// The file (or stream name) the error is about.
    public var file: String {
        switch self {
        case .fileNotFound(let f), .permissionDenied(let f), .notARegularFile(let f), .emptyFile(let f),
             .noSamples(let f):
            return f
        case .unrecognisedFormat(let f, _), .malformedFile(let f, _), .brokenOggVorbisHeader(let f, _),
             .unsupportedEncoding(let f, _),
             .systemError(let f, _), .invalidParameters(let f, _), .readFailed(let f, _),
             .resampleFailed(let f, _), .writeFailed(let f, _):
            return f
        case .truncated(let f, _, _), .tooLong(let f, _, _):
            return f
        case .inputTooLarge(let f, _):
            return f
        }
    }

    /// The same error about another file name (used to attach the path to errors raised on bare samples).
    func renamed(_ newFile: String) -> AudioError {
        switch self {
        case .fileNotFound: return .fileNotFound(file: newFile)
        case .permissionDenied: return .permissionDenied(file: newFile)
        case .notARegularFile: return .notARegularFile(file: newFile)
        case .emptyFile: return .emptyFile(file: newFile)
        case .noSamples: return .noSamples(file: newFile)
        case .unrecognisedFormat(_, let d): return .unrecognisedFormat(file: newFile, detail: d)
        case .malformedFile(_, let d): return .malformedFile(file: newFile, detail: d)
        case .brokenOggVorbisHeader(_, let d): return .brokenOggVorbisHeader(file: newFile, detail: d)
        case .unsupportedEncoding(_, let d): return .unsupportedEncoding(file: newFile, detail: d)
        case .systemError(_, let d): return .systemError(file: newFile, detail: d)
        case .invalidParameters(_, let d): return .invalidParameters(file: newFile, detail: d)
        case .readFailed(_, let d): return .readFailed(file: newFile, detail: d)
        case .resampleFailed(_, let d): return .resampleFailed(file: newFile, detail: d)
        case .writeFailed(_, let d): return .writeFailed(file: newFile, detail: d)
        case .truncated(_, let a, let b): return .truncated(file: newFile, declaredBytes: a, actualBytes: b)
        case .tooLong(_, let a, let b): return .tooLong(file: newFile, seconds: a, limitSeconds: b)
        case .inputTooLarge(_, let l): return .inputTooLarge(file: newFile, limitBytes: l)
        }
    }

    /// One line: `<file>: <problem>`.
    public var description: String {
        let problem: String
        switch self {
        case .fileNotFound: problem = "no such file"
        case .permissionDenied: problem = "permission denied (file is not readable)"
        case .notARegularFile: problem = "not a regular file"
        case .emptyFile: problem = "file is empty (0 bytes)"
        case .unrecognisedFormat(_, let d): problem = "not a recognised audio format (\(d))"
        case .malformedFile(_, let d): problem = "malformed audio file (\(d))"
        case .brokenOggVorbisHeader(_, let d): problem = "broken Ogg/Vorbis header (\(d))"
        case .unsupportedEncoding(_, let d): problem = "unsupported audio encoding (\(d))"
        case .systemError(_, let d): problem = "system error while opening (\(d))"
        case .noSamples: problem = "contains no audio samples"
        case .truncated(_, let declared, let actual):
            problem = "truncated: header declares \(declared) bytes of audio, file holds \(actual)"
        case .tooLong(_, let s, let limit):
            problem = "refusing to load \(Self.formatSeconds(s)) of audio (limit \(Self.formatSeconds(limit)))"
        case .inputTooLarge(_, let l): problem = "input larger than the \(l)-byte limit"
        case .invalidParameters(_, let d): problem = "invalid audio parameters (\(d))"
        case .readFailed(_, let d): problem = "decoding failed (\(d))"
        case .resampleFailed(_, let d): problem = "resampling failed (\(d))"
        case .writeFailed(_, let d): problem = "writing failed (\(d))"
        }
        return Self.oneLine("\(file): \(problem)")
    }

    /// Seconds as a short human string, e.g. "4.0 h" or "12.5 s".
    static func formatSeconds(_ s: Double) -> String {
        if !s.isFinite { return "an unknown amount" }
        if s >= 3600 { return "\((s / 360).rounded() / 10) h" }
        return "\((s * 10).rounded() / 10) s"
    }

    /// Collapses line breaks and runs of blanks so a message stays on one line.
    static func oneLine(_ s: String) -> String {
        var out = ""
        var lastWasSpace = false
        for ch in s {
            if ch == "\n" || ch == "\r" || ch == "\t" || ch == " " {
                if !lastWasSpace { out.append(" ") }
                lastWasSpace = true
            } else {
                out.append(ch)
                lastWasSpace = false
            }
        }
        while out.last == " " { out.removeLast() }
        return out
    }
}
