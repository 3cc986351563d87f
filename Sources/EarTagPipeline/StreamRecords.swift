// Records of the live pipeline (windows and events) and their text and JSON Lines renderings.
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import EarTagPlatform
import EarTagModel

/// One line of `eartag listen` output.
public enum StreamRecord: Sendable {
    /// A window's scores: the window covers stream seconds [startSeconds, endSeconds).
    case window(startSeconds: Double, endSeconds: Double, scores: [Float], levelDBFS: Double, skipped: Bool)
    /// A label started being heard at `timeSeconds` of stream time.
    case start(label: Int, timeSeconds: Double, wallTime: Date, score: Float)
    /// A label stopped being heard at `timeSeconds`; peak and mean over its windows.
    case end(label: Int, timeSeconds: Double, wallTime: Date, peak: Float, mean: Float, startSeconds: Double)
}

/// Renders stream records as text or JSON Lines.
public struct StreamRecordPrinter {
    public var format: OutputFormat
    public var top: Int
    public var allScores: Bool
    public var labels: [Label]
    /// The file the records belong to (`eartag tag --window`); adds a `file` field to JSON window records.
    public var file: String?

    public init(format: OutputFormat, top: Int, allScores: Bool, labels: [Label], file: String? = nil) {
        self.format = format
        self.top = top
        self.allScores = allScores
        self.labels = labels
        self.file = file
    }

    /// One line, ending in a newline.
    public func render(_ record: StreamRecord) -> String {
        switch format {
        case .text: return renderText(record) + "\n"
        case .jsonl: return renderJSON(record) + "\n"
        }
    }

    /// `[   12.000 s] start Speech (0.812)` style lines.
    private func renderText(_ r: StreamRecord) -> String {
        switch r {
        case let .window(start, end, scores, level, skipped):
            let head = "[\(seconds(start))-\(seconds(end)) s] window"
            if skipped { return head + " skipped (level \(String(printf: "%.1f", level)) dBFS)" }
            var s = head + " " + topClassIndices(scores, top).map {
                "\(labels[$0].displayName): \(String(printf: "%.3f", scores[$0]))"
            }.joined(separator: ", ")
            if allScores { s += " | all: " + scores.map { String(printf: "%.4f", $0) }.joined(separator: " ") }
            return s
        case let .start(label, time, _, score):
            return "[\(seconds(time)) s] start \(labels[label].displayName) (\(String(printf: "%.3f", score)))"
        case let .end(label, time, _, peak, mean, started):
            return "[\(seconds(time)) s] end   \(labels[label].displayName) (peak \(String(printf: "%.3f", peak)), "
                + "mean \(String(printf: "%.3f", mean)), \(String(printf: "%.1f", time - started)) s)"
        }
    }

    /// One JSON object per record; see README for the schema.
    private func renderJSON(_ r: StreamRecord) -> String {
        switch r {
        case let .window(start, end, scores, level, skipped):
            var s = "{\"type\":\"window\"," + (file.map { "\"file\":\(jsonString($0))," } ?? "") + "\"start_s\":\(jsonNumber(start)),\"end_s\":\(jsonNumber(end)),"
            s += "\"level_dbfs\":\(jsonNumber((level * 10).rounded() / 10)),\"skipped\":\(skipped),\"top\":["
            if !skipped {
                s += topClassIndices(scores, top).map { jsonTopEntry(labels[$0], score: scores[$0]) }
                    .joined(separator: ",")
            }
            s += "]"
            if allScores && !skipped { s += ",\"scores\":[" + scores.map { jsonNumber($0) }.joined(separator: ",") + "]" }
            return s + "}"
        case let .start(label, time, wall, score):
            return "{\"type\":\"start\",\(labelFields(label)),\"time_s\":\(jsonNumber(time)),"
                + "\"wall_time\":\(jsonString(isoTime(wall))),\"score\":\(jsonNumber(score))}"
        case let .end(label, time, wall, peak, mean, started):
            return "{\"type\":\"end\",\(labelFields(label)),\"time_s\":\(jsonNumber(time)),"
                + "\"wall_time\":\(jsonString(isoTime(wall))),\"start_s\":\(jsonNumber(started)),"
                + "\"duration_s\":\(jsonNumber(time - started)),\"peak\":\(jsonNumber(peak)),\"mean\":\(jsonNumber(mean))}"
        }
    }

    /// `"label":...,"mid":...,"index":...` for one class.
    private func labelFields(_ i: Int) -> String {
        "\"label\":\(jsonString(labels[i].displayName)),\"mid\":\(jsonString(labels[i].mid)),\"index\":\(i)"
    }

    /// Seconds with millisecond precision, right-aligned.
    private func seconds(_ v: Double) -> String { String(printf: "%9.3f", v) }
}

/// ISO 8601 UTC time with milliseconds.
func isoTime(_ date: Date) -> String {
    let t = date.timeIntervalSince1970
    var secs = time_t(t.rounded(.down))
    var tmv = tm()
    gmtime_r(&secs, &tmv)
    let ms = Int((t - t.rounded(.down)) * 1000)
    return String(printf: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", Int(tmv.tm_year) + 1900, Int(tmv.tm_mon) + 1,
                  Int(tmv.tm_mday), Int(tmv.tm_hour), Int(tmv.tm_min), Int(tmv.tm_sec), ms)
}
