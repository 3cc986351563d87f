// The `--config` TOML file: every key, and one-line `FILE:LINE: reason` refusals.
import Foundation
import XCTest
import EarTagModel
@testable import EarTagPipeline

final class ListenConfigTests: XCTestCase {
    /// A few labels standing in for the model's.
    let labels = [Label(index: 0, mid: "/m/09x0r", displayName: "Speech"),
                  Label(index: 1, mid: "/m/04rlf", displayName: "Music"),
                  Label(index: 2, mid: "/m/0dgbq", displayName: "Dog")]

    /// Every key of every table is read with its type.
    func testEveryKeyIsParsed() throws {
        let text = """
            # comment
            [source]
            device = "hw:CARD=USB,DEV=0"
            stdin = false
            file = ""
            rate = 48000
            channels = 2
            sample_format = "s32le"

            [model]
            path = "models/mn04.safetensors"
            threads = 2

            [window]
            length = 5
            hop = 0.5
            min_dbfs = -60

            [events]
            threshold = 0.4
            off_threshold = 0.25
            confirm = "3/4"
            hold = 1.5
            cooldown = 2
            labels = ["Speech", "/m/04rlf"]
            exclude = ["Dog"]
            thresholds_file = "/etc/eartag/thresholds.csv"

            [output]
            format = "jsonl"
            windows = true
            top = 3
            """
        let s = try ListenConfig.parse(text, path: "/etc/eartag/eartag.toml", labels: labels)
        XCTAssertEqual(s.device, "hw:CARD=USB,DEV=0")
        XCTAssertEqual(s.stdin, false)
        XCTAssertEqual(s.file, "")
        XCTAssertEqual(s.rate, 48000)
        XCTAssertEqual(s.channels, 2)
        XCTAssertEqual(s.sampleFormat, "s32le")
        XCTAssertEqual(s.modelPath, "/etc/eartag/models/mn04.safetensors", "relative to the file's directory")
        XCTAssertEqual(s.threads, 2)
        XCTAssertEqual(s.window, 5)
        XCTAssertEqual(s.hop, 0.5)
        XCTAssertEqual(s.minDBFS, -60)
        XCTAssertEqual(s.threshold, 0.4)
        XCTAssertEqual(s.offThreshold, 0.25)
        XCTAssertEqual(s.confirmHits, 3)
        XCTAssertEqual(s.confirmWindows, 4)
        XCTAssertEqual(s.hold, 1.5)
        XCTAssertEqual(s.cooldown, 2)
        XCTAssertEqual(s.labels, ["Speech", "/m/04rlf"])
        XCTAssertEqual(s.exclude, ["Dog"])
        XCTAssertEqual(s.thresholdsFile, "/etc/eartag/thresholds.csv")
        XCTAssertEqual(s.format, .jsonl)
        XCTAssertEqual(s.windows, true)
        XCTAssertEqual(s.top, 3)
    }

    /// An empty file sets nothing; `stdin = true` and `file` are read.
    func testEmptyAndOtherSources() throws {
        XCTAssertEqual(try ListenConfig.parse("", path: "c.toml"), ListenFileSettings())
        XCTAssertEqual(try ListenConfig.parse("[source]\nstdin = true\n", path: "c.toml").stdin, true)
        XCTAssertEqual(try ListenConfig.parse("[source]\nfile = \"a.wav\"\n", path: "/x/c.toml").file, "/x/a.wav")
        XCTAssertEqual(try ListenConfig.parse("[output]\nformat = \"text\"\n", path: "c.toml").format, .text)
        XCTAssertNil(try ListenConfig.parse("[events]\nlabels = []\n", path: "c.toml").labels, "empty: every label")
    }

    /// Asserts that `text` is refused with exactly `path:line: ...reason...`.
    func assertRefused(_ text: String, line: Int, _ reason: String, labels: [Label]? = nil,
                       file: StaticString = #filePath, fileLine: UInt = #line) {
        XCTAssertThrowsError(try ListenConfig.parse(text, path: "/etc/eartag/eartag.toml", labels: labels),
                             file: file, line: fileLine) { error in
            let message = String(describing: error)
            XCTAssertTrue(message.hasPrefix("/etc/eartag/eartag.toml:\(line): "), message, file: file, line: fileLine)
            XCTAssertTrue(message.contains(reason), message, file: file, line: fileLine)
            XCTAssertFalse(message.contains("\n"), message, file: file, line: fileLine)
        }
    }

    /// Unknown keys and tables, bad types and values, unknown labels and syntax errors name their line.
    func testRefusalsNameFileAndLine() {
        assertRefused("[events]\nthreshold = 0.5\nthresold = 0.4\n", line: 3, "unknown key 'thresold' in [events]")
        assertRefused("# x\n[sources]\ndevice = \"default\"\n", line: 2, "unknown table 'sources'")
        assertRefused("verbose = true\n", line: 1, "unknown key 'verbose'")
        assertRefused("[window]\n\nhop = \"1s\"\n", line: 3, "hop must be a number, not a string")
        assertRefused("[window]\nlength = 0.1\n", line: 2, "length must be in")
        assertRefused("[window]\nlength = 2\nhop = 3\n", line: 3, "must not exceed length")
        assertRefused("[events]\nthreshold = 1.5\n", line: 2, "threshold must be in 0...1 (got 1.5)")
        assertRefused("[events]\nthreshold = 0.3\noff_threshold = 0.5\n", line: 3, "off_threshold 0.5 is above")
        assertRefused("[events]\nconfirm = \"3/2\"\n", line: 2, "confirm must be K/N")
        assertRefused("[events]\nconfirm = 2\n", line: 2, "confirm must be a string, not an integer")
        assertRefused("[events]\nhold = -1\n", line: 2, "hold must be in")
        assertRefused("[events]\nlabels = \"Speech\"\n", line: 2, "labels must be an array of strings")
        assertRefused("[events]\nlabels = [\"Speech\", 3]\n", line: 2, "labels must contain only strings")
        assertRefused("[events]\n\nlabels = [\n  \"Speech\",\n  \"Doggo\",\n]\n", line: 3, "Doggo", labels: labels)
        assertRefused("[events]\nexclude = [\"Musik\"]\n", line: 2, "Musik", labels: labels)
        assertRefused("[output]\nformat = \"xml\"\n", line: 2, "format must be \"jsonl\" or \"text\"")
        assertRefused("[output]\ntop = 0\n", line: 2, "top must be in 1...")
        assertRefused("[output]\nwindows = \"yes\"\n", line: 2, "windows must be true or false")
        assertRefused("[source]\nrate = 44100.5\n", line: 2, "rate must be an integer, not a number")
        assertRefused("[source]\nsample_format = \"s24\"\n", line: 2, "unsupported sample format 's24'")
        assertRefused("[source]\ndevice = \"default\"\nstdin = true\n", line: 2, "give only one of")
        assertRefused("[model]\nthreads = 0\n", line: 2, "threads must be in")
        assertRefused("[model]\npath = \"\"\n", line: 2, "path must not be empty")
        assertRefused("[events]\nthreshold = \n", line: 2, "expected value")
        assertRefused("[events]\nthreshold = 0.3\n[events]\n", line: 3, "cannot redefine")
        assertRefused("events = 3\n", line: 1, "'events' must be a table")
        assertRefused("[events.extra]\nx = 1\n", line: 1, "unknown key 'extra' in [events]")
    }

    /// Known labels by display name or mid (any case) pass the label check.
    func testKnownLabelsPass() throws {
        let s = try ListenConfig.parse("[events]\nlabels = [\"speech\", \"/m/0dgbq\"]\n", path: "c", labels: labels)
        XCTAssertEqual(s.labels, ["speech", "/m/0dgbq"])
    }

    /// Line lookup for dotted keys, quoted keys and keys inside multi-line strings.
    func testKeyLines() {
        let lines = KeyLines("a = 1\n[t]\n\"q k\" = 2\nx.y = \"\"\"\nz = 3\n\"\"\"\nw = 4\n")
        XCTAssertEqual(lines.line(of: ["a"]), 1)
        XCTAssertEqual(lines.line(of: ["t"]), 2)
        XCTAssertEqual(lines.line(of: ["t", "q k"]), 3)
        XCTAssertEqual(lines.line(of: ["t", "x", "y"]), 4)
        XCTAssertEqual(lines.line(of: ["t", "z"]), 2, "inside a multi-line string: not a key")
        XCTAssertEqual(lines.line(of: ["t", "w"]), 7)
        XCTAssertEqual(lines.line(of: ["nope"]), 1)
    }
}
