// End-to-end: `eartag import` then `eartag tag` on the reference recordings, against EfficientAT's golden top-10.
import Foundation
import XCTest
import EarTagModel
import EarTagTestSupport

/// Parses a golden `*.top10.txt` (`Label: 0.727` lines; labels may contain ': ').
func parseTop10(_ text: String) -> [(String, Double)] {
    text.split(separator: "\n").compactMap { line in
        guard let r = line.range(of: ": ", options: .backwards), let v = Double(line[r.upperBound...]) else { return nil }
        return (String(line[..<r.lowerBound]), v)
    }
}

final class TagCommandTests: CLITestCase {
    static let clips = ["speech", "music", "typing", "metro_station-paris"]

    /// jsonl output of all four clips in one call: same top-10 labels, in order, each score within 0.002.
    func testTopTenMatchesEfficientATOnReferenceClips() throws {
        let model = try importedModel()
        let files = try Self.clips.map { try Reference.path("audio/\($0).wav") }
        let r = try run(["tag", "--model", model, "--format", "jsonl", "--all-scores", "--embedding"] + files)
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = r.stdout.split(separator: "\n")
        XCTAssertEqual(lines.count, 4)
        for (clip, line) in zip(Self.clips, lines) {
            let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            XCTAssertEqual(obj["file"] as? String, try Reference.path("audio/\(clip).wav"))
            XCTAssertEqual(obj["model"] as? String, "mn04_as")
            XCTAssertEqual(try XCTUnwrap(obj["duration_s"] as? Double), 10, accuracy: 0.01)
            let top = try XCTUnwrap(obj["top"] as? [[String: Any]])
            let golden = parseTop10(try String(contentsOfFile: Reference.path("golden/\(clip).top10.txt"),
                                               encoding: .utf8))
            XCTAssertEqual(golden.count, 10)
            XCTAssertEqual(top.map { $0["label"] as? String ?? "" }, golden.map(\.0), clip)
            for (t, g) in zip(top, golden) {
                XCTAssertEqual(try XCTUnwrap(t["score"] as? Double), g.1, accuracy: 0.002, "\(clip) \(g.0)")
                XCTAssertNotNil(t["mid"] as? String)
                XCTAssertNotNil(t["index"] as? Int)
            }
            XCTAssertEqual((obj["scores"] as? [Any])?.count, 527)
            XCTAssertEqual((obj["embedding"] as? [Any])?.count, 384)
        }
    }

    /// Text output: a `# FILE` header then EfficientAT's `Label: 0.727` lines.
    func testTextFormatIsEfficientATStyle() throws {
        let model = try importedModel()
        let speech = try Reference.path("audio/speech.wav")
        let r = try run(["tag", "--model", model, "--top", "3", speech])
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = r.stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        XCTAssertEqual(lines[0], "# \(speech) (10.00 s)")
        XCTAssertEqual(lines[1], "Speech: 0.818")
        XCTAssertEqual(lines[2], "Door: 0.373")
        XCTAssertEqual(lines[3], "Slam: 0.204")
        XCTAssertEqual(lines[4], "")
    }

    /// EARTAG_MODEL stands in for --model.
    func testModelFromEnvironment() throws {
        let model = try importedModel()
        let r = try run(["tag", "--top", "1", try Reference.path("audio/music.wav")],
                        environment: ["EARTAG_MODEL": model])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("Music: 0.59"), r.stdout)
    }

    /// `eartag labels` prints the 527 labels as CSV.
    func testLabelsCommand() throws {
        let model = try importedModel()
        let r = try run(["labels", "--model", model])
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = r.stdout.split(separator: "\n")
        XCTAssertEqual(lines.count, 528)
        XCTAssertEqual(lines[0], "index,mid,display_name")
        XCTAssertEqual(lines[1], "0,/m/09x0r,Speech")
    }

    /// `eartag bench --json` prints one object with the documented keys (figures are not asserted here).
    func testBenchJSONKeys() throws {
        let model = try importedModel()
        let r = try run(["bench", "--model", model, "--runs", "2", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        for key in ["frontend_ms_per_10s", "engine_ms_per_10s", "gmacs_per_s", "peak_rss_mb"] {
            XCTAssertNotNil(obj[key] as? Double, key)
        }
    }

    /// `eartag bench --mel` times the engine on a given mel (EfficientAT's (128, T) layout), cropped by `--frames`.
    func testBenchOnGivenMel() throws {
        let model = try importedModel()
        let mel = try Reference.path("golden/speech.mel.npy")
        let r = try run(["bench", "--model", model, "--runs", "1", "--mel", mel, "--frames", "100", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(obj["frames"] as? Int, 100)
        XCTAssertEqual(obj["mel"] as? String, mel)
        XCTAssertNotNil(obj["engine_ms"] as? Double)
    }

    /// Bad `--mel` inputs: one-line errors naming the file; `--frames` alone is refused.
    func testBenchBadMel() throws {
        let model = try importedModel()
        let dir = try makeTemporaryDirectory("eartag-bench-mel")
        defer { try? FileManager.default.removeItem(at: dir) }
        let cube = dir.appendingPathComponent("cube.npy").path
        try NumpyArray(shape: [2, 3, 4], data: [Float](repeating: 0, count: 24)).write(path: cube)
        let narrow = dir.appendingPathComponent("narrow.npy").path
        try NumpyArray(shape: [64, 10], data: [Float](repeating: 0, count: 640)).write(path: narrow)
        let mel = try Reference.path("golden/speech.mel.npy")
        let missing = dir.appendingPathComponent("missing.npy").path
        for (args, subject) in [(["--mel", cube], cube), (["--mel", narrow], narrow), (["--mel", missing], missing),
                                (["--mel", mel, "--frames", "1001"], mel)] {
            let r = try run(["bench", "--model", model, "--runs", "1"] + args)
            assertOneLineError(r, naming: subject)
        }
        let r = try run(["bench", "--model", model, "--frames", "100"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("--frames needs --mel"), r.stderr)
    }
}
