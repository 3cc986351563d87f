// Tests for EarTag's own TOML reader: the TOML 1.0 forms a configuration uses, and refusals with line numbers.
import XCTest
@testable import EarTagPipeline

final class TOMLTests: XCTestCase {
    /// Parses or fails the test.
    func parse(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> TOMLTable {
        do { return try TOML.parse(text) } catch {
            XCTFail("\(error)", file: file, line: line)
            return TOMLTable()
        }
    }

    /// Asserts that `text` is refused on `line` with a reason containing `reason`.
    func assertRefused(_ text: String, line: Int, _ reason: String, file: StaticString = #filePath, fileLine: UInt = #line) {
        XCTAssertThrowsError(try TOML.parse(text), file: file, line: fileLine) { e in
            guard let e = e as? TOMLError else { return XCTFail("\(e)", file: file, line: fileLine) }
            XCTAssertEqual(e.line, line, "\(e)", file: file, line: fileLine)
            XCTAssertTrue(e.reason.contains(reason), "\(e)", file: file, line: fileLine)
        }
    }

    func testScalars() {
        let t = parse("""
        # comment
        a = 1
        b = -17_000
        c = 0x1F
        d = 0o17
        e = 0b101
        f = 3.25
        g = -1e-3
        h = 6.02E+23
        i = +inf
        j = nan
        k = true
        l = false
        m = "tab\\there \\"q\\" \\u00E9 \\U0001F50A"
        n = 'C:\\path\\no escapes'
        o = ""
        p = 0
        q = 1e06
        """)
        XCTAssertEqual(t["a"], .int(1))
        XCTAssertEqual(t["b"], .int(-17000))
        XCTAssertEqual(t["c"], .int(31))
        XCTAssertEqual(t["d"], .int(15))
        XCTAssertEqual(t["e"], .int(5))
        XCTAssertEqual(t["f"], .double(3.25))
        XCTAssertEqual(t["g"], .double(-0.001))
        XCTAssertEqual(t["h"], .double(6.02e23))
        XCTAssertEqual(t["i"], .double(.infinity))
        XCTAssertTrue(t["j"]?.double?.isNaN == true)
        XCTAssertEqual(t["k"], .bool(true))
        XCTAssertEqual(t["l"], .bool(false))
        XCTAssertEqual(t["m"], .string("tab\there \"q\" é \u{1F50A}"))
        XCTAssertEqual(t["n"], .string("C:\\path\\no escapes"))
        XCTAssertEqual(t["o"], .string(""))
        XCTAssertEqual(t["p"], .int(0))
        XCTAssertEqual(t["q"], .double(1e6))
        XCTAssertEqual(t.keys, ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p", "q"])
    }

    func testStringsOverSeveralLines() {
        let t = parse("a = \"\"\"\nline one\n  line two \\\n     joined\"\"\"\nb = '''\nraw \\n ''\n'''\nc = \"\"\"x\"\"\"\"\"\n")
        XCTAssertEqual(t["a"], .string("line one\n  line two joined"))
        XCTAssertEqual(t["b"], .string("raw \\n ''\n"))
        XCTAssertEqual(t["c"], .string("x\"\""))
    }

    func testTablesArraysAndInlineTables() {
        let t = parse("""
        top = [1, 2,
          3, # comment inside
        ]
        nested = [[1], ["a", 'b'], []]
        point = { x = 1, y.z = "deep" }
        [server]
        host = "h"
        "quoted key".a = 1
        [server.tls]
        on = true
        [ spaced . "name" ]
        k = 1
        [fruit]
        apple.color = "red"
        apple.taste.sweet = true
        [fruit.apple.texture]
        smooth = true
        """)
        XCTAssertEqual(t["top"], .array([.int(1), .int(2), .int(3)]))
        XCTAssertEqual(t["nested"], .array([.array([.int(1)]), .array([.string("a"), .string("b")]), .array([])]))
        XCTAssertEqual(t["point"]?.table?["y"]?.table?["z"], .string("deep"))
        let server = t["server"]?.table
        XCTAssertEqual(server?["host"], .string("h"))
        XCTAssertEqual(server?["quoted key"]?.table?["a"], .int(1))
        XCTAssertEqual(server?["tls"]?.table?["on"], .bool(true))
        XCTAssertEqual(t["spaced"]?.table?["name"]?.table?["k"], .int(1))
        XCTAssertEqual(t["fruit"]?.table?["apple"]?.table?["texture"]?.table?["smooth"], .bool(true))
        XCTAssertEqual(t.keys, ["top", "nested", "point", "server", "spaced", "fruit"])
        XCTAssertEqual(parse("[a.b.c]\n[a]\nx = 1\n")["a"]?.table?.keys, ["b", "x"], "a table defined after its child")
        XCTAssertEqual(parse("a = 1\r\nb = 2\r\n")["b"], .int(2), "CRLF line ends")
    }

    func testRefusalsNameTheLine() {
        assertRefused("[=]\n", line: 1, "expected a key, found '='")
        assertRefused("a = 1\n[ = \"x\"\n", line: 2, "expected a key")
        assertRefused("[a]\nb = 1\n[a]\n", line: 3, "cannot redefine table [a]")
        assertRefused("a = 1\na = 2\n", line: 2, "cannot redefine key 'a'")
        assertRefused("a.b = 1\n[a]\n", line: 2, "cannot redefine table [a]")
        assertRefused("[a.b.c]\nz = 9\n[a]\nb.c.t = 1\n", line: 4, "cannot add to table 'b'")
        assertRefused("a = {x = 1}\na.y = 2\n", line: 2, "cannot redefine key 'a'")
        assertRefused("a = 1\n[a.b]\n", line: 2, "cannot redefine key 'a' as a table")
        assertRefused("[[a]]\n", line: 1, "arrays of tables")
        assertRefused("a = 1979-05-27\n", line: 1, "dates and times")
        assertRefused("a = 07:32:00\n", line: 1, "dates and times")
        assertRefused("\n\na = \"open\n", line: 3, "unterminated string")
        assertRefused("a = '''never closed\n\n", line: 3, "unterminated multi-line string")
        assertRefused("a = \"bad \\q\"\n", line: 1, "invalid escape")
        assertRefused("a = \"\\uD800\"\n", line: 1, "not a Unicode scalar value")
        assertRefused("a = \"\\u12\"\n", line: 1, "hexadecimal digits")
        assertRefused("a = 01\n", line: 1, "invalid number '01'")
        assertRefused("a = 1__0\n", line: 1, "invalid number")
        assertRefused("a = 1.\n", line: 1, "invalid number")
        assertRefused("a = .5\n", line: 1, "invalid number")
        assertRefused("a = -0x10\n", line: 1, "invalid or too large integer")
        assertRefused("a = 99999999999999999999\n", line: 1, "out of range")
        assertRefused("a = [1 2]\n", line: 1, "',' or ']'")
        assertRefused("a = {x = 1,}\n", line: 1, "expected a key")
        assertRefused("a = {x = 1\n", line: 1, "',' or '}'")
        assertRefused("a = 1 b = 2\n", line: 1, "the end of the line")
        assertRefused("a =\n", line: 1, "expected value")
        assertRefused("a = tru\n", line: 1, "expected value")
        assertRefused("a\u{0}b = 1\n", line: 1, "control character U+0000 is not allowed")
        assertRefused("a = 1\rb = 2\n", line: 1, "control character U+000D")
        assertRefused("# ok\n[windowé]\n", line: 2, "non-ASCII character U+00E9 outside a string or comment")
        assertRefused("a = \"x\u{7F}\"\n", line: 1, "control character U+007F")
        assertRefused(String(repeating: "[", count: 40) + String(repeating: "]", count: 40), line: 1, "arrays of tables")
        assertRefused("[a\n", line: 1, "expected ']' closing the table header, found the end of the line")
        assertRefused("a = " + String(repeating: "[", count: 40) + String(repeating: "]", count: 40), line: 1,
                      "nested deeper than 32")
        assertRefused(String(repeating: "#", count: TOML.maxBytes + 1), line: 1, "longer than")
    }

    /// Every regression input of the `listen_config` fuzz target is refused with a thrown error (toml++ aborted).
    func testFuzzFindingsThrow() throws {
        for text in ["[=]\n", "[ = \"fastNR[window\u{FFFD}\u{FFFD}\n", "[[ = ]]\n", "[ = \"x\"\n"] {
            XCTAssertThrowsError(try TOML.parse(text), text)
        }
    }
}
