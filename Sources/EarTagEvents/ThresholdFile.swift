// Reads per-label threshold files: one `LABEL,ON[,OFF]` per line, CSV quoting, `#` comment lines.
import FoundationEssentials
import EarTagPlatform
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// On and off thresholds of one class; a label starts at score >= on and is heard while score >= off.
public struct ClassThresholds: Sendable, Equatable {
    /// Score at or above which a window counts as a hit.
    public var on: Float
    /// Score at or above which an active label is still heard.
    public var off: Float

    /// Both thresholds; `off` defaults to 0.75 x `on`. Checked by `EventConfig`, not here.
    public init(on: Float, off: Float? = nil) {
        self.on = on
        self.off = off ?? on * EventConfig.defaultOffRatio
    }
}

/// Parser of per-label threshold files; each label may appear once, by display name or mid.
public enum ThresholdFile {
    /// Largest number of lines accepted.
    public static let maxLines = 100_000
    /// Largest file size accepted (bytes).
    public static let maxBytes = 10 << 20

    /// Reads `path` (at most `maxBytes`, so devices and pipes are bounded too) and resolves its labels with `selector`.
    public static func read(path: String, selector: LabelSelector) throws -> [Int: ClassThresholds] {
        func fail(_ reason: String) -> EventError { .badThresholdFile(path: path, line: 0, reason: reason) }
        var isDirectory = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { throw fail("no such file") }
        guard !isDirectory else { throw fail("is a directory") }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw fail("not readable") }
        defer { Glibc.close(fd) }
        var data = Data(count: maxBytes + 1)
        var filled = 0
        while filled < data.count {
            let n = data.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + filled, $0.count - filled) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw fail("read failed: \(String(cString: strerror(errno)))") }
            if n == 0 { break }
            filled += n
        }
        data.count = filled
        guard data.count <= maxBytes else { throw fail("file larger than \(maxBytes) bytes") }
        guard let text = String(data: data, encoding: .utf8) else { throw fail("not UTF-8 text") }
        return try parse(text, path: path, selector: selector)
    }

    /// Parses `LABEL,ON[,OFF]` lines (whole-line `#` comments, blank lines skipped; OFF defaults to 0.75 x that line's ON).
    public static func parse(_ text: String, path: String, selector: LabelSelector) throws -> [Int: ClassThresholds] {
        var body = Substring(text)
        if body.first == "\u{FEFF}" { body = body.dropFirst() }
        let lines = body.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" })
        guard lines.count <= maxLines else {
            throw EventError.badThresholdFile(path: path, line: maxLines + 1, reason: "more than \(maxLines) lines")
        }
        var result: [Int: ClassThresholds] = [:]
        var definedOn: [Int: Int] = [:]
        for (i, raw) in lines.enumerated() {
            let number = i + 1
            func fail(_ reason: String) -> EventError { .badThresholdFile(path: path, line: number, reason: reason) }
            let line = raw.hasSuffix("\r") ? raw.dropLast() : raw
            let trimmed = CSVFields.trim(line)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            let fields: [String]
            do { fields = try CSVFields.split(line) } catch let e as CSVError { throw fail(e.reason) }
            guard fields.count == 2 || fields.count == 3 else {
                throw fail("expected LABEL,ON[,OFF] but found \(fields.count) field\(fields.count == 1 ? "" : "s")")
            }
            guard !fields[0].isEmpty else { throw fail("empty label") }
            let index: Int
            do { index = try selector.index(of: fields[0]) } catch let e as EventError { throw fail(e.description) }
            let on = try threshold(fields[1], what: "on", fail: fail)
            var off = on * EventConfig.defaultOffRatio
            if fields.count == 3 {
                off = try threshold(fields[2], what: "off", fail: fail)
                guard off <= on else { throw fail("off threshold \(fields[2]) is above on threshold \(fields[1])") }
            }
            if let first = definedOn[index] {
                throw fail("label '\(selector.labels[index].displayName)' already set on line \(first)")
            }
            definedOn[index] = number
            result[index] = ClassThresholds(on: on, off: off)
        }
        return result
    }

    /// Parses one threshold value, which must be a finite number in [0, 1].
    private static func threshold(_ text: String, what: String, fail: (String) -> EventError) throws -> Float {
        guard !text.isEmpty else { throw fail("empty \(what) threshold") }
        guard let v = Float(text), v.isFinite else { throw fail("\(what) threshold '\(text)' is not a number") }
        guard v >= 0, v <= 1 else { throw fail("\(what) threshold \(text) is outside [0, 1]") }
        return v
    }
}
