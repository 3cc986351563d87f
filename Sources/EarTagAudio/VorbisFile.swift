// Thin Swift wrappers over the libvorbisfile calls EarTag uses (ov_test_callbacks, ov_clear), its OV_E* codes as
// named values, and the byte source its callbacks read (a file descriptor or memory).
// ref: /usr/include/vorbis/vorbisfile.h, /usr/include/vorbis/codec.h (libvorbis 1.3.7),
//      https://xiph.org/vorbis/doc/vorbisfile/ov_test_callbacks.html
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CVorbisFile

/// What libvorbisfile said about an Ogg stream's Vorbis headers: 0 or one of the OV_E* codes, by name.
public enum VorbisFileStatus: Equatable, Sendable {
    /// 0: the identification, comment and setup headers were all read and accepted.
    case ok
    /// OV_EREAD: a read from the source failed.
    case readError
    /// OV_EFAULT: an internal logic fault in vorbisfile.
    case fault
    /// OV_ENOTVORBIS: the Ogg stream carries no Vorbis identification header (or stops right after it).
    case notVorbis
    /// OV_EBADHEADER: a Vorbis header packet is invalid, or a header page is missing.
    case badHeader
    /// OV_EVERSION: the identification header declares an unknown Vorbis version.
    case versionMismatch
    /// Any other negative code (vorbisfile documents none for ov_test_callbacks).
    case other(Int32)

    /// The status for a return code of `ov_test_callbacks`.  // ref: codec.h OV_E* (-128 ... -138)
    public init(code: Int32) {
        switch code {
        case 0: self = .ok
        case OV_EREAD: self = .readError
        case OV_EFAULT: self = .fault
        case OV_ENOTVORBIS: self = .notVorbis
        case OV_EBADHEADER: self = .badHeader
        case OV_EVERSION: self = .versionMismatch
        default: self = .other(code)
        }
    }

    /// The problem in words with the C name, e.g. "invalid Vorbis header (OV_EBADHEADER)".
    public var problem: String {
        switch self {
        case .ok: return "headers accepted"
        case .readError: return "a read failed while checking the headers (OV_EREAD)"
        case .fault: return "internal fault in libvorbisfile (OV_EFAULT)"
        case .notVorbis: return "no Vorbis headers in the Ogg stream (OV_ENOTVORBIS)"
        case .badHeader: return "invalid or missing Vorbis header packet (OV_EBADHEADER)"
        case .versionMismatch: return "unknown Vorbis version (OV_EVERSION)"
        case .other(let c): return "libvorbisfile error \(c)"
        }
    }
}

/// Random-access bytes of one input (an open file descriptor or a buffer), read by the Ogg page walk and by
/// vorbisfile through `VorbisFile.callbacks` (whose position is `cursor`).
final class OggByteSource {
    /// The whole input when it is held in memory.
    private let memory: [UInt8]?
    /// The file descriptor read with pread when the input is a file (-1 for memory).
    private let fd: Int32
    /// Size of the input in bytes.
    let count: Int64
    /// vorbisfile's read position (its read/seek/tell callbacks).
    var cursor: Int64 = 0

    /// A source over bytes in memory.
    init(bytes: [UInt8]) {
        memory = bytes
        fd = -1
        count = Int64(bytes.count)
    }

    /// A source over an open file of `size` bytes; the caller keeps `fd` open while the source is used.
    init(fileDescriptor: Int32, size: Int64) {
        memory = nil
        fd = fileDescriptor
        count = max(0, size)
    }

    /// Copies up to `n` bytes at `offset` to `dst`; returns the bytes copied (0 at the end), or -1 with errno set.
    func read(at offset: Int64, into dst: UnsafeMutableRawPointer, count n: Int) -> Int {
        guard offset >= 0, n > 0, offset < count else { return 0 }
        let wanted = Int(min(Int64(n), count - offset))
        if let memory {
            memory.withUnsafeBytes { dst.copyMemory(from: $0.baseAddress! + Int(offset), byteCount: wanted) }
            return wanted
        }
        var done = 0
        while done < wanted {
            let r = pread(fd, dst + done, wanted - done, off_t(offset) + off_t(done))
            if r < 0 {
                if errno == EINTR { continue }
                return -1
            }
            if r == 0 { break }
            done += r
        }
        return done
    }

    /// Up to `n` bytes at `offset` (fewer at the end of the input or after a read error).
    func bytes(at offset: Int64, count n: Int) -> [UInt8] {
        guard n > 0 else { return [] }
        var out = [UInt8](repeating: 0, count: n)
        let got = out.withUnsafeMutableBytes { read(at: offset, into: $0.baseAddress!, count: n) }
        out.removeLast(n - max(0, got))
        return out
    }
}

/// The libvorbisfile calls EarTag makes, one wrapper each.
enum VorbisFile {
    /// read/seek/tell over an `OggByteSource` passed unretained as the datasource; no close (the caller owns it).
    // ref: vorbisfile.h ov_callbacks (read_func like fread, seek_func like fseek returning 0/-1, tell_func like ftell);
    // vorbisfile's _get_data clears errno before a read and treats 0 bytes with errno set as OV_EREAD.
    static let callbacks = ov_callbacks(
        read_func: { ptr, size, nmemb, datasource in
            let src = Unmanaged<OggByteSource>.fromOpaque(datasource!).takeUnretainedValue()
            guard let ptr, size > 0, nmemb > 0 else { return 0 }
            let got = src.read(at: src.cursor, into: ptr, count: size * nmemb)
            guard got > 0 else { return 0 }
            src.cursor += Int64(got)
            return got / size
        },
        seek_func: { datasource, offset, whence in
            let src = Unmanaged<OggByteSource>.fromOpaque(datasource!).takeUnretainedValue()
            let base: Int64
            switch whence {
            case SEEK_SET: base = 0
            case SEEK_CUR: base = src.cursor
            case SEEK_END: base = src.count
            default: return -1
            }
            let target = base + offset
            guard target >= 0 else { return -1 }
            src.cursor = target
            return 0
        },
        close_func: nil,
        tell_func: { datasource in
            Int(Unmanaged<OggByteSource>.fromOpaque(datasource!).takeUnretainedValue().cursor)
        })

    /// Opens `source` for testing (reads the three Vorbis headers, no audio).  // ref: vorbisfile.h ov_test_callbacks
    /// On `.ok` the handle holds vorbisfile's state and must go to `clear`; on failure vorbisfile has already cleared
    /// it (ref: libvorbis lib/vorbisfile.c _ov_open1: `vf->datasource=NULL; ov_clear(vf);` when _fetch_headers fails).
    static func testCallbacks(_ source: OggByteSource, _ vf: UnsafeMutablePointer<OggVorbis_File>) -> VorbisFileStatus {
        source.cursor = 0
        let user = Unmanaged.passUnretained(source).toOpaque()
        let code = withExtendedLifetime(source) { ov_test_callbacks(user, vf, nil, 0, callbacks) }
        return VorbisFileStatus(code: code)
    }

    /// Frees what a successful `testCallbacks` allocated.  // ref: vorbisfile.h ov_clear
    @discardableResult
    static func clear(_ vf: UnsafeMutablePointer<OggVorbis_File>) -> Int32 { ov_clear(vf) }

    /// The status of `source`'s Vorbis headers; leaves nothing allocated.
    static func testHeaders(_ source: OggByteSource) -> VorbisFileStatus {
        let vf = UnsafeMutablePointer<OggVorbis_File>.allocate(capacity: 1)
        defer { vf.deallocate() }
        let status = testCallbacks(source, vf)
        if status == .ok { clear(vf) }
        return status
    }
}
