// The device binary's footprint: `eartag` must not load Foundation's internationalization layer or ICU.
import Foundation
import XCTest

/// Checks what the built `eartag` binary links.
final class FootprintTests: CLITestCase {
    /// `ldd` lists the runtime's libraries (so the check is not vacuous) and none of Foundation, its
    /// internationalization layer or ICU (about 6 MB of resident memory; see docs/performance.md).
    func testEartagDoesNotLinkFoundationOrICU() throws {
        let r = try run([Self.binary], binary: "/usr/bin/ldd")
        XCTAssertEqual(r.status, 0, r.stderr)
        let text = r.stdout
        let libraries = text.split(separator: "\n").map {
            $0.split(whereSeparator: { $0 == " " || $0 == "\t" }).first.map(String.init) ?? ""
        }
        XCTAssertTrue(libraries.contains { $0.hasPrefix("libc.so") }, "ldd listed the libraries: \(text)")
        for banned in ["libFoundation.so", "libFoundationInternationalization.so", "lib_FoundationICU.so", "libicu"] {
            XCTAssertFalse(libraries.contains { $0.hasPrefix(banned) }, "eartag links \(banned): \(text)")
        }
    }
}
