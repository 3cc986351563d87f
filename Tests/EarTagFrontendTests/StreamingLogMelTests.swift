// Tests of StreamingLogMel: every window's mel equals the batch mel of its samples (reference clips and synthetic
// signals, several window/hop sizes, odd push chunkings), per-hop cost follows the hop, partial windows, validation.
import XCTest
import Foundation
import EarTagModel
import EarTagAudio
import EarTagTestSupport
@testable import EarTagFrontend

/// The batch frontend used as the reference.
private let batchFrontend: LogMelFrontend = {
    do { return try LogMelFrontend() } catch { fatalError("cannot build the frontend: \(error)") }
}()

/// Deterministic synthetic audio: a chirp-like tone, xorshift noise and a few silent stretches.
private func synthetic(_ count: Int, seed: UInt64 = 0x0123_4567_89AB_CDEF) -> [Float] {
    var state = seed
    return (0..<count).map { i in
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        let noise = Float(state >> 40) / Float(1 << 24) - 0.5
        let t = Double(i) / 32000
        let tone = Float(0.3 * sin(2 * Double.pi * (200 + 300 * t) * t))
        let gate: Float = (i / 7000) % 5 == 3 ? 0 : 1
        return gate * (tone + 0.1 * noise)
    }
}

/// One emitted window: where it lies and its mel.
private struct Emitted {
    var info: WindowInfo
    var mel: [Float]
}

/// Streams `signal` through a fresh StreamingLogMel in chunks of `chunk` samples, draining windows after each push.
private func stream(_ signal: [Float], window: Int, hop: Int, chunk: Int, capacity: Int? = nil, keep: Bool = true,
                    perWindowCost: ((Int) -> Void)? = nil) throws -> [Emitted] {
    let s = try StreamingLogMel(windowSamples: window, hopSamples: hop, bufferCapacity: capacity)
    var mel = [Float](repeating: .nan, count: s.bins * s.framesPerWindow)
    var out: [Emitted] = []
    var offset = 0
    while offset < signal.count {
        let k = min(chunk, signal.count - offset)
        signal.withUnsafeBufferPointer { s.push(UnsafeBufferPointer(rebasing: $0[offset..<offset + k])) }
        offset += k
        while true {
            let before = s.framesComputed
            guard let info = mel.withUnsafeMutableBufferPointer({ s.nextWindow(into: $0) }) else { break }
            perWindowCost?(s.framesComputed - before)
            out.append(Emitted(info: info, mel: keep ? mel : []))
        }
    }
    return out
}

/// Parity, cost, partial-window and validation tests of `StreamingLogMel`.
final class StreamingLogMelTests: XCTestCase {
    /// The four reference clips (10 s each at 32 kHz) decoded with EarTagAudio and concatenated (40 s).
    private func referenceStream() throws -> [Float] {
        var all: [Float] = []
        for clip in ["audio/speech.wav", "audio/music.wav", "audio/typing.wav", "golden/metro_station-paris_32k.wav"] {
            let audio = try loadAudio(path: Reference.path(clip), targetRate: 32000)
            all += audio.samples
        }
        return all
    }

    /// Checks the windows' positions and that each mel equals the batch mel of its samples; returns the max |diff|.
    @discardableResult
    private func assertWindowsMatchBatch(_ windows: [Emitted], signal: [Float], window: Int, hop: Int,
                                         batch cache: inout [Int64: [Float]], tolerance: Float = 1e-5,
                                         file: StaticString = #filePath, line: UInt = #line) throws -> Float {
        let expectedCount = signal.count >= window ? (signal.count - window) / hop + 1 : 0
        XCTAssertEqual(windows.count, expectedCount, "window count", file: file, line: line)
        var worst: Float = 0
        for (n, w) in windows.enumerated() {
            XCTAssertEqual(w.info.index, n, file: file, line: line)
            XCTAssertEqual(w.info.start, Int64(n * hop), file: file, line: line)
            XCTAssertEqual(w.info.end, Int64(n * hop + window), file: file, line: line)
            XCTAssertFalse(w.info.isPartial, file: file, line: line)
            let reference: [Float]
            if let cached = cache[w.info.start] {
                reference = cached
            } else {
                reference = try batchFrontend.compute(Array(signal[Int(w.info.start)..<Int(w.info.end)])).data
                cache[w.info.start] = reference
            }
            let diff = maxAbsDifference(w.mel, reference)
            worst = diff.isNaN ? .nan : max(worst, diff)
            if !(diff <= tolerance) {
                XCTFail("window \(n) at \(w.info.start): max |diff| \(diff)", file: file, line: line)
                break
            }
        }
        return worst
    }

    /// Reference clips, W 10 s, H 1 s, pushed in chunks of 1, 317, 4000 and all at once: every window equals the
    /// batch mel, bitwise (frame pairs line up with the batch path's).
    func testReferenceClipsTenSecondWindowsOneSecondHop() throws {
        let signal = try referenceStream()
        XCTAssertEqual(signal.count, 1_280_000)
        var cache: [Int64: [Float]] = [:]
        for chunk in [1, 317, 4000, signal.count] {
            let windows = try stream(signal, window: 320_000, hop: 32_000, chunk: chunk,
                                     capacity: chunk == signal.count ? signal.count : nil)
            let diff = try assertWindowsMatchBatch(windows, signal: signal, window: 320_000, hop: 32_000, batch: &cache)
            print("stream W 10 s H 1 s chunk \(chunk): \(windows.count) windows, max |diff| vs batch = \(diff)")
            XCTAssertEqual(diff, 0, "frame pairs should line up with the batch path's")
        }
    }

    /// Reference clips, W 5 s, H 0.5 s (50 frames), chunks 317 and 4000.
    func testReferenceClipsFiveSecondWindowsHalfSecondHop() throws {
        let signal = try referenceStream()
        var cache: [Int64: [Float]] = [:]
        for chunk in [317, 4000] {
            let windows = try stream(signal, window: 160_000, hop: 16_000, chunk: chunk)
            let diff = try assertWindowsMatchBatch(windows, signal: signal, window: 160_000, hop: 16_000, batch: &cache)
            print("stream W 5 s H 0.5 s chunk \(chunk): \(windows.count) windows, max |diff| vs batch = \(diff)")
            XCTAssertEqual(diff, 0, "frame pairs should line up with the batch path's")
        }
    }

    /// Speech clip with an odd window (2 s + 123 samples) and the smallest hop (one frame, 320 samples): windows
    /// start on odd frames half the time (served by the second, odd-paired ring), still bitwise equal.
    func testOddWindowOneFrameHop() throws {
        let speech = try loadAudio(path: Reference.path("audio/speech.wav"), targetRate: 32000).samples
        let signal = Array(speech[100_000..<196_000])
        var cache: [Int64: [Float]] = [:]
        for chunk in [1, 317, 4000] {
            let windows = try stream(signal, window: 64_123, hop: 320, chunk: chunk)
            let diff = try assertWindowsMatchBatch(windows, signal: signal, window: 64_123, hop: 320, batch: &cache)
            print("stream W 64123 H 320 chunk \(chunk): \(windows.count) windows, max |diff| vs batch = \(diff)")
            XCTAssertEqual(diff, 0, "frame pairs should line up with the batch path's")
        }
    }

    /// Synthetic signal, several odd geometries including odd-frame hops and the smallest window (all edge frames).
    func testSyntheticOddGeometries() throws {
        let signal = synthetic(150_000)
        for (window, hop, chunk) in [(50_001, 960, 317), (48_007, 640, 4000), (514, 320, 1), (1_234, 320, 317),
                                     (32_000, 32_000, 4000), (33_000, 9_600, 1)] {
            var cache: [Int64: [Float]] = [:]
            let windows = try stream(signal, window: window, hop: hop, chunk: chunk)
            let diff = try assertWindowsMatchBatch(windows, signal: signal, window: window, hop: hop, batch: &cache)
            print("stream synthetic W \(window) H \(hop) chunk \(chunk): \(windows.count) windows, max |diff| = \(diff)")
            XCTAssertEqual(diff, 0, "W \(window) H \(hop): frame pairs should line up with the batch path's")
        }
    }

    /// Frames computed per hop follow the hop (hop / 320, twice that for odd-frame hops, plus a few edge frames),
    /// not the window.
    func testFramesComputedPerHopFollowTheHop() throws {
        let signal = synthetic(640_000)
        for (window, hop) in [(320_000, 32_000), (320_000, 16_000), (320_000, 320), (320_000, 960), (160_000, 32_000)] {
            var costs: [Int] = []
            _ = try stream(signal, window: window, hop: hop, chunk: 4000, keep: false) { costs.append($0) }
            let framesPerHop = hop / 320
            // The first window fills ring 0; with odd-frame hops the second window fills ring 1 (odd pairs).
            let steady = costs.dropFirst(framesPerHop % 2 == 1 ? 2 : 1)
            XCTAssertFalse(steady.isEmpty)
            let worst = steady.max() ?? 0
            print("stream W \(window) H \(hop): first window \(costs[0]) frames, then \(steady.min() ?? 0)...\(worst) per hop")
            let ringFrames = framesPerHop % 2 == 1 ? 2 * framesPerHop : framesPerHop
            XCTAssertLessThanOrEqual(worst, ringFrames + 6, "W \(window) H \(hop)")
            XCTAssertGreaterThanOrEqual(steady.min() ?? 0, framesPerHop - 1, "W \(window) H \(hop)")
            XCTAssertLessThanOrEqual(costs[0], 1 + (window - 1) / 320 + 2)
        }
    }

    /// A 3 s stream with a 10 s window: no full window; the final partial window is the batch mel of all 3 s
    /// (1 + 95999 / 320 = 300 frames), once.
    func testFinalPartialWindowForShortStream() throws {
        let signal = synthetic(96_000)
        let s = try StreamingLogMel(windowSamples: 320_000, hopSamples: 32_000)
        var mel = [Float](repeating: .nan, count: s.bins * s.framesPerWindow)
        signal.withUnsafeBufferPointer { s.push($0) }
        XCTAssertNil(mel.withUnsafeMutableBufferPointer { s.nextWindow(into: $0) })
        let info = try XCTUnwrap(mel.withUnsafeMutableBufferPointer { s.finalPartialWindow(into: $0) })
        XCTAssertEqual(info, WindowInfo(index: 0, start: 0, end: 96_000, frames: 300, isPartial: true))
        let reference = try batchFrontend.compute(signal)
        XCTAssertEqual(maxAbsDifference(Array(mel[0..<128 * 300]), reference.data), 0)
        XCTAssertNil(mel.withUnsafeMutableBufferPointer { s.finalPartialWindow(into: $0) }, "returned only once")

        // Too short for the frontend: nothing.
        let tiny = try StreamingLogMel(windowSamples: 320_000, hopSamples: 32_000)
        Array(signal[0..<513]).withUnsafeBufferPointer { tiny.push($0) }
        XCTAssertNil(mel.withUnsafeMutableBufferPointer { tiny.finalPartialWindow(into: $0) })
        Array(signal[513..<514]).withUnsafeBufferPointer { tiny.push($0) }
        XCTAssertEqual(mel.withUnsafeMutableBufferPointer { tiny.finalPartialWindow(into: $0) }?.frames, 2)

        // After a full window was emitted there is no partial one.
        let full = try StreamingLogMel(windowSamples: 64_000, hopSamples: 32_000)
        var fullMel = [Float](repeating: 0, count: full.bins * full.framesPerWindow)
        signal.withUnsafeBufferPointer { full.push(UnsafeBufferPointer(rebasing: $0[0..<70_000])) }
        XCTAssertNil(fullMel.withUnsafeMutableBufferPointer { full.finalPartialWindow(into: $0) },
                     "a full window is pending: use nextWindow")
        XCTAssertNotNil(fullMel.withUnsafeMutableBufferPointer { full.nextWindow(into: $0) })
        XCTAssertNil(fullMel.withUnsafeMutableBufferPointer { full.finalPartialWindow(into: $0) })
    }

    /// Geometry and buffer sizes are validated with clear errors.
    func testValidation() throws {
        func rejects(_ window: Int, _ hop: Int, capacity: Int? = nil, mentioning word: String,
                     file: StaticString = #filePath, line: UInt = #line) {
            XCTAssertThrowsError(try StreamingLogMel(windowSamples: window, hopSamples: hop, bufferCapacity: capacity),
                                 file: file, line: line) { error in
                guard case FrontendError.invalidSettings(let why) = error else {
                    return XCTFail("unexpected error \(error)", file: file, line: line)
                }
                XCTAssertTrue(why.contains(word), "\(why)", file: file, line: line)
            }
        }
        rejects(320_000, 32_001, mentioning: "multiple")
        rejects(320_000, 0, mentioning: "multiple")
        rejects(320_000, -320, mentioning: "multiple")
        rejects(513, 320, mentioning: "at least 514")
        rejects(640, 960, mentioning: "exceed")
        rejects(320_000, 32_000, capacity: 320_000, mentioning: "capacity")
        let ok = try StreamingLogMel(windowSamples: 320_000, hopSamples: 32_000)
        XCTAssertEqual(ok.framesPerWindow, 1000)
        XCTAssertEqual(ok.bins, 128)
        XCTAssertEqual(ok.bufferCapacity, 640_000)
        XCTAssertEqual(ok.freeCapacity, 640_000)
        XCTAssertEqual(try StreamingLogMel(windowSamples: 514, hopSamples: 320).framesPerWindow, 2)
    }
}
