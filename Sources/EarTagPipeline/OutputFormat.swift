// Text and JSON Lines renderings of tagging results.
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import EarTagPlatform
import EarTagModel

/// How results are printed.
public enum OutputFormat: String, CaseIterable, Sendable {
    /// EfficientAT inference.py's `Label: 0.727` lines, one block per file.
    case text
    /// One JSON object per file.
    case jsonl
}

/// Renders results for one model.
public struct ResultPrinter {
    public var format: OutputFormat
    public var top: Int
    public var allScores: Bool
    public var embedding: Bool
    public var labels: [Label]
    public var modelName: String

    public init(format: OutputFormat, top: Int, allScores: Bool, embedding: Bool, labels: [Label],
                modelName: String) {
        self.format = format
        self.top = top
        self.allScores = allScores
        self.embedding = embedding
        self.labels = labels
        self.modelName = modelName
    }

    /// The full text for one result, ending in a newline.
    public func render(_ r: TaggingResult) -> String {
        switch format {
        case .text: return renderText(r)
        case .jsonl: return renderJSON(r) + "\n"
        }
    }

    /// `# FILE (D s)` then `Label: 0.727` lines (ref: EfficientAT inference.py print format), then a blank line.
    private func renderText(_ r: TaggingResult) -> String {
        var s = "# \(r.file) (\(String(printf: "%.2f", r.durationSeconds)) s)\n"
        for i in r.topIndices(top) {
            s += "\(labels[i].displayName): \(String(printf: "%.3f", r.scores[i]))\n"
        }
        if allScores {
            s += "## all scores\n"
            for i in r.scores.indices { s += "\(labels[i].displayName): \(String(printf: "%.6f", r.scores[i]))\n" }
        }
        if embedding {
            s += "## embedding\n" + r.embedding.map { String(printf: "%.6f", $0) }.joined(separator: " ") + "\n"
        }
        return s + "\n"
    }

    /// One JSON object with `file`, `duration_s`, `model`, `top` and optionally `scores` and `embedding`.
    private func renderJSON(_ r: TaggingResult) -> String {
        var s = "{\"file\":\(jsonString(r.file)),\"duration_s\":\(jsonNumber(r.durationSeconds)),"
        s += "\"model\":\(jsonString(modelName)),\"top\":["
        s += r.topIndices(top).map { jsonTopEntry(labels[$0], score: r.scores[$0]) }.joined(separator: ",")
        s += "]"
        if allScores { s += ",\"scores\":[" + r.scores.map { jsonNumber($0) }.joined(separator: ",") + "]" }
        if embedding {
            s += ",\"embedding\":[" + r.embedding.map { jsonNumber($0) }.joined(separator: ",") + "]"
        }
        return s + "}"
    }
}

/// `{"label":...,"index":...,"mid":...,"score":...}` for one class of a `top` list.
func jsonTopEntry(_ label: Label, score: Float) -> String {
    "{\"label\":\(jsonString(label.displayName)),\"index\":\(label.index),\"mid\":\(jsonString(label.mid)),"
        + "\"score\":\(jsonNumber(score))}"
}

/// A JSON number: shortest round-trip form of a finite value, `null` for NaN or infinity.
public func jsonNumber<F: BinaryFloatingPoint & LosslessStringConvertible>(_ v: F) -> String {
    guard v.isFinite else { return "null" }
    if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
    return v.description
}
