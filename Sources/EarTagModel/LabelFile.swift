// Reads AudioSet-style `class_labels_indices.csv` files (index,mid,display_name; RFC 4180 quoting).
// ref: RFC 4180 (CSV), AudioSet class_labels_indices.csv as shipped with EfficientAT (metadata/).
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import EarTagPlatform

/// Reader of `class_labels_indices.csv` label files.
public enum LabelFile {
    /// Largest number of lines accepted.
    public static let maxLines = 100_000
    /// Largest file size accepted (bytes).
    public static let maxBytes = 64 << 20

    /// Reads labels; the header must be `index,mid,display_name` and indices must count up from 0.
    public static func read(path: String) throws -> [Label] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ModelError.unreadable(path: path, reason: "no such file or not readable")
        }
        guard data.count <= maxBytes else { throw ModelError.badLabels(path: path, line: 0, reason: "file larger than \(maxBytes) bytes") }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ModelError.badLabels(path: path, line: 0, reason: "not UTF-8 text")
        }
        return try parse(text, path: path)
    }

    /// Parses CSV text; `path` names the source in errors.
    public static func parse(_ text: String, path: String) throws -> [Label] {
        // "\r\n" is a single Character in Swift, so split on both forms.
        var lines = text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }).map { line -> Substring in
            line.hasSuffix("\r") ? line.dropLast() : line
        }
        while let last = lines.last, last.trimmingSpaces().isEmpty { lines.removeLast() }
        guard lines.count <= maxLines else {
            throw ModelError.badLabels(path: path, line: maxLines + 1, reason: "more than \(maxLines) lines")
        }
        guard let header = lines.first else { throw ModelError.badLabels(path: path, line: 0, reason: "empty file") }
        let headerFields = try fields(header, path: path, line: 1)
        guard headerFields.map({ $0.trimmingSpaces() }) == ["index", "mid", "display_name"] else {
            throw ModelError.badLabels(path: path, line: 1, reason: "header is not 'index,mid,display_name'")
        }
        var labels: [Label] = []
        for (i, line) in lines.enumerated().dropFirst() {
            let lineNumber = i + 1
            let f = try fields(line, path: path, line: lineNumber)
            guard f.count == 3 else {
                throw ModelError.badLabels(path: path, line: lineNumber, reason: "expected 3 fields, found \(f.count)")
            }
            guard let index = Int(f[0].trimmingSpaces()) else {
                throw ModelError.badLabels(path: path, line: lineNumber, reason: "index '\(f[0])' is not an integer")
            }
            guard index == labels.count else {
                throw ModelError.badLabels(path: path, line: lineNumber, reason: "index \(index), expected \(labels.count)")
            }
            guard !f[2].isEmpty else { throw ModelError.badLabels(path: path, line: lineNumber, reason: "empty display name") }
            labels.append(Label(index: index, mid: f[1], displayName: f[2]))
        }
        guard !labels.isEmpty else { throw ModelError.badLabels(path: path, line: 0, reason: "no labels") }
        return labels
    }

    /// Splits one CSV line into fields, honouring double quotes and `""` escapes (also used for corpus manifests).
    public static func fields(_ line: Substring, path: String, line number: Int) throws -> [String] {
        var result: [String] = []
        var field = ""
        var quoted = false
        var wasQuoted = false
        var chars = line.makeIterator()
        var pending: Character? = nil
        while let c = pending ?? chars.next() {
            pending = nil
            if quoted {
                if c == "\"" {
                    if let n = chars.next() {
                        if n == "\"" { field.append("\"") } else { quoted = false; pending = n }
                    } else { quoted = false }
                } else { field.append(c) }
            } else if c == "," {
                result.append(field); field = ""; wasQuoted = false
            } else if c == "\"" {
                guard field.isEmpty, !wasQuoted else {
                    throw ModelError.badLabels(path: path, line: number, reason: "stray quote inside a field")
                }
                quoted = true; wasQuoted = true
            } else {
                guard !wasQuoted else {
                    throw ModelError.badLabels(path: path, line: number, reason: "text after a closing quote")
                }
                field.append(c)
            }
        }
        guard !quoted else { throw ModelError.badLabels(path: path, line: number, reason: "unterminated quoted field") }
        result.append(field)
        return result
    }
}
