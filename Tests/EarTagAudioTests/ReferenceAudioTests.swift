// Parity of loadAudio with librosa.load on the reference recordings.
import XCTest
import EarTagTestSupport
@testable import EarTagAudio

/// Reference-file checks: the golden 32 kHz resampling and the untouched 32 kHz clips.
final class ReferenceAudioTests: XCTestCase {
    /// metro (44.1 kHz, 24-bit) resampled by soxr HQ equals the golden librosa output bit for bit.
    func testMetroResamplingMatchesGoldenExactly() throws {
        let original = try Reference.path("audio/metro_station-paris.wav")
        let goldenPath = try Reference.path("golden/metro_station-paris_32k.wav")
        let audio = try loadAudio(path: original)
        let golden = try loadAudio(path: goldenPath)
        XCTAssertEqual(golden.sourceSampleRate, 32000)
        XCTAssertEqual(audio.sourceSampleRate, 44100)
        XCTAssertEqual(audio.sourceChannels, 1)
        XCTAssertEqual(audio.sourceFrames, 441000)
        XCTAssertEqual(audio.formatName, "WAV 24-bit PCM")
        XCTAssertEqual(audio.sampleRate, 32000)
        XCTAssertEqual(audio.samples.count, golden.samples.count)
        XCTAssertEqual(audio.samples.count, 320000)
        XCTAssertEqual(maxAbsDifference(audio.samples, golden.samples), 0)
        XCTAssertEqual(audio.durationSeconds, 10, accuracy: 1e-12)
    }

    /// The 32 kHz 16-bit clips come through without resampling: exactly the libsndfile float samples.
    func testThirtyTwoKilohertzClipsPassThrough() throws {
        for name in ["speech", "music", "typing"] {
            let path = try Reference.path("audio/\(name).wav")
            let audio = try loadAudio(path: path)
            XCTAssertEqual(audio.sourceSampleRate, 32000, name)
            XCTAssertEqual(audio.samples.count, 320000, name)
            XCTAssertEqual(audio.formatName, "WAV 16-bit PCM", name)
            let file = try SoundFile(readingPath: path)
            var raw = [Float](repeating: 0, count: Int(file.info.frames))
            let n = raw.withUnsafeMutableBufferPointer { file.readFrames(into: $0, frames: $0.count) }
            XCTAssertEqual(n, 320000, name)
            XCTAssertEqual(maxAbsDifference(audio.samples, raw), 0, name)
            // 16-bit PCM normalised by 1/32768: every sample is k/32768.
            XCTAssertTrue(audio.samples.allSatisfy { ($0 * 32768).rounded() == $0 * 32768 }, name)
        }
    }

    /// The same file decoded from memory (sf_open_virtual) equals the path decode.
    func testMemoryDecodeEqualsPathDecode() throws {
        let path = try Reference.path("audio/metro_station-paris.wav")
        let bytes = try XCTUnwrap(FileManager.default.contents(atPath: path))
        let fromMemory = try loadAudio(bytes: [UInt8](bytes), name: "<stdin>")
        let fromPath = try loadAudio(path: path)
        XCTAssertEqual(fromMemory, fromPath)
    }
}
