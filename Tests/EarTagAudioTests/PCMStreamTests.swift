// PCMStreamDecoder (raw and WAV byte streams) and FileDescriptorSource (a pipe into a sink).
import XCTest
import Foundation
import Dispatch
import CSndFile
import EarTagTestSupport
@testable import EarTagAudio

/// A sink that keeps everything written to it.
final class RecordingSink: SampleSink {
    /// All samples received, in order.
    var samples = [Float]()
    /// Number of write calls.
    var writes = 0
    /// Appends a copy.
    func write(_ samples: UnsafeBufferPointer<Float>) {
        self.samples.append(contentsOf: samples)
        writes += 1
    }
}

/// Decoder and fd-source tests.
final class PCMStreamTests: XCTestCase {
    // MARK: helpers

    /// Encodes interleaved floats in a raw format (integers rounded and clamped, like a well-behaved encoder).
    static func encode(_ x: [Float], _ format: PCMSampleFormat) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(x.count * format.bytesPerSample)
        /// Appends a little-endian integer.
        func le<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        /// Rounds `v * scale` to an integer in [-scale, scale - 1].
        func quantise(_ v: Float, _ scale: Double) -> Int64 {
            Int64(max(-scale, min(scale - 1, (Double(v) * scale).rounded())))
        }
        for v in x {
            switch format {
            case .u8: out.append(UInt8(quantise(v, 128) + 128))
            case .s16le: le(Int16(quantise(v, 32768)))
            case .s24le:
                let i = Int32(quantise(v, 8_388_608))
                out += [UInt8(truncatingIfNeeded: i), UInt8(truncatingIfNeeded: i >> 8), UInt8(truncatingIfNeeded: i >> 16)]
            case .s32le: le(Int32(quantise(v, 2_147_483_648)))
            case .f32le: le(v.bitPattern)
            case .f64le: le(Double(v).bitPattern)
            }
        }
        return out
    }

    /// What a decoder must return for `x` encoded in `format` (per-sample quantised, then libsndfile scaling).
    static func expectedDecode(_ x: [Float], _ format: PCMSampleFormat) -> [Float] {
        let bytes = encode(x, format)
        let bps = format.bytesPerSample
        return (0..<x.count).map { i in
            let b = Array(bytes[(i * bps)..<((i + 1) * bps)])
            /// Little-endian unsigned value of the sample's bytes.
            let u = b.enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
            switch format {
            case .u8: return (Float(u) - 128) / 128
            case .s16le: return Float(Int16(truncatingIfNeeded: u)) / 32768
            case .s24le: return Float(Int32(truncatingIfNeeded: u << 8) >> 8) / 8_388_608
            case .s32le: return Float(Int32(truncatingIfNeeded: u)) / 2_147_483_648
            case .f32le: return Float(bitPattern: UInt32(truncatingIfNeeded: u))
            case .f64le: return Float(Double(bitPattern: u))
            }
        }
    }

    /// Decodes all `bytes` pushed in pieces cycling through `pieces` sizes, then finishes.
    static func decode(_ bytes: [UInt8], format: PCMStreamFormat, pieces: [Int] = [1 << 30],
                       detectWAV: Bool = true, blockFrames: Int = 4096) throws -> (samples: [Float], decoder: PCMStreamDecoder) {
        let d = try PCMStreamDecoder(format: format, detectWAV: detectWAV, blockFrames: blockFrames)
        var out = [Float]()
        try bytes.withUnsafeBytes { all in
            var offset = 0
            var k = 0
            while offset < all.count {
                let n = min(pieces[k % pieces.count], all.count - offset)
                try d.push(UnsafeRawBufferPointer(rebasing: all[offset..<offset + n])) {
                    XCTAssertLessThanOrEqual($0.count, blockFrames)
                    out.append(contentsOf: $0)
                }
                offset += n
                k += 1
            }
        }
        try d.finish { out.append(contentsOf: $0) }
        return (out, d)
    }

    /// A mono sine in [-0.9, 0.9] (plus a full-scale sample at each end to exercise clipping edges).
    static func sine(_ n: Int, rate: Int = 48000, hz: Double = 997) -> [Float] {
        var x = (0..<n).map { Float(0.9 * sin(2 * Double.pi * hz * Double($0) / Double(rate))) }
        x[0] = -1
        x[n - 1] = 1
        return x
    }

    /// Reads a reference clip's bytes.
    static func referenceBytes(_ name: String) throws -> [UInt8] {
        [UInt8](try XCTUnwrap(FileManager.default.contents(atPath: try Reference.path("audio/\(name)"))))
    }

    /// Stores a little-endian UInt32 in a byte array.
    static func putU32(_ bytes: inout [UInt8], _ value: UInt32, at offset: Int) {
        for k in 0..<4 { bytes[offset + k] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(k))) }
    }

    /// A temporary file path unique to this test run.
    func tempPath(_ name: String) -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("eartag-pcmstream-\(getpid())")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir.appendingPathComponent(name).path
    }

    /// Pipes `bytes` through a FileDescriptorSource (a writer thread writes pieces then closes) into a sink.
    static func pipeThrough(_ bytes: [UInt8], format: PCMStreamFormat, pieces: Int = 777,
                            detectWAV: Bool = true) throws -> (sink: RecordingSink, source: FileDescriptorSource) {
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        let sink = RecordingSink()
        let source = try FileDescriptorSource(fileDescriptor: fds[0], name: "<stdin>", format: format,
                                              detectWAV: detectWAV, sink: sink)
        let writeEnd = fds[1]
        let done = DispatchSemaphore(value: 0)
        let writer = Thread {
            bytes.withUnsafeBytes { raw in
                var offset = 0
                while offset < raw.count {
                    let n = min(pieces, raw.count - offset)
                    let w = Glibc.write(writeEnd, raw.baseAddress! + offset, n)
                    if w < 0 { if errno == EINTR { continue }; break }
                    offset += w
                }
            }
            close(writeEnd)
            done.signal()
        }
        writer.start()
        defer { close(fds[0]) }
        do {
            try source.run()
        } catch {
            done.wait()
            throw error
        }
        done.wait()
        return (sink, source)
    }

    // MARK: raw formats

    /// Every raw format round-trips a known sine: exact for float and scaled integers, s16 within 1/32768.
    func testRawFormatsRoundTrip() throws {
        let x = Self.sine(4801)
        for f in PCMSampleFormat.allCases {
            let fmt = PCMStreamFormat(sampleRate: 48000, channels: 1, sampleFormat: f)
            let (y, d) = try Self.decode(Self.encode(x, f), format: fmt)
            XCTAssertFalse(d.isWAV)
            XCTAssertEqual(d.format, fmt)
            XCTAssertEqual(y.count, x.count, "\(f)")
            XCTAssertEqual(y, Self.expectedDecode(x, f), "\(f)")
            let tolerance: Float
            switch f {
            case .u8: tolerance = 1.0 / 128
            case .s16le: tolerance = 1.0 / 32768
            case .s24le: tolerance = 1.0 / 8_388_608
            case .s32le: tolerance = 1e-7
            case .f32le, .f64le: tolerance = 0
            }
            XCTAssertLessThanOrEqual(maxAbsDifference(y, x), tolerance, "\(f)")
        }
    }

    /// Multichannel input is averaged exactly like `downmixToMono`.
    func testMultichannelDownmixMatchesDownmixToMono() throws {
        for channels in [2, 3, 6] {
            let inter = Fixtures.signal(frames: 3000, channels: channels, rate: 44100)
            for f in [PCMSampleFormat.f32le, .s16le, .s32le] {
                let fmt = PCMStreamFormat(sampleRate: 44100, channels: channels, sampleFormat: f)
                let (y, _) = try Self.decode(Self.encode(inter, f), format: fmt, pieces: [1001])
                let expected = downmixToMono(Self.expectedDecode(inter, f), channels: channels)
                XCTAssertEqual(y, expected, "\(channels) ch \(f)")
            }
        }
    }

    /// Bytes fed one at a time (or in odd pieces, or with tiny output blocks) give the same samples as all at once.
    func testSplitBytesEqualWholeBytes() throws {
        let inter = Fixtures.signal(frames: 700, channels: 2, rate: 16000)
        for f in PCMSampleFormat.allCases {
            let fmt = PCMStreamFormat(sampleRate: 16000, channels: 2, sampleFormat: f)
            let bytes = Self.encode(inter, f)
            let whole = try Self.decode(bytes, format: fmt).samples
            XCTAssertEqual(whole.count, 700)
            XCTAssertEqual(try Self.decode(bytes, format: fmt, pieces: [1]).samples, whole, "\(f)")
            XCTAssertEqual(try Self.decode(bytes, format: fmt, pieces: [3, 7, 1, 64]).samples, whole, "\(f)")
            XCTAssertEqual(try Self.decode(bytes, format: fmt, pieces: [5], blockFrames: 3).samples, whole, "\(f)")
        }
        // Same for a WAV stream, split inside the header too.
        let wav = Array(try Self.referenceBytes("speech.wav").prefix(44 + 20000))
        let fmt = PCMStreamFormat(sampleRate: 8000, channels: 1, sampleFormat: .f32le)
        let whole = try Self.decode(wav, format: fmt).samples
        XCTAssertEqual(whole.count, 10000)
        XCTAssertEqual(try Self.decode(wav, format: fmt, pieces: [1]).samples, whole)
        XCTAssertEqual(try Self.decode(wav, format: fmt, pieces: [13, 2, 5]).samples, whole)
    }

    /// A trailing partial frame is dropped and counted.
    func testPartialFrameAtEndIsDropped() throws {
        let inter = Fixtures.signal(frames: 100, channels: 2, rate: 8000)
        let fmt = PCMStreamFormat(sampleRate: 8000, channels: 2, sampleFormat: .s16le)
        let (y, d) = try Self.decode(Self.encode(inter, .s16le) + [1, 2, 3], format: fmt, pieces: [2])
        XCTAssertEqual(y.count, 100)
        XCTAssertEqual(d.bytesDiscarded, 3)
        XCTAssertEqual(d.bytesIn, 403)
    }

    /// Garbage in raw mode decodes as audio: finite floats, the right count, no crash, in every format.
    func testGarbageRawBytesGiveFiniteSamples() throws {
        var rng = Fixtures.Noise(state: 99)
        let garbage = (0..<100_003).map { _ in UInt8(truncatingIfNeeded: Int((rng.next() + 1) * 128)) }
        for f in PCMSampleFormat.allCases {
            for channels in [1, 2, 7] {
                let fmt = PCMStreamFormat(sampleRate: 8000, channels: channels, sampleFormat: f)
                let (y, _) = try Self.decode(garbage, format: fmt, pieces: [4093])
                XCTAssertEqual(y.count, garbage.count / fmt.bytesPerFrame, "\(f) \(channels)")
                XCTAssertTrue(y.allSatisfy { $0.isFinite && abs($0) <= PCMStreamDecoder.floatLimit }, "\(f) \(channels)")
            }
        }
        // NaN and infinity in float input become 0, huge values are clamped.
        let special: [Float] = [.nan, .infinity, -.infinity, 3e38, -5000, 0.25]
        let fmt = PCMStreamFormat(sampleRate: 8000, channels: 1, sampleFormat: .f32le)
        let (y, d) = try Self.decode(Self.encode(special, .f32le), format: fmt)
        XCTAssertEqual(y, [0, 0, 0, 1024, -1024, 0.25])
        XCTAssertEqual(d.sanitisedSamples, 5)
        // Garbage through the whole source (with resampling) stays finite too.
        let (sink, _) = try Self.pipeThrough(garbage, format: PCMStreamFormat(sampleRate: 44100, channels: 2,
                                                                             sampleFormat: .f32le))
        XCTAssertTrue(sink.samples.allSatisfy { $0.isFinite })
        XCTAssertGreaterThan(sink.samples.count, 0)
    }

    /// Absurd rates, channel counts and sample formats are refused at setup with one-line errors naming the stream.
    func testParameterRefusals() throws {
        for (rate, channels) in [(999, 1), (768_001, 1), (0, 2), (-44100, 2), (48000, 0), (48000, 65), (48000, -1)] {
            let fmt = PCMStreamFormat(sampleRate: rate, channels: channels, sampleFormat: .s16le)
            XCTAssertThrowsError(try PCMStreamDecoder(format: fmt)) { error in
                guard case AudioError.invalidParameters(let file, _) = error else { return XCTFail("\(error)") }
                XCTAssertEqual(file, "<stdin>")
                XCTAssertFalse("\(error)".contains("\n"))
                print("refused: \(error)")
            }
            XCTAssertThrowsError(try FileDescriptorSource(format: fmt, sink: RecordingSink()))
        }
        XCTAssertNoThrow(try PCMStreamDecoder(format: PCMStreamFormat(sampleRate: 1000, channels: 64, sampleFormat: .f64le)))
        XCTAssertNoThrow(try PCMStreamDecoder(format: PCMStreamFormat(sampleRate: 768_000, channels: 1, sampleFormat: .u8)))
        XCTAssertEqual(try PCMSampleFormat.parse("S16LE"), .s16le)
        XCTAssertThrowsError(try PCMSampleFormat.parse("s12le")) { error in
            XCTAssertTrue("\(error)".hasPrefix("<stdin>: invalid audio parameters (unsupported sample format 's12le'"))
            print("refused: \(error)")
        }
        // The same limits apply to a WAV header, and unsupported encodings are refused.
        let cases: [(header: [UInt8], kind: String)] = [
            (Fixtures.wavHeader(dataBytes: 100, channels: 1, rate: 500, bits: 16), "invalid"),
            (Fixtures.wavHeader(dataBytes: 100, channels: 100, rate: 8000, bits: 16), "invalid"),
            (Fixtures.wavHeader(dataBytes: 100, channels: 1, rate: 8000, bits: 40), "unsupported"),
            ({ var h = Fixtures.wavHeader(dataBytes: 100); h[20] = 0x55; return h }(), "unsupported"),   // MPEG layer 3
            ({ var h = Fixtures.wavHeader(dataBytes: 100, bits: 16); h[20] = 3; return h }(), "unsupported"), // float16
        ]
        for c in cases {
            let fmt = PCMStreamFormat(sampleRate: 48000, channels: 2, sampleFormat: .s16le)
            XCTAssertThrowsError(try Self.decode(c.header + [UInt8](repeating: 0, count: 100), format: fmt)) { error in
                switch (error as? AudioError, c.kind) {
                case (.invalidParameters("<stdin>", _)?, "invalid"), (.unsupportedEncoding("<stdin>", _)?, "unsupported"):
                    break
                default: XCTFail("\(c.kind): \(error)")
                }
                print("refused WAV: \(error)")
            }
        }
    }

    // MARK: WAV streams

    /// speech.wav (32 kHz 16-bit) as a byte stream equals loadAudio exactly, with real, 0xFFFFFFFF, 0 and bogus
    /// sizes; the header overrides the requested format, with a note.
    func testWAVStreamEqualsLoadAudio() throws {
        let path = try Reference.path("audio/speech.wav")
        let expected = try loadAudio(path: path).samples
        let bytes = try Self.referenceBytes("speech.wav")
        let flags = PCMStreamFormat(sampleRate: 48000, channels: 2, sampleFormat: .s16le)
        var variants: [(String, [UInt8])] = [("as is", bytes)]
        var unknown = bytes
        Self.putU32(&unknown, 0xFFFF_FFFF, at: 4)
        Self.putU32(&unknown, 0xFFFF_FFFF, at: 40)
        variants.append(("0xFFFFFFFF sizes", unknown))
        var zero = bytes
        Self.putU32(&zero, 0, at: 40)
        variants.append(("data size 0", zero))
        var short = bytes
        Self.putU32(&short, 1000, at: 40)
        variants.append(("bogus short data size", short))
        var long = bytes
        Self.putU32(&long, 0x7FFF_F000, at: 40)        // a "maximum" size as recorders writing to a pipe leave it
        variants.append(("data size beyond the stream", long))
        for (label, v) in variants {
            let (y, d) = try Self.decode(v, format: flags, pieces: [4096, 333])
            XCTAssertTrue(d.isWAV, label)
            XCTAssertEqual(d.format, PCMStreamFormat(sampleRate: 32000, channels: 1, sampleFormat: .s16le), label)
            XCTAssertEqual(y.count, expected.count, label)
            XCTAssertEqual(y, expected, label)
            XCTAssertEqual(d.notes.count, 1, label)
            XCTAssertEqual(d.bytesDiscarded, 0, label)
        }
        print("note: \(try Self.decode(bytes, format: flags).decoder.notes[0])")
    }

    /// Chunks before `data` (odd sizes with padding, an oversized fmt) are skipped; chunks after a truthful `data`
    /// are not decoded as audio.
    func testWAVChunkOrderAndTrailingChunks() throws {
        let bytes = try Self.referenceBytes("speech.wav")
        let expected = try loadAudio(path: try Reference.path("audio/speech.wav")).samples
        let riff = Array(bytes[0..<12])
        var fmt = Array(bytes[12..<36])                 // "fmt " 16 + body
        let data = Array(bytes[36...])                  // "data" size + samples
        // An 18-byte fmt (cbSize = 0) as many encoders write it.
        Self.putU32(&fmt, 18, at: 4)
        fmt += [0, 0]
        let junk: [UInt8] = Array("JUNK".utf8) + [3, 0, 0, 0] + [9, 9, 9] + [0]          // odd size, pad byte
        let list: [UInt8] = Array("LIST".utf8) + [4, 0, 0, 0] + Array("INFO".utf8)
        let trailer: [UInt8] = Array("LIST".utf8) + [6, 0, 0, 0] + Array("INFOab".utf8)
        let stream = riff + junk + fmt + list + data + trailer
        let flags = PCMStreamFormat(sampleRate: 32000, channels: 1, sampleFormat: .s16le)
        for pieces in [[1 << 20], [1], [7, 3]] {
            let (y, d) = try Self.decode(stream, format: flags, pieces: pieces)
            XCTAssertEqual(y, expected, "\(pieces)")
            XCTAssertEqual(d.bytesDiscarded, Int64(trailer.count), "\(pieces)")
            XCTAssertTrue(d.notes.isEmpty)
        }
        // A chunk after data whose size was a placeholder is audio (nothing tells where audio ends).
        var unknown = stream
        let dataSizeAt = riff.count + junk.count + fmt.count + list.count + 4
        Self.putU32(&unknown, 0xFFFF_FFFF, at: dataSizeAt)
        XCTAssertEqual(try Self.decode(unknown, format: flags).samples.count, expected.count + trailer.count / 2)
        // fmt after data: refused.
        XCTAssertThrowsError(try Self.decode(riff + list + data, format: flags)) { error in
            XCTAssertTrue("\(error)".contains("data chunk before the fmt chunk"), "\(error)")
        }
    }

    /// WAVE_FORMAT_EXTENSIBLE float stereo (and other libsndfile-written WAV encodings) equal loadAudio exactly.
    func testWAVEncodingsWrittenByLibsndfile() throws {
        let inter = Fixtures.signal(frames: 24000, channels: 2, rate: 48000)
        let formats: [(Int32, String)] = [
            (Int32(SF_FORMAT_WAVEX | SF_FORMAT_FLOAT), "WAVEX float"),
            (Int32(SF_FORMAT_WAVEX | SF_FORMAT_PCM_24), "WAVEX 24"),
            (Int32(SF_FORMAT_WAVEX | SF_FORMAT_DOUBLE), "WAVEX double"),
            (Int32(SF_FORMAT_WAV | SF_FORMAT_FLOAT), "WAV float"),
            (Int32(SF_FORMAT_WAV | SF_FORMAT_PCM_24), "WAV 24"),
            (Int32(SF_FORMAT_WAV | SF_FORMAT_PCM_32), "WAV 32"),
            (Int32(SF_FORMAT_WAV | SF_FORMAT_PCM_U8), "WAV u8"),
            (Int32(SF_FORMAT_WAV | SF_FORMAT_DOUBLE), "WAV double"),
        ]
        for (format, label) in formats {
            let path = tempPath("enc-\(format).wav")
            try Fixtures.write(inter, channels: 2, rate: 48000, format: format, to: path)
            let bytes = [UInt8](try XCTUnwrap(FileManager.default.contents(atPath: path)))
            if label.hasPrefix("WAVEX") { XCTAssertEqual(bytes[20], 0xFE, label); XCTAssertEqual(bytes[21], 0xFF, label) }
            let expected = try loadAudio(path: path, targetRate: 48000).samples
            let flags = PCMStreamFormat(sampleRate: 16000, channels: 1, sampleFormat: .s16le)
            let (y, d) = try Self.decode(bytes, format: flags, pieces: [1000, 1])
            XCTAssertEqual(d.format.sampleRate, 48000, label)
            XCTAssertEqual(d.format.channels, 2, label)
            XCTAssertEqual(y.count, 24000, label)
            XCTAssertEqual(y, expected, label)
        }
    }

    /// EOF inside the WAV header is a one-line error naming the stream; 1-3 bytes looking like "RIF" are raw audio.
    func testTruncatedHeaderIsAnError() throws {
        let bytes = try Self.referenceBytes("speech.wav")
        let flags = PCMStreamFormat(sampleRate: 32000, channels: 1, sampleFormat: .s16le)
        for cut in [4, 11, 12, 20, 35, 36, 43] {
            XCTAssertThrowsError(try Self.decode(Array(bytes.prefix(cut)), format: flags, pieces: [5]), "\(cut)") { error in
                let text = "\(error)"
                XCTAssertTrue(text.hasPrefix("<stdin>: malformed audio file (stream ended inside the WAV header"), text)
                XCTAssertFalse(text.contains("\n"))
                if cut == 20 { print("truncated header: \(text)") }
            }
        }
        // The full header with no samples is fine for the decoder (no frames); the source reports no samples.
        XCTAssertEqual(try Self.decode(Array(bytes.prefix(44)), format: flags).samples.count, 0)
        XCTAssertThrowsError(try Self.pipeThrough(Array(bytes.prefix(44)), format: flags)) { error in
            XCTAssertEqual(error as? AudioError, .noSamples(file: "<stdin>"))
        }
        XCTAssertThrowsError(try Self.pipeThrough(Array(bytes.prefix(30)), format: flags)) { error in
            guard case AudioError.malformedFile("<stdin>", _)? = error as? AudioError else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try Self.pipeThrough([], format: flags)) { error in
            XCTAssertEqual(error as? AudioError, .emptyFile(file: "<stdin>"))
        }
        let (y, d) = try Self.decode(Array("RIF".utf8), format: PCMStreamFormat(sampleRate: 8000, channels: 1,
                                                                                 sampleFormat: .u8))
        XCTAssertEqual(y.count, 3)
        XCTAssertFalse(d.isWAV)
        // RIFF but not WAVE: refused.
        var avi = Array(bytes.prefix(100))
        avi[8...11] = ArraySlice("AVI ".utf8)
        XCTAssertThrowsError(try Self.decode(avi, format: flags)) { error in
            XCTAssertTrue("\(error)".contains("not WAVE"), "\(error)")
        }
        // Detection off: a WAV header is just audio.
        XCTAssertEqual(try Self.decode(Array(bytes.prefix(1044)), format: flags, detectWAV: false).samples.count, 522)
    }

    // MARK: FileDescriptorSource

    /// speech.wav through a pipe (odd write sizes, EOF in the middle of a sample) reaches the sink equal to loadAudio.
    func testPipeWAVEqualsLoadAudio() throws {
        let expected = try loadAudio(path: try Reference.path("audio/speech.wav")).samples
        let bytes = try Self.referenceBytes("speech.wav") + [0x7F]       // one byte of a sample that never completes
        let flags = PCMStreamFormat(sampleRate: 48000, channels: 2, sampleFormat: .s16le)
        let (sink, source) = try Self.pipeThrough(bytes, format: flags, pieces: 777)
        XCTAssertEqual(sink.samples, expected)
        XCTAssertEqual(source.bytesRead, Int64(bytes.count))
        XCTAssertEqual(source.samplesDelivered, Int64(expected.count))
        XCTAssertEqual(source.sourceFrames, Int64(expected.count))
        XCTAssertEqual(source.decoder.bytesDiscarded, 1)
        XCTAssertTrue(source.decoder.isWAV)
        // Raw s16le of the same samples, also through the pipe.
        let raw = Array(bytes[44..<(bytes.count - 1)]) + [0x01]
        let rawFormat = PCMStreamFormat(sampleRate: 32000, channels: 1, sampleFormat: .s16le)
        let sink2 = RecordingSink()
        var seen: PCMStreamFormat?
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        let src2 = try FileDescriptorSource(fileDescriptor: fds[0], format: rawFormat, sink: sink2)
        src2.onFormatKnown = { seen = $0 }
        let w = fds[1]
        let writer = Thread {
            raw.withUnsafeBytes { p in
                var o = 0
                while o < p.count { let n = Glibc.write(w, p.baseAddress! + o, min(1001, p.count - o)); if n <= 0 { break }; o += n }
            }
            close(w)
        }
        writer.start()
        try src2.run()
        close(fds[0])
        XCTAssertEqual(sink2.samples, expected)
        XCTAssertEqual(seen, rawFormat)
        XCTAssertEqual(src2.readSize, 1280)   // 20 ms of 32 kHz mono 16-bit
    }

    /// metro (44.1 kHz) as raw f32le and as raw s24le through a pipe equals the oneshot (librosa) resampling,
    /// and for s24le the golden librosa file, bit for bit.
    func testPipe44kRawEqualsOneshotResampler() throws {
        let x = try StreamResamplerTests.metroNative()
        let oneshot = try Resampler.resample(x, from: 44100, to: 32000)
        for f in [PCMSampleFormat.f32le, .s24le] {
            let (sink, source) = try Self.pipeThrough(Self.encode(x, f),
                                                      format: PCMStreamFormat(sampleRate: 44100, channels: 1, sampleFormat: f),
                                                      pieces: 4099)
            let (d, l) = StreamResamplerTests.compare(sink.samples, oneshot)
            print("metro raw \(f) via pipe: \(sink.samples.count) samples, max|diff| vs oneshot \(d), length diff \(l)")
            XCTAssertEqual(sink.samples, oneshot, "\(f)")
            XCTAssertEqual(source.readSize, f == .f32le ? 3528 : 2646)   // 20 ms of 44.1 kHz mono, 4 or 3 bytes
        }
        let golden = try loadAudio(path: try Reference.path("golden/metro_station-paris_32k.wav")).samples
        let (sink, _) = try Self.pipeThrough(Self.encode(x, .s24le),
                                             format: PCMStreamFormat(sampleRate: 44100, channels: 1, sampleFormat: .s24le))
        XCTAssertEqual(sink.samples, golden)
    }

    /// A 48 kHz stereo WAV through a pipe equals loadAudio (channel mean, then resampling), up to librosa's padding.
    func testPipe48kStereoWAVEqualsLoadAudio() throws {
        let inter = Fixtures.signal(frames: 48000 * 2 + 5, channels: 2, rate: 48000)
        let path = tempPath("stereo48.wav")
        try Fixtures.write(inter, channels: 2, rate: 48000, format: Int32(SF_FORMAT_WAV | SF_FORMAT_PCM_16), to: path)
        let expected = try loadAudio(path: path).samples
        let bytes = [UInt8](try XCTUnwrap(FileManager.default.contents(atPath: path)))
        let (sink, _) = try Self.pipeThrough(bytes, format: PCMStreamFormat(sampleRate: 32000, channels: 1,
                                                                           sampleFormat: .s16le), pieces: 3840)
        let (d, l) = StreamResamplerTests.compare(sink.samples, expected)
        print("48 kHz stereo WAV via pipe: \(sink.samples.count) samples vs loadAudio \(expected.count);"
              + " max|diff| \(d), length diff \(l)")
        XCTAssertEqual(d, 0)
        XCTAssertLessThanOrEqual(abs(l), 1)
        if l < 0 { XCTAssertTrue(expected.suffix(-l).allSatisfy { $0 == 0 }) }
    }

    /// A real producer: sox writing a 48 kHz stereo float WAV (18-byte fmt, fact chunk) to its stdout, read by the
    /// source straight from the pipe, equals loadAudio of the same sox output saved to a file. Skipped without sox.
    func testSoxPipeEqualsLoadAudio() throws {
        let sox = "/usr/bin/sox"
        guard FileManager.default.isExecutableFile(atPath: sox) else { throw XCTSkip("sox not installed") }
        let input = try Reference.path("audio/speech.wav")
        let args = [input, "-r", "48000", "-c", "2", "-e", "floating-point", "-t", "wav"]
        let file = tempPath("sox48.wav")
        let save = Process()
        save.executableURL = URL(fileURLWithPath: sox)
        save.arguments = args + [file]
        try save.run()
        save.waitUntilExit()
        XCTAssertEqual(save.terminationStatus, 0)
        let expected = try loadAudio(path: file).samples

        let producer = Process()
        producer.executableURL = URL(fileURLWithPath: sox)
        producer.arguments = args + ["-"]
        let out = Pipe()
        producer.standardOutput = out
        producer.standardError = FileHandle.nullDevice
        try producer.run()
        let sink = RecordingSink()
        let source = try FileDescriptorSource(fileDescriptor: out.fileHandleForReading.fileDescriptor,
                                              format: PCMStreamFormat(sampleRate: 44100, channels: 1, sampleFormat: .s16le),
                                              sink: sink)
        try source.run()
        producer.waitUntilExit()
        XCTAssertEqual(source.decoder.format, PCMStreamFormat(sampleRate: 48000, channels: 2, sampleFormat: .f32le))
        let (d, l) = StreamResamplerTests.compare(sink.samples, expected)
        print("sox 48 kHz stereo float WAV via pipe: \(sink.samples.count) samples vs loadAudio \(expected.count);"
              + " max|diff| \(d), length diff \(l)")
        XCTAssertEqual(d, 0)
        XCTAssertLessThanOrEqual(abs(l), 1)
    }

    /// A read error (reading a write-only descriptor) is a typed one-line error naming the stream.
    func testReadErrorIsTyped() throws {
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        defer { close(fds[0]); close(fds[1]) }
        let source = try FileDescriptorSource(fileDescriptor: fds[1], format: PCMStreamFormat(sampleRate: 32000, channels: 1,
                                                                                            sampleFormat: .s16le),
                                              sink: RecordingSink())
        XCTAssertThrowsError(try source.run()) { error in
            guard case AudioError.readFailed("<stdin>", let detail)? = error as? AudioError else { return XCTFail("\(error)") }
            XCTAssertTrue(detail.hasPrefix("read error: "))
            print("read error: \(error)")
        }
    }
}
