// CSV reading and writing for corpus manifests and teacher index files (RFC 4180 quoting, one record per line).
// ref: RFC 4180 section 2; the field splitter is EarTagModel's label-file one.
import Foundation
import EarTagModel

/// Why a corpus, a manifest or a teacher store was refused; `description` is one line naming the input.
public enum CorpusError: Error, CustomStringConvertible, Equatable {
    case notFound(String)
    case empty(String, String)
    case badFile(String, line: Int, reason: String)
    case mismatch(String, String)
    case unwritable(String, String)

    /// One line naming the input and the problem.
    public var description: String {
        switch self {
        case .notFound(let p): return "\(p): no such file or directory"
        case let .empty(p, what): return "\(p): \(what)"
        case let .badFile(p, line, why): return line > 0 ? "\(p):\(line): \(why)" : "\(p): \(why)"
        case let .mismatch(p, why): return "\(p): \(why)"
        case let .unwritable(p, why): return "\(p): cannot write: \(why)"
        }
    }
}

/// CSV helpers shared by the manifest, the corpus builder and the teacher store.
enum CorpusCSV {
    /// Largest CSV file read (bytes): a manifest of 2 M AudioSet clips fits.
    static let maxBytes = 1 << 30

    /// The non-empty lines of a CSV text with their 1-based line numbers (CR LF or LF endings).
    static func lines(_ text: String) -> [(number: Int, text: Substring)] {
        var out: [(Int, Substring)] = []
        var number = 0
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            number += 1
            let line = raw.hasSuffix("\r") ? raw.dropLast() : raw
            if line.trimmingCharacters(in: .whitespaces).isEmpty { continue }
            out.append((number, line))
        }
        return out
    }

    /// The fields of one line; a quoting error is a `CorpusError.badFile` naming the file and line.
    static func fields(_ line: Substring, file: String, number: Int) throws -> [String] {
        do {
            return try LabelFile.fields(line, path: file, line: number)
        } catch let ModelError.badLabels(_, _, reason) {
            throw CorpusError.badFile(file, line: number, reason: reason)
        }
    }

    /// Reads a whole UTF-8 text file, refusing a missing, oversized or non-UTF-8 one.
    static func readText(_ path: String) throws -> String {
        guard FileManager.default.fileExists(atPath: path) else { throw CorpusError.notFound(path) }
        let attributes = try? FileManager.default.attributesOfItem(atPath: path)
        if let size = attributes?[.size] as? Int, size > maxBytes {
            throw CorpusError.badFile(path, line: 0, reason: "larger than \(maxBytes) bytes")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CorpusError.badFile(path, line: 0, reason: "not readable")
        }
        return try text(data, name: path)
    }

    /// Decodes bytes as UTF-8 text or refuses them.
    static func text(_ data: some Collection<UInt8>, name: String) throws -> String {
        guard let s = String(bytes: data, encoding: .utf8) else {
            throw CorpusError.badFile(name, line: 0, reason: "not UTF-8 text")
        }
        return s
    }

    /// One field for writing: quoted when it holds a comma, a quote or leading/trailing blanks.
    /// Invariant: the field holds no line break (callers refuse such names before writing).
    static func field(_ s: String) -> String {
        precondition(!s.contains(where: \.isNewline), "CSV field with a line break")
        let needsQuotes = s.contains(",") || s.contains("\"") || s.first == " " || s.last == " "
        return needsQuotes ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
    }

    /// A CSV record line (with its line feed).
    static func record(_ fields: [String]) -> String { fields.map(field).joined(separator: ",") + "\n" }
}
