// Errors of the event layer: label look-up, threshold files and configuration.

/// Why a label name, threshold file or event configuration was refused.
public enum EventError: Error, CustomStringConvertible, Equatable, Sendable {
    /// A label name matched no display name or mid; `suggestion` is a close display name, if any.
    case unknownLabel(name: String, suggestion: String?)
    /// A threshold file is unreadable or malformed; `line` is 1-based (0 when not tied to a line).
    case badThresholdFile(path: String, line: Int, reason: String)
    /// An event configuration value is out of range or inconsistent.
    case invalidConfig(String)

    /// One-line human-readable message.
    public var description: String {
        switch self {
        case let .unknownLabel(name, suggestion):
            if let s = suggestion { return "unknown label '\(name)' (did you mean '\(s)'?)" }
            return "unknown label '\(name)'"
        case let .badThresholdFile(path, line, reason):
            return line > 0 ? "threshold file \(path):\(line): \(reason)" : "threshold file \(path): \(reason)"
        case let .invalidConfig(reason):
            return "invalid event configuration: \(reason)"
        }
    }
}
