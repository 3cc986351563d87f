import XCTest
@testable import EarTagModel
import EarTagTestSupport

/// SHA-256 against FIPS 180-4 / hashlib vectors and `sha256sum`; label CSV parsing and refusals.
final class SHA256AndLabelTests: XCTestCase {
    /// Checks: SHA 256 vectors.
    func testSHA256Vectors() {
        XCTAssertEqual(sha256Hex(of: [UInt8]()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(sha256Hex(of: Array("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(sha256Hex(of: Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        XCTAssertEqual(sha256Hex(of: [UInt8](repeating: 0x61, count: 1_000_000)),
                       "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
        // Padding edge cases around the 56- and 64-byte boundaries.
        XCTAssertEqual(sha256Hex(of: [UInt8](repeating: 0x78, count: 55)),
                       "d5e285683cd4efc02d021a5c62014694958901005d6f71e89e0989fac77e4072")
        XCTAssertEqual(sha256Hex(of: [UInt8](repeating: 0x78, count: 56)),
                       "04c26261370ee7541549d16dee320c723e3fd14671e66a099afe0a377c16888e")
        XCTAssertEqual(sha256Hex(of: [UInt8](repeating: 0x78, count: 64)),
                       "7ce100971f64e7001e8fe5a51973ecdfe1ced42befe7ee8d5fd6219506b5393c")
        // Incremental updates in odd pieces give the same digest.
        let data = (0..<768).map { UInt8($0 & 0xFF) }
        var h = SHA256Hasher()
        h.update(data[0..<1]); h.update(data[1..<100]); h.update(data[100...])
        XCTAssertEqual(h.finalize().map { String(format: "%02x", $0) }.joined(),
                       "f3a25aa93aa2fbba28d79260535bbd6a5eb0fc1c24a8b0f04e12b484c1dfe363")
    }

    /// Checks: SHA 256 of file matches sha 256sum.
    func testSHA256OfFileMatchesSha256sum() throws {
        let csv = try Reference.path("efficientat/class_labels_indices.csv")
        XCTAssertEqual(try sha256Hex(ofFile: csv), "cdd1049833c4b86127c2773ac0d14a2754b6a6d0d1798002ed5c66e699708429")
        let dir = try makeTemporaryDirectory("eartag-sha")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("random.bin")
        var g = SystemRandomNumberGenerator()
        try Data((0..<100_003).map { _ in UInt8.random(in: 0...255, using: &g) }).write(to: url)
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/sha256sum") else {
            throw XCTSkip("sha256sum not installed")
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
        p.arguments = [url.path]
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        p.waitUntilExit()
        let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(try sha256Hex(ofFile: url.path), String(out.prefix(64)))
    }

    /// Checks: official labels.
    func testOfficialLabels() throws {
        let labels = try LabelFile.read(path: try Reference.path("efficientat/class_labels_indices.csv"))
        XCTAssertEqual(labels.count, 527)
        XCTAssertEqual(labels[1], Label(index: 1, mid: "/m/05zppz", displayName: "Male speech, man speaking"))
        XCTAssertEqual(labels.last?.index, 526)
        XCTAssertTrue(labels.allSatisfy { !$0.displayName.contains("\"") })
    }

    /// Checks: quoted fields and line endings.
    func testQuotedFieldsAndLineEndings() throws {
        let text = "index,mid,display_name\r\n0,/m/a,\"Male speech, man speaking\"\r\n1,\"/m/b\",\"Say \"\"hi\"\", twice\"\r\n2,/m/c,Plain\r\n\r\n"
        let labels = try LabelFile.parse(text, path: "q.csv")
        XCTAssertEqual(labels, [Label(index: 0, mid: "/m/a", displayName: "Male speech, man speaking"),
                                Label(index: 1, mid: "/m/b", displayName: "Say \"hi\", twice"),
                                Label(index: 2, mid: "/m/c", displayName: "Plain")])
    }

    /// Checks: bad CS vs refused with file and line.
    func testBadCSVsRefusedWithFileAndLine() {
        let cases: [(String, ModelError)] = [
            ("", .badLabels(path: "bad.csv", line: 0, reason: "empty file")),
            ("idx,mid,name\n0,/m/a,A\n", .badLabels(path: "bad.csv", line: 1, reason: "header is not 'index,mid,display_name'")),
            ("index,mid,display_name\n", .badLabels(path: "bad.csv", line: 0, reason: "no labels")),
            ("index,mid,display_name\n0,/m/a,A\n1,/m/b\n", .badLabels(path: "bad.csv", line: 3, reason: "expected 3 fields, found 2")),
            ("index,mid,display_name\n0,/m/a,A,extra\n", .badLabels(path: "bad.csv", line: 2, reason: "expected 3 fields, found 4")),
            ("index,mid,display_name\n0,/m/a,\"open\n", .badLabels(path: "bad.csv", line: 2, reason: "unterminated quoted field")),
            ("index,mid,display_name\nzero,/m/a,A\n", .badLabels(path: "bad.csv", line: 2, reason: "index 'zero' is not an integer")),
            ("index,mid,display_name\n0,/m/a,A\n2,/m/b,B\n", .badLabels(path: "bad.csv", line: 3, reason: "index 2, expected 1")),
            ("index,mid,display_name\n0,/m/a,\"A\"x\n", .badLabels(path: "bad.csv", line: 2, reason: "text after a closing quote")),
            ("index,mid,display_name\n0,/m/a,\n", .badLabels(path: "bad.csv", line: 2, reason: "empty display name")),
        ]
        for (text, expected) in cases {
            XCTAssertThrowsError(try LabelFile.parse(text, path: "bad.csv"), text) { e in
                XCTAssertEqual(e as? ModelError, expected)
                XCTAssertTrue("\(e)".hasPrefix("labels bad.csv"))
            }
        }
    }

    /// Checks: too many lines refused.
    func testTooManyLinesRefused() {
        var text = "index,mid,display_name\n"
        for i in 0..<LabelFile.maxLines { text += "\(i),/m/x,X\n" }
        XCTAssertThrowsError(try LabelFile.parse(text, path: "huge.csv")) { e in
            XCTAssertEqual(e as? ModelError, .badLabels(path: "huge.csv", line: LabelFile.maxLines + 1,
                                                        reason: "more than \(LabelFile.maxLines) lines"))
        }
    }

    /// Checks: missing label file.
    func testMissingLabelFile() {
        XCTAssertThrowsError(try LabelFile.read(path: "/nonexistent/labels.csv")) { e in
            XCTAssertTrue("\(e)".contains("/nonexistent/labels.csv"))
        }
    }
}
