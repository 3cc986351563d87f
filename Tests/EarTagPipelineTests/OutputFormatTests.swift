import Foundation
import XCTest
import EarTagModel
import EarTagPipeline

/// Text and JSON Lines rendering, independent of any model weights.
final class OutputFormatTests: XCTestCase {
    let labels = [Label(index: 0, mid: "/m/a", displayName: "Speech"),
                  Label(index: 1, mid: "/m/b", displayName: "Dog \"bark\", loud"),
                  Label(index: 2, mid: "/m/c", displayName: "Music")]
    let result = TaggingResult(file: "dir/a b.wav", durationSeconds: 2.5, logits: [0, 1, 2],
                               scores: [0.25, 0.7275, 0.25], embedding: [1, -0.5])

    func testTopIndicesOrderByScoreThenIndex() {
        XCTAssertEqual(result.topIndices(3), [1, 0, 2])
        XCTAssertEqual(result.topIndices(1), [1])
        XCTAssertEqual(result.topIndices(10).count, 3)
    }

    func testTextBlock() {
        let p = ResultPrinter(format: .text, top: 2, allScores: false, embedding: false, labels: labels,
                              modelName: "m")
        XCTAssertEqual(p.render(result), "# dir/a b.wav (2.50 s)\nDog \"bark\", loud: 0.728\nSpeech: 0.250\n\n")
    }

    func testJSONLineParsesAndCarriesEveryField() throws {
        let p = ResultPrinter(format: .jsonl, top: 2, allScores: true, embedding: true, labels: labels,
                              modelName: "mn04_as")
        let line = p.render(result)
        XCTAssertTrue(line.hasSuffix("}\n"))
        XCTAssertEqual(line.filter { $0 == "\n" }.count, 1)
        let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        XCTAssertEqual(obj["file"] as? String, "dir/a b.wav")
        XCTAssertEqual(obj["duration_s"] as? Double, 2.5)
        XCTAssertEqual(obj["model"] as? String, "mn04_as")
        let top = try XCTUnwrap(obj["top"] as? [[String: Any]])
        XCTAssertEqual(top.count, 2)
        XCTAssertEqual(top[0]["label"] as? String, "Dog \"bark\", loud")
        XCTAssertEqual(top[0]["index"] as? Int, 1)
        XCTAssertEqual(top[0]["mid"] as? String, "/m/b")
        XCTAssertEqual(top[0]["score"] as? Double, 0.7275)
        XCTAssertEqual(obj["scores"] as? [Double], [0.25, 0.7275, 0.25])
        XCTAssertEqual(obj["embedding"] as? [Double], [1, -0.5])
    }

    func testJSONOmitsOptionalFieldsUnlessAsked() throws {
        let p = ResultPrinter(format: .jsonl, top: 1, allScores: false, embedding: false, labels: labels,
                              modelName: "m")
        let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(p.render(result).utf8)) as? [String: Any])
        XCTAssertNil(obj["scores"])
        XCTAssertNil(obj["embedding"])
    }

    func testJSONEscapesAndNumbers() {
        XCTAssertEqual(jsonString("a\"b\\c\n\u{1}é"), "\"a\\\"b\\\\c\\n\\u0001é\"")
        XCTAssertEqual(jsonNumber(Float(0.818)), "0.818")
        XCTAssertEqual(jsonNumber(Float(3)), "3")
        XCTAssertEqual(jsonNumber(Float.nan), "null")
        XCTAssertEqual(jsonNumber(Double(1e-5)), "1e-05")
    }

    func testModelLocatorOrder() throws {
        XCTAssertEqual(try ModelLocator.resolve("x.safetensors", environment: ["EARTAG_MODEL": "y"]), "x.safetensors")
        XCTAssertEqual(try ModelLocator.resolve(nil, environment: ["EARTAG_MODEL": "y"]), "y")
    }

    func testSyntheticBenchClipIsDeterministic() {
        let a = Bench.syntheticClip(rate: 32000)
        XCTAssertEqual(a.count, 320000)
        XCTAssertEqual(a, Bench.syntheticClip(rate: 32000))
        XCTAssertLessThanOrEqual(a.map(abs).max()!, 0.56)
    }
}
