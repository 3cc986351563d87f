// `eartag-train evaluate` through the built binary: agreement figures against a teacher store, and bad input.
import Foundation
import XCTest
import EarTagModel
import EarTagTestSupport

final class EvaluateCommandTests: CLITestCase {
    private var dir: URL!

    override func setUpWithError() throws {
        dir = try makeTemporaryDirectory("eartag-evaluate")
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: dir)
    }

    /// A corpus of the three 10 s reference recordings (music, speech, typing: three different teacher top-1
    /// classes) and mn04_as's store for it; returns (model, corpus, store).
    private func corpusAndStore() throws -> (model: String, corpus: String, store: String) {
        let model = try importedModel()
        let corpus = dir.appendingPathComponent("corpus")
        try FileManager.default.createDirectory(at: corpus, withIntermediateDirectories: true)
        for c in ["music", "speech", "typing"] {
            try FileManager.default.copyItem(atPath: try Reference.path("audio/\(c).wav"),
                                             toPath: corpus.appendingPathComponent("\(c).wav").path)
        }
        let store = dir.appendingPathComponent("teacher").path
        let r = try run(["teach", "--teacher", model, "--data", corpus.path, "-o", store],
                        binary: TeachCommandTests.trainTool)
        XCTAssertEqual(r.status, 0, r.stderr)
        return (model, corpus.path, store)
    }

    /// The JSON objects printed by `evaluate --json`, one per line.
    private func objects(_ stdout: String) throws -> [[String: Any]] {
        try stdout.split(separator: "\n").map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
    }

    /// Checks: the teacher evaluated against its own store agrees on every clip (top-1 and top-5 = 1, mAP = 1 and
    /// AUC = 1 on these three clips: its scores rank its own targets perfectly there); against a store whose rows were rotated (each clip given
    /// another recording's logits) its top-1 agreement is 0 while the top-5 figure and the table form still hold.
    func testAgreementWithTheTeachersOwnAndRotatedLogits() throws {
        let (model, corpus, store) = try corpusAndStore()
        var r = try run(["evaluate", "--model", model, "--data", corpus, "--teacher", store, "--split", "all", "--json"],
                        binary: TeachCommandTests.trainTool)
        XCTAssertEqual(r.status, 0, r.stderr)
        var o = try objects(r.stdout)
        XCTAssertEqual(o.count, 1)
        XCTAssertEqual(o[0]["clips"] as? Int, 3)
        XCTAssertEqual(o[0]["split"] as? String, "all")
        XCTAssertEqual(o[0]["top1_agreement"] as? Double, 1)
        XCTAssertEqual(o[0]["top5_agreement"] as? Double, 1)
        XCTAssertEqual(try XCTUnwrap(o[0]["map"] as? Double), 1, accuracy: 1e-9)

        // Rotate the rows: music gets speech's logits, speech typing's, typing music's.
        let path = store + "/logits.npy"
        let logits = try NumpyArray.read(path: path)
        let k = 527
        let rotated = Array(logits.data[k..<3 * k]) + Array(logits.data[0..<k])
        try NumpyArray(shape: [3, k], data: rotated).write(path: path)
        r = try run(["evaluate", "--model", model, "--model", model, "--data", corpus, "--teacher", store,
                     "--split", "all", "--json"], binary: TeachCommandTests.trainTool)
        XCTAssertEqual(r.status, 0, r.stderr)
        o = try objects(r.stdout)
        XCTAssertEqual(o.count, 2, "one object per --model")
        XCTAssertEqual(o[0]["top1_agreement"] as? Double, 0)
        XCTAssertLessThan(try XCTUnwrap(o[0]["map"] as? Double), 1)

        r = try run(["evaluate", "--model", model, "--data", corpus, "--teacher", store, "--split", "all"],
                    binary: TeachCommandTests.trainTool)
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = r.stdout.split(separator: "\n")
        XCTAssertEqual(lines.count, 4, r.stdout)
        XCTAssertTrue(lines[1].hasPrefix("| model | clips | mAP vs teacher |"), r.stdout)
        XCTAssertTrue(lines[3].hasPrefix("| \(model) | 3 | "), r.stdout)
        XCTAssertTrue(lines[3].contains(" | 0.000 | "), r.stdout)
    }

    /// Checks: bad input gets one line naming the input and a non-zero exit: no model, an unknown split, a missing
    /// teacher store, an empty split (a manifest putting every clip in train; --split train then works), a file
    /// that is not a model, and a store that does not cover the corpus (a clip added after teach).
    func testBadInput() throws {
        let (model, corpus, store) = try corpusAndStore()
        let tool = TeachCommandTests.trainTool
        var r = try run(["evaluate", "--data", corpus, "--teacher", store], binary: tool)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("--model"), r.stderr)
        r = try run(["evaluate", "--model", model, "--data", corpus, "--teacher", store, "--split", "test"], binary: tool)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("--split must be validation, train or all"), r.stderr)
        let missing = dir.appendingPathComponent("no-store").path
        r = try run(["evaluate", "--model", model, "--data", corpus, "--teacher", missing], binary: tool)
        assertOneLineError(r, naming: missing)
        let allTrain = corpus + "/all-train.csv"
        try Data("clip,split\nmusic.wav,train\nspeech.wav,train\ntyping.wav,train\n".utf8)
            .write(to: URL(fileURLWithPath: allTrain))
        r = try run(["evaluate", "--model", model, "--data", allTrain, "--teacher", store], binary: tool)
        assertOneLineError(r, naming: allTrain)
        XCTAssertTrue(r.stderr.contains("validation split holds no clips"), r.stderr)
        r = try run(["evaluate", "--model", model, "--data", allTrain, "--teacher", store, "--split", "train",
                     "--json"], binary: tool)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try objects(r.stdout).first?["clips"] as? Int, 3)
        let notModel = dir.appendingPathComponent("not-a-model.safetensors").path
        try Data("not a model".utf8).write(to: URL(fileURLWithPath: notModel))
        r = try run(["evaluate", "--model", notModel, "--data", corpus, "--teacher", store, "--split", "all"], binary: tool)
        assertOneLineError(r, naming: notModel)
        try FileManager.default.copyItem(atPath: try Reference.path("audio/music.wav"),
                                         toPath: corpus + "/zzz-new.wav")
        r = try run(["evaluate", "--model", model, "--data", corpus, "--teacher", store, "--split", "all"], binary: tool)
        assertOneLineError(r, naming: "zzz-new.wav")
    }
}
