// The `audio` fuzz target's inputs replayed (Fuzz/audio.swift: byte 0 picks the target rate and stream mode, the rest
// is the file) and the decoding bounds it led to (docs/robustness.md, finding 13).
import XCTest
@testable import EarTagAudio
import EarTagTestSupport

/// Audio files from the `audio` fuzz target and the decoding bounds it led to.
final class AudioFileFuzzTests: XCTestCase {
    /// Decodes one fuzz input exactly as the target does; nil when loadAudio threw.
    static func decode(_ input: [UInt8]) -> DecodedAudio? {
        guard input.count >= 2 else { return nil }
        let mode = Int(input[0])
        return try? loadAudio(bytes: Array(input.dropFirst()), name: "<fuzz>", targetRate: [32000, 16000, 8000, 48000][mode & 3],
                              maxDurationSeconds: 60, stream: mode & 4 != 0)
    }

    /// Every input decodes to finite samples within the duration bound, or throws; every seed format decodes.
    func testAudioFuzzInputs() {
        let inputs = FuzzInputs.files("audio")
        XCTAssertFalse(inputs.isEmpty)
        for (path, bytes) in inputs {
            guard let audio = Self.decode(bytes) else { continue }
            XCTAssert(audio.samples.allSatisfy(\.isFinite), path)
            XCTAssertLessThanOrEqual(audio.durationSeconds, 61, path)
        }
        for seed in ["s16_mono_8k_wav", "f32_stereo_44k_wav", "u8_mono_48k_wav", "s24_stereo_48k_wav", "ulaw_8k_wav",
                     "s16_mono_16k_flac", "tone_ogg", "s16_stereo_44k_aiff", "s16_mono_8k_au", "stream_placeholder_sizes_wav"] {
            let audio = Self.decode(FuzzInputs.file("corpus/audio/\(seed)") ?? [])
            XCTAssertGreaterThan(audio?.samples.count ?? 0, 0, seed)
        }
    }

    /// A float WAV holding NaN, +-inf and +-1e30 decodes to finite samples clamped to +-1024, like the stdin decoder
    /// (before: NaN and inf went on to the frontend and every score of the clip was NaN).
    func testNonFiniteFloatSamplesAreSanitised() throws {
        let bytes = try XCTUnwrap(FuzzInputs.file("regressions/audio/float_nan_inf_huge.wav"))
        let audio = try loadAudio(bytes: Array(bytes.dropFirst()), name: "nan.wav", targetRate: 8000)
        XCTAssertEqual(audio.sourceFrames, 64)
        XCTAssert(audio.samples.allSatisfy { $0.isFinite && abs($0) <= PCMStreamDecoder.floatLimit })
        XCTAssert(audio.samples.contains { $0 != 0 })
    }

    /// A file at 1 Hz or above 768 kHz is refused like a stdin stream (a few bytes at 1 Hz would resample into hours).
    func testSampleRateOutsideTheStdinRangeIsRefused() throws {
        for rate: UInt32 in [1, 999, 768_001] {
            var wav = Array("RIFF".utf8) + le(UInt32(36 + 8)) + Array("WAVEfmt ".utf8) + le(UInt32(16))
            wav += le(UInt16(1)) + le(UInt16(1)) + le(rate) + le(rate * 2) + le(UInt16(2)) + le(UInt16(16))
            wav += Array("data".utf8) + le(UInt32(8)) + [1, 0, 2, 0, 3, 0, 4, 0]
            XCTAssertThrowsError(try loadAudio(bytes: wav, name: "slow.wav")) { error in
                guard case AudioError.invalidParameters(let file, let detail) = error else { return XCTFail("\(error)") }
                XCTAssertEqual(file, "slow.wav")
                XCTAssert(detail.contains("\(rate) Hz"), detail)
            }
        }
    }

    /// Little-endian bytes of an integer.
    func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { (0..<(T.bitWidth / 8)).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
}
