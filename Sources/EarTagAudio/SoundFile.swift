// Thin Swift wrappers over the libsndfile calls EarTag uses: one function per C call, C errors as typed errors.
// ref: /usr/include/sndfile.h (libsndfile 1.2.0) and http://libsndfile.github.io/libsndfile/api.html
import CSndFile

/// A libsndfile error: the numeric code plus the library's own message, like swift-system's `Errno`.
public struct SndFileError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The raw `sf_error` code (0 means no error).
    public var code: Int32
    /// The text `sf_strerror` gave for it.
    public var message: String

    /// SF_ERR_UNRECOGNISED_FORMAT: the bytes are no format libsndfile knows.  // ref: sndfile.h SF_ERR_*
    public static let unrecognisedFormat = Int32(SF_ERR_UNRECOGNISED_FORMAT)
    /// SF_ERR_SYSTEM: an operating-system call failed (missing file, permissions, I/O).
    public static let system = Int32(SF_ERR_SYSTEM)
    /// SF_ERR_MALFORMED_FILE: the header is broken.
    public static let malformedFile = Int32(SF_ERR_MALFORMED_FILE)
    /// SF_ERR_UNSUPPORTED_ENCODING: a known container with an unsupported codec.
    public static let unsupportedEncoding = Int32(SF_ERR_UNSUPPORTED_ENCODING)

    /// Wraps a code and libsndfile's message (trailing period and blanks trimmed so it reads well inside a sentence).
    public init(code: Int32, message: String) {
        var m = Substring(message)
        while let last = m.last, last == "." || last == " " || last == "\n" { m = m.dropLast() }
        self.code = code
        self.message = String(m)
    }

    /// One line: the message and the code.
    public var description: String { "\(message) [sndfile error \(code)]" }

    /// Converts this library error into the public `AudioError` for a named file.
    func audioError(file: String) -> AudioError {
        switch code {
        case Self.unrecognisedFormat: return .unrecognisedFormat(file: file, detail: message)
        case Self.system: return .systemError(file: file, detail: message)
        case Self.unsupportedEncoding: return .unsupportedEncoding(file: file, detail: message)
        default: return .malformedFile(file: file, detail: message)  // SF_ERR_MALFORMED_FILE and the many format-specific codes
        }
    }
}

/// Stream parameters of an open sound file (a Swift copy of `SF_INFO`).
public struct SoundFileInfo: Equatable, Sendable {
    /// Frames (samples per channel); for some codecs an estimate, and `Int64.max` for unknown-length streams.
    public var frames: Int64
    /// Frames per second.
    public var sampleRate: Int
    /// Interleaved channel count.
    public var channels: Int
    /// `SF_FORMAT_*` major type OR subtype (OR endianness).
    public var format: Int32
    /// Whether the file can seek (false for pipes).
    public var seekable: Bool

    /// The major container type (`format & SF_FORMAT_TYPEMASK`).
    public var majorFormat: Int32 { format & Int32(SF_FORMAT_TYPEMASK) }
    /// The encoding subtype (`format & SF_FORMAT_SUBMASK`).
    public var subtypeFormat: Int32 { format & Int32(SF_FORMAT_SUBMASK) }

    /// Builds the Swift copy of a C `SF_INFO`.
    init(_ c: SF_INFO) {
        frames = c.frames
        sampleRate = Int(c.samplerate)
        channels = Int(c.channels)
        format = c.format
        seekable = c.seekable != 0
    }
}

/// An in-memory byte buffer that libsndfile reads through `sf_open_virtual` (tests, and later a stdin WAV stream).
final class MemoryByteSource {
    /// The whole file.
    let bytes: [UInt8]
    /// The read position libsndfile sees.
    var position: Int64 = 0

    /// A stable copy of `virtualIO` that outlives the handle (libsndfile copies it today; this does not rely on that).
    let table: UnsafeMutablePointer<SF_VIRTUAL_IO>

    /// Wraps the bytes of one complete file.
    init(_ bytes: [UInt8]) {
        self.bytes = bytes
        table = .allocate(capacity: 1)
        table.initialize(to: MemoryByteSource.virtualIO)
    }

    /// Frees the callback table.
    deinit { table.deallocate() }

    /// The callbacks table for `sf_open_virtual`; `user_data` must be an unretained pointer to a `MemoryByteSource`.
    // ref: sndfile.h SF_VIRTUAL_IO (get_filelen, seek, read, write, tell)
    static let virtualIO = SF_VIRTUAL_IO(
        get_filelen: { user in
            Int64(Unmanaged<MemoryByteSource>.fromOpaque(user!).takeUnretainedValue().bytes.count)
        },
        seek: { offset, whence, user in
            let src = Unmanaged<MemoryByteSource>.fromOpaque(user!).takeUnretainedValue()
            let size = Int64(src.bytes.count)
            let base: Int64
            switch whence {
            case SEEK_SET: base = 0
            case SEEK_CUR: base = src.position
            case SEEK_END: base = size
            default: return -1
            }
            let target = base + offset
            guard target >= 0 else { return -1 }
            src.position = target
            return target
        },
        read: { ptr, count, user in
            let src = Unmanaged<MemoryByteSource>.fromOpaque(user!).takeUnretainedValue()
            let size = Int64(src.bytes.count)
            guard let ptr, count > 0, src.position < size else { return 0 }
            let n = min(count, size - src.position)
            src.bytes.withUnsafeBytes { raw in
                let start = raw.baseAddress!.advanced(by: Int(src.position))
                ptr.copyMemory(from: start, byteCount: Int(n))
            }
            src.position += n
            return n
        },
        write: { _, _, _ in 0 },
        tell: { user in
            Unmanaged<MemoryByteSource>.fromOpaque(user!).takeUnretainedValue().position
        })
}

/// An open libsndfile handle for reading (a path or an in-memory buffer) or writing (a path); closed on deinit.
public final class SoundFile {
    /// The C handle; nil once closed.
    private var handle: OpaquePointer?
    /// Keeps an in-memory source alive while libsndfile reads from it.
    private let memory: MemoryByteSource?
    /// The name used in error messages (path, or e.g. "<stdin>").
    public let name: String
    /// Parameters libsndfile reported at open time.
    public let info: SoundFileInfo

    /// Opens a file for reading by path; an Ogg file goes through `OggVorbisHeaderCheck` first (libsndfile 1.2.0
    /// leaks on broken Vorbis headers).  // ref: sndfile.h sf_open(path, SFM_READ, &info)
    public init(readingPath path: String) throws {
        try OggVorbisHeaderCheck.standard.check(path: path)
        var cinfo = SF_INFO()
        guard let h = sf_open(path, Int32(SFM_READ), &cinfo) else { throw SoundFile.lastOpenError(file: path) }
        handle = h
        memory = nil
        name = path
        info = SoundFileInfo(cinfo)
    }

    /// Opens a complete file held in memory for reading, after `OggVorbisHeaderCheck`.  // ref: sndfile.h sf_open_virtual
    public init(readingBytes bytes: [UInt8], name: String) throws {
        try OggVorbisHeaderCheck.standard.check(OggByteSource(bytes: bytes), name: name)
        let src = MemoryByteSource(bytes)
        var cinfo = SF_INFO()
        let user = Unmanaged.passUnretained(src).toOpaque()
        let h = withExtendedLifetime(src) { sf_open_virtual(src.table, Int32(SFM_READ), &cinfo, user) }
        guard let h else { throw SoundFile.lastOpenError(file: name) }
        handle = h
        memory = src
        self.name = name
        info = SoundFileInfo(cinfo)
    }

    /// Creates a file for writing with the given `SF_FORMAT_*` combination.  // ref: sndfile.h sf_open(SFM_WRITE)
    public init(writingPath path: String, format: Int32, channels: Int, sampleRate: Int) throws {
        var cinfo = SF_INFO()
        cinfo.samplerate = Int32(sampleRate)
        cinfo.channels = Int32(channels)
        cinfo.format = format
        guard sf_format_check(&cinfo) != 0 else {
            throw AudioError.writeFailed(file: path, detail: "libsndfile cannot write format 0x\(String(format, radix: 16))"
                + " with \(channels) channel(s) at \(sampleRate) Hz")
        }
        guard let h = sf_open(path, Int32(SFM_WRITE), &cinfo) else {
            throw AudioError.writeFailed(file: path, detail: SoundFile.lastOpenErrorValue().message)
        }
        handle = h
        memory = nil
        name = path
        info = SoundFileInfo(cinfo)
    }

    /// Closes the handle if still open.
    deinit { close() }

    /// The error of the last failed `sf_open*`, read from libsndfile's global error state.  // ref: sf_error(NULL)
    static func lastOpenErrorValue() -> SndFileError {
        SndFileError(code: sf_error(nil), message: String(cString: sf_strerror(nil)))
    }

    /// The last failed open as a public `AudioError` naming the file.
    static func lastOpenError(file: String) -> AudioError { lastOpenErrorValue().audioError(file: file) }

    /// The current error state of this handle, or nil when there is none.  // ref: sndfile.h sf_error / sf_strerror
    public func currentError() -> SndFileError? {
        guard let handle else { return nil }
        let code = sf_error(handle)
        guard code != 0 else { return nil }
        return SndFileError(code: code, message: String(cString: sf_strerror(handle)))
    }

    /// Reads up to `frames` interleaved frames as normalised float into `buffer`; returns the frames read.
    // ref: sndfile.h sf_readf_float (normalisation on by default: integer PCM maps to [-1, 1), as python-soundfile)
    public func readFrames(into buffer: UnsafeMutableBufferPointer<Float>, frames: Int) -> Int {
        guard let handle, frames > 0 else { return 0 }
        precondition(buffer.count >= frames * info.channels, "buffer too small for \(frames) frames")
        return Int(sf_readf_float(handle, buffer.baseAddress, sf_count_t(frames)))
    }

    /// Writes interleaved float frames; throws when libsndfile writes fewer than given.  // ref: sf_writef_float
    public func writeFrames(_ interleaved: [Float]) throws {
        guard let handle else { throw AudioError.writeFailed(file: name, detail: "file already closed") }
        let frames = interleaved.count / info.channels
        let written = interleaved.withUnsafeBufferPointer { sf_writef_float(handle, $0.baseAddress, sf_count_t(frames)) }
        if written != frames {
            let why = currentError()?.message ?? "wrote \(written) of \(frames) frames"
            throw AudioError.writeFailed(file: name, detail: why)
        }
    }

    /// libsndfile's parse log for this file (header details and warnings).  // ref: sf_command SFC_GET_LOG_INFO
    public func logInfo() -> String {
        guard let handle else { return "" }
        var buffer = [CChar](repeating: 0, count: 16384)
        let n = buffer.withUnsafeMutableBufferPointer {
            sf_command(handle, Int32(SFC_GET_LOG_INFO), $0.baseAddress, Int32($0.count))
        }
        guard n > 0 else { return "" }
        return String(decoding: buffer.prefix(Int(n)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The audio-data chunk size mismatch libsndfile noted while parsing, if the header declares more bytes than the
    /// file holds: log lines such as `data : 16000 (should be 14999)` (WAV, CAF), `SSND : ...` (AIFF),
    /// `Data Size : ...` (AU). libsndfile itself just reads fewer frames. Placeholder sizes 0 / 0xFFFFFFFF are ignored.
    // ref: libsndfile src/wav.c, aiff.c, au.c, caf.c psf_log_printf "... (should be %D)"
    public func dataSizeShortfall() -> (declaredBytes: Int64, actualBytes: Int64)? {
        for rawLine in logInfo().split(separator: "\n") {
            guard let colon = rawLine.firstIndex(of: ":") else { continue }
            let key = rawLine[..<colon].trimmingBlanks()
            guard key == "data" || key == "SSND" || key == "Data Size" else { continue }
            let rest = rawLine[rawLine.index(after: colon)...].trimmingBlanks()
            let prefix = "(should be "
            guard let paren = rest.firstIndex(of: "("), rest.hasSuffix(")"),
                  rest[paren...].hasPrefix(prefix),
                  let declared = Int64(rest[..<paren].trimmingBlanks()),
                  let actual = Int64(rest[rest.index(paren, offsetBy: prefix.count)..<rest.index(before: rest.endIndex)])
            else { continue }
            if declared > actual && declared != 0xFFFF_FFFF && declared != 0 { return (declared, actual) }
        }
        return nil
    }

    /// Closes the handle (idempotent); returns the `sf_close` code.  // ref: sndfile.h sf_close
    @discardableResult
    public func close() -> Int32 {
        guard let h = handle else { return 0 }
        handle = nil
        return sf_close(h)
    }

    /// libsndfile's own name for a major format or subtype code, e.g. "WAV (Microsoft)".
    // ref: sndfile.h sf_command SFC_GET_FORMAT_INFO
    public static func libraryFormatName(_ format: Int32) -> String? {
        var fi = SF_FORMAT_INFO()
        fi.format = format
        let r = sf_command(nil, Int32(SFC_GET_FORMAT_INFO), &fi, Int32(MemoryLayout<SF_FORMAT_INFO>.size))
        guard r == 0, let name = fi.name else { return nil }
        return String(cString: name)
    }

    /// A short human name for a format, e.g. "WAV 24-bit PCM", "FLAC 16-bit", "OGG Vorbis", "MP3".
    public static func formatName(_ format: Int32) -> String {
        let major = format & Int32(SF_FORMAT_TYPEMASK)
        let sub = format & Int32(SF_FORMAT_SUBMASK)
        let majorName: String
        switch Int(major) {
        case SF_FORMAT_WAV: majorName = "WAV"
        case SF_FORMAT_WAVEX: majorName = "WAV (extensible)"
        case SF_FORMAT_RF64: majorName = "RF64"
        case SF_FORMAT_W64: majorName = "W64"
        case SF_FORMAT_AIFF: majorName = "AIFF"
        case SF_FORMAT_AU: majorName = "AU"
        case SF_FORMAT_CAF: majorName = "CAF"
        case SF_FORMAT_FLAC: majorName = "FLAC"
        case SF_FORMAT_OGG: majorName = "OGG"
        case SF_FORMAT_MPEG: majorName = "MPEG"
        default: majorName = libraryFormatName(major) ?? "format 0x\(String(major, radix: 16))"
        }
        let subName: String
        switch Int(sub) {
        case SF_FORMAT_PCM_S8: subName = "8-bit PCM"
        case SF_FORMAT_PCM_U8: subName = "unsigned 8-bit PCM"
        case SF_FORMAT_PCM_16: subName = "16-bit PCM"
        case SF_FORMAT_PCM_24: subName = "24-bit PCM"
        case SF_FORMAT_PCM_32: subName = "32-bit PCM"
        case SF_FORMAT_FLOAT: subName = "32-bit float"
        case SF_FORMAT_DOUBLE: subName = "64-bit float"
        case SF_FORMAT_ULAW: subName = "u-law"
        case SF_FORMAT_ALAW: subName = "A-law"
        case SF_FORMAT_VORBIS: subName = "Vorbis"
        case SF_FORMAT_OPUS: subName = "Opus"
        case SF_FORMAT_MPEG_LAYER_I: subName = "Layer I"
        case SF_FORMAT_MPEG_LAYER_II: subName = "Layer II"
        case SF_FORMAT_MPEG_LAYER_III: subName = "Layer III"
        default: subName = libraryFormatName(sub) ?? "encoding 0x\(String(sub, radix: 16))"
        }
        if Int(major) == SF_FORMAT_MPEG && Int(sub) == SF_FORMAT_MPEG_LAYER_III { return "MP3" }
        if Int(major) == SF_FORMAT_FLAC, subName.hasSuffix(" PCM") { return "FLAC " + subName.dropLast(4) }
        return "\(majorName) \(subName)"
    }
}

/// Small text helpers for parsing libsndfile's log.
extension Substring {
    /// The substring without leading and trailing spaces and tabs.
    func trimmingBlanks() -> Substring {
        var t = self
        while let f = t.first, f == " " || f == "\t" { t = t.dropFirst() }
        while let l = t.last, l == " " || l == "\t" || l == "\r" { t = t.dropLast() }
        return t
    }
}
