// `eartag listen --config FILE`: the TOML configuration file, parsed into optional settings with line-exact errors.
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import EarTagPlatform
import EarTagAudio
import EarTagEvents
import EarTagModel

/// Settings read from a configuration file; nil means the file does not set the key.
public struct ListenFileSettings: Equatable, Sendable {
    /// `[source] device`: ALSA capture device.
    public var device: String?
    /// `[source] stdin`: read audio from standard input.
    public var stdin: Bool?
    /// `[source] file`: an audio file ("" means none).
    public var file: String?
    /// `[source] rate`: raw stdin sample rate.
    public var rate: Int?
    /// `[source] channels`: raw stdin channel count.
    public var channels: Int?
    /// `[source] sample_format`: raw stdin sample format.
    public var sampleFormat: String?
    /// `[model] path`: model file (relative paths are relative to the configuration file).
    public var modelPath: String?
    /// `[model] threads`: engine threads.
    public var threads: Int?
    /// `[window] length`: window length in seconds.
    public var window: Double?
    /// `[window] hop`: hop in seconds.
    public var hop: Double?
    /// `[window] min_dbfs`: level gate.
    public var minDBFS: Double?
    /// `[events] threshold`: default on threshold.
    public var threshold: Float?
    /// `[events] off_threshold`: default off threshold.
    public var offThreshold: Float?
    /// `[events] confirm`: K of the last N windows, as (K, N).
    public var confirmHits: Int?
    /// N of `confirm`.
    public var confirmWindows: Int?
    /// `[events] hold`: seconds below off before an end.
    public var hold: Double?
    /// `[events] cooldown`: seconds after an end before a restart.
    public var cooldown: Double?
    /// `[events] labels`: allow list (an empty array reads as nil: every label).
    public var labels: [String]?
    /// `[events] exclude`: deny list.
    public var exclude: [String]?
    /// `[events] thresholds_file`: per-label thresholds (relative to the configuration file).
    public var thresholdsFile: String?
    /// `[output] format`.
    public var format: OutputFormat?
    /// `[output] windows`: print a record per window.
    public var windows: Bool?
    /// `[output] top`: labels per window record.
    public var top: Int?
    /// `[mqtt] url`: `mqtt://[USER[:PASSWORD]@]HOST[:PORT]` (checked when read).
    public var mqttURL: String?
    /// `[mqtt] client_id`.
    public var mqttClientId: String?
    /// `[mqtt] topic_prefix` (default `eartag`).
    public var mqttTopicPrefix: String?
    /// `[mqtt] source`: this listener's topic level (default the host name).
    public var mqttSource: String?
    /// `[mqtt] discovery_prefix` (default `homeassistant`).
    public var mqttDiscoveryPrefix: String?
    /// `[mqtt] queue`: messages held while the broker is away.
    public var mqttQueue: Int?
    /// `[metrics] listen`: `HOST:PORT` of the /metrics endpoint.
    public var metricsListen: String?
    /// `[metrics] allow_remote`: allow a non-loopback `listen` address.
    public var metricsAllowRemote: Bool?
    /// `[metrics] file`: textfile-collector output (relative to the configuration file).
    public var metricsFile: String?
    /// `[metrics] interval`: seconds between textfile writes.
    public var metricsInterval: Double?

    /// No key set.
    public init() {}
}

/// A configuration file problem: `FILE:LINE: reason`.
public struct ListenConfigError: Error, CustomStringConvertible, Equatable {
    /// The configuration file.
    public var path: String
    /// 1-based line of the offending key (or table, or syntax error).
    public var line: Int
    /// What is wrong.
    public var reason: String

    /// An error at `path:line`.
    public init(path: String, line: Int, reason: String) {
        self.path = path
        self.line = line
        self.reason = reason
    }

    /// `FILE:LINE: reason`, or `FILE: reason` when no line applies (line 0).
    public var description: String { line > 0 ? "\(path):\(line): \(reason)" : "\(path): \(reason)" }
}

/// Parses and checks `eartag listen` configuration files.
public enum ListenConfig {
    /// Tables and the keys each accepts.
    public static let keys: [String: [String]] = [
        "source": ["device", "stdin", "file", "rate", "channels", "sample_format"],
        "model": ["path", "threads"],
        "window": ["length", "hop", "min_dbfs"],
        "events": ["threshold", "off_threshold", "confirm", "hold", "cooldown", "labels", "exclude", "thresholds_file"],
        "output": ["format", "windows", "top"],
        "mqtt": ["url", "client_id", "topic_prefix", "source", "discovery_prefix", "queue"],
        "metrics": ["listen", "allow_remote", "file", "interval"],
    ]

    /// Reads and parses `path`; `labels` (the model's) checks label names when given.
    public static func load(path: String, labels: [Label]? = nil) throws -> ListenFileSettings {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ListenConfigError(path: path, line: 0, reason: "cannot read the configuration file ("
                                    + String(cString: strerror(access(path, R_OK) == 0 ? EIO : errno)) + ")")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ListenConfigError(path: path, line: 0, reason: "the configuration file is not UTF-8 text")
        }
        return try parse(text, path: path, labels: labels)
    }

    /// Parses configuration text; relative file paths in it are resolved against the directory of `path`.
    public static func parse(_ text: String, path: String, labels: [Label]? = nil) throws -> ListenFileSettings {
        let lines = KeyLines(text)
        let table: TOMLTable
        do { table = try TOML.parse(text) } catch let e as TOMLError {
            throw ListenConfigError(path: path, line: e.line, reason: e.reason)
        }
        var reader = Reader(path: path, lines: lines)
        var s = ListenFileSettings()
        for name in table.keys.sorted(by: { lines.line(of: [$0]) < lines.line(of: [$1]) }) {
            guard let accepted = keys[name] else {
                throw reader.error([name], "unknown \(table[name]?.table != nil ? "table" : "key") '\(name)' "
                                   + "(expected tables: \(keys.keys.sorted().joined(separator: ", ")))")
            }
            guard let section = table[name]?.table else { throw reader.error([name], "'\(name)' must be a table") }
            for key in section.keys where !accepted.contains(key) {
                throw reader.error([name, key], "unknown key '\(key)' in [\(name)] "
                                   + "(expected: \(accepted.joined(separator: ", ")))")
            }
            reader.section = name
            reader.table = section
            switch name {
            case "source": try readSource(&reader, into: &s)
            case "model": try readModel(&reader, into: &s)
            case "window": try readWindow(&reader, into: &s)
            case "events": try readEvents(&reader, into: &s, labels: labels)
            case "mqtt": try readMqtt(&reader, into: &s)
            case "metrics": try readMetrics(&reader, into: &s)
            default: try readOutput(&reader, into: &s)
            }
        }
        return s
    }

    /// `[source]`.
    private static func readSource(_ r: inout Reader, into s: inout ListenFileSettings) throws {
        s.device = try r.string("device", nonEmpty: true)
        s.stdin = try r.bool("stdin")
        s.file = try r.string("file").map { $0.isEmpty ? $0 : r.resolve($0) }
        let given = [s.device != nil, s.stdin == true, !(s.file ?? "").isEmpty].filter { $0 }.count
        if given > 1 {
            let key = ["device", "file", "stdin"].first { r.table[$0] != nil } ?? "device"
            throw r.error(key, "give only one of device, stdin = true, file")
        }
        s.rate = try r.int("rate", in: 1...1_000_000)
        s.channels = try r.int("channels", in: 1...64)
        if let f = try r.string("sample_format") {
            guard (try? PCMSampleFormat.parse(f)) != nil else {
                throw r.error("sample_format", "unsupported sample format '\(f)' (expected one of "
                              + PCMSampleFormat.allCases.map(\.rawValue).joined(separator: ", ") + ")")
            }
            s.sampleFormat = f
        }
    }

    /// `[model]`.
    private static func readModel(_ r: inout Reader, into s: inout ListenFileSettings) throws {
        s.modelPath = try r.string("path", nonEmpty: true).map { r.resolve($0) }
        s.threads = try r.int("threads", in: 1...256)
    }

    /// `[window]`.
    private static func readWindow(_ r: inout Reader, into s: inout ListenFileSettings) throws {
        s.window = try r.number("length", in: 0.5...3600)
        s.hop = try r.number("hop", in: 0.01...3600)
        if let w = s.window, let h = s.hop, h > w { throw r.error("hop", "hop (\(h) s) must not exceed length (\(w) s)") }
        s.minDBFS = try r.number("min_dbfs", in: -200...0)
    }

    /// `[events]`; label names are checked against `labels` when given.
    private static func readEvents(_ r: inout Reader, into s: inout ListenFileSettings, labels: [Label]?) throws {
        s.threshold = try r.number("threshold", in: 0...1).map { Float($0) }
        s.offThreshold = try r.number("off_threshold", in: 0...1).map { Float($0) }
        if let on = s.threshold, let off = s.offThreshold, off > on {
            throw r.error("off_threshold", "off_threshold \(off) is above threshold \(on)")
        }
        if let c = try r.string("confirm") {
            let parts = c.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count == 2, let k = Int(parts[0]), let n = Int(parts[1]),
                  k >= 1, k <= n, n <= EventConfig.maxConfirmWindows else {
                throw r.error("confirm", "confirm must be K/N with 1 <= K <= N <= \(EventConfig.maxConfirmWindows) "
                              + "(got '\(c)')")
            }
            s.confirmHits = k
            s.confirmWindows = n
        }
        s.hold = try r.number("hold", in: 0...86_400)
        s.cooldown = try r.number("cooldown", in: 0...86_400)
        s.labels = try r.strings("labels").flatMap { $0.isEmpty ? nil : $0 }  // empty: every label
        s.exclude = try r.strings("exclude")
        s.thresholdsFile = try r.string("thresholds_file", nonEmpty: true).map { r.resolve($0) }
        if let labels {
            let selector = LabelSelector(labels: labels)
            for key in ["labels", "exclude"] {
                for name in (key == "labels" ? s.labels : s.exclude) ?? [] {
                    do { _ = try selector.index(of: name) } catch {
                        throw r.error(key, String(describing: error))
                    }
                }
            }
        }
    }

    /// `[mqtt]`: the URL and names are checked as the command line's are.
    private static func readMqtt(_ r: inout Reader, into s: inout ListenFileSettings) throws {
        s.mqttURL = try r.string("url", nonEmpty: true)
        s.mqttClientId = try r.string("client_id", nonEmpty: true)
        s.mqttTopicPrefix = try r.string("topic_prefix", nonEmpty: true)
        s.mqttSource = try r.string("source", nonEmpty: true)
        s.mqttDiscoveryPrefix = try r.string("discovery_prefix", nonEmpty: true)
        s.mqttQueue = try r.int("queue", in: 64...1_000_000)
        if let url = s.mqttURL {
            do { _ = try MqttSettings(url: url, clientId: s.mqttClientId, topicPrefix: s.mqttTopicPrefix,
                                      source: s.mqttSource, discoveryPrefix: s.mqttDiscoveryPrefix) } catch {
                throw r.error("url", String(describing: error))
            }
        }
    }

    /// `[metrics]`.
    private static func readMetrics(_ r: inout Reader, into s: inout ListenFileSettings) throws {
        s.metricsListen = try r.string("listen", nonEmpty: true)
        s.metricsAllowRemote = try r.bool("allow_remote")
        s.metricsFile = try r.string("file", nonEmpty: true).map { r.resolve($0) }
        s.metricsInterval = try r.number("interval", in: 0.1...86_400)
        if let listen = s.metricsListen {
            do { _ = try MetricsAddress(listen, allowRemote: s.metricsAllowRemote ?? false) } catch {
                throw r.error("listen", String(describing: error))
            }
        }
    }

    /// `[output]`.
    private static func readOutput(_ r: inout Reader, into s: inout ListenFileSettings) throws {
        if let f = try r.string("format") {
            guard let format = OutputFormat(rawValue: f) else {
                throw r.error("format", "format must be \"jsonl\" or \"text\" (got '\(f)')")
            }
            s.format = format
        }
        s.windows = try r.bool("windows")
        s.top = try r.int("top", in: 1...527)
    }

    /// Typed access to one table's values, with errors that carry the key's line.
    private struct Reader {
        let path: String
        let lines: KeyLines
        var section = ""
        var table = TOMLTable()

        /// Paths in the file are relative to the file's directory.
        func resolve(_ p: String) -> String {
            if p.hasPrefix("/") { return p }
            let dir = PathText.deletingLastComponent(path)
            return dir.isEmpty ? p : PathText.appending(dir, p)
        }

        /// An error at the line of `[section] key`.
        func error(_ key: String, _ reason: String) -> ListenConfigError { error([section, key], reason) }

        /// An error at the line of a dotted key path.
        func error(_ keyPath: [String], _ reason: String) -> ListenConfigError {
            ListenConfigError(path: path, line: lines.line(of: keyPath), reason: reason)
        }

        /// The TOML type name used in messages.
        func typeName(_ v: TOMLValue) -> String { v.typeName }

        /// A string value, or nil when the key is absent.
        func string(_ key: String, nonEmpty: Bool = false) throws -> String? {
            guard let v = table[key] else { return nil }
            guard let s = v.string else { throw error(key, "\(key) must be a string, not \(typeName(v))") }
            if nonEmpty && s.isEmpty { throw error(key, "\(key) must not be empty") }
            return s
        }

        /// A boolean value.
        func bool(_ key: String) throws -> Bool? {
            guard let v = table[key] else { return nil }
            guard let b = v.bool else { throw error(key, "\(key) must be true or false, not \(typeName(v))") }
            return b
        }

        /// An integer in `range`.
        func int(_ key: String, in range: ClosedRange<Int>) throws -> Int? {
            guard let v = table[key] else { return nil }
            guard let i = v.int else { throw error(key, "\(key) must be an integer, not \(typeName(v))") }
            guard range.contains(i) else {
                throw error(key, "\(key) must be in \(range.lowerBound)...\(range.upperBound) (got \(i))")
            }
            return i
        }

        /// A number (integer or float) in `range`.
        func number(_ key: String, in range: ClosedRange<Double>) throws -> Double? {
            guard let v = table[key] else { return nil }
            guard let d = v.double ?? v.int.map(Double.init) else {
                throw error(key, "\(key) must be a number, not \(typeName(v))")
            }
            guard d.isFinite, range.contains(d) else {
                throw error(key, "\(key) must be in \(trim(range.lowerBound))...\(trim(range.upperBound)) (got \(d))")
            }
            return d
        }

        /// An array of strings.
        func strings(_ key: String) throws -> [String]? {
            guard let v = table[key] else { return nil }
            guard let a = v.array else { throw error(key, "\(key) must be an array of strings, not \(typeName(v))") }
            return try a.map { item in
                guard let s = item.string else { throw error(key, "\(key) must contain only strings") }
                return s
            }
        }

        /// A bound without a useless `.0`.
        func trim(_ d: Double) -> String { d == d.rounded() ? String(Int(d)) : String(d) }
    }
}

/// Line numbers of table headers and keys, found by scanning the text (the parsed tables do not carry them).
struct KeyLines {
    /// First line of every dotted key path (`["events", "threshold"]` -> 12; tables by their own path).
    private var lines: [[String]: Int] = [:]

    /// Scans `text`: `[table]` headers and `key = value` lines (bare, quoted or dotted keys).
    init(_ text: String) {
        var current: [String] = []
        var inMultiline: String? = nil
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingSpaces()
            if let delimiter = inMultiline {
                if line.contains(delimiter) { inMultiline = nil }
                continue
            }
            if line.hasPrefix("[") && !line.hasPrefix("[[") {
                guard let close = line.firstIndex(of: "]") else { continue }
                current = KeyLines.split(String(line[line.index(after: line.startIndex)..<close]))
                if lines[current] == nil { lines[current] = i + 1 }
                continue
            }
            guard let eq = line.firstIndex(of: "="), !line.hasPrefix("#") else { continue }
            let key = KeyLines.split(String(line[..<eq]))
            guard !key.isEmpty else { continue }
            var path = current
            for part in key {
                path.append(part)
                if lines[path] == nil { lines[path] = i + 1 }
            }
            let value = line[line.index(after: eq)...]
            for d in ["\"\"\"", "'''"] where value.components(separatedBy: d).count == 2 { inMultiline = d }
        }
    }

    /// Splits `a.b."c d"` into its parts, trimming blanks and quotes.
    static func split(_ key: String) -> [String] {
        var parts: [String] = []
        var part = ""
        var quote: Character? = nil
        for ch in key {
            if let q = quote {
                if ch == q { quote = nil } else { part.append(ch) }
            } else if ch == "\"" || ch == "'" {
                quote = ch
            } else if ch == "." {
                parts.append(part.trimmingSpaces())
                part = ""
            } else {
                part.append(ch)
            }
        }
        parts.append(part.trimmingSpaces())
        return parts.filter { !$0.isEmpty }
    }

    /// The line of `keyPath`, else of its closest enclosing table, else 1.
    func line(of keyPath: [String]) -> Int {
        var p = keyPath
        while !p.isEmpty {
            if let l = lines[p] { return l }
            p.removeLast()
        }
        return 1
    }
}
