// Bad input through the binary: one-line error naming the input, non-zero exit, no crash.
import Foundation
import XCTest
import EarTagTestSupport

final class BadInputTests: CLITestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = try makeTemporaryDirectory("eartag-bad")
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: dir)
    }

    /// Writes bytes to a file in the test folder and returns its path.
    func file(_ name: String, _ bytes: [UInt8]) throws -> String {
        let p = dir.appendingPathComponent(name).path
        try Data(bytes).write(to: URL(fileURLWithPath: p))
        return p
    }

    /// A 16-bit mono 32 kHz WAV header declaring `dataBytes`, followed by `actual` bytes of silence.
    func wav(dataBytes: UInt32, actual: Int) -> [UInt8] {
        func le32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.littleEndian, Array.init) }
        func le16(_ v: UInt16) -> [UInt8] { withUnsafeBytes(of: v.littleEndian, Array.init) }
        var b = Array("RIFF".utf8) + le32(36 + dataBytes) + Array("WAVE".utf8)
        b += Array("fmt ".utf8) + le32(16) + le16(1) + le16(1) + le32(32000) + le32(64000) + le16(2) + le16(16)
        b += Array("data".utf8) + le32(dataBytes) + [UInt8](repeating: 0, count: actual)
        return b
    }

    func testTagBadAudioFiles() throws {
        let model = try importedModel()
        let cases: [(String, String)] = [
            (dir.appendingPathComponent("missing.wav").path, "missing"),
            (try file("notes.wav", Array("this is not audio\n".utf8)), "not audio"),
            (try file("empty.wav", []), "empty"),
            (try file("zero.wav", wav(dataBytes: 0, actual: 0)), "zero samples"),
            (try file("truncated.wav", wav(dataBytes: 64000, actual: 1000)), "truncated data"),
            (try file("cut-header.wav", Array(wav(dataBytes: 64000, actual: 64000).prefix(30))), "cut header"),
            // A broken Vorbis header, refused before libsndfile (which leaked on it: docs/robustness.md, finding 14).
            (try file("broken-header.ogg",
                      Array(try XCTUnwrap(FuzzInputs.file("regressions/audio/ogg_vorbis_header_leak")).dropFirst())),
             "broken Ogg/Vorbis header"),
        ]
        for (path, what) in cases {
            let r = try run(["tag", "--model", model, path])
            assertOneLineError(r, naming: path)
            XCTAssertEqual(r.stdout, "", what)
        }
    }

    /// One bad file among good ones: the good ones are still tagged, the exit status reports the failure.
    func testBadFileDoesNotStopTheOthers() throws {
        let model = try importedModel()
        let missing = dir.appendingPathComponent("nope.flac").path
        let speech = try Reference.path("audio/speech.wav")
        let r = try run(["tag", "--model", model, "--top", "1", missing, speech])
        assertOneLineError(r, naming: missing)
        XCTAssertTrue(r.stdout.contains("Speech: 0.818"), r.stdout)
    }

    func testImportRejectsNonZipCheckpoint() throws {
        let ckpt = try file("model.pt", Array("definitely not a zip".utf8))
        let r = try run(["import", ckpt, "-o", dir.appendingPathComponent("out.safetensors").path])
        assertOneLineError(r, naming: ckpt)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("out.safetensors").path))
    }

    /// A pickle asking for `os.system` is refused through the binary and nothing runs.
    func testImportRefusesForbiddenGlobal() throws {
        let marker = dir.appendingPathComponent("pwned").path
        var p = PickleEmitter()
        p.global("os", "system"); p.string("touch \(marker)"); p.op(0x85); p.op(0x52); p.stop()
        let ckpt = try FakeCheckpoint.write(FakeCheckpoint.zip([], pickle: p.b), "evil.pt", in: dir)
        let r = try run(["import", ckpt, "-o", dir.appendingPathComponent("o.safetensors").path])
        assertOneLineError(r, naming: ckpt)
        XCTAssertTrue(r.stderr.contains("os.system"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: marker))
    }

    /// A tensor whose storage is shorter than its shape is refused through the binary.
    func testImportRefusesShortStorage() throws {
        let t = FakeTensor(name: "features.0.0.weight", shape: [2, 3], storage: FakeCheckpoint.f32([1, 2, 3, 4]),
                           numel: 4)
        let ckpt = try FakeCheckpoint.write(FakeCheckpoint.zip([t]), "short.pt", in: dir)
        let r = try run(["import", ckpt, "-o", dir.appendingPathComponent("o.safetensors").path])
        assertOneLineError(r, naming: ckpt)
        XCTAssertTrue(r.stderr.contains("storage"), r.stderr)
    }

    func testMissingModelSaysHowToGetOne() throws {
        // Run outside the checkout: its Weights/default.safetensors would be found (README "Models").
        let r = try run(["tag", try Reference.path("audio/speech.wav")], currentDirectory: dir)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("EARTAG_MODEL"), r.stderr)
        let bad = try file("bad.safetensors", [1, 2, 3])
        assertOneLineError(try run(["tag", "--model", bad, try Reference.path("audio/speech.wav")]), naming: bad)
    }

    func testInvalidOptionsAreRefused() throws {
        for args in [["tag", "--top", "0", "x.wav"], ["tag", "--threads", "0", "x.wav"],
                     ["import", "x.pt", "-o", "y", "--strides", "2,2,3"], ["tag"]] {
            let r = try run(args)
            XCTAssertNotEqual(r.status, 0, "\(args)")
            XCTAssertLessThan(r.status, 128)
        }
    }
}
