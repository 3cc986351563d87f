// Test fixtures: deterministic signals, files written with libsndfile, hand-made WAV headers.
import Foundation
import CSndFile
@testable import EarTagAudio

/// Builders for the signals and files the audio tests decode.
enum Fixtures {
    /// A deterministic pseudo-random value in [-1, 1) (64-bit LCG), so fixtures are identical on every run.
    struct Noise {
        /// LCG state.
        var state: UInt64
        /// Next value in [-1, 1).
        mutating func next() -> Float {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: state >> 11) - (1 << 52)) / Float(1 << 52)
        }
    }

    /// `frames` x `channels` interleaved test signal at `rate`: per channel a different tone plus a chirp
    /// (so a lag is unambiguous) plus a little noise, peak well below 1 so no codec clips.
    static func signal(frames: Int, channels: Int, rate: Int, noise: Float = 0.02, seed: UInt64 = 1) -> [Float] {
        var rng = Noise(state: seed)
        var out = [Float](repeating: 0, count: frames * channels)
        let tones: [Double] = [440, 660, 550, 330, 880, 990, 220, 770]
        for f in 0..<frames {
            let t = Double(f) / Double(rate)
            let chirp = 0.2 * sin(2 * Double.pi * (200 * t + 900 * t * t))
            for c in 0..<channels {
                let tone = 0.4 * sin(2 * Double.pi * tones[c % tones.count] * t + Double(c))
                out[f * channels + c] = Float(tone + chirp) + noise * rng.next()
            }
        }
        return out
    }

    /// Writes interleaved float frames with libsndfile in the given `SF_FORMAT_*`.
    static func write(_ interleaved: [Float], channels: Int, rate: Int, format: Int32, to path: String) throws {
        let file = try SoundFile(writingPath: path, format: format, channels: channels, sampleRate: rate)
        try file.writeFrames(interleaved)
        file.close()
    }

    /// A canonical 44-byte PCM WAV header declaring `dataBytes` bytes of audio.
    static func wavHeader(dataBytes: UInt32, channels: UInt16 = 1, rate: UInt32 = 8000, bits: UInt16 = 16) -> [UInt8] {
        var h = [UInt8]()
        /// Appends a little-endian integer.
        func le<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { h.append(contentsOf: $0) } }
        h += Array("RIFF".utf8); le(UInt32(truncatingIfNeeded: 36 &+ UInt64(dataBytes)))
        h += Array("WAVE".utf8)
        h += Array("fmt ".utf8); le(UInt32(16)); le(UInt16(1)); le(channels); le(rate)
        let blockAlign = channels &* (bits / 8)
        le(rate &* UInt32(blockAlign)); le(blockAlign); le(bits)
        h += Array("data".utf8); le(dataBytes)
        return h
    }

    /// Writes raw bytes to a file.
    static func writeBytes(_ bytes: [UInt8], to path: String) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    /// Pearson correlation of two equally long arrays.
    static func correlation(_ a: [Float], _ b: [Float]) -> Double {
        precondition(a.count == b.count)
        let n = Double(a.count)
        let ma = a.reduce(0.0) { $0 + Double($1) } / n
        let mb = b.reduce(0.0) { $0 + Double($1) } / n
        var sab = 0.0, saa = 0.0, sbb = 0.0
        for i in a.indices {
            let x = Double(a[i]) - ma, y = Double(b[i]) - mb
            sab += x * y; saa += x * x; sbb += y * y
        }
        return sab / (saa * sbb).squareRoot()
    }
}
