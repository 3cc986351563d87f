// `eartag quantize` and int8 models through every command that takes a model.
import Foundation
import XCTest
import EarTagTestSupport

final class QuantizeCommandTests: CLITestCase {
    /// Quantizes mn04_as on the reference recordings; `tag`, `labels`, `bench` and `listen` then take the int8 file.
    func testQuantizedModelWorksInEveryCommand() throws {
        let model = try importedModel()
        let dir = try makeTemporaryDirectory("eartag-q")
        defer { try? FileManager.default.removeItem(at: dir) }
        let int8 = dir.appendingPathComponent("mn04.int8.safetensors").path
        let audio = try Reference.path("audio")
        let q = try run(["quantize", "--model", model, "--calibrate", audio, "-o", int8])
        XCTAssertEqual(q.status, 0, q.stderr)
        XCTAssertTrue(q.stdout.contains("calibrated on 4 windows from 4 files"), q.stdout)
        for clip in ["speech", "music", "typing", "metro_station-paris"] {
            let path = try Reference.path("audio/\(clip).wav")
            let f = try run(["tag", "--model", model, "--top", "1", "--format", "jsonl", path])
            let i = try run(["tag", "--model", int8, "--top", "1", "--format", "jsonl", path])
            XCTAssertEqual(i.status, 0, i.stderr)
            let top = { (r: RunResult) -> String? in
                let obj = try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
                return (obj?["top"] as? [[String: Any]])?.first?["label"] as? String
            }
            XCTAssertNotNil(top(f))
            XCTAssertEqual(top(i), top(f), "\(clip): int8 top-1 differs from float")
            XCTAssertTrue(i.stdout.contains("\"model\":\"mn04_as (int8)\""), i.stdout)
        }
        let labels = try run(["labels", "--model", int8])
        XCTAssertEqual(labels.stdout.split(separator: "\n").count, 528)
        let bench = try run(["bench", "--model", int8, "--runs", "1", "--json"])
        XCTAssertEqual(bench.status, 0, bench.stderr)
        let listen = try run(["listen", "--model", int8, try Reference.path("audio/speech.wav"), "--window", "5",
                              "--windows"])
        XCTAssertEqual(listen.status, 0, listen.stderr)
        XCTAssertEqual(listen.stdout.split(separator: "\n").filter { $0.contains("window") }.count, 6)
        // An int8 model cannot be quantized again.
        let again = try run(["quantize", "--model", int8, "--calibrate", audio, "-o", int8 + ".2"])
        assertOneLineError(again, naming: int8)
    }

    /// Bad calibration input is refused with one line.
    func testBadCalibrationInputIsRefused() throws {
        let model = try importedModel()
        let dir = try makeTemporaryDirectory("eartag-q")
        defer { try? FileManager.default.removeItem(at: dir) }
        let missing = dir.appendingPathComponent("nothing-here").path
        assertOneLineError(try run(["quantize", "--model", model, "--calibrate", missing, "-o",
                                    dir.appendingPathComponent("o").path]), naming: missing)
        let empty = dir.appendingPathComponent("empty").path
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        let r = try run(["quantize", "--model", model, "--calibrate", empty, "-o", dir.appendingPathComponent("o").path])
        assertOneLineError(r, naming: empty)
        XCTAssertNotEqual(try run(["quantize", "--model", model, "-o", "x"]).status, 0)
        // Option validation (swift-argument-parser): the error line names the option; usage lines follow.
        let rounds = try run(["quantize", "--model", model, "--calibrate", empty, "--bias-correction", "9", "-o", "x"])
        XCTAssertEqual(rounds.status, 64)
        XCTAssertTrue(rounds.stderr.hasPrefix("Error: --bias-correction must be 0...4 (got 9)"), rounds.stderr)
        let bits = try run(["quantize", "--model", model, "--calibrate", empty, "--stem-bits", "12", "-o", "x"])
        XCTAssertEqual(bits.status, 64)
        XCTAssertTrue(bits.stderr.hasPrefix("Error: --stem-bits must be 8 or 16 (got 12)"), bits.stderr)
    }
}
