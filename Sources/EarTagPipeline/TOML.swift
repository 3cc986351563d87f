// A strict TOML 1.0 reader for EarTag's configuration files, written for untrusted input: every error is a thrown
// value with a line number, never an abort (toml++, behind TOMLKit, asserted and aborted the process on inputs such
// as `[=]`, found by the `listen_config` fuzz target). Dates and times and arrays of tables are refused: EarTag's
// files use neither.
// ref: https://toml.io/en/v1.0.0 (the grammar: keys, strings, integers, floats, booleans, arrays, tables).
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import EarTagPlatform

/// A TOML value.
public indirect enum TOMLValue: Equatable, Sendable {
    case string(String)
    case int(Int)
    case double(Double)
    case bool(Bool)
    case array([TOMLValue])
    case table(TOMLTable)

    /// The string, when this is one.
    public var string: String? { if case let .string(s) = self { return s }; return nil }
    /// The integer, when this is one.
    public var int: Int? { if case let .int(i) = self { return i }; return nil }
    /// The float, when this is one (integers are not converted).
    public var double: Double? { if case let .double(d) = self { return d }; return nil }
    /// The boolean, when this is one.
    public var bool: Bool? { if case let .bool(b) = self { return b }; return nil }
    /// The elements, when this is an array.
    public var array: [TOMLValue]? { if case let .array(a) = self { return a }; return nil }
    /// The table, when this is one.
    public var table: TOMLTable? { if case let .table(t) = self { return t }; return nil }

    /// The type's name with an article, for messages ("an integer").
    public var typeName: String {
        switch self {
        case .string: return "a string"
        case .int: return "an integer"
        case .double: return "a number"
        case .bool: return "a boolean"
        case .array: return "an array"
        case .table: return "a table"
        }
    }
}

/// A TOML table: its keys in file order and their values.
public struct TOMLTable: Equatable, Sendable {
    /// Keys in the order they were defined.
    public private(set) var keys: [String] = []
    private var values: [String: TOMLValue] = [:]

    /// An empty table.
    public init() {}

    /// The value of `key`, or nil.
    public subscript(key: String) -> TOMLValue? { values[key] }

    /// Adds or replaces a key (replacing keeps its position).
    mutating func set(_ key: String, _ value: TOMLValue) {
        if values.updateValue(value, forKey: key) == nil { keys.append(key) }
    }
}

/// A syntax or structure error, with the 1-based line it was found on.
public struct TOMLError: Error, Equatable, CustomStringConvertible {
    public var line: Int
    public var reason: String
    public var description: String { "line \(line): \(reason)" }
}

/// Parses TOML text into its root table.
public enum TOML {
    /// Longest text accepted (a configuration file is a few kilobytes).
    public static let maxBytes = 1 << 20
    /// Deepest nesting of arrays and inline tables accepted.
    public static let maxDepth = 32

    /// Parses `text`; throws `TOMLError` naming the line of the first problem.
    public static func parse(_ text: String) throws -> TOMLTable {
        let bytes = Array(text.utf8)
        guard bytes.count <= maxBytes else {
            throw TOMLError(line: 1, reason: "longer than \(maxBytes) bytes")
        }
        var p = TOMLParser(bytes: bytes)
        return try p.document()
    }
}

/// How a table came to exist, which decides whether later lines may add to it.
private enum TableOrigin {
    /// Created on the way to a deeper header or dotted key; a header may define it later.
    case implicit
    /// Defined by a `[header]`; no second header may define it.
    case header
    /// Created by a dotted key; headers may not reopen it.
    case dotted
    /// An inline table `{ ... }`: closed, nothing may be added.
    case inline
}

/// A table under construction: children by key, in order.
private final class TableNode {
    var origin: TableOrigin
    var order: [String] = []
    var children: [String: Child] = [:]

    /// A child: a plain value or a subtable.
    enum Child { case value(TOMLValue), table(TableNode) }

    init(_ origin: TableOrigin) { self.origin = origin }

    /// Adds a child that must not exist yet.
    func insert(_ key: String, _ child: Child) {
        order.append(key)
        children[key] = child
    }

    /// The finished value.
    func freeze() -> TOMLTable {
        var t = TOMLTable()
        for key in order {
            switch children[key]! {
            case let .value(v): t.set(key, v)
            case let .table(n): t.set(key, .table(n.freeze()))
            }
        }
        return t
    }
}

/// Recursive-descent parser over UTF-8 bytes.
private struct TOMLParser {
    let bytes: [UInt8]
    var pos = 0
    var line = 1
    let root = TableNode(.header)
    var current: TableNode

    init(bytes: [UInt8]) {
        self.bytes = bytes
        current = root
    }

    // MARK: Characters

    /// The byte at the cursor, or nil at the end.
    var peek: UInt8? { pos < bytes.count ? bytes[pos] : nil }

    /// The byte `offset` after the cursor, or nil.
    func peek(_ offset: Int) -> UInt8? { pos + offset < bytes.count ? bytes[pos + offset] : nil }

    /// An error on the current line.
    func fail(_ reason: String) -> TOMLError { TOMLError(line: line, reason: reason) }

    /// Describes the character at the cursor for messages.
    func describeCurrent() -> String {
        guard let b = peek else { return "end of file" }
        if b == 0x0A || (b == 0x0D && peek(1) == 0x0A) { return "the end of the line" }
        if b >= 0x80 {
            var it = bytes[pos...].makeIterator()
            var decoder = UTF8()
            if case let .scalarValue(s) = decoder.decode(&it) {
                return String(printf: "non-ASCII character U+%04X", s.value)
            }
            return "a byte that is not UTF-8"
        }
        if b < 0x20 || b == 0x7F { return String(printf: "control character U+%04X", b) }
        return "'\(Character(Unicode.Scalar(b)))'"
    }

    /// Refuses the character at the cursor where it is not allowed.
    func unexpected(_ expected: String) -> TOMLError {
        let what = describeCurrent()
        if what.hasPrefix("control character") { return fail("\(what) is not allowed in TOML") }
        if what.hasPrefix("non-ASCII") { return fail("\(what) outside a string or comment") }
        return fail("expected \(expected), found \(what)")
    }

    /// Skips spaces and tabs.
    mutating func skipBlanks() {
        while let b = peek, b == 0x20 || b == 0x09 { pos += 1 }
    }

    /// Skips a comment up to (not including) the line end, refusing control characters in it.
    mutating func skipComment() throws {
        guard peek == UInt8(ascii: "#") else { return }
        while let b = peek, b != 0x0A {
            if b == 0x0D && peek(1) == 0x0A { return }
            if (b < 0x20 && b != 0x09) || b == 0x7F { throw unexpected("a comment") }
            pos += 1
        }
    }

    /// Consumes a line end (LF or CRLF) when the cursor is on one.
    mutating func newline() -> Bool {
        if peek == 0x0A { pos += 1; line += 1; return true }
        if peek == 0x0D && peek(1) == 0x0A { pos += 2; line += 1; return true }
        return false
    }

    /// Expects the end of a line (after blanks and a comment) or of the file.
    mutating func endOfLine() throws {
        skipBlanks()
        try skipComment()
        if peek == nil || newline() { return }
        throw unexpected("the end of the line")
    }

    /// Skips blanks, comments and line ends (inside arrays).
    mutating func skipBlankLines() throws {
        while true {
            skipBlanks()
            try skipComment()
            if !newline() { return }
        }
    }

    // MARK: Document

    /// The whole document.
    mutating func document() throws -> TOMLTable {
        while true {
            skipBlanks()
            try skipComment()
            guard let b = peek else { break }
            if newline() { continue }
            if b == UInt8(ascii: "[") {
                try header()
            } else {
                try keyValue(into: current, origin: .dotted)
            }
            try endOfLine()
        }
        return root.freeze()
    }

    /// A `[table]` header; arrays of tables are refused.
    mutating func header() throws {
        pos += 1
        if peek == UInt8(ascii: "[") {
            throw fail("arrays of tables ([[...]]) are not used in EarTag configuration files")
        }
        skipBlanks()
        let path = try key()
        skipBlanks()
        guard peek == UInt8(ascii: "]") else { throw unexpected("']' closing the table header") }
        pos += 1
        var node = root
        for (i, part) in path.enumerated() {
            let last = i == path.count - 1
            switch node.children[part] {
            case nil:
                let child = TableNode(last ? .header : .implicit)
                node.insert(part, .table(child))
                node = child
            case let .table(child)?:
                // A header defines a table once; tables made by dotted keys take sub-table headers only.
                if last && child.origin != .implicit {
                    throw fail("cannot redefine table [\(path.joined(separator: "."))]")
                }
                if last { child.origin = .header }
                node = child
            case .value?:
                throw fail("cannot redefine key '\(path[...i].joined(separator: "."))' as a table")
            }
        }
        current = node
    }

    /// `key = value` into `table`; dotted keys create tables of `origin` on the way (`.dotted` at the top level,
    /// `.inline` inside `{ }`); `depth` counts enclosing arrays and inline tables.
    mutating func keyValue(into table: TableNode, origin: TableOrigin, depth: Int = 0) throws {
        let path = try key()
        skipBlanks()
        guard peek == UInt8(ascii: "=") else { throw unexpected("'=' after the key") }
        pos += 1
        skipBlanks()
        let value = try self.value(depth: depth)
        var node = table
        for (i, part) in path.dropLast().enumerated() {
            switch node.children[part] {
            case nil:
                let child = TableNode(origin)
                node.insert(part, .table(child))
                node = child
            case let .table(child)?:
                // Dotted keys may extend only tables that dotted keys created (toml.io: "Defining tables").
                guard child.origin == origin else {
                    throw fail("cannot add to table '\(path[...i].joined(separator: "."))' with a dotted key")
                }
                node = child
            case .value?:
                throw fail("cannot redefine key '\(path[...i].joined(separator: "."))'")
            }
        }
        let last = path[path.count - 1]
        guard node.children[last] == nil else {
            throw fail("cannot redefine key '\(path.joined(separator: "."))'")
        }
        node.insert(last, .value(value))
    }

    // MARK: Keys

    /// A key: bare or quoted parts joined by dots.
    mutating func key() throws -> [String] {
        var parts: [String] = []
        while true {
            skipBlanks()
            guard let b = peek else { throw unexpected("a key") }
            if b == UInt8(ascii: "\"") {
                if peek(1) == UInt8(ascii: "\"") && peek(2) == UInt8(ascii: "\"") {
                    throw fail("a key cannot be a multi-line string")
                }
                parts.append(try basicString())
            } else if b == UInt8(ascii: "'") {
                if peek(1) == UInt8(ascii: "'") && peek(2) == UInt8(ascii: "'") {
                    throw fail("a key cannot be a multi-line string")
                }
                parts.append(try literalString())
            } else {
                let start = pos
                while let c = peek, TOMLParser.isBareKey(c) { pos += 1 }
                guard pos > start else { throw unexpected("a key") }
                parts.append(String(decoding: bytes[start..<pos], as: UTF8.self))
            }
            skipBlanks()
            guard peek == UInt8(ascii: ".") else { return parts }
            pos += 1
        }
    }

    /// `A-Za-z0-9_-`.
    static func isBareKey(_ c: UInt8) -> Bool {
        (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || (c >= 0x30 && c <= 0x39) || c == 0x5F || c == 0x2D
    }

    // MARK: Values

    /// Any value; `depth` counts enclosing arrays and inline tables.
    mutating func value(depth: Int) throws -> TOMLValue {
        guard depth < TOML.maxDepth else { throw fail("values nested deeper than \(TOML.maxDepth)") }
        guard let b = peek else { throw fail("expected value, found end of file") }
        switch b {
        case UInt8(ascii: "\""):
            if peek(1) == b && peek(2) == b { return .string(try multilineString(literal: false)) }
            return .string(try basicString())
        case UInt8(ascii: "'"):
            if peek(1) == b && peek(2) == b { return .string(try multilineString(literal: true)) }
            return .string(try literalString())
        case UInt8(ascii: "["): return try array(depth: depth)
        case UInt8(ascii: "{"): return try inlineTable(depth: depth)
        case UInt8(ascii: "t"), UInt8(ascii: "f"):
            if match("true") { return .bool(true) }
            if match("false") { return .bool(false) }
            throw unexpected("value")
        case 0x0A, 0x0D, UInt8(ascii: "#"): throw fail("expected value after '='")
        default: return try number()
        }
    }

    /// Consumes `word` when it is at the cursor and not followed by a bare-key character.
    mutating func match(_ word: String) -> Bool {
        let w = Array(word.utf8)
        guard pos + w.count <= bytes.count, Array(bytes[pos..<pos + w.count]) == w else { return false }
        if let next = peek(w.count), TOMLParser.isBareKey(next) { return false }
        pos += w.count
        return true
    }

    /// A `"basic string"` with escapes, on one line.
    mutating func basicString() throws -> String {
        pos += 1
        var out: [UInt8] = []
        while true {
            guard let b = peek else { throw fail("unterminated string") }
            if b == UInt8(ascii: "\"") { pos += 1; break }
            if b == 0x0A || b == 0x0D { throw fail("unterminated string (strings end on their line)") }
            if b == UInt8(ascii: "\\") { try escape(into: &out); continue }
            if (b < 0x20 && b != 0x09) || b == 0x7F { throw unexpected("a string character") }
            out.append(b)
            pos += 1
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// A `'literal string'`, on one line, without escapes.
    mutating func literalString() throws -> String {
        pos += 1
        let start = pos
        while true {
            guard let b = peek else { throw fail("unterminated string") }
            if b == UInt8(ascii: "'") { break }
            if b == 0x0A || b == 0x0D { throw fail("unterminated string (strings end on their line)") }
            if (b < 0x20 && b != 0x09) || b == 0x7F { throw unexpected("a string character") }
            pos += 1
        }
        defer { pos += 1 }
        return String(decoding: bytes[start..<pos], as: UTF8.self)
    }

    /// A `"""multi-line"""` or `'''multi-line'''` string.
    mutating func multilineString(literal: Bool) throws -> String {
        let quote = bytes[pos]
        pos += 3
        _ = newline()  // a line end right after the opening quotes is trimmed
        var out: [UInt8] = []
        while true {
            guard let b = peek else { throw fail("unterminated multi-line string") }
            if b == quote && peek(1) == quote && peek(2) == quote {
                // Up to two quotes may sit right before the closing three.
                var run = 3
                while run < 5 && peek(run) == quote { run += 1 }
                out.append(contentsOf: [UInt8](repeating: quote, count: run - 3))
                pos += run
                break
            }
            if newline() { out.append(0x0A); continue }
            if !literal && b == UInt8(ascii: "\\") {
                // A backslash at the end of a line trims the line end and the blanks after it.
                var q = pos + 1
                while q < bytes.count && (bytes[q] == 0x20 || bytes[q] == 0x09) { q += 1 }
                if q < bytes.count && (bytes[q] == 0x0A || (bytes[q] == 0x0D && q + 1 < bytes.count && bytes[q + 1] == 0x0A)) {
                    pos = q
                    while true {
                        skipBlanks()
                        if !newline() { break }
                    }
                    continue
                }
                try escape(into: &out)
                continue
            }
            if (b < 0x20 && b != 0x09) || b == 0x7F { throw unexpected("a string character") }
            out.append(b)
            pos += 1
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// One escape sequence (cursor on the backslash), appended as UTF-8.
    mutating func escape(into out: inout [UInt8]) throws {
        pos += 1
        guard let e = peek else { throw fail("unterminated string") }
        pos += 1
        switch e {
        case UInt8(ascii: "b"): out.append(0x08)
        case UInt8(ascii: "t"): out.append(0x09)
        case UInt8(ascii: "n"): out.append(0x0A)
        case UInt8(ascii: "f"): out.append(0x0C)
        case UInt8(ascii: "r"): out.append(0x0D)
        case UInt8(ascii: "\""): out.append(0x22)
        case UInt8(ascii: "\\"): out.append(0x5C)
        case UInt8(ascii: "u"), UInt8(ascii: "U"):
            let n = e == UInt8(ascii: "u") ? 4 : 8
            guard pos + n <= bytes.count, let v = UInt32(String(decoding: bytes[pos..<pos + n], as: UTF8.self), radix: 16),
                  bytes[pos..<pos + n].allSatisfy({ isHexDigit($0) }) else {
                throw fail("\\\(Character(Unicode.Scalar(e))) needs \(n) hexadecimal digits")
            }
            guard let s = Unicode.Scalar(v) else { throw fail(String(printf: "U+%X is not a Unicode scalar value", v)) }
            out.append(contentsOf: Array(String(Character(s)).utf8))
            pos += n
        default:
            pos -= 1
            throw fail("invalid escape \\\(describeCurrent())")
        }
    }

    /// `0-9a-fA-F`.
    func isHexDigit(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66)
    }

    /// An array `[a, b, ...]`, possibly over several lines, trailing comma allowed.
    mutating func array(depth: Int) throws -> TOMLValue {
        pos += 1
        var items: [TOMLValue] = []
        while true {
            try skipBlankLines()
            if peek == UInt8(ascii: "]") { pos += 1; return .array(items) }
            items.append(try value(depth: depth + 1))
            try skipBlankLines()
            if peek == UInt8(ascii: ",") { pos += 1; continue }
            guard peek == UInt8(ascii: "]") else { throw unexpected("',' or ']' in the array") }
        }
    }

    /// An inline table `{ k = v, ... }` on one line, without a trailing comma.
    mutating func inlineTable(depth: Int) throws -> TOMLValue {
        pos += 1
        let node = TableNode(.inline)
        skipBlanks()
        if peek == UInt8(ascii: "}") { pos += 1; return .table(node.freeze()) }
        while true {
            skipBlanks()
            try keyValue(into: node, origin: .inline, depth: depth + 1)
            skipBlanks()
            if peek == UInt8(ascii: "}") { pos += 1; return .table(node.freeze()) }
            guard peek == UInt8(ascii: ",") else { throw unexpected("',' or '}' in the inline table") }
            pos += 1
        }
    }

    /// An integer (decimal, 0x, 0o, 0b) or a float (fraction, exponent, inf, nan); dates are refused.
    mutating func number() throws -> TOMLValue {
        let start = pos
        while let c = peek, TOMLParser.isBareKey(c) || c == UInt8(ascii: "+") || c == UInt8(ascii: ".")
                || c == UInt8(ascii: ":") {
            pos += 1
        }
        let token = String(decoding: bytes[start..<pos], as: UTF8.self)
        guard !token.isEmpty else { throw unexpected("value") }
        if token.contains(":") || (token.count >= 5 && token.dropFirst(4).first == "-" && token.first?.isNumber == true) {
            throw fail("dates and times are not used in EarTag configuration files ('\(token)')")
        }
        var body = Substring(token)
        var sign = ""
        if body.first == "+" || body.first == "-" { sign = body.first == "-" ? "-" : ""; body = body.dropFirst() }
        if body == "inf" { return .double(sign == "-" ? -.infinity : .infinity) }
        if body == "nan" { return .double(.nan) }
        func digits(_ s: Substring, _ ok: (Character) -> Bool) -> String? {
            // Underscores only between digits.
            guard let f = s.first, let l = s.last, ok(f), ok(l), !s.contains("__") else { return nil }
            guard s.allSatisfy({ ok($0) || $0 == "_" }) else { return nil }
            return String(s.replacing("_", with: ""))
        }
        for (prefix, radix, ok) in [("0x", 16, { (c: Character) in c.isHexDigit }),
                                    ("0o", 8, { (c: Character) in ("0"..."7").contains(c) }),
                                    ("0b", 2, { (c: Character) in c == "0" || c == "1" })] where body.hasPrefix(prefix) {
            guard sign.isEmpty && token.first != "+", let d = digits(body.dropFirst(2), ok),
                  let v = Int(d, radix: radix) else {
                throw fail("invalid or too large integer '\(token)'")
            }
            return .int(v)
        }
        let isDigit = { (c: Character) in c.isASCII && c.isNumber }
        // Split into integer part, fraction and exponent.
        var intPart = body, frac: Substring? = nil, exp: Substring? = nil
        if let e = body.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            intPart = body[..<e]
            exp = body[body.index(after: e)...]
        }
        if let dot = intPart.firstIndex(of: ".") {
            frac = intPart[intPart.index(after: dot)...]
            intPart = intPart[..<dot]
        }
        guard let i = digits(intPart, isDigit), !(i.count > 1 && i.first == "0") else {
            throw fail("invalid number '\(token)'")
        }
        var text = sign + i
        if let frac {
            guard let f = digits(frac, isDigit) else { throw fail("invalid number '\(token)'") }
            text += "." + f
        }
        if var exp {
            var es = ""
            if exp.first == "+" || exp.first == "-" { es = exp.first == "-" ? "-" : ""; exp = exp.dropFirst() }
            guard let e = digits(exp, isDigit) else { throw fail("invalid number '\(token)'") }
            text += "e" + es + e
        }
        if frac == nil && exp == nil {
            guard let v = Int(text) else { throw fail("integer '\(token)' is out of range") }
            return .int(v)
        }
        guard let d = Double(text) else { throw fail("invalid number '\(token)'") }
        return .double(d)
    }
}
