// WAV files for CLI tests: seeded synthetic clips, and pieces cut from 16-bit PCM recordings.
import Foundation
import XCTest

extension CLITestCase {
    /// Writes a 16-bit mono 32 kHz WAV of `seconds` of seeded noise plus a tone (a different sound per seed).
    func writeWAV(_ url: URL, seconds: Double, seed: UInt64) throws {
        let n = Int(seconds * 32000)
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        var samples: [Int16] = []
        samples.reserveCapacity(n)
        for i in 0..<n {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            let noise = Double(state % 2001) / 1000 - 1
            let tone = sin(2 * Double.pi * Double(100 + 37 * seed) * Double(i) / 32000)
            samples.append(Int16(clamping: Int(8000 * (0.3 * noise + tone))))
        }
        try writePCM16(url, samples: samples, rate: 32000, channels: 1)
    }

    /// Writes interleaved 16-bit PCM samples as a WAV file (folders created as needed).
    func writePCM16(_ url: URL, samples: [Int16], rate: Int, channels: Int) throws {
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        /// A little-endian integer's bytes.
        func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.littleEndian, Array.init) }
        var pcm: [UInt8] = []
        pcm.reserveCapacity(2 * samples.count)
        for s in samples { pcm += le(s) }
        var b = Array("RIFF".utf8) + le(UInt32(36 + pcm.count)) + Array("WAVE".utf8)
        b += Array("fmt ".utf8) + le(UInt32(16)) + le(UInt16(1)) + le(UInt16(channels)) + le(UInt32(rate))
        b += le(UInt32(rate * channels * 2)) + le(UInt16(channels * 2)) + le(UInt16(16))
        b += Array("data".utf8) + le(UInt32(pcm.count)) + pcm
        try Data(b).write(to: url)
    }

    /// Reads a 16- or 24-bit PCM WAV file as 16-bit interleaved samples (24-bit keeps its top 16 bits), its rate and
    /// channel count; other formats throw.
    func readPCM16(_ path: String) throws -> (samples: [Int16], rate: Int, channels: Int) {
        let b = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        /// The little-endian integer of `n` bytes at `o`.
        func u(_ o: Int, _ n: Int) -> Int { (0..<n).reduce(0) { $0 | Int(b[o + $1]) << (8 * $1) } }
        guard b.count >= 12, b[0..<4].elementsEqual("RIFF".utf8), b[8..<12].elementsEqual("WAVE".utf8) else {
            throw WAVReadError(message: "\(path) is not a RIFF/WAVE file")
        }
        var o = 12, rate = 0, channels = 0, bits = 0
        while o + 8 <= b.count {
            let id = String(decoding: b[o..<o + 4], as: UTF8.self), size = u(o + 4, 4)
            if id == "fmt " { channels = u(o + 10, 2); rate = u(o + 12, 4); bits = u(o + 22, 2) }
            if id == "data" {
                guard bits == 16 || bits == 24, channels > 0 else {
                    throw WAVReadError(message: "\(path): \(bits)-bit, not 16- or 24-bit PCM")
                }
                let width = bits / 8, n = min(size, b.count - o - 8) / width
                let samples = (0..<n).map { Int16(truncatingIfNeeded: u(o + 8 + width * $0 + width - 2, 2)) }
                return (samples, rate, channels)
            }
            o += 8 + size + (size & 1)
        }
        throw WAVReadError(message: "\(path): no data chunk")
    }
}

/// A WAV file the tests cannot cut.
struct WAVReadError: Error, CustomStringConvertible {
    var message: String
    /// The message.
    var description: String { message }
}
