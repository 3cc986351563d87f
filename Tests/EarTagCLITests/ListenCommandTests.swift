// `eartag listen` through the binary: streaming equals batch, real libasound via the file plugin, faults.
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import XCTest
import EarTagAudio
import EarTagTestSupport

final class ListenCommandTests: CLITestCase {
    static let clips = ["speech", "music", "typing", "metro_station-paris"]

    /// Parses JSON Lines output.
    func records(_ text: String) throws -> [[String: Any]] {
        try text.split(separator: "\n").map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
    }

    /// The window records' (start, end, scores).
    func windows(_ recs: [[String: Any]]) -> [(Double, Double, [Double])] {
        recs.filter { $0["type"] as? String == "window" }.map {
            ($0["start_s"] as? Double ?? -1, $0["end_s"] as? Double ?? -1, $0["scores"] as? [Double] ?? [])
        }
    }

    /// The start/end events as comparable tuples.
    func events(_ recs: [[String: Any]]) -> [String] {
        recs.filter { $0["type"] as? String != "window" }.map {
            "\($0["type"]!) \($0["label"]!) \($0["time_s"]!)"
        }
    }

    /// 16-bit little-endian raw PCM of a reference clip (32 kHz clips only).
    func rawS16(_ clip: String, seconds: Double? = nil) throws -> Data {
        let audio = try loadAudio(path: Reference.path("audio/\(clip).wav"))
        var samples = audio.samples
        if let seconds { samples = Array(samples.prefix(Int(seconds * 32000))) }
        var d = Data(capacity: samples.count * 2)
        for x in samples {
            let v = Int16(max(-32768, min(32767, (x * 32768).rounded())))
            withUnsafeBytes(of: v.littleEndian) { d.append(contentsOf: $0) }
        }
        return d
    }

    /// Every window's scores from `listen --stdin` (WAV stream) and `listen FILE` equal `tag --window --hop`.
    func testStreamingWindowsEqualTagWindowsOnReferenceClips() throws {
        let model = try importedModel()
        for clip in Self.clips {
            let path = try Reference.path("audio/\(clip).wav")
            let common = ["--model", model, "--window", "5", "--hop", "1", "--all-scores", "--format", "jsonl"]
            let batch = try run(["tag"] + common + [path])
            XCTAssertEqual(batch.status, 0, batch.stderr)
            let expected = windows(try records(batch.stdout))
            XCTAssertEqual(expected.count, 6, clip)
            let fromFile = try run(["listen", path, "--windows"] + common)
            XCTAssertEqual(fromFile.status, 0, fromFile.stderr)
            let wav = try Data(contentsOf: URL(fileURLWithPath: path))
            let fromStdin = try run(["listen", "--stdin", "--windows"] + common, stdin: wav)
            XCTAssertEqual(fromStdin.status, 0, fromStdin.stderr)
            for (name, got) in [("file", windows(try records(fromFile.stdout))),
                                ("stdin", windows(try records(fromStdin.stdout)))] {
                XCTAssertEqual(got.count, expected.count, "\(clip) \(name)")
                for (g, e) in zip(got, expected) {
                    XCTAssertEqual(g.0, e.0)
                    XCTAssertEqual(g.1, e.1)
                    XCTAssertEqual(g.2.count, 527)
                    XCTAssertEqual(g.2, e.2, "\(clip) \(name) window \(g.0)-\(g.1): scores differ")
                }
            }
            XCTAssertEqual(events(try records(fromFile.stdout)), events(try records(fromStdin.stdout)), clip)
        }
    }

    /// libasound's `file` PCM plugin (no sound card) gives the same windows and events as the stdin path.
    func testALSAFilePluginCaptureMatchesStdin() throws {
        let model = try importedModel()
        let dir = try makeTemporaryDirectory("eartag-alsa")
        defer { try? FileManager.default.removeItem(at: dir) }
        let raw = dir.appendingPathComponent("speech.raw")
        try rawS16("speech").write(to: raw)
        let conf = dir.appendingPathComponent("alsa.conf")
        try """
        pcm.eartagtest { type file  slave { pcm { type null } }  file "/dev/null"  infile "\(raw.path)"  format "raw" }
        """.write(to: conf, atomically: true, encoding: .utf8)
        let common = ["--model", model, "--window", "5", "--hop", "1", "--windows", "--all-scores", "--format", "jsonl"]
        let alsa = try run(["listen", "--device", "eartagtest", "--alsa-config", conf.path, "--lossless-capture",
                            "--duration", "10"] + common)
        XCTAssertEqual(alsa.status, 0, alsa.stderr)
        let stdin = try run(["listen", "--stdin", "--sample-format", "s16le"] + common,
                            stdin: try Data(contentsOf: raw))
        XCTAssertEqual(stdin.status, 0, stdin.stderr)
        let a = try records(alsa.stdout), s = try records(stdin.stdout)
        XCTAssertEqual(windows(a).count, 6)
        XCTAssertEqual(windows(a).map(\.2), windows(s).map(\.2))
        XCTAssertEqual(events(a), events(s))
        XCTAssertFalse(events(a).isEmpty)
    }

    /// Stdin ending in the middle of a window: final events are flushed (every start has its end), exit 0.
    func testEOFMidWindowFlushesEvents() throws {
        let model = try importedModel()
        let r = try run(["listen", "--model", model, "--stdin", "--window", "5", "--format", "jsonl"],
                        stdin: try rawS16("speech", seconds: 7.5))
        XCTAssertEqual(r.status, 0, r.stderr)
        let recs = try records(r.stdout)
        let starts = recs.filter { $0["type"] as? String == "start" }.map { $0["label"] as? String }
        let ends = recs.filter { $0["type"] as? String == "end" }
        XCTAssertFalse(starts.isEmpty)
        XCTAssertEqual(Set(starts), Set(ends.map { $0["label"] as? String }))
        for e in ends { XCTAssertLessThanOrEqual(e["time_s"] as? Double ?? 99, 7.5) }
    }

    /// The reader closing stdout ends the listener cleanly (no SIGPIPE crash).
    func testClosedStdoutExitsCleanly() throws {
        let model = try importedModel()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.binary)
        p.arguments = ["listen", "--model", model, "--stdin", "--window", "1", "--hop", "0.1", "--windows"]
        let input = Pipe(), out = Pipe()
        p.standardInput = input
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let audio = try rawS16("music")
        Thread { try? input.fileHandleForWriting.write(contentsOf: audio); try? input.fileHandleForWriting.close() }
            .start()
        // Read a little, then go away like `head -1`.
        _ = out.fileHandleForReading.availableData
        try out.fileHandleForReading.close()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationReason, .exit, "killed by a signal")
        XCTAssertEqual(p.terminationStatus, 0)
    }

    /// Garbage on raw stdin is processed as audio: windows come out and nothing crashes.
    func testGarbageOnRawStdinIsProcessedAsAudio() throws {
        let model = try importedModel()
        var rng = SystemRandomNumberGenerator()
        let bytes = Data((0..<(6 * 32000 * 4)).map { _ in UInt8.random(in: 0...255, using: &rng) })
        for format in ["s16le", "s32le", "f32le"] {
            let r = try run(["listen", "--model", model, "--stdin", "--sample-format", format, "--window", "5",
                             "--windows", "--format", "jsonl"], stdin: bytes)
            XCTAssertEqual(r.status, 0, "\(format): \(r.stderr)")
            XCTAssertGreaterThan(windows(try records(r.stdout)).count, 0, format)
        }
    }

    /// A WAV header cut short on stdin is a one-line error naming the stream.
    func testTruncatedWAVHeaderOnStdin() throws {
        let model = try importedModel()
        let r = try run(["listen", "--model", model, "--stdin"], stdin: Data("RIFF\u{24}\0\0\0WAVEfmt ".utf8))
        assertOneLineError(r, naming: "<stdin>")
    }

    /// Quiet input below --min-dbfs skips inference; the window record says so.
    func testLevelGateSkipsSilence() throws {
        let model = try importedModel()
        let r = try run(["listen", "--model", model, "--stdin", "--window", "2", "--min-dbfs", "-60", "--windows",
                         "--format", "jsonl"], stdin: Data(count: 3 * 32000 * 2))
        XCTAssertEqual(r.status, 0, r.stderr)
        let w = try records(r.stdout).filter { $0["type"] as? String == "window" }
        XCTAssertEqual(w.count, 2)
        XCTAssertTrue(w.allSatisfy { $0["skipped"] as? Bool == true })
    }

    /// Bad options and bad event configuration are refused before any audio is read.
    func testBadListenOptionsAreRefused() throws {
        let model = try importedModel()
        let speech = try Reference.path("audio/speech.wav")
        for args in [["--hop", "0.015"], ["--window", "0"], ["--confirm", "3"], ["--confirm", "4/3"],
                     ["--threshold", "1.5"], ["--labels", "No Such Sound"], ["--duration", "-1"]] {
            let r = try run(["listen", "--model", model, speech] + args)
            XCTAssertNotEqual(r.status, 0, "\(args)")
            XCTAssertLessThan(r.status, 128, "\(args)")
            XCTAssertEqual(r.stdout, "", "\(args)")
        }
        let dir = try makeTemporaryDirectory("eartag-thr")
        defer { try? FileManager.default.removeItem(at: dir) }
        let thresholds = dir.appendingPathComponent("t.csv").path
        try "Speech,0.5\nNot a label,0.2\n".write(toFile: thresholds, atomically: true, encoding: .utf8)
        assertOneLineError(try run(["listen", "--model", model, speech, "--thresholds", thresholds]),
                           naming: thresholds)
    }

    /// `tag --window --plot` writes a well-formed SVG with the spectrogram image and one line per top label.
    func testPlotWritesSpectrogramAndScoreLines() throws {
        let model = try importedModel()
        let dir = try makeTemporaryDirectory("eartag-plot")
        defer { try? FileManager.default.removeItem(at: dir) }
        let svg = dir.appendingPathComponent("metro.svg").path
        let r = try run(["tag", "--model", model, "--window", "5", "--hop", "0.5", "--top", "3", "--plot", svg,
                         try Reference.path("audio/metro_station-paris.wav")])
        XCTAssertEqual(r.status, 0, r.stderr)
        let text = try String(contentsOfFile: svg, encoding: .utf8)
        XCTAssertTrue(text.hasPrefix("<svg"))
        XCTAssertTrue(text.contains("href=\"data:image/png;base64,iVBORw0KGgo"))
        XCTAssertEqual(text.components(separatedBy: "<polyline").count - 1, 3)
        XCTAssertTrue(text.contains(">Train</text>"), "the metro clip's top label is drawn")
        let parser = XMLParser(data: Data(text.utf8))
        XCTAssertTrue(parser.parse(), "SVG is not well-formed XML: \(String(describing: parser.parserError))")
        let two = try run(["tag", "--model", model, "--plot", svg, "a.wav", "b.wav"])
        XCTAssertNotEqual(two.status, 0)
    }

    /// The shipped example configuration is accepted as it stands (flags supply the source and model).
    func testExampleConfigurationIsAccepted() throws {
        let model = try importedModel()
        let example = Reference.packageRoot.appendingPathComponent("systemd/eartag.toml").path
        let r = try run(["listen", "--config", example, "--stdin", "--model", model, "--windows"],
                        stdin: try rawS16("speech"))
        XCTAssertEqual(r.status, 0, r.stderr)
        let w = windows(try records(r.stdout))
        XCTAssertEqual(w.count, 1, "one 10 s window, as the example's [window] says")
        XCTAssertEqual(w.first?.1 ?? 0, 10, accuracy: 0.001)
    }

    /// A stream shorter than one window is analysed once as a short window.
    func testShortStreamGetsOneResult() throws {
        let model = try importedModel()
        let r = try run(["listen", "--model", model, "--stdin", "--windows", "--format", "jsonl"],
                        stdin: try rawS16("speech", seconds: 3))
        XCTAssertEqual(r.status, 0, r.stderr)
        let w = windows(try records(r.stdout))
        XCTAssertEqual(w.count, 1)
        XCTAssertEqual(w.first?.1 ?? 0, 3, accuracy: 0.001)
    }
}
