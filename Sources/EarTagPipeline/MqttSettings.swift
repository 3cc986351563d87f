// `--mqtt mqtt://[USER[:PASSWORD]@]HOST[:PORT]` and the names EarTag publishes under.
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import EarTagPlatform

/// Where and as whom the MQTT publisher connects, and the topics it uses.
public struct MqttSettings: Equatable, Sendable {
    /// Broker host name or address.
    public var host: String
    /// Broker TCP port (1883 when the URL has none).
    public var port: Int
    /// User name from the URL, percent-decoded.
    public var username: String?
    /// Password from the URL, percent-decoded.
    public var password: String?
    /// MQTT client identifier (default `eartag-<source>`).
    public var clientId: String
    /// First topic level (default `eartag`).
    public var topicPrefix: String
    /// Second topic level: this listener's name (default the host name).
    public var source: String
    /// Home Assistant's discovery prefix (default `homeassistant`).
    public var discoveryPrefix: String
    /// Messages held while the broker is away (the oldest unsent one is dropped beyond this).
    public var queueCapacity: Int
    /// Seconds between keep-alive pings when idle.
    public var keepAliveSeconds: Int = 30
    /// First reconnect delay in seconds; doubles per failed attempt up to `maxBackoff`.
    public var initialBackoff = 0.5
    /// Largest reconnect delay in seconds.
    public var maxBackoff = 10.0
    /// At exit, seconds to wait for queued messages to reach the broker.
    public var drainSeconds = 5.0

    /// Parses the URL and checks the names; every error is one line naming the offending value.
    public init(url: String, clientId: String? = nil, topicPrefix: String? = nil, source: String? = nil,
                discoveryPrefix: String? = nil, queueCapacity: Int? = nil) throws {
        (host, port, username, password) = try Self.parseURL(url)
        self.source = source ?? Self.hostName()
        self.topicPrefix = topicPrefix ?? "eartag"
        self.discoveryPrefix = discoveryPrefix ?? "homeassistant"
        self.clientId = clientId ?? "eartag-\(self.source)"
        self.queueCapacity = queueCapacity ?? 1000
        for (what, value) in [("source", self.source), ("topic prefix", self.topicPrefix),
                              ("discovery prefix", self.discoveryPrefix)] {
            guard !value.isEmpty, value.utf8.count <= 1024,
                  !value.contains(where: { "/+#".contains($0) || $0.isNewline || $0 == "\0" }) else {
                throw StreamSettingsError(description: "MQTT \(what) '\(value)' must be one non-empty topic level "
                                          + "(no '/', '+', '#')")
            }
        }
        guard !self.clientId.isEmpty, self.clientId.utf8.count <= 65535 else {
            throw StreamSettingsError(description: "MQTT client id must not be empty")
        }
        guard self.queueCapacity >= 64, self.queueCapacity <= 1_000_000 else {
            throw StreamSettingsError(description: "MQTT queue must hold 64 to 1000000 messages (got \(self.queueCapacity))")
        }
    }

    /// The machine's host name (`eartag` if it cannot be read), made into one topic level.
    public static func hostName() -> String {
        var buf = [CChar](repeating: 0, count: 256)
        guard gethostname(&buf, buf.count - 1) == 0 else { return "eartag" }
        let name = String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let level = name.filter { !"/+#".contains($0) && !$0.isWhitespace }
        return level.isEmpty ? "eartag" : level
    }

    /// `mqtt://[USER[:PASSWORD]@]HOST[:PORT][/]` split into its parts (port 1883 by default).
    public static func parseURL(_ url: String) throws -> (host: String, port: Int, user: String?, password: String?) {
        func bad(_ why: String) -> StreamSettingsError {
            StreamSettingsError(description: "--mqtt '\(url)': \(why) (expected mqtt://[USER[:PASSWORD]@]HOST[:PORT])")
        }
        guard let schemeEnd = url.firstRange(of: "://") else { throw bad("not a URL") }
        let scheme = url[..<schemeEnd.lowerBound].lowercased()
        if scheme == "mqtts" || scheme == "ssl" { throw bad("TLS is not supported") }
        guard scheme == "mqtt" || scheme == "tcp" else { throw bad("unsupported scheme '\(scheme)'") }
        var rest = Substring(url[schemeEnd.upperBound...])
        if rest.hasSuffix("/") { rest = rest.dropLast() }
        guard !rest.contains("/"), !rest.contains("?"), !rest.contains("#") else { throw bad("a path is not allowed") }
        var user: String?, password: String?
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at]
            rest = rest[rest.index(after: at)...]
            let parts = credentials.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            guard let u = percentDecoded(String(parts[0])), !u.isEmpty else { throw bad("empty or malformed user") }
            user = u
            if parts.count == 2 {
                guard let p = percentDecoded(String(parts[1])) else { throw bad("malformed password") }
                password = p
            }
        }
        var host: Substring, portText: Substring?
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw bad("unterminated IPv6 address") }
            host = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw bad("junk after the IPv6 address") }
                portText = after.dropFirst()
            }
        } else if let colon = rest.lastIndex(of: ":") {
            host = rest[..<colon]
            portText = rest[rest.index(after: colon)...]
        } else {
            host = rest
        }
        guard !host.isEmpty else { throw bad("no host") }
        guard host.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-._:".contains($0)) }) else {
            throw bad("invalid host '\(host)'")
        }
        var port = 1883
        if let portText {
            guard let p = Int(portText), (1...65535).contains(p) else { throw bad("invalid port '\(portText)'") }
            port = p
        }
        for s in [user, password].compactMap({ $0 }) where s.utf8.count > 65535 { throw bad("credentials too long") }
        return (String(host), port, user, password)
    }

    /// `PREFIX/SOURCE`: the root of this listener's topics.
    public var baseTopic: String { "\(topicPrefix)/\(source)" }
    /// `PREFIX/SOURCE/events`: one JSON message per start or end event (QoS 1).
    public var eventsTopic: String { "\(baseTopic)/events" }
    /// `PREFIX/SOURCE/availability`: `online`/`offline`, retained; `offline` is the last will.
    public var availabilityTopic: String { "\(baseTopic)/availability" }

    /// The broker address as `HOST:PORT` for messages.
    public var endpoint: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
