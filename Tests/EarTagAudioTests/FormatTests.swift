// Every common format libsndfile writes decodes through loadAudio to the expected 32 kHz mono signal.
import XCTest
import CSndFile
import EarTagTestSupport
@testable import EarTagAudio

/// Round trips through libsndfile-written files in many formats, rates and channel counts.
final class FormatTests: XCTestCase {
    /// One fixture: container/encoding, rate, channels, file extension, and how closely it must match.
    struct Case {
        /// Label for messages.
        var label: String
        /// `SF_FORMAT_*` major | subtype.
        var format: Int32
        /// File sample rate.
        var rate: Int
        /// File channels.
        var channels: Int
        /// File name extension.
        var ext: String
        /// Expected `formatName`.
        var formatName: String
        /// Max abs difference to the resampled original for lossless codecs; nil for lossy ones (correlation instead).
        var tolerance: Float?
    }

    /// Major | subtype as Int32.
    static func fmt(_ major: Int, _ sub: Int) -> Int32 { Int32(major | sub) }

    /// The format matrix: every common PCM/float WAV subtype, FLAC, Ogg Vorbis and MP3, mono and stereo, many rates.
    static let cases: [Case] = [
        Case(label: "WAV u8 8k mono", format: fmt(SF_FORMAT_WAV, SF_FORMAT_PCM_U8), rate: 8000, channels: 1,
             ext: "wav", formatName: "WAV unsigned 8-bit PCM", tolerance: 0.02),
        Case(label: "WAV 16 16k stereo", format: fmt(SF_FORMAT_WAV, SF_FORMAT_PCM_16), rate: 16000, channels: 2,
             ext: "wav", formatName: "WAV 16-bit PCM", tolerance: 1e-4),
        Case(label: "WAV 24 22.05k mono", format: fmt(SF_FORMAT_WAV, SF_FORMAT_PCM_24), rate: 22050, channels: 1,
             ext: "wav", formatName: "WAV 24-bit PCM", tolerance: 1e-6),
        Case(label: "WAV 32 44.1k stereo", format: fmt(SF_FORMAT_WAV, SF_FORMAT_PCM_32), rate: 44100, channels: 2,
             ext: "wav", formatName: "WAV 32-bit PCM", tolerance: 1e-6),
        Case(label: "WAV float 48k stereo", format: fmt(SF_FORMAT_WAV, SF_FORMAT_FLOAT), rate: 48000, channels: 2,
             ext: "wav", formatName: "WAV 32-bit float", tolerance: 0),
        Case(label: "WAV double 32k mono", format: fmt(SF_FORMAT_WAV, SF_FORMAT_DOUBLE), rate: 32000, channels: 1,
             ext: "wav", formatName: "WAV 64-bit float", tolerance: 0),
        Case(label: "WAV 16 32k stereo", format: fmt(SF_FORMAT_WAV, SF_FORMAT_PCM_16), rate: 32000, channels: 2,
             ext: "wav", formatName: "WAV 16-bit PCM", tolerance: 1e-4),
        Case(label: "FLAC 16 44.1k stereo", format: fmt(SF_FORMAT_FLAC, SF_FORMAT_PCM_16), rate: 44100, channels: 2,
             ext: "flac", formatName: "FLAC 16-bit", tolerance: 1e-4),
        Case(label: "FLAC 24 48k mono", format: fmt(SF_FORMAT_FLAC, SF_FORMAT_PCM_24), rate: 48000, channels: 1,
             ext: "flac", formatName: "FLAC 24-bit", tolerance: 1e-6),
        Case(label: "FLAC 16 8k mono", format: fmt(SF_FORMAT_FLAC, SF_FORMAT_PCM_16), rate: 8000, channels: 1,
             ext: "flac", formatName: "FLAC 16-bit", tolerance: 1e-4),
        Case(label: "OGG Vorbis 44.1k stereo", format: fmt(SF_FORMAT_OGG, SF_FORMAT_VORBIS), rate: 44100, channels: 2,
             ext: "ogg", formatName: "OGG Vorbis", tolerance: nil),
        Case(label: "OGG Vorbis 22.05k mono", format: fmt(SF_FORMAT_OGG, SF_FORMAT_VORBIS), rate: 22050, channels: 1,
             ext: "ogg", formatName: "OGG Vorbis", tolerance: nil),
        Case(label: "MP3 44.1k stereo", format: fmt(SF_FORMAT_MPEG, SF_FORMAT_MPEG_LAYER_III), rate: 44100, channels: 2,
             ext: "mp3", formatName: "MP3", tolerance: nil),
        Case(label: "MP3 16k mono", format: fmt(SF_FORMAT_MPEG, SF_FORMAT_MPEG_LAYER_III), rate: 16000, channels: 1,
             ext: "mp3", formatName: "MP3", tolerance: nil),
        Case(label: "MP3 48k mono", format: fmt(SF_FORMAT_MPEG, SF_FORMAT_MPEG_LAYER_III), rate: 48000, channels: 1,
             ext: "mp3", formatName: "MP3", tolerance: nil),
    ]

    /// Writes each case (1 s plus an odd number of frames), decodes it and compares with the resampled original.
    func testEveryCommonFormatDecodes() throws {
        let dir = try makeTemporaryDirectory("eartag-audio-formats")
        defer { try? FileManager.default.removeItem(at: dir) }
        for (i, c) in Self.cases.enumerated() {
            let frames = c.rate + 123 + i
            let path = dir.appendingPathComponent("case\(i).\(c.ext)").path
            let noise: Float = c.tolerance == nil ? 0.002 : 0.02   // lossy codecs drop noise; keep it small there
            let signal = Fixtures.signal(frames: frames, channels: c.channels, rate: c.rate, noise: noise, seed: UInt64(i + 1))
            try Fixtures.write(signal, channels: c.channels, rate: c.rate, format: c.format, to: path)

            let audio: DecodedAudio
            do { audio = try loadAudio(path: path) } catch {
                XCTFail("\(c.label): \(error)"); continue
            }
            let expected = try Resampler.resample(downmixToMono(signal, channels: c.channels), from: c.rate, to: 32000)
            XCTAssertEqual(audio.sampleRate, 32000, c.label)
            XCTAssertEqual(audio.sourceSampleRate, c.rate, c.label)
            XCTAssertEqual(audio.sourceChannels, c.channels, c.label)
            XCTAssertEqual(audio.sourceFrames, frames, c.label)
            XCTAssertEqual(audio.formatName, c.formatName, c.label)
            XCTAssertEqual(audio.samples.count, Resampler.outputLength(inputLength: frames, from: c.rate, to: 32000),
                           c.label)
            XCTAssertEqual(audio.samples.count, expected.count, c.label)
            guard audio.samples.count == expected.count else { continue }
            if let tol = c.tolerance {
                let d = maxAbsDifference(audio.samples, expected)
                XCTAssertLessThanOrEqual(d, tol, "\(c.label): max abs difference \(d)")
                print("\(c.label): \(audio.samples.count) samples, max abs difference \(d)")
            } else {
                // Lossy: compare away from the edges, where codec priming and filter tails live.
                let lo = 1000, hi = expected.count - 1000
                let r = Fixtures.correlation(Array(audio.samples[lo..<hi]), Array(expected[lo..<hi]))
                XCTAssertGreaterThan(r, 0.999, "\(c.label): correlation \(r)")
                print("\(c.label): \(audio.samples.count) samples, correlation \(r)")
            }
        }
    }

    /// Stereo with different channels averages to exactly (L + R) / 2 in float32 (32 kHz: no resampling).
    func testStereoAveragesExactlyToMono() throws {
        let dir = try makeTemporaryDirectory("eartag-audio-stereo")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("stereo.wav").path
        let frames = 32000 + 77
        let signal = Fixtures.signal(frames: frames, channels: 2, rate: 32000, noise: 0.3, seed: 42)
        try Fixtures.write(signal, channels: 2, rate: 32000,
                           format: FormatTests.fmt(SF_FORMAT_WAV, SF_FORMAT_FLOAT), to: path)
        let audio = try loadAudio(path: path)
        XCTAssertEqual(audio.samples.count, frames)
        var differing = 0
        for f in 0..<frames {
            let l = signal[2 * f], r = signal[2 * f + 1]
            if l != r { differing += 1 }
            XCTAssertEqual(audio.samples[f], (l + r) / 2, "frame \(f)")
            if audio.samples[f] != (l + r) / 2 { break }
        }
        XCTAssertGreaterThan(differing, frames / 2, "the channels must really differ")
    }

    /// Three channels: sequential float32 sum then division by 3, as numpy's mean over fewer than 8 channels.
    func testThreeChannelMeanIsSequentialFloatSum() throws {
        let dir = try makeTemporaryDirectory("eartag-audio-3ch")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("three.wav").path
        let frames = 4000
        let signal = Fixtures.signal(frames: frames, channels: 3, rate: 32000, noise: 0.3, seed: 7)
        try Fixtures.write(signal, channels: 3, rate: 32000,
                           format: FormatTests.fmt(SF_FORMAT_WAV, SF_FORMAT_FLOAT), to: path)
        let audio = try loadAudio(path: path)
        XCTAssertEqual(audio.sourceChannels, 3)
        let expected = (0..<frames).map { f -> Float in
            var s: Float = 0
            s += signal[3 * f]; s += signal[3 * f + 1]; s += signal[3 * f + 2]
            return s / 3
        }
        XCTAssertEqual(maxAbsDifference(audio.samples, expected), 0)
    }

    /// Resampler lengths follow librosa: ceil(n * to / from), shorter soxr output zero-padded.
    func testResamplerLengthsFollowLibrosa() throws {
        let x = Fixtures.signal(frames: 1001, channels: 1, rate: 48000)
        XCTAssertEqual(try Resampler.resample(x, from: 48000, to: 32000).count, 668)  // ceil(667.33)
        XCTAssertEqual(try Resampler.resample(Array(x[0..<5]), from: 48000, to: 32000).count, 4)
        XCTAssertEqual(try Resampler.resample(x, from: 32000, to: 32000), x)
        XCTAssertEqual(try Resampler.resample([], from: 44100, to: 32000), [])
        XCTAssertThrowsError(try Resampler.resample(x, from: 0, to: 32000))
    }

    /// The in-memory path (sf_open_virtual) decodes FLAC the same as the file path.
    func testMemoryDecodeMatchesFileForFLAC() throws {
        let dir = try makeTemporaryDirectory("eartag-audio-mem")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("m.flac").path
        let signal = Fixtures.signal(frames: 20000, channels: 2, rate: 44100)
        try Fixtures.write(signal, channels: 2, rate: 44100,
                           format: FormatTests.fmt(SF_FORMAT_FLAC, SF_FORMAT_PCM_16), to: path)
        let bytes = [UInt8](try XCTUnwrap(FileManager.default.contents(atPath: path)))
        XCTAssertEqual(try loadAudio(bytes: bytes, name: "<stdin>"), try loadAudio(path: path))
    }
}
