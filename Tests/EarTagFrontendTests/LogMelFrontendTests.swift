// Tests of the log-mel frontend: parity with EfficientAT's golden mels, framing, edge cases, synthetic signals.
import XCTest
import Foundation
import EarTagModel
import EarTagAudio
import EarTagTestSupport
@testable import EarTagFrontend

/// One frontend shared by the tests (default FFTW_ESTIMATE plan).
private let sharedFrontend: LogMelFrontend = {
    do { return try LogMelFrontend() } catch { fatalError("cannot build the frontend: \(error)") }
}()

/// Deterministic pseudo-random noise in [-0.5, 0.5) (xorshift), so tests need no reference files.
private func noise(_ count: Int, seed: UInt64 = 0x9E37_79B9_7F4A_7C15) -> [Float] {
    var state = seed
    return (0..<count).map { _ in
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return Float(state >> 40) / Float(1 << 24) - 0.5
    }
}

/// Parity, framing, edge-case and synthetic tests of `LogMelFrontend`.
final class LogMelFrontendTests: XCTestCase {
    /// Decodes a reference WAV at 32 kHz with EarTagAudio (the reference files are already 32 kHz).
    private func waveform(_ relative: String) throws -> [Float] {
        let audio = try loadAudio(path: Reference.path(relative), targetRate: 32000)
        XCTAssertEqual(audio.sampleRate, 32000)
        return audio.samples
    }

    /// Compares the frontend's output on `wav` with the golden mel `golden`, within 1e-4.
    private func assertParity(wav: String, golden: String, expectedFrames: Int,
                              file: StaticString = #filePath, line: UInt = #line) throws {
        let reference = try Reference.npy(golden, file: file, line: line)
        let samples = try waveform(wav)
        let mel = try sharedFrontend.compute(samples)
        XCTAssertEqual(reference.shape, [128, expectedFrames], file: file, line: line)
        XCTAssertEqual(mel.bins, 128, file: file, line: line)
        XCTAssertEqual(mel.frames, expectedFrames, file: file, line: line)
        let diff = maxAbsDifference(mel.data, reference.data)
        print("parity \(golden): max |diff| = \(diff)")
        XCTAssertLessThanOrEqual(diff, 1e-4, "\(golden): max |diff| \(diff)", file: file, line: line)
    }

    /// Golden parity: speech.wav (32 kHz 16-bit PCM).
    func testParitySpeech() throws {
        try assertParity(wav: "audio/speech.wav", golden: "golden/speech.mel.npy", expectedFrames: 1000)
    }

    /// Golden parity: music.wav (32 kHz 16-bit PCM).
    func testParityMusic() throws {
        try assertParity(wav: "audio/music.wav", golden: "golden/music.mel.npy", expectedFrames: 1000)
    }

    /// Golden parity: typing.wav (32 kHz 16-bit PCM).
    func testParityTyping() throws {
        try assertParity(wav: "audio/typing.wav", golden: "golden/typing.mel.npy", expectedFrames: 1000)
    }

    /// Golden parity: the metro clip as resampled for the golden run (32 kHz float WAV).
    func testParityMetroStation() throws {
        try assertParity(wav: "golden/metro_station-paris_32k.wav", golden: "golden/metro_station-paris.mel.npy",
                         expectedFrames: 1000)
    }

    /// End to end: the 44.1 kHz 24-bit original through libsndfile and libsoxr gives the golden metro mel.
    func testParityMetroStationFromOriginal44k() throws {
        try assertParity(wav: "audio/metro_station-paris.wav", golden: "golden/metro_station-paris.mel.npy",
                         expectedFrames: 1000)
    }

    /// Golden parity: the 64123-sample excerpt (odd length, 201 frames).
    func testParityExcerptOddLength() throws {
        let samples = try waveform("golden/excerpt.wav")
        XCTAssertEqual(samples.count, 64123)
        try assertParity(wav: "golden/excerpt.wav", golden: "golden/excerpt.mel.npy", expectedFrames: 201)
    }

    /// Frontends built concurrently (FFTW planning is serialised by a lock) all work and agree.
    func testConcurrentConstruction() throws {
        let x = noise(4000, seed: 3)
        let expected = try sharedFrontend.compute(x).data
        let results = UnsafeMutableBufferPointer<Float>.allocate(capacity: 4)
        defer { results.deallocate() }
        DispatchQueue.concurrentPerform(iterations: 4) { i in
            let fe = try? LogMelFrontend()
            let out = (try? fe?.compute(x))??.data
            results[i] = out.map { maxAbsDifference($0, expected) } ?? .infinity
        }
        // MEASURE may pick another FFT algorithm (and ESTIMATE reuses MEASURE wisdom already in the process), whose
        // float32 rounding differs: up to ~2e-5 here on loud noise.
        for i in 0..<4 { XCTAssertLessThanOrEqual(results[i], 1e-4, "frontend \(i)") }
    }

    /// frameCount follows 1 + (N - 1) / 320, and compute produces exactly that many finite frames.
    func testFrameCountFormula() throws {
        let fe = sharedFrontend
        XCTAssertEqual(fe.frameCount(sampleCount: 0), 0)
        for n in [1, 2, 320, 321, 322, 513, 514, 640, 641, 642, 1000, 32000, 64123, 320000, 320001] {
            XCTAssertEqual(fe.frameCount(sampleCount: n), 1 + (n - 1) / 320, "n = \(n)")
        }
        for n in [514, 515, 641, 800, 801, 1024, 1025, 1600, 3201, 5000, 64123] {
            let mel = try fe.compute(noise(n))
            XCTAssertEqual(mel.frames, 1 + (n - 1) / 320, "n = \(n)")
            XCTAssertEqual(mel.bins, 128)
            XCTAssertEqual(mel.data.count, 128 * mel.frames)
            XCTAssertTrue(mel.data.allSatisfy { $0.isFinite }, "n = \(n)")
        }
    }

    /// Inputs below 514 samples (reflect padding of 512 needs 513 pre-emphasized samples) are refused.
    func testShortInputIsRefused() throws {
        let fe = sharedFrontend
        XCTAssertEqual(fe.minimumSampleCount, 514)
        for n in [0, 1, 2, 100, 513] {
            XCTAssertThrowsError(try fe.compute(noise(n)), "n = \(n)") { error in
                XCTAssertEqual(error as? FrontendError, .inputTooShort(sampleCount: n, minimum: 514))
            }
        }
        XCTAssertEqual(try fe.compute(noise(514)).frames, 2)
    }

    /// The allocation-free variant checks the caller buffer size.
    func testOutputBufferSizeIsChecked() throws {
        let x = noise(3200)  // 10 frames
        var out = [Float](repeating: 0, count: 128 * 9)
        XCTAssertThrowsError(try x.withUnsafeBufferPointer { src in
            try out.withUnsafeMutableBufferPointer { try sharedFrontend.compute(src, into: $0) }
        }) { error in
            XCTAssertEqual(error as? FrontendError, .outputSizeMismatch(expected: 128 * 10, actual: 128 * 9))
        }
    }

    /// The allocation-free variant and the array variant give identical output.
    func testBufferVariantMatchesArrayVariant() throws {
        let x = noise(12345, seed: 42)
        let mel = try sharedFrontend.compute(x)
        var out = [Float](repeating: .nan, count: mel.data.count)
        try x.withUnsafeBufferPointer { src in
            try out.withUnsafeMutableBufferPointer { try sharedFrontend.compute(src, into: $0) }
        }
        XCTAssertEqual(out, mel.data)
    }

    /// Builds the padded, pre-emphasized signal independently and checks computeFrame against the batch path
    /// (which pairs frames in one complex FFT, so they agree to rounding rather than bitwise).
    func testComputeFrameMatchesBatchIncludingEdges() throws {
        let fe = sharedFrontend
        let x = noise(5000 + 123, seed: 7)
        let batch = try fe.compute(x)
        let y = (0..<(x.count - 1)).map { x[$0 + 1] - Float(0.97) * x[$0] }
        let padded = (1...512).reversed().map { y[$0] } + y + (1...512).map { y[y.count - 1 - $0] }
        XCTAssertEqual(padded.count, y.count + 1024)
        var out = [Float](repeating: .nan, count: batch.data.count)
        try padded.withUnsafeBufferPointer { p in
            try out.withUnsafeMutableBufferPointer { o in
                for i in 0..<batch.frames {
                    let start = i * fe.hop + fe.spanOffset
                    let span = UnsafeBufferPointer(rebasing: p[start..<(start + fe.spanLength)])
                    try fe.computeFrame(span: span, into: o.baseAddress! + i, stride: batch.frames)
                }
            }
        }
        let diff = maxAbsDifference(out, batch.data)
        print("computeFrame vs batch: max |diff| = \(diff)")
        // Pairing noise is ~1e-5 on this loud noise; a framing or padding mistake would show as >1e-2.
        XCTAssertLessThanOrEqual(diff, 5e-5, "per-frame and batch paths differ by \(diff)")
        XCTAssertThrowsError(try [Float](repeating: 0, count: 10).withUnsafeBufferPointer { span in
            var column = [Float](repeating: 0, count: 128)
            try column.withUnsafeMutableBufferPointer { try fe.computeFrame(span: span, into: $0.baseAddress!, stride: 1) }
        })
    }

    /// The streaming contract: frames whose span ends inside a prefix do not change when more audio follows.
    func testFramesOfAPrefixAreFinalExceptTheRightEdge() throws {
        let fe = sharedFrontend
        let x = noise(9000, seed: 5)
        let full = try fe.compute(x)
        for prefix in [1000, 2345, 4800, 7001] {
            let part = try fe.compute(Array(x[0..<prefix]))
            let length = prefix - 1
            var finalFrames = 0
            for t in 0..<part.frames where t * 320 + 400 <= length {
                finalFrames += 1
                for m in 0..<128 {
                    XCTAssertEqual(part[m, t], full[m, t], accuracy: 5e-5, "prefix \(prefix), frame \(t), bin \(m)")
                }
            }
            XCTAssertGreaterThanOrEqual(finalFrames, part.frames - 2, "prefix \(prefix)")
        }
    }

    /// Digital silence maps to (log(1e-5) + 4.5) / 5 everywhere.
    func testSilenceGivesLogOffsetFloor() throws {
        let mel = try sharedFrontend.compute([Float](repeating: 0, count: 4000))
        let floor = (Float(log(1e-5)) + 4.5) / 5
        for v in mel.data { XCTAssertEqual(v, floor, accuracy: 1e-6) }
    }

    /// A sine at a filter's centre frequency peaks in that mel bin (frames away from the edges).
    func testSineAtFilterCentrePeaksInThatBin() throws {
        let fe = sharedFrontend
        let melHigh = 1127.0 * log(1.0 + 15000.0 / 700.0)
        let delta = melHigh / 129
        for m in [10, 40, 64, 90, 120] {
            let centreHz = 700.0 * (exp(Double(m + 1) * delta / 1127.0) - 1.0)
            let x = (0..<16000).map { Float(0.5 * sin(2 * Double.pi * centreHz * Double($0) / 32000)) }
            let mel = try fe.compute(x)
            for t in 3..<(mel.frames - 3) {
                let column = (0..<mel.bins).map { mel[$0, t] }
                let peak = column.indices.max { column[$0] < column[$1] }!
                XCTAssertEqual(peak, m, "centre \(centreHz) Hz, frame \(t)")
            }
        }
    }

    /// The whole spec evaluated directly in Double (DFT, no FFTW) on a synthetic signal, edges included.
    func testMatchesFloat64DirectEvaluation() throws {
        let n = 2900  // 10 frames; frames 0-1 and 8-9 touch the reflect padding
        let tones = [(440.0, 0.3), (3_000.0, 0.1), (9_500.0, 0.05)]
        let hiss = noise(n, seed: 11)
        let x: [Float] = (0..<n).map { i in
            let t = Double(i) / 32000
            return Float(tones.reduce(0.0) { $0 + $1.1 * sin(2 * Double.pi * $1.0 * t) } + 0.02 * Double(hiss[i]))
        }
        let mel = try sharedFrontend.compute(x)
        XCTAssertEqual(mel.frames, 10)

        let y = (0..<(n - 1)).map { Double(x[$0 + 1]) - 0.97 * Double(x[$0]) }
        let padded = (1...512).reversed().map { y[$0] } + y + (1...512).map { y[y.count - 1 - $0] }
        let cosTable = (0..<1024).map { cos(2 * Double.pi * Double($0) / 1024) }
        let sinTable = (0..<1024).map { sin(2 * Double.pi * Double($0) / 1024) }
        let window = (0..<800).map { 0.5 - 0.5 * cos(2 * Double.pi * Double($0) / 799) }
        let melHigh = 1127.0 * log(1.0 + 15000.0 / 700.0)
        let delta = melHigh / 129
        var worst: Float = 0
        for t in 0..<mel.frames {
            var power = [Double](repeating: 0, count: 512)
            for k in 0..<512 {
                var re = 0.0, im = 0.0
                for j in 0..<800 {
                    let v = window[j] * padded[t * 320 + 112 + j]
                    let phase = (k * (112 + j)) & 1023
                    re += v * cosTable[phase]
                    im -= v * sinTable[phase]
                }
                power[k] = re * re + im * im
            }
            for m in 0..<128 {
                var energy = 0.0
                for k in 0..<512 {
                    let binMel = 1127.0 * log(1.0 + Double(k) * 31.25 / 700.0)
                    let weight = max(0, min((binMel - Double(m) * delta) / delta, (Double(m + 2) * delta - binMel) / delta))
                    energy += weight * power[k]
                }
                let expected = Float((log(energy + 1e-5) + 4.5) / 5)
                worst = max(worst, abs(mel[m, t] - expected))
            }
        }
        print("float64 direct evaluation: max |diff| = \(worst)")
        XCTAssertLessThanOrEqual(worst, 1e-4)
    }

    /// Filterbank: 128 non-empty triangles in [0, 1], zero Nyquist weight, close to a float64 evaluation.
    func testFilterbankShape() {
        let fb = sharedFrontend.filterbank
        XCTAssertEqual(fb.filterCount, 128)
        XCTAssertEqual(fb.spectrumBins, 513)
        let dense = fb.dense()
        for m in 0..<128 {
            XCTAssertGreaterThan(fb.binCount[m], 0, "filter \(m) is empty")
            XCTAssertEqual(dense[m * 513 + 512], 0, "Nyquist weight must be 0")
            for k in 0..<513 {
                XCTAssertGreaterThanOrEqual(dense[m * 513 + k], 0)
                XCTAssertLessThanOrEqual(dense[m * 513 + k], 1)
            }
        }
        // 15 kHz is bin 480: nothing above it.
        XCTAssertLessThanOrEqual(fb.usedBins, 481)
        // Against a float64 evaluation of the same triangles.
        let melHigh = 1127.0 * log(1.0 + 15000.0 / 700.0)
        let delta = melHigh / 129
        var worst = 0.0
        for m in 0..<128 {
            for k in 0..<512 {
                let mel = 1127.0 * log(1.0 + Double(k) * 31.25 / 700.0)
                let up = (mel - Double(m) * delta) / delta
                let down = (Double(m + 2) * delta - mel) / delta
                worst = max(worst, abs(max(0, min(up, down)) - Double(dense[m * 513 + k])))
            }
        }
        XCTAssertLessThan(worst, 1e-4)
    }

    /// The vectorised log stays within 1e-6 relative error over 13 decades; bad input gives NaN.
    func testFastLogAccuracy() {
        var worst: Double = 0
        var v: Float = 1e-6
        while v < 1e7 {
            var lanes = SIMD8<Float>()
            for i in 0..<8 { lanes[i] = v * (1 + Float(i) * 0.0371) }
            let r = fastLog(lanes)
            for i in 0..<8 {
                let exact = log(Double(lanes[i]))
                worst = max(worst, abs(Double(r[i]) - exact) / max(1, abs(exact)))
            }
            v *= 1.013
        }
        XCTAssertLessThan(worst, 1e-6)
        let special = fastLog(SIMD8<Float>(1, .infinity, .nan, 2, 1e-5, 0.5, 4, 3))
        XCTAssertEqual(special[4], Float(log(1e-5)), accuracy: 2e-6)
        XCTAssertEqual(special[0], 0)
        XCTAssertTrue(special[1].isNaN)
        XCTAssertTrue(special[2].isNaN)
        XCTAssertEqual(special[3], Float(log(2.0)), accuracy: 1e-7)
    }

    /// Impossible settings throw instead of producing garbage.
    func testInvalidSettingsAreRejected() {
        var s = FrontendSettings.efficientAT
        s.fmax = 20000
        XCTAssertThrowsError(try LogMelFrontend(settings: s))
        s = .efficientAT
        s.winLength = 2048
        XCTAssertThrowsError(try LogMelFrontend(settings: s))
        s = .efficientAT
        s.hopLength = 0
        XCTAssertThrowsError(try LogMelFrontend(settings: s))
    }
}
