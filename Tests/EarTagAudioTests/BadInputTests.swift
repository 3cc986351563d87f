// Bad input never crashes: each case gives a typed AudioError whose one-line description names the file.
import XCTest
import Foundation
import CSndFile
import EarTagTestSupport
@testable import EarTagAudio
#if canImport(Glibc)
import Glibc
#endif

/// Missing, empty, non-audio, truncated, hostile and unreadable inputs.
final class BadInputTests: XCTestCase {
    /// Scratch directory for this test case.
    var dir: URL!

    /// Creates the scratch directory.
    override func setUpWithError() throws { dir = try makeTemporaryDirectory("eartag-audio-bad") }
    /// Removes the scratch directory.
    override func tearDownWithError() throws {
        chmod(dir.path, 0o755)
        try? FileManager.default.removeItem(at: dir)
    }

    /// A path inside the scratch directory.
    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    /// A valid 16-bit mono 8 kHz WAV holding `dataBytes` bytes of audio.
    func validWAV(dataBytes: Int = 2000) -> [UInt8] {
        Fixtures.wavHeader(dataBytes: UInt32(dataBytes)) + (0..<dataBytes).map { UInt8(truncatingIfNeeded: $0 * 37) }
    }

    /// Runs loadAudio, requires an AudioError, checks it names the file on one line, and returns it.
    @discardableResult
    func expectError(_ p: String, maxSeconds: Double = AudioLimits.maxDurationSeconds,
                     file: StaticString = #filePath, line: UInt = #line) -> AudioError? {
        do {
            let a = try loadAudio(path: p, targetRate: 32000, maxDurationSeconds: maxSeconds)
            XCTFail("expected an error for \(p), got \(a.samples.count) samples", file: file, line: line)
            return nil
        } catch let e as AudioError {
            let text = e.description
            XCTAssertTrue(text.hasPrefix(p + ": "), "description must start with the file: \(text)", file: file, line: line)
            XCTAssertFalse(text.contains("\n"), "description must be one line: \(text)", file: file, line: line)
            XCTAssertEqual(e.file, p, file: file, line: line)
            return e
        } catch {
            XCTFail("expected AudioError, got \(type(of: error)): \(error)", file: file, line: line)
            return nil
        }
    }

    /// A path that does not exist.
    func testMissingFile() {
        let p = path("nope.wav")
        XCTAssertEqual(expectError(p), .fileNotFound(file: p))
        XCTAssertEqual(AudioError.fileNotFound(file: p).description, "\(p): no such file")
    }

    /// A text file is no audio format libsndfile knows.
    func testTextFile() throws {
        let p = path("notes.txt")
        try Fixtures.writeBytes(Array("hello world, this is not audio\n".utf8), to: p)
        guard case .unrecognisedFormat? = expectError(p) else { return XCTFail("wrong case") }
    }

    /// A 0-byte file.
    func testEmptyFile() throws {
        let p = path("empty.wav")
        try Fixtures.writeBytes([], to: p)
        XCTAssertEqual(expectError(p), .emptyFile(file: p))
        XCTAssertEqual(try? loadAudio(bytes: [], name: "<stdin>"), nil)
    }

    /// A valid header with no samples, hand-made and as libsndfile writes it.
    func testHeaderWithoutSamples() throws {
        let p = path("zero.wav")
        try Fixtures.writeBytes(Fixtures.wavHeader(dataBytes: 0), to: p)
        XCTAssertEqual(expectError(p), .noSamples(file: p))
        XCTAssertTrue(AudioError.noSamples(file: p).description.hasSuffix("contains no audio samples"))
        let q = path("zero-sndfile.wav")
        try Fixtures.write([], channels: 2, rate: 44100, format: Int32(SF_FORMAT_WAV | SF_FORMAT_PCM_16), to: q)
        XCTAssertEqual(expectError(q), .noSamples(file: q))
    }

    /// A header cut short: libsndfile itself reports the broken file (too short to recognise, or malformed).
    func testHeaderCutShort() throws {
        for n in [4, 12, 30, 40] {
            let p = path("cut\(n).wav")
            try Fixtures.writeBytes(Array(validWAV().prefix(n)), to: p)
            switch expectError(p) {
            case .malformedFile?: XCTAssertGreaterThanOrEqual(n, 12, "RIFF/WAVE recognised from 12 bytes on")
            case .unrecognisedFormat?: XCTAssertLessThan(n, 12, "fewer than 12 bytes cannot be recognised")
            default: XCTFail("wrong case for \(n) bytes")
            }
        }
    }

    /// A data chunk shorter than the header declares is detected before libsndfile silently shortens it.
    func testDataChunkShorterThanDeclared() throws {
        let p = path("short.wav")
        try Fixtures.writeBytes(Array(validWAV(dataBytes: 2000).prefix(44 + 1001)), to: p)
        XCTAssertEqual(expectError(p), .truncated(file: p, declaredBytes: 2000, actualBytes: 1001))
        XCTAssertEqual(AudioError.truncated(file: p, declaredBytes: 2000, actualBytes: 1001).description,
                       "\(p): truncated: header declares 2000 bytes of audio, file holds 1001")
        // The same bytes from memory.
        XCTAssertThrowsError(try loadAudio(bytes: Array(validWAV(dataBytes: 2000).prefix(44 + 1001)), name: "<stdin>")) {
            XCTAssertEqual($0 as? AudioError, .truncated(file: "<stdin>", declaredBytes: 2000, actualBytes: 1001))
        }
        // A complete file of the same kind loads.
        let ok = path("ok.wav")
        try Fixtures.writeBytes(validWAV(dataBytes: 2000), to: ok)
        XCTAssertEqual(try loadAudio(path: ok).sourceFrames, 1000)
    }

    /// A WAV stream with placeholder sizes (as written to a pipe) decodes fully in stream mode.
    func testStreamPlaceholderSizes() throws {
        let body = (0..<2000).map { UInt8(truncatingIfNeeded: $0 * 13) }
        for declared: UInt32 in [0, 0xFFFF_FFFF, 0x7FFF_F000, 5000] {
            let bytes = Fixtures.wavHeader(dataBytes: declared) + body
            let audio = try loadAudio(bytes: bytes, name: "<stdin>", targetRate: 8000, stream: true)
            XCTAssertEqual(audio.sourceFrames, 1000, "declared \(declared)")
            XCTAssertEqual(audio.samples.count, 1000, "declared \(declared)")
        }
        XCTAssertThrowsError(try loadAudio(bytes: Fixtures.wavHeader(dataBytes: 5000) + body, name: "<stdin>")) {
            XCTAssertEqual($0 as? AudioError, .truncated(file: "<stdin>", declaredBytes: 5000, actualBytes: 2000))
        }
    }

    /// A WAV piped through a file descriptor decodes like the file; an over-limit stream is refused.
    func testReadAllBytesFromPipe() throws {
        let p = path("piped.wav")
        let signal = Fixtures.signal(frames: 3000, channels: 2, rate: 16000)
        try Fixtures.write(signal, channels: 2, rate: 16000, format: Int32(SF_FORMAT_WAV | SF_FORMAT_PCM_16), to: p)
        let fd = open(p, O_RDONLY)
        XCTAssertGreaterThanOrEqual(fd, 0)
        let bytes = try readAllBytes(fileDescriptor: fd)
        close(fd)
        XCTAssertEqual(try loadAudio(bytes: bytes, stream: true), try loadAudio(path: p))
        let fd2 = open(p, O_RDONLY)
        defer { close(fd2) }
        XCTAssertThrowsError(try readAllBytes(fileDescriptor: fd2, maxBytes: 100)) {
            XCTAssertEqual($0 as? AudioError, .inputTooLarge(file: "<stdin>", limitBytes: 100))
            XCTAssertEqual("\($0)", "<stdin>: input larger than the 100-byte limit")
        }
    }

    /// A real libsndfile-written WAV with its tail cut off is reported as truncated.
    func testTruncatedSndfileWAV() throws {
        let p = path("real.wav")
        let signal = Fixtures.signal(frames: 44100, channels: 2, rate: 44100)
        try Fixtures.write(signal, channels: 2, rate: 44100, format: Int32(SF_FORMAT_WAV | SF_FORMAT_PCM_24), to: p)
        let bytes = [UInt8](try XCTUnwrap(FileManager.default.contents(atPath: p)))
        let cut = path("real-cut.wav")
        try Fixtures.writeBytes(Array(bytes.prefix(bytes.count / 2)), to: cut)
        guard case .truncated(_, let declared, let actual)? = expectError(cut) else { return XCTFail("wrong case") }
        XCTAssertEqual(declared, 44100 * 2 * 3)
        XCTAssertLessThan(actual, declared)
    }

    /// Other containers cut short are caught from libsndfile's parse log (AIFF SSND, AU data size, CAF data).
    func testTruncatedOtherContainers() throws {
        let signal = Fixtures.signal(frames: 8000, channels: 1, rate: 8000)
        for (major, ext) in [(SF_FORMAT_AIFF, "aiff"), (SF_FORMAT_AU, "au"), (SF_FORMAT_CAF, "caf")] {
            let p = path("full.\(ext)")
            try Fixtures.write(signal, channels: 1, rate: 8000, format: Int32(major | SF_FORMAT_PCM_16), to: p)
            XCTAssertEqual(try loadAudio(path: p).sourceFrames, 8000, ext)
            let bytes = [UInt8](try XCTUnwrap(FileManager.default.contents(atPath: p)))
            let cut = path("cut.\(ext)")
            try Fixtures.writeBytes(Array(bytes.prefix(bytes.count - 1001)), to: cut)
            guard case .truncated(_, let declared, let actual)? = expectError(cut) else {
                XCTFail("\(ext): not reported as truncated"); continue
            }
            // libsndfile's CAF numbers count the chunk's 4-byte edit field differently; AIFF and AU are exact.
            if ext == "caf" { XCTAssertGreaterThanOrEqual(declared - actual, 1001) } else {
                XCTAssertEqual(declared - actual, 1001, ext)
            }
        }
    }

    /// Hostile headers: absurd data size, absurd channel count.
    func testHostileHeaders() throws {
        let huge = path("huge.wav")
        try Fixtures.writeBytes(Fixtures.wavHeader(dataBytes: 0xFFFF_FFF0) + [1, 2, 3, 4], to: huge)
        XCTAssertEqual(expectError(huge), .truncated(file: huge, declaredBytes: 0xFFFF_FFF0, actualBytes: 4))
        let chans = path("channels.wav")
        try Fixtures.writeBytes(Fixtures.wavHeader(dataBytes: 2000, channels: 60000) + [UInt8](repeating: 9, count: 2000),
                                to: chans)
        XCTAssertNotNil(expectError(chans))
        let rate = path("rate0.wav")
        try Fixtures.writeBytes(Fixtures.wavHeader(dataBytes: 2000, rate: 0) + [UInt8](repeating: 9, count: 2000), to: rate)
        XCTAssertNotNil(expectError(rate))
    }

    /// A (sparse) file really holding 5 hours of audio is refused before any sample buffer is allocated.
    func testMoreThanFourHoursIsRefused() throws {
        let p = path("long.wav")
        let dataBytes = 5 * 3600 * 8000  // 5 h of 8-bit mono at 8 kHz
        try Fixtures.writeBytes(Fixtures.wavHeader(dataBytes: UInt32(dataBytes), rate: 8000, bits: 8), to: p)
        XCTAssertEqual(truncate(p, off_t(44 + dataBytes)), 0)  // sparse: no disk space used
        XCTAssertEqual(expectError(p), .tooLong(file: p, seconds: 5 * 3600, limitSeconds: 4 * 3600))
        XCTAssertTrue(AudioError.tooLong(file: p, seconds: 5 * 3600, limitSeconds: 4 * 3600).description
            .hasSuffix("refusing to load 5.0 h of audio (limit 4.0 h)"))
    }

    /// The duration limit is configurable.
    func testCustomDurationLimit() throws {
        let p = path("one-second.wav")
        try Fixtures.write(Fixtures.signal(frames: 16000, channels: 1, rate: 16000), channels: 1, rate: 16000,
                           format: Int32(SF_FORMAT_WAV | SF_FORMAT_PCM_16), to: p)
        XCTAssertEqual(expectError(p, maxSeconds: 0.5), .tooLong(file: p, seconds: 1, limitSeconds: 0.5))
        XCTAssertEqual(try loadAudio(path: p, targetRate: 32000, maxDurationSeconds: 2).samples.count, 32000)
    }

    /// A directory is not an audio file.
    func testDirectory() {
        XCTAssertEqual(expectError(dir.path), .notARegularFile(file: dir.path))
    }

    /// An unreadable file; as root (who may read anything) the check runs with the effective user "nobody".
    func testUnreadableFile() throws {
        let p = path("secret.wav")
        try Fixtures.writeBytes(validWAV(), to: p)
        XCTAssertEqual(chmod(p, 0), 0)
        if geteuid() == 0 {
            guard seteuid(65534) == 0 else { throw XCTSkip("root cannot switch to nobody to test permissions") }
            defer { XCTAssertEqual(seteuid(0), 0) }
            XCTAssertEqual(expectError(p), .permissionDenied(file: p))
        } else {
            XCTAssertEqual(expectError(p), .permissionDenied(file: p))
        }
    }

    /// libsndfile errors become typed errors with the library's message.
    func testSoundFileOpenErrorIsTyped() throws {
        let p = path("notes.txt")
        try Fixtures.writeBytes(Array("plain text".utf8), to: p)
        XCTAssertThrowsError(try SoundFile(readingPath: p)) {
            guard case .unrecognisedFormat(let f, let detail)? = $0 as? AudioError else { return XCTFail("\($0)") }
            XCTAssertEqual(f, p)
            XCTAssertFalse(detail.isEmpty)
            XCTAssertFalse(detail.hasSuffix("."))
        }
    }
}
