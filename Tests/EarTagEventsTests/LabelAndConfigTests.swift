// LabelSelector, threshold files, EventConfig validation and the options builder.
import Foundation
import XCTest
import EarTagModel
import EarTagTestSupport
@testable import EarTagEvents

final class LabelSelectorTests: XCTestCase {
    let selector = LabelSelector(labels: testLabels)

    /// Display names resolve exactly, case-insensitively, with blanks around, and by mid.
    func testResolvesNamesAndMids() throws {
        XCTAssertEqual(try selector.index(of: "Speech"), 0)
        XCTAssertEqual(try selector.index(of: "speech"), 0)
        XCTAssertEqual(try selector.index(of: "  MUSIC "), 1)
        XCTAssertEqual(try selector.index(of: "Railroad car, train wagon"), 2)
        XCTAssertEqual(try selector.index(of: "/m/0bt9lr"), 3)
        XCTAssertEqual(try selector.index(of: "/M/0BT9LR"), 3)
        XCTAssertEqual(try selector.indices(of: ["Dog", "/m/0bt9lr", "cat"]), [3, 4])
    }

    /// Unknown names are refused with their name and a close suggestion.
    func testUnknownNameSuggestsCloseMatch() {
        assertThrows(.unknownLabel(name: "Musc", suggestion: "Music"), try selector.index(of: "Musc"))
        assertThrows(.unknownLabel(name: "Railroad", suggestion: "Railroad car, train wagon"),
                     try selector.index(of: "Railroad"))
        assertThrows(.unknownLabel(name: "Helicopter", suggestion: nil), try selector.index(of: "Helicopter"))
        XCTAssertEqual(EventError.unknownLabel(name: "Musc", suggestion: "Music").description,
                       "unknown label 'Musc' (did you mean 'Music'?)")
    }

    /// Label lists split at unquoted commas only.
    func testSplitList() throws {
        XCTAssertEqual(try LabelSelector.splitList(#"Speech, "Railroad car, train wagon",/m/0bt9lr"#),
                       ["Speech", "Railroad car, train wagon", "/m/0bt9lr"])
        XCTAssertThrowsError(try LabelSelector.splitList(#"Speech,"Dog"#))
    }

    /// Every name and mid of the real AudioSet label file resolves to its own index.
    func testRealAudioSetLabels() throws {
        let labels = try LabelFile.read(path: Reference.path("efficientat/class_labels_indices.csv"))
        XCTAssertEqual(labels.count, 527)
        let s = LabelSelector(labels: labels)
        for l in labels {
            XCTAssertEqual(try s.index(of: l.displayName), l.index)
            XCTAssertEqual(try s.index(of: l.mid), l.index)
        }
        XCTAssertEqual(try s.index(of: "/m/09x0r"), 0)
        XCTAssertEqual(try s.index(of: "railroad car, train wagon"), 332)
        XCTAssertThrowsError(try s.index(of: "Dgo bark")) { e in
            XCTAssertTrue("\(e)".contains("Dgo bark"), "\(e)")
        }
    }
}

final class ThresholdFileTests: XCTestCase {
    let selector = LabelSelector(labels: testLabels)
    var directory: URL!

    override func setUpWithError() throws { directory = try makeTemporaryDirectory("eartag-events") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: directory) }

    /// Writes `text` to a fresh file and returns its path.
    func write(_ text: String, name: String = "thresholds.csv") throws -> String {
        let url = directory.appendingPathComponent(name)
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }

    /// Quoted display names with commas, mids, comments, blanks and CRLF all parse.
    func testParsesQuotedNamesMidsAndComments() throws {
        let path = try write("""
        # per-label thresholds\r
        "Railroad car, train wagon",0.4,0.3\r

          /m/09x0r , 0.6
        dog,0.5,0.5
        """)
        let t = try ThresholdFile.read(path: path, selector: selector)
        XCTAssertEqual(t, [2: ClassThresholds(on: 0.4, off: 0.3), 0: ClassThresholds(on: 0.6),
                           3: ClassThresholds(on: 0.5, off: 0.5)])

        // Through the options builder the file sets per-class thresholds over the defaults.
        let config = try EventConfig(options: EventOptions(thresholdFile: path, on: 0.2), labels: testLabels)
        XCTAssertEqual(config.on, [0.6, 0.2, 0.4, 0.5, 0.2])
        let r = EventConfig.defaultOffRatio
        XCTAssertEqual(config.off, [0.6 * r, 0.2 * r, 0.3, 0.5, 0.2 * r])

        // And the detector uses them: 0.5 starts Railroad (on 0.4) but not Speech (on 0.6).
        let d = try EventDetector(config: config, numClasses: testLabels.count)
        let out = drive(d, [[0.5, 0, 0.5, 0, 0], [0.5, 0, 0.5, 0, 0]], hop: sec(1))
        XCTAssertEqual(out.map(\.event.classIndex), [2])
    }

    /// Each malformed line is refused with the file and its line number.
    func testBadFilesNameFileAndLine() throws {
        let cases: [(String, Int, String)] = [
            ("Speech,abc", 1, "on threshold 'abc' is not a number"),
            ("# ok\n\nSpeech,1.5", 3, "on threshold 1.5 is outside [0, 1]"),
            ("Speech,-0.1", 1, "on threshold -0.1 is outside [0, 1]"),
            ("Speech,nan", 1, "on threshold 'nan' is not a number"),
            ("Speech,0.5,2", 1, "off threshold 2 is outside [0, 1]"),
            ("Speech,0.3,0.5", 1, "off threshold 0.5 is above on threshold 0.3"),
            ("Speech,0.3\r\nSpeeech,0.3", 2, "unknown label 'Speeech' (did you mean 'Speech'?)"),
            ("Speech", 1, "expected LABEL,ON[,OFF] but found 1 field"),
            ("Speech,0.3,0.2,0.1", 1, "expected LABEL,ON[,OFF] but found 4 fields"),
            ("\"Speech,0.3", 1, "unterminated quoted field"),
            ("\"Speech\"x,0.3", 1, "text after a closing quote"),
            (",0.3", 1, "empty label"),
            ("Speech,", 1, "empty on threshold"),
            ("Dog,0.3\nMusic,0.3\n/m/0bt9lr,0.4", 3, "label 'Dog' already set on line 1"),
        ]
        for (text, line, reason) in cases {
            let path = try write(text)
            assertThrows(.badThresholdFile(path: path, line: line, reason: reason),
                         try ThresholdFile.read(path: path, selector: selector))
            XCTAssertThrowsError(try ThresholdFile.read(path: path, selector: selector)) { e in
                XCTAssertTrue("\(e)".hasPrefix("threshold file \(path):\(line): "), "\(e)")
            }
        }
    }

    /// Missing, oversized, overlong and non-UTF-8 files are refused.
    func testFileBounds() throws {
        let missing = directory.appendingPathComponent("nope.csv").path
        assertThrows(.badThresholdFile(path: missing, line: 0, reason: "no such file"),
                     try ThresholdFile.read(path: missing, selector: selector))

        let long = try write(String(repeating: "#\n", count: ThresholdFile.maxLines + 1), name: "long.csv")
        assertThrows(.badThresholdFile(path: long, line: ThresholdFile.maxLines + 1,
                                       reason: "more than \(ThresholdFile.maxLines) lines"),
                     try ThresholdFile.read(path: long, selector: selector))

        let big = directory.appendingPathComponent("big.csv")
        try Data(repeating: UInt8(ascii: "#"), count: ThresholdFile.maxBytes + 1).write(to: big)
        assertThrows(.badThresholdFile(path: big.path, line: 0, reason: "file larger than \(ThresholdFile.maxBytes) bytes"),
                     try ThresholdFile.read(path: big.path, selector: selector))

        let binary = directory.appendingPathComponent("bin.csv")
        try Data([0xFF, 0xFE, 0x00, 0x80]).write(to: binary)
        assertThrows(.badThresholdFile(path: binary.path, line: 0, reason: "not UTF-8 text"),
                     try ThresholdFile.read(path: binary.path, selector: selector))

        assertThrows(.badThresholdFile(path: directory.path, line: 0, reason: "is a directory"),
                     try ThresholdFile.read(path: directory.path, selector: selector))
        // A character device never ends; the read is bounded anyway.
        assertThrows(.badThresholdFile(path: "/dev/zero", line: 0, reason: "file larger than \(ThresholdFile.maxBytes) bytes"),
                     try ThresholdFile.read(path: "/dev/zero", selector: selector))

        // An empty file is valid and sets nothing.
        XCTAssertEqual(try ThresholdFile.read(path: try write("", name: "empty.csv"), selector: selector), [:])
    }
}

final class EventConfigTests: XCTestCase {
    /// Defaults: on 0.3, off 0.225, k 2 of n 3, hold 2 s, cooldown 0, every class watched.
    func testDefaults() throws {
        let c = try EventConfig(numClasses: 4)
        XCTAssertEqual(c.sampleRate, 32_000)
        XCTAssertEqual(c.on, [0.3, 0.3, 0.3, 0.3])
        XCTAssertEqual(c.off, [Float](repeating: 0.3 * 0.75, count: 4))
        XCTAssertEqual(c.confirmHits, 2)
        XCTAssertEqual(c.confirmWindows, 3)
        XCTAssertEqual(c.holdSamples, 64_000)
        XCTAssertEqual(c.cooldownSamples, 0)
        XCTAssertEqual(c.watchedClasses, [0, 1, 2, 3])
        XCTAssertEqual(try EventConfig(options: EventOptions(), labels: testLabels),
                       try EventConfig(numClasses: testLabels.count))
        let custom = try EventConfig(numClasses: 2, sampleRate: 16_000, on: 0.5, off: 0.1, hold: 0.5, cooldown: 1.5)
        XCTAssertEqual(custom.off, [0.1, 0.1])
        XCTAssertEqual(custom.holdSamples, 8_000)
        XCTAssertEqual(custom.cooldownSamples, 24_000)
    }

    /// Out-of-range or inconsistent settings are refused with a one-line reason.
    func testBadConfigRefused() throws {
        func refused(_ body: @autoclosure () throws -> EventConfig, _ fragment: String, line: UInt = #line) {
            XCTAssertThrowsError(try body(), line: line) { e in
                guard case .invalidConfig(let reason)? = e as? EventError else { return XCTFail("\(e)", line: line) }
                XCTAssertTrue(reason.contains(fragment), "'\(reason)' lacks '\(fragment)'", line: line)
                XCTAssertFalse("\(e)".contains("\n"), line: line)
            }
        }
        refused(try EventConfig(numClasses: 3, confirmHits: 4, confirmWindows: 3), "k (confirmation hits) 4")
        refused(try EventConfig(numClasses: 3, confirmHits: 0, confirmWindows: 3), "k (confirmation hits) 0")
        refused(try EventConfig(numClasses: 3, confirmHits: 1, confirmWindows: 0), "n (confirmation windows) 0")
        refused(try EventConfig(numClasses: 3, confirmHits: 1, confirmWindows: 65), "n (confirmation windows) 65")
        refused(try EventConfig(numClasses: 3, on: 1.5), "on threshold 1.5 is outside [0, 1]")
        refused(try EventConfig(numClasses: 3, on: .nan), "on threshold")
        refused(try EventConfig(numClasses: 3, on: 0.3, off: -0.1), "off threshold -0.1 is outside [0, 1]")
        refused(try EventConfig(numClasses: 3, on: 0.3, off: 0.4), "off threshold 0.4 is above on threshold 0.3")
        refused(try EventConfig(numClasses: 3, classThresholds: [1: ClassThresholds(on: 0.2, off: 0.5)]),
                "class 1 off threshold 0.5 is above on threshold 0.2")
        refused(try EventConfig(numClasses: 3, classThresholds: [3: ClassThresholds(on: 0.2)]), "class 3")
        refused(try EventConfig(numClasses: 3, hold: -1), "hold")
        refused(try EventConfig(numClasses: 3, hold: .infinity), "hold")
        refused(try EventConfig(numClasses: 3, cooldown: .nan), "cooldown")
        refused(try EventConfig(numClasses: 3, sampleRate: 0), "sample rate")
        refused(try EventConfig(numClasses: 0), "number of classes")
        refused(try EventConfig(numClasses: 3, watched: [5]), "watched class 5")
        refused(try EventConfig(numClasses: 3, excluded: [-1]), "excluded class -1")
        refused(try EventConfig(numClasses: 3, watched: [1], excluded: [1]), "no class left to watch")
        refused(try EventConfig(options: EventOptions(on: 0.2, off: 0.3), labels: testLabels), "above on threshold")

        let c = try EventConfig(numClasses: 3)
        assertThrows(.invalidConfig("config is for 3 classes but the model has 4"),
                     try EventDetector(config: c, numClasses: 4))
    }

    /// Allow and deny lists by name or mid; unknown names are refused with the name.
    func testAllowAndDenyLists() throws {
        let allow = try EventConfig(options: EventOptions(labels: ["speech", "/m/01g50p"]), labels: testLabels)
        XCTAssertEqual(allow.watchedClasses, [0, 2])
        let deny = try EventConfig(options: EventOptions(exclude: ["/m/04rlf", "Cat"]), labels: testLabels)
        XCTAssertEqual(deny.watchedClasses, [0, 2, 3])
        let both = try EventConfig(options: EventOptions(labels: ["Speech", "Music"], exclude: ["music"]),
                                   labels: testLabels)
        XCTAssertEqual(both.watchedClasses, [0])
        assertThrows(.unknownLabel(name: "Musik", suggestion: "Music"),
                     try EventConfig(options: EventOptions(labels: ["Musik"]), labels: testLabels))
        assertThrows(.unknownLabel(name: "Doge", suggestion: "Dog"),
                     try EventConfig(options: EventOptions(exclude: ["Doge"]), labels: testLabels))

        // Only watched classes produce events even when every class scores high.
        let d = try EventDetector(config: both, numClasses: testLabels.count)
        let all = [Float](repeating: 0.9, count: testLabels.count)
        let out = drive(d, [all, all, all], hop: sec(1), finishAt: sec(20))
        XCTAssertEqual(out.map(\.event.classIndex), [0, 0])
        XCTAssertEqual(out.map(\.event.kind), [.start, .end])
        let d2 = try EventDetector(config: deny, numClasses: testLabels.count)
        XCTAssertEqual(Set(drive(d2, [all, all], hop: sec(1)).map(\.event.classIndex)), [0, 2, 3])
    }
}
