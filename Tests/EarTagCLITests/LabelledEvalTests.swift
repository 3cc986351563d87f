// bench/labelled-eval on a hand-made corpus and two fixture models whose rankings are known, so every count is
// known in advance; and its refusals (a class the model lacks, a missing manifest, a malformed mapping).
import Foundation
import XCTest
import EarTagModel
import EarTagTestSupport

final class LabelledEvalTests: CLITestCase {
    private var dir: URL!
    private var corpus: URL!
    private var mapping: String!

    /// bench/labelled-eval in this checkout.
    static var script: String { Reference.packageRoot.appendingPathComponent("bench/labelled-eval").path }

    /// Eight AudioSet classes (their real mids).
    static let labels = [("/m/09x0r", "Speech"), ("/m/04rlf", "Music"), ("/m/0bt9lr", "Dog"), ("/m/05tny_", "Bark"),
                         ("/m/01yrx", "Cat"), ("/m/06mb1", "Rain"), ("/m/03kmc9", "Siren"), ("/m/05r5c", "Piano")]
        .enumerated().map { Label(index: $0.offset, mid: $0.element.0, displayName: $0.element.1) }

    override func setUpWithError() throws {
        dir = try makeTemporaryDirectory("eartag-labelled")
        corpus = dir.appendingPathComponent("corpus")
        // clip, split, package, source: four labelled held-out clips (speech, dog, rain, piano) and five that must
        // be left out (train split, a mixture, no matching row, a row marked '-', another package's pattern).
        let rows = [
            ("clips/voices/a.wav.0.wav", "validation", "voices", "voices/a.wav"),
            ("clips/fx/Dog1.WAV.0.wav", "validation", "fx", "fx/sounds/Dog1.WAV"),
            ("clips/fx/rain.ogg.0.wav", "validation", "fx", "fx/sounds/rain.ogg"),
            ("clips/fx/piano.flac.0.wav", "validation", "fx", "fx/sounds/piano.flac"),
            ("clips/fx/dog2.wav.0.wav", "train", "fx", "fx/sounds/dog2.wav"),
            ("clips/mix/validation-00000.wav", "validation", "fx + voices",
             "clips/fx/rain.ogg.0.wav*0.500 + clips/voices/a.wav.0.wav*0.500"),
            ("clips/fx/creak.wav.0.wav", "validation", "fx", "fx/sounds/creak.wav"),
            ("clips/fx/silence/piano.wav.0.wav", "validation", "fx", "fx/silence/piano.wav"),
            ("clips/other/rain.wav.0.wav", "validation", "other", "other/rain.wav"),
        ]
        var manifest = "clip,split,package,source,start,duration,licence\n"
        for (i, r) in rows.enumerated() {
            try writeWAV(corpus.appendingPathComponent(r.0), seconds: 1, seed: UInt64(i))
            manifest += "\(r.0),\(r.1),\(r.2),\(r.3),0.000,1.000,GPL-2+\n"
        }
        try Data(manifest.utf8).write(to: corpus.appendingPathComponent("manifest.csv"))
        mapping = try writeMapping("""
            # a comment, then the header
            package,pattern,display_names,mids
            voices,\\.wav$,Speech,/m/09x0r
            fx,/silence/,-,-
            # comments may sit between rows, "quoted, with commas" too
            fx,/dog\\d\\.wav$,Dog|Bark,/m/0bt9lr|/m/05tny_
            fx,/rain\\.ogg$,Rain,/m/06mb1
            fx,/piano\\.(flac|wav)$,Piano,/m/05r5c

            """)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: dir)
    }

    /// Writes a mapping file and returns its path.
    func writeMapping(_ text: String, name: String = "mapping.csv") throws -> String {
        let path = dir.appendingPathComponent(name).path
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// A fixture model ranking the classes in `order` (display names, best first; the rest after, in label order).
    func model(_ name: String, _ order: [String]) throws -> String {
        let first = order.map { n in Self.labels.firstIndex { $0.displayName == n }! }
        let ranking = first + Self.labels.indices.filter { !first.contains($0) }
        return try FixtureModel.write(to: dir.appendingPathComponent("\(name).safetensors").path, name: name,
                                      labels: Self.labels, ranking: ranking)
    }

    /// Runs the script on the fixture corpus.
    func evaluate(_ extra: [String]) throws -> RunResult {
        try run(["--corpus", corpus.path, "--mapping", mapping, "--eartag", CLITestCase.binary] + extra,
                binary: Self.script)
    }

    /// Model A ranks Speech, Music, Dog, Bark, Cat first: top-1 hits speech; top-5 hits speech and dog.
    /// Model B ranks Piano, Siren, Rain, Bark, Cat first: top-1 hits piano; top-5 hits piano, rain and dog (Bark).
    /// The per-class counts and table follow.
    func testCountsOfTwoModels() throws {
        let a = try model("a", ["Speech", "Music", "Dog", "Bark", "Cat"])
        let b = try model("b", ["Piano", "Siren", "Rain", "Bark", "Cat"])
        let json = try evaluate(["--model", a, "--model", b, "--json"])
        XCTAssertEqual(json.status, 0, json.stderr)
        let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        let models = try XCTUnwrap(object?["models"] as? [[String: Any]])
        XCTAssertEqual(models.count, 2)
        XCTAssertEqual(models[0]["model"] as? String, a)
        XCTAssertEqual(models.map { $0["clips"] as? Int }, [4, 4])
        XCTAssertEqual(models.map { $0["top1_hits"] as? Int }, [1, 1])
        XCTAssertEqual(models.map { $0["top5_hits"] as? Int }, [2, 3])
        let perClass = try XCTUnwrap(models[1]["per_class"] as? [String: [String: Int]])
        XCTAssertEqual(perClass, ["Speech": ["clips": 1, "top1_hits": 0, "top5_hits": 0],
                                  "Dog": ["clips": 1, "top1_hits": 0, "top5_hits": 1],
                                  "Rain": ["clips": 1, "top1_hits": 0, "top5_hits": 1],
                                  "Piano": ["clips": 1, "top1_hits": 1, "top5_hits": 1]])

        let table = try evaluate(["--model", a, "--model", b, "--per-class"])
        XCTAssertEqual(table.status, 0, table.stderr)
        XCTAssertTrue(table.stdout.contains("| model | clips evaluated | top-1 hits | top-5 hits |"), table.stdout)
        XCTAssertTrue(table.stdout.contains("| \(a) | 4 | 1 (25.0%) | 2 (50.0%) |"), table.stdout)
        XCTAssertTrue(table.stdout.contains("| \(b) | 4 | 1 (25.0%) | 3 (75.0%) |"), table.stdout)
        XCTAssertTrue(table.stdout.contains("| Dog | 1 | 0 / 1 | 0 / 1 |"), table.stdout)
        XCTAssertTrue(table.stdout.contains("| Piano | 1 | 0 / 0 | 1 / 1 |"), table.stdout)
    }

    /// The committed mapping's classes are all AudioSet's: checked against the reference labels file, as the script
    /// checks them against a model's labels (a full-label fixture model, so the check is the script's own).
    func testCommittedMappingMatchesAudioSet() throws {
        let file = try Reference.path("efficientat/class_labels_indices.csv")
        let labels = try LabelFile.parse(try String(contentsOfFile: file, encoding: .utf8), path: file)
        let path = try FixtureModel.write(to: dir.appendingPathComponent("audioset.safetensors").path,
                                          name: "audioset", labels: labels, ranking: Array(labels.indices))
        mapping = Reference.packageRoot.appendingPathComponent("bench/labelled-classes.csv").path
        // Every class is checked against the model before the corpus is read; the fixture corpus has no package of
        // the committed mapping, so a passing check ends in "nothing to evaluate".
        let r = try evaluate(["--model", path])
        assertOneLineError(r, naming: "no held-out clip matches")
    }

    /// One line naming the problem and exit status 1: a class the model does not have, a missing manifest, a
    /// malformed mapping row, a bad pattern.
    func testBadInputIsRefused() throws {
        let a = try model("a", ["Speech"])
        mapping = try writeMapping("package,pattern,display_names,mids\nfx,x,Thunder,/m/0ngt1\n", name: "thunder.csv")
        assertOneLineError(try evaluate(["--model", a]), naming: "\(mapping!): line 2: class 'Thunder' /m/0ngt1")
        mapping = try writeMapping("package,pattern,display_names,mids\nfx,x,Dog,/m/05tny_\n", name: "wrong-mid.csv")
        assertOneLineError(try evaluate(["--model", a]), naming: "the model calls /m/05tny_ 'Bark'")
        mapping = try writeMapping("package,pattern,display_names,mids\nfx,x,Dog|Bark,/m/0bt9lr\n", name: "count.csv")
        assertOneLineError(try evaluate(["--model", a]), naming: "line 2: 2 display names but 1 mids")
        mapping = try writeMapping("package,pattern,display_names,mids\nfx,(,Dog,/m/0bt9lr\n", name: "regex.csv")
        assertOneLineError(try evaluate(["--model", a]), naming: "line 2: bad pattern")
        mapping = try writeMapping("package,pattern,display_names,mids\nfx,x,Dog,/m/0bt9lr\n", name: "good.csv")
        try FileManager.default.removeItem(at: corpus.appendingPathComponent("manifest.csv"))
        assertOneLineError(try evaluate(["--model", a]), naming: corpus.appendingPathComponent("manifest.csv").path)
    }
}
