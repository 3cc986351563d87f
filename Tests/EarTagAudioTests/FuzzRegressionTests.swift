import XCTest
@testable import EarTagAudio
import EarTagTestSupport

/// Replays the `pcm_stream` fuzz seeds and regressions through the stdin decoder exactly as the fuzz target does:
/// byte 0 picks the declared format, byte 1 the push size, WAV detection and block size (docs/robustness.md).
final class PCMStreamFuzzRegressionTests: XCTestCase {
    /// Blocks with a non-finite sample seen by `decode`.
    nonisolated(unsafe) static var nonFinite = 0

    /// Decodes one fuzz input; returns the samples emitted, or nil when the decoder threw.
    static func decode(_ input: [UInt8]) -> Int? {
        guard input.count >= 2 else { return 0 }
        let a = Int(input[0]), b = Int(input[1])
        let formats = PCMSampleFormat.allCases
        let format = PCMStreamFormat(sampleRate: [16000, 32000, 44100, 48000][a & 3], channels: 1 + (a >> 2) & 3,
                                     sampleFormat: formats[(a >> 4) % formats.count])
        let chunk = 1 + (b & 0x3F)
        guard let decoder = try? PCMStreamDecoder(name: "<fuzz>", format: format, detectWAV: b & 0x40 == 0,
                                                  blockFrames: b & 0x80 == 0 ? 4096 : 7) else { return nil }
        var samples = 0
        /// Counts samples; a non-finite one (the decoder promises finite samples) counts as a failure.
        func emit(_ block: UnsafeBufferPointer<Float>) {
            samples += block.count
            if block.contains(where: { !$0.isFinite }) { nonFinite += 1 }
        }
        let body = Array(input[2...])
        do {
            try body.withUnsafeBytes { raw in
                var p = 0
                while p < raw.count {
                    let n = min(chunk, raw.count - p)
                    try decoder.push(UnsafeRawBufferPointer(rebasing: raw[p..<(p + n)]), emit: emit)
                    p += n
                }
            }
            try decoder.finish(emit: emit)
        } catch { return nil }
        return samples
    }

    /// Checks: every input decodes or throws; the valid WAV and raw seeds yield samples.
    func testPCMStreamInputs() {
        let inputs = FuzzInputs.files("pcm_stream")
        XCTAssertFalse(inputs.isEmpty)
        Self.nonFinite = 0
        for (_, bytes) in inputs { _ = Self.decode(bytes) }
        XCTAssertEqual(Self.nonFinite, 0, "non-finite samples")
        for name in ["wav_s16_mono", "raw_s16"] {
            let n = Self.decode(FuzzInputs.file("corpus/pcm_stream/\(name)") ?? [])
            XCTAssertGreaterThan(n ?? 0, 0, name)
        }
    }
}
