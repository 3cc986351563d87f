// ModelLocator.locate: the search order over explicit, environment, configuration file, installed and checkout
// paths, with every input passed in (no process state).
import Foundation
import XCTest
import EarTagPipeline
import EarTagTestSupport

final class ModelLocatorTests: XCTestCase {
    private var dir: URL!

    override func setUpWithError() throws { dir = try makeTemporaryDirectory("eartag-locator") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    /// Creates an (empty) file at `relative` under the test folder and returns its path.
    func touch(_ relative: String) throws -> String {
        let url = dir.appendingPathComponent(relative)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: url.path, contents: Data())
        return url.path
    }

    /// `locate` with the test folder's prefix and checkout.
    func locate(_ explicit: String? = nil, configured: String? = nil, env: [String: String] = [:]) throws
        -> ModelLocator.Located {
        try ModelLocator.locate(explicit, configured: configured, environment: env,
                                executable: dir.appendingPathComponent("prefix/bin/eartag").path,
                                currentDirectory: dir.appendingPathComponent("checkout").path)
    }

    /// Named paths win in order and are taken as given, even when missing; then installed, then ./Weights.
    func testOrder() throws {
        let systemDefault = ["/usr/local/share/eartag/default.safetensors", "/usr/share/eartag/default.safetensors"]
            .contains { FileManager.default.fileExists(atPath: $0) }
        try XCTSkipIf(systemDefault, "a system-wide default model exists on this machine")
        let checkout = try touch("checkout/Weights/default.safetensors")
        XCTAssertEqual(try locate(), .init(path: checkout, origin: "default model in ./Weights", named: false))
        let installed = try touch("prefix/share/eartag/default.safetensors")
        XCTAssertEqual(try locate().path, installed)
        XCTAssertEqual(try locate().origin, "installed default model")
        XCTAssertEqual(try locate(configured: "/missing/conf.safetensors"),
                       .init(path: "/missing/conf.safetensors", origin: "configuration file's [model] path", named: true))
        XCTAssertEqual(try locate(configured: "c", env: ["EARTAG_MODEL": "e"]).path, "e")
        XCTAssertEqual(try locate("x", configured: "c", env: ["EARTAG_MODEL": "e"]).path, "x")
        XCTAssertEqual(try locate("", configured: "", env: ["EARTAG_MODEL": ""]).path, installed, "empty means unset")
    }

    /// Nothing found: the error lists each place searched, in order.
    func testNotFoundListsEveryPlace() throws {
        let systemDefault = ["/usr/local/share/eartag/default.safetensors", "/usr/share/eartag/default.safetensors"]
            .contains { FileManager.default.fileExists(atPath: $0) }
        try XCTSkipIf(systemDefault, "a system-wide default model exists on this machine")
        XCTAssertThrowsError(try locate(configured: nil)) { error in
            guard let e = error as? ModelLocator.NotFound else { return XCTFail("\(error)") }
            XCTAssertEqual(e.searched, [
                "--model", "$EARTAG_MODEL",
                dir.appendingPathComponent("prefix/share/eartag/default.safetensors").path,
                "/usr/local/share/eartag/default.safetensors", "/usr/share/eartag/default.safetensors",
                dir.appendingPathComponent("checkout/Weights/default.safetensors").path,
            ])
        }
    }

    /// A model the search found but cannot load names the file and where it was found; a named one keeps the
    /// loader's own error.
    func testUnloadableFoundModel() throws {
        let found = ModelLocator.Located(path: try touch("Weights/default.safetensors"),
                                         origin: "default model in ./Weights", named: false)
        XCTAssertThrowsError(try ModelLocator.load(found)) { error in
            let text = String(describing: error)
            XCTAssertTrue(text.hasPrefix(found.path + " (the default model in ./Weights): "), text)
        }
        var named = found
        named.named = true
        XCTAssertThrowsError(try ModelLocator.load(named)) { error in
            XCTAssertFalse(error is ModelLocator.LoadFailed, "\(error)")
        }
    }
}
