// Events to MQTT: the JSON event topic, retained per-label ON/OFF state topics and Home Assistant MQTT discovery.
// ref: Home Assistant "MQTT Binary sensor" and "MQTT Discovery" documentation (topic
// <discovery_prefix>/<component>/<node_id>/<object_id>/config; keys name, unique_id, state_topic, payload_on/off,
// availability_topic, payload_available/not_available, device{identifiers,name,model,sw_version}, device_class).
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import EarTagModel

/// EarTag's version (the VERSION file's; a test keeps them equal), reported to Home Assistant and in the metrics.
public let eartagVersion = "0.1.0"

/// Publishes the listener's events through an `MqttClient`; discovery is sent for the allow-list labels at start,
/// or, without an allow list, for each label the first time it starts (527 idle sensors would swamp Home Assistant).
public final class HomeAssistantPublisher: ListenObserver {
    /// The client that owns the connection and the queue.
    public let client: MqttClient
    private let labels: [Label]
    /// Renders events exactly as the `jsonl` output does.
    private let printer: StreamRecordPrinter
    /// Topic level per label: lower-case ASCII letters, digits and `_`, unique.
    public let slugs: [String]
    /// Labels whose discovery message was queued.
    private var announced: [Bool]
    private let modelName: String
    private let version: String

    /// A publisher for `labels`; `allowList` (class indices) are announced at once.
    public init(client: MqttClient, labels: [Label], allowList: [Int]?, modelName: String, version: String) {
        self.client = client
        self.labels = labels
        self.modelName = modelName
        self.version = version
        printer = StreamRecordPrinter(format: .jsonl, top: 5, allScores: false, labels: labels)
        slugs = Self.uniqueSlugs(labels.map(\.displayName))
        announced = [Bool](repeating: false, count: labels.count)
        for i in allowList ?? [] { announce(i) }
    }

    /// `Dog (domestic)` -> `dog_domestic`; empty results become `label_<index>`, repeats get `_<index>`.
    public static func uniqueSlugs(_ names: [String]) -> [String] {
        var seen = Set<String>()
        return names.enumerated().map { i, name in
            var slug = ""
            for u in name.lowercased().unicodeScalars {
                if u.isASCII, u.properties.isAlphabetic || ("0"..."9").contains(u) { slug.unicodeScalars.append(u) }
                else if !slug.isEmpty, !slug.hasSuffix("_") { slug += "_" }
            }
            while slug.hasSuffix("_") { slug.removeLast() }
            if slug.isEmpty { slug = "label_\(i)" }
            if seen.contains(slug) { slug += "_\(i)" }
            seen.insert(slug)
            return slug
        }
    }

    /// `PREFIX/SOURCE/<slug>`: the retained `ON`/`OFF` state of one label.
    public func stateTopic(_ label: Int) -> String { "\(client.settings.baseTopic)/\(slugs[label])" }

    /// Home Assistant's node id for this listener: `eartag_<source>` reduced to `[a-zA-Z0-9_-]`.
    public var nodeId: String {
        "eartag_" + String(client.settings.source.map { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") ? $0 : "_" })
    }

    /// `<discovery prefix>/binary_sensor/<node>/<slug>/config`.
    public func discoveryTopic(_ label: Int) -> String {
        "\(client.settings.discoveryPrefix)/binary_sensor/\(nodeId)/\(slugs[label])/config"
    }

    /// The discovery payload of one label's binary sensor.
    public func discoveryPayload(_ label: Int) -> String {
        let s = client.settings
        let l = labels[label]
        var fields: [(String, String)] = [
            ("name", jsonString(l.displayName)),
            ("unique_id", jsonString("\(nodeId)_\(slugs[label])")),
            ("state_topic", jsonString(stateTopic(label))),
            ("payload_on", "\"ON\""), ("payload_off", "\"OFF\""),
            ("availability_topic", jsonString(s.availabilityTopic)),
            ("payload_available", "\"online\""), ("payload_not_available", "\"offline\""),
        ]
        // Every AudioSet class but Silence is a sound being heard: Home Assistant's `sound` class ("sound detected").
        if l.mid != "/m/028v0c" { fields.append(("device_class", "\"sound\"")) }
        fields.append(("device", "{\"identifiers\":[\(jsonString(nodeId))],\"name\":\(jsonString("EarTag \(s.source)")),"
                       + "\"model\":\(jsonString(modelName)),\"sw_version\":\(jsonString(version)),"
                       + "\"manufacturer\":\"EarTag\"}"))
        return "{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}"
    }

    /// Queues a label's discovery message and its initial `OFF` state (once per label).
    private func announce(_ label: Int) {
        guard !announced[label] else { return }
        announced[label] = true
        client.publish(MqttMessage(topic: discoveryTopic(label), text: discoveryPayload(label), qos: 1, retain: true))
        client.publish(MqttMessage(topic: stateTopic(label), text: "OFF", qos: 1, retain: true))
    }

    public func window(_ stats: WindowStats, scores: UnsafeBufferPointer<Float>) {}

    public func record(_ r: StreamRecord) {
        let label: Int, on: Bool
        switch r {
        case let .start(l, _, _, _): (label, on) = (l, true)
        case let .end(l, _, _, _, _, _): (label, on) = (l, false)
        case .window: return
        }
        announce(label)
        var json = printer.render(r)
        json.removeLast()  // the newline
        client.publish(MqttMessage(topic: client.settings.eventsTopic, text: json, qos: 1, retain: false))
        client.publish(MqttMessage(topic: stateTopic(label), text: on ? "ON" : "OFF", qos: 1, retain: true))
    }

    public func hop(_ stats: HopStats) {}

    public func finish() {}
}
