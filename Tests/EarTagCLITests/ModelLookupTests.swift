// Where commands find their model without --model, through a copy of the built binary installed under a temporary
// prefix: --model, $EARTAG_MODEL, listen's configuration file, PREFIX/share/eartag, then ./Weights.
import Foundation
import XCTest
import EarTagModel
import EarTagTestSupport

final class ModelLookupTests: CLITestCase {
    private var dir: URL!
    /// The copy of `eartag` at PREFIX/bin/eartag.
    private var binary: String!
    /// PREFIX/share/eartag/default.safetensors of that copy.
    private var installed: String!
    /// A source checkout (the working directory of the runs) and its Weights/default.safetensors.
    private var checkout: URL!
    private var checkoutModel: String!
    private var clip: String!

    /// Four made-up classes; the fixture for origin k ranks class k first.
    static let labels = (0..<4).map { Label(index: $0, mid: "/t/lookup\($0)", displayName: "Class \($0)") }

    override func setUpWithError() throws {
        dir = try makeTemporaryDirectory("eartag-lookup")
        let bin = dir.appendingPathComponent("prefix/bin")
        try FileManager.default.createDirectory(at: bin, withIntermediateDirectories: true)
        binary = bin.appendingPathComponent("eartag").path
        try FileManager.default.copyItem(atPath: CLITestCase.binary, toPath: binary)
        installed = dir.appendingPathComponent("prefix/share/eartag/default.safetensors").path
        checkout = dir.appendingPathComponent("checkout")
        checkoutModel = checkout.appendingPathComponent("Weights/default.safetensors").path
        clip = dir.appendingPathComponent("clip.wav").path
        try writeWAV(URL(fileURLWithPath: clip), seconds: 2, seed: 3)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: dir)
    }

    /// Writes the fixture that ranks class `top` first, named `name`.
    @discardableResult
    func fixture(_ path: String, top: Int, name: String) throws -> String {
        try FixtureModel.write(to: path, name: name, labels: Self.labels, ranking: [top] + (0..<4).filter { $0 != top })
    }

    /// Skips when this machine has a system-wide default model (it would come before ./Weights in the search).
    func skipIfSystemDefaultExists() throws {
        for p in ["/usr/local/share/eartag/default.safetensors", "/usr/share/eartag/default.safetensors"] {
            try XCTSkipIf(FileManager.default.fileExists(atPath: p), "\(p) exists on this machine")
        }
    }

    /// The `model` field of `eartag tag --format jsonl` (the model's name), after checking the run succeeded.
    func taggedBy(_ extra: [String] = [], environment: [String: String] = [:],
                  file: StaticString = #filePath, line: UInt = #line) throws -> String? {
        let r = try run(["tag", "--format", "jsonl", clip] + extra, environment: environment, binary: binary,
                        currentDirectory: checkout)
        XCTAssertEqual(r.status, 0, r.stderr, file: file, line: line)
        let object = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        return object?["model"] as? String
    }

    /// Checks the order for `eartag tag`: --model over $EARTAG_MODEL over the installed default over ./Weights, and
    /// the "no model" error listing every place searched, in order.
    func testTagSearchOrder() throws {
        try skipIfSystemDefaultExists()
        try FileManager.default.createDirectory(at: checkout, withIntermediateDirectories: true)
        let missing = try run(["tag", clip], binary: binary, currentDirectory: checkout)
        assertOneLineError(missing, naming: "no model")
        let searched = ["EARTAG_MODEL", installed!, "/usr/local/share/eartag/default.safetensors",
                        "/usr/share/eartag/default.safetensors", checkoutModel!]
        var last = missing.stderr.startIndex
        for s in searched {
            guard let r = missing.stderr.range(of: s, range: last..<missing.stderr.endIndex) else {
                XCTFail("'\(s)' missing or out of order in: \(missing.stderr)")
                break
            }
            last = r.upperBound
        }

        try fixture(checkoutModel, top: 3, name: "checkout")
        XCTAssertEqual(try taggedBy(), "checkout", "./Weights/default.safetensors from the working directory")
        XCTAssertNotEqual(try run(["tag", clip], binary: binary, currentDirectory: dir).status, 0,
                          "./Weights is relative to the working directory")

        try fixture(installed, top: 2, name: "installed")
        XCTAssertEqual(try taggedBy(), "installed", "PREFIX/share/eartag comes before ./Weights")

        let env = try fixture(dir.appendingPathComponent("env.safetensors").path, top: 1, name: "env")
        XCTAssertEqual(try taggedBy(environment: ["EARTAG_MODEL": env]), "env")

        let explicit = try fixture(dir.appendingPathComponent("explicit.safetensors").path, top: 0, name: "explicit")
        XCTAssertEqual(try taggedBy(["--model", explicit], environment: ["EARTAG_MODEL": env]), "explicit")
    }

    /// `listen --config`: $EARTAG_MODEL comes before the file's [model] path, which comes before the defaults; a
    /// configured path that does not exist is an error naming it (no silent fallback).
    func testListenConfigurationFileInTheOrder() throws {
        try fixture(checkoutModel, top: 0, name: "checkout")
        let configured = try fixture(dir.appendingPathComponent("conf/configured.safetensors").path, top: 2,
                                     name: "configured")
        let env = try fixture(dir.appendingPathComponent("env.safetensors").path, top: 3, name: "env")
        let config = dir.appendingPathComponent("conf/eartag.toml")
        try Data("[model]\npath = \"configured.safetensors\"\n".utf8).write(to: config)
        let plain = dir.appendingPathComponent("conf/plain.toml")
        try Data("[window]\nlength = 1\n".utf8).write(to: plain)

        /// The class names the listener printed (window records and events).
        func heard(_ config: URL, environment: [String: String] = [:]) throws -> Set<String> {
            let r = try run(["listen", clip, "--config", config.path, "--window", "1", "--hop", "1", "--windows",
                             "--top", "1"], environment: environment, binary: binary, currentDirectory: checkout)
            XCTAssertEqual(r.status, 0, r.stderr)
            return Set((0..<4).map { "Class \($0)" }.filter { r.stdout.contains($0) })
        }
        XCTAssertEqual(try heard(config), ["Class 2"], "the configuration file's [model] path")
        XCTAssertEqual(try heard(config, environment: ["EARTAG_MODEL": env]), ["Class 3"], "$EARTAG_MODEL first")
        XCTAssertEqual(try heard(plain), ["Class 0"], "no [model] path: the search goes on to ./Weights")

        try FileManager.default.removeItem(atPath: configured)
        let r = try run(["listen", clip, "--config", config.path], binary: binary, currentDirectory: checkout)
        assertOneLineError(r, naming: configured)
    }

    /// A default model found by the search that cannot be loaded fails with one line naming the file and where
    /// it was found.
    func testBrokenDefaultModelIsNamed() throws {
        try FileManager.default.createDirectory(atPath: (checkoutModel as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true)
        try Data("not a model".utf8).write(to: URL(fileURLWithPath: checkoutModel))
        if (try? skipIfSystemDefaultExists()) != nil {
            let r = try run(["tag", clip], binary: binary, currentDirectory: checkout)
            assertOneLineError(r, naming: checkoutModel)
            XCTAssertTrue(r.stderr.contains("Weights"), r.stderr)
        }
        try FileManager.default.createDirectory(atPath: (installed as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true)
        try Data(repeating: 0xFF, count: 64).write(to: URL(fileURLWithPath: installed))
        let r = try run(["labels"], binary: binary, currentDirectory: checkout)
        assertOneLineError(r, naming: installed)
        XCTAssertTrue(r.stderr.contains("installed default model"), r.stderr)
    }
}
