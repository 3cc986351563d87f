// The device binary's footprint: `eartag` must not load Foundation's internationalization layer or ICU.
import Foundation
import XCTest

/// Checks what the built `eartag` binary links.
final class FootprintTests: CLITestCase {
    /// `ldd` lists the runtime's libraries (so the check is not vacuous) and none of Foundation, its
    /// internationalization layer or ICU (about 6 MB of resident memory; see docs/performance.md).
    func testEartagDoesNotLinkFoundationOrICU() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/ldd")
        p.arguments = [Self.binary]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, text)
        let libraries = text.split(separator: "\n").map {
            $0.split(whereSeparator: { $0 == " " || $0 == "\t" }).first.map(String.init) ?? ""
        }
        XCTAssertTrue(libraries.contains { $0.hasPrefix("libc.so") }, "ldd listed the libraries: \(text)")
        for banned in ["libFoundation.so", "libFoundationInternationalization.so", "lib_FoundationICU.so", "libicu"] {
            XCTAssertFalse(libraries.contains { $0.hasPrefix(banned) }, "eartag links \(banned): \(text)")
        }
    }
}
