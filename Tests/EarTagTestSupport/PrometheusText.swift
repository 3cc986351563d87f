// A strict parser of the Prometheus text exposition format (0.0.4) for tests of `eartag listen --metrics`.
// ref: Prometheus "Exposition formats": `# HELP name text`, `# TYPE name type`, `name{label="v",...} value`.
import Foundation

/// One parsed exposition: families with their types and every sample.
public struct PrometheusText {
    /// One sample line.
    public struct Sample: Equatable {
        /// Metric name (with `_bucket`/`_sum`/`_count` for histograms).
        public var name: String
        /// Label pairs.
        public var labels: [String: String]
        /// Value.
        public var value: Double
    }

    /// Declared type per family name.
    public private(set) var types: [String: String] = [:]
    /// HELP text per family name.
    public private(set) var help: [String: String] = [:]
    /// Samples in order.
    public private(set) var samples: [Sample] = []

    /// Why the text is not valid exposition text.
    public struct Invalid: Error, CustomStringConvertible {
        /// Line number and reason.
        public var description: String
    }

    /// Parses `text`, checking names, label syntax, values, that every sample belongs to a family declared before it
    /// with HELP and TYPE, that no family is declared twice, and that histogram buckets are cumulative and end in
    /// `+Inf` equal to `_count`.
    public init(_ text: String) throws {
        guard text.isEmpty || text.hasSuffix("\n") else { throw Invalid(description: "text does not end in a newline") }
        let nameChars = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_:")
        /// True for a valid metric name.
        func validName(_ n: Substring) -> Bool {
            !n.isEmpty && !n.first!.isNumber && n.unicodeScalars.allSatisfy { nameChars.contains($0) }
        }
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).dropLast().enumerated() {
            let line = Substring(raw)
            /// An error at this line.
            func bad(_ why: String) -> Invalid { Invalid(description: "line \(i + 1): \(why): \(line)") }
            if line.hasPrefix("# HELP ") || line.hasPrefix("# TYPE ") {
                let parts = line.dropFirst(7).split(separator: " ", maxSplits: 1)
                guard parts.count == 2, validName(parts[0]) else { throw bad("malformed comment") }
                let name = String(parts[0])
                if line.hasPrefix("# HELP ") {
                    guard help[name] == nil else { throw bad("second HELP") }
                    help[name] = String(parts[1])
                } else {
                    guard ["counter", "gauge", "histogram", "summary", "untyped"].contains(parts[1]) else {
                        throw bad("unknown type")
                    }
                    guard types[name] == nil else { throw bad("second TYPE") }
                    guard samples.allSatisfy({ family(of: $0.name) != name }) else { throw bad("TYPE after samples") }
                    types[name] = String(parts[1])
                }
                continue
            }
            if line.hasPrefix("#") || line.isEmpty { continue }
            var rest = line
            let nameEnd = rest.firstIndex { $0 == "{" || $0 == " " } ?? rest.endIndex
            let name = rest[..<nameEnd]
            guard validName(name) else { throw bad("invalid metric name") }
            rest = rest[nameEnd...]
            var labels: [String: String] = [:]
            if rest.hasPrefix("{") {
                rest = rest.dropFirst()
                while !rest.hasPrefix("}") {
                    guard let eq = rest.firstIndex(of: "="), validName(rest[..<eq]) else { throw bad("bad label name") }
                    let key = String(rest[..<eq])
                    rest = rest[rest.index(after: eq)...]
                    guard rest.hasPrefix("\"") else { throw bad("label value not quoted") }
                    rest = rest.dropFirst()
                    var value = ""
                    while true {
                        guard let c = rest.first else { throw bad("unterminated label value") }
                        rest = rest.dropFirst()
                        if c == "\"" { break }
                        if c == "\\" {
                            guard let e = rest.first, "\\\"n".contains(e) else { throw bad("bad escape") }
                            value.append(e == "n" ? "\n" : e)
                            rest = rest.dropFirst()
                        } else {
                            value.append(c)
                        }
                    }
                    guard labels.updateValue(value, forKey: key) == nil else { throw bad("repeated label") }
                    if rest.hasPrefix(",") { rest = rest.dropFirst() }
                }
                rest = rest.dropFirst()
            }
            guard rest.hasPrefix(" ") else { throw bad("no value") }
            let fields = rest.dropFirst().split(separator: " ")
            guard (1...2).contains(fields.count) else { throw bad("junk after the value") }
            let v: Double
            switch fields[0] {
            case "+Inf": v = .infinity
            case "-Inf": v = -.infinity
            case "NaN": v = .nan
            default:
                guard let d = Double(fields[0]) else { throw bad("value is not a number") }
                v = d
            }
            let familyName = family(of: String(name))
            guard let type = types[familyName], help[familyName] != nil else { throw bad("sample before its HELP and TYPE") }
            if type == "counter" && !(v >= 0) { throw bad("negative counter") }
            if type == "histogram" && String(name) == familyName { throw bad("histogram sample without a suffix") }
            samples.append(Sample(name: String(name), labels: labels, value: v))
        }
        for (family, type) in types where type == "histogram" {
            let buckets = samples.filter { $0.name == family + "_bucket" }
            guard let last = buckets.last, last.labels["le"] == "+Inf" else {
                throw Invalid(description: "\(family): no +Inf bucket")
            }
            var previous = -Double.infinity, previousCount = 0.0
            for b in buckets {
                guard let le = b.labels["le"].flatMap({ $0 == "+Inf" ? Double.infinity : Double($0) }), le > previous,
                      b.value >= previousCount else { throw Invalid(description: "\(family): buckets not cumulative") }
                (previous, previousCount) = (le, b.value)
            }
            guard value(family + "_count") == last.value, value(family + "_sum") != nil else {
                throw Invalid(description: "\(family): _count differs from the +Inf bucket or _sum is missing")
            }
        }
    }

    /// The family a sample name belongs to (histogram suffixes removed when that family is declared).
    func family(of name: String) -> String {
        for suffix in ["_bucket", "_sum", "_count"] where name.hasSuffix(suffix) {
            let base = String(name.dropLast(suffix.count))
            if types[base] == "histogram" { return base }
        }
        return name
    }

    /// The value of the sample with this name and exactly these labels, if present.
    public func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        samples.first { $0.name == name && $0.labels == labels }?.value
    }
}
