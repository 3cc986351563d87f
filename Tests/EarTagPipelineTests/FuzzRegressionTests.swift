import XCTest
import EarTagModel
@testable import EarTagPipeline
import EarTagTestSupport

/// Replays the `listen_config` fuzz seeds and regressions through the configuration parser (docs/robustness.md).
final class ListenConfigFuzzRegressionTests: XCTestCase {
    /// Checks: each input parses or throws a ListenConfigError, with and without labels.
    func testConfigInputs() {
        let labels = (0..<4).map { Label(index: $0, mid: "/m/\($0)", displayName: "Class \($0)") }
        let inputs = FuzzInputs.files("listen_config")
        XCTAssertFalse(inputs.isEmpty)
        for (_, bytes) in inputs {
            let text = String(decoding: bytes, as: UTF8.self)
            _ = try? ListenConfig.parse(text, path: "/tmp/fuzz/listen.toml", labels: labels)
            _ = try? ListenConfig.parse(text, path: "/tmp/fuzz/listen.toml", labels: nil)
        }
        let full = FuzzInputs.file("corpus/listen_config/full.toml") ?? []
        XCTAssertEqual(try ListenConfig.parse(String(decoding: full, as: UTF8.self), path: "/etc/eartag/l.toml",
                                              labels: labels).rate, 48000)
    }
}

extension ListenConfigFuzzRegressionTests {
    /// Checks: a NUL byte in a key is refused with its line (TOMLKit's toml++ aborted the process on it).
    func testControlCharacterIsRefused() throws {
        let bytes = try XCTUnwrap(FuzzInputs.file("regressions/listen_config/nul_in_key.toml"))
        XCTAssertThrowsError(try ListenConfig.parse(String(decoding: bytes, as: UTF8.self), path: "c.toml")) { e in
            XCTAssertTrue("\(e)".contains("c.toml:1: expected a key, found '{'"), "\(e)")
        }
        XCTAssertThrowsError(try ListenConfig.parse("[source]\nstdin = true\nrate\u{0} = 1\n", path: "c.toml")) { e in
            XCTAssertTrue("\(e)".contains("control character U+0000") && "\(e)".contains("c.toml:3"), "\(e)")
        }
    }
}

extension ListenConfigFuzzRegressionTests {
    /// Checks: non-ASCII outside strings (a table header) is refused with its line (toml++ aborted the process on it);
    /// non-ASCII inside strings and comments is still accepted.
    func testNonASCIIOutsideStringsIsRefused() throws {
        let bytes = try XCTUnwrap(FuzzInputs.file("regressions/listen_config/nonascii_table_header.toml"))
        XCTAssertThrowsError(try ListenConfig.parse(String(decoding: bytes, as: UTF8.self), path: "c.toml")) { e in
            XCTAssertTrue("\(e)".contains("c.toml:1: expected a key, found '='"), "\(e)")
        }
        XCTAssertThrowsError(try ListenConfig.parse("[source]\n\u{FFFD} = 1\n", path: "c.toml")) { e in
            XCTAssertTrue("\(e)".contains("non-ASCII character U+FFFD") && "\(e)".contains("c.toml:2"), "\(e)")
        }
        XCTAssertThrowsError(try ListenConfig.parse("[windowé]\nlength = 5\n", path: "d.toml")) { e in
            XCTAssertTrue("\(e)".contains("d.toml:1"), "\(e)")
        }
        let ok = "# café, naïve \u{1F50A}\n[output]\nformat = \"jsonl\" # ünïcode\n[events]\nlabels = [\"Café ☕\"]\n"
        XCTAssertThrowsError(try ListenConfig.parse(ok, path: "e.toml", labels: [])) { e in
            // Parsed past the pre-scan: the only complaint is the unknown label.
            XCTAssertTrue("\(e)".contains("Café ☕") && !"\(e)".contains("non-ASCII"), "\(e)")
        }
        XCTAssertNoThrow(try ListenConfig.parse(ok, path: "e.toml"))
    }
}
