// StreamResampler: chunked soxr streaming against the oneshot (librosa-equivalent) resampler.
import XCTest
import CSoxr
import EarTagTestSupport
@testable import EarTagAudio

/// Streaming resampler parity with `Resampler.resample` and raw `soxr_oneshot`.
final class StreamResamplerTests: XCTestCase {
    /// Streams `x` through a fresh resampler in chunks cycling through `chunks`, then flushes; the concatenation.
    static func stream(_ x: [Float], from: Int, to: Int, chunks: [Int], maxInputChunk: Int? = nil,
                       using existing: StreamResampler? = nil) throws -> [Float] {
        let r = try existing ?? StreamResampler(from: from, to: to, maxInputChunk: maxInputChunk ?? chunks.max()!)
        var out = [Float]()
        out.reserveCapacity(Int(Double(x.count) * Double(to) / Double(from)) + 1024)
        x.withUnsafeBufferPointer { all in
            var offset = 0
            var k = 0
            while offset < all.count {
                let n = min(chunks[k % chunks.count], all.count - offset)
                r.process(UnsafeBufferPointer(rebasing: all[offset..<offset + n])) { out.append(contentsOf: $0) }
                offset += n
                k += 1
            }
        }
        r.flush { out.append(contentsOf: $0) }
        return out
    }

    /// Raw soxr_oneshot output at SOXR_HQ (before librosa's fix_length), with its produced count.
    static func rawOneshot(_ x: [Float], from: Int, to: Int) throws -> [Float] {
        var out = [Float](repeating: 0, count: Int(Double(x.count) * Double(to) / Double(from)) + 64)
        let produced = try x.withUnsafeBufferPointer { i in
            try out.withUnsafeMutableBufferPointer { o in
                try Soxr.oneshot(inputRate: Double(from), outputRate: Double(to), channels: 1, input: i, output: o,
                                 io: Soxr.ioSpec(input: SOXR_FLOAT32_I, output: SOXR_FLOAT32_I),
                                 quality: Soxr.qualitySpec(recipe: SOXR_HQ)).produced
            }
        }
        return Array(out.prefix(produced))
    }

    /// The 44.1 kHz reference clip decoded at its native rate (mono, libsndfile float).
    static func metroNative() throws -> [Float] {
        let file = try SoundFile(readingPath: try Reference.path("audio/metro_station-paris.wav"))
        defer { file.close() }
        XCTAssertEqual(file.info.sampleRate, 44100)
        XCTAssertEqual(file.info.channels, 1)
        var x = [Float](repeating: 0, count: Int(file.info.frames))
        let n = x.withUnsafeMutableBufferPointer { file.readFrames(into: $0, frames: $0.count) }
        XCTAssertEqual(n, x.count)
        return x
    }

    /// Compares a streamed result with librosa's oneshot: returns (max |diff| over the common length, length diff).
    static func compare(_ streamed: [Float], _ oneshot: [Float]) -> (maxDiff: Float, lengthDiff: Int) {
        let n = min(streamed.count, oneshot.count)
        return (maxAbsDifference(Array(streamed.prefix(n)), Array(oneshot.prefix(n))), streamed.count - oneshot.count)
    }

    /// metro 44.1 -> 32 kHz streamed in chunks of many sizes equals the oneshot resampler sample for sample.
    func testMetroStreamingMatchesOneshot() throws {
        let x = try Self.metroNative()
        let librosa = try Resampler.resample(x, from: 44100, to: 32000)
        let raw = try Self.rawOneshot(x, from: 44100, to: 32000)
        XCTAssertEqual(librosa.count, 320000)
        print("metro raw soxr_oneshot produced \(raw.count) samples, librosa length \(librosa.count)")
        let patterns: [[Int]] = [[441], [4410], [1000], [1023], [7, 4097, 1, 333], [44100], [x.count]]
        for chunks in patterns {
            let s = try Self.stream(x, from: 44100, to: 32000, chunks: chunks)
            let (d, l) = Self.compare(s, librosa)
            let (dRaw, lRaw) = Self.compare(s, raw)
            print("metro chunks \(chunks): streamed \(s.count), max|diff| vs librosa \(d), length diff \(l);"
                  + " vs raw oneshot \(dRaw), length diff \(lRaw)")
            XCTAssertEqual(d, 0, "chunks \(chunks)")
            XCTAssertEqual(s.count, librosa.count, "chunks \(chunks)")
            XCTAssertEqual(s, raw, "chunks \(chunks)")
        }
        // A small output buffer (maxInputChunk far below the chunk size) only means more soxr calls.
        let small = try Self.stream(x, from: 44100, to: 32000, chunks: [4410], maxInputChunk: 16)
        XCTAssertEqual(Self.compare(small, librosa).maxDiff, 0)
        XCTAssertEqual(small.count, librosa.count)
    }

    /// 48, 16 and 8 kHz -> 32 kHz streamed in odd chunks against the oneshot resampler.
    func testOtherRatesMatchOneshot() throws {
        for from in [48000, 16000, 8000, 22050, 96000] {
            let x = Fixtures.signal(frames: from * 3 + 17, channels: 1, rate: from)
            let librosa = try Resampler.resample(x, from: from, to: 32000)
            let raw = try Self.rawOneshot(x, from: from, to: 32000)
            for chunks in [[from / 50], [1000], [3, 997, 129]] {
                let s = try Self.stream(x, from: from, to: 32000, chunks: chunks)
                let (d, l) = Self.compare(s, librosa)
                print("\(from) Hz chunks \(chunks): streamed \(s.count), oneshot raw \(raw.count), librosa"
                      + " \(librosa.count); max|diff| \(d), length diff vs librosa \(l)")
                // Streaming equals raw soxr_oneshot exactly (samples and count); librosa's fix_length may add
                // a zero tail (48 kHz: soxr gives 96011, ceil(n * 2/3) = 96012) or cut.
                XCTAssertEqual(s, raw, "\(from) Hz chunks \(chunks)")
                XCTAssertEqual(d, 0, "\(from) Hz chunks \(chunks)")
                XCTAssertLessThanOrEqual(abs(l), 1, "\(from) Hz chunks \(chunks)")
                if l < 0 { XCTAssertTrue(librosa.suffix(-l).allSatisfy { $0 == 0 }) }
            }
        }
    }

    /// Equal rates pass the very same buffer through; flush emits nothing.
    func testPassThrough() throws {
        let r = try StreamResampler(from: 32000, to: 32000, maxInputChunk: 640)
        XCTAssertTrue(r.isPassThrough)
        let x = Fixtures.signal(frames: 1000, channels: 1, rate: 32000)
        var out = [Float]()
        x.withUnsafeBufferPointer { buf in
            r.process(buf) { emitted in
                XCTAssertEqual(emitted.baseAddress, buf.baseAddress)
                out.append(contentsOf: emitted)
            }
        }
        var flushed = 0
        r.flush { flushed += $0.count }
        XCTAssertEqual(out, x)
        XCTAssertEqual(flushed, 0)
    }

    /// After flush the resampler starts a fresh stream: a second pass equals the first.
    func testReuseAfterFlush() throws {
        let x = Fixtures.signal(frames: 48000, channels: 1, rate: 48000)
        let r = try StreamResampler(from: 48000, to: 32000, maxInputChunk: 960)
        let first = try Self.stream(x, from: 48000, to: 32000, chunks: [960], using: r)
        let second = try Self.stream(x, from: 48000, to: 32000, chunks: [960], using: r)
        XCTAssertEqual(first.count, second.count)
        XCTAssertEqual(maxAbsDifference(first, second), 0)
    }

    /// Empty chunks and an empty stream are harmless; absurd rates are refused.
    func testEdgeCases() throws {
        let r = try StreamResampler(from: 44100, to: 32000, maxInputChunk: 100)
        var n = 0
        r.process(UnsafeBufferPointer(start: nil, count: 0)) { n += $0.count }
        r.flush { n += $0.count }
        XCTAssertEqual(n, 0)
        XCTAssertThrowsError(try StreamResampler(from: 0, to: 32000, maxInputChunk: 100))
        XCTAssertThrowsError(try StreamResampler(from: 44100, to: -1, maxInputChunk: 100))
        XCTAssertThrowsError(try StreamResampler(from: 44100, to: 32000, maxInputChunk: 0))
    }
}
