// `eartag listen --mqtt` against a real Mosquitto broker on loopback: every event arrives with the documented
// payload, discovery messages are what Home Assistant expects, a broker outage loses no queued event and never
// stalls the audio, SIGKILL makes the broker publish the last will, and bad settings are one-line errors.
import Foundation
import XCTest
import EarTagAudio
import EarTagTestSupport

/// A running `eartag listen` whose standard output lines are recorded with their arrival times.
final class ListenProcess {
    let process = Process()
    private let input = Pipe(), output = Pipe()
    private let errURL: URL
    private let lock = NSLock()
    private var received: [(time: Date, line: String)] = []
    private let readerDone = DispatchSemaphore(value: 0)

    /// Starts the binary with `arguments`.
    init(_ binary: String, _ arguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "EARTAG_MODEL")
        process.environment = env
        errURL = FileManager.default.temporaryDirectory.appendingPathComponent("eartag-stderr-\(UUID())")
        FileManager.default.createFile(atPath: errURL.path, contents: nil)
        process.standardInput = input
        process.standardOutput = output
        process.standardError = try FileHandle(forWritingTo: errURL)
        try process.run()
        let handle = output.fileHandleForReading
        Thread { [self] in
            var pending = Data()
            while true {
                let d = handle.availableData
                if d.isEmpty { break }
                pending.append(d)
                let now = Date()
                while let nl = pending.firstIndex(of: 10) {
                    let line = String(decoding: pending[pending.startIndex..<nl], as: UTF8.self)
                    pending.removeSubrange(pending.startIndex...nl)
                    lock.lock(); received.append((now, line)); lock.unlock()
                }
            }
            readerDone.signal()
        }.start()
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        try? FileManager.default.removeItem(at: errURL)
    }

    /// Standard output lines so far, with arrival times: a copy made under the lock (sharing the reader thread's
    /// buffer would race with its next append, as ThreadSanitizer showed).
    var lines: [(time: Date, line: String)] { lock.lock(); defer { lock.unlock() }; return received.map { $0 } }

    /// Standard error so far.
    var stderr: String { (try? String(contentsOf: errURL, encoding: .utf8)) ?? "" }

    /// Writes bytes to standard input.
    func write(_ data: Data) { try? input.fileHandleForWriting.write(contentsOf: data) }

    /// Writes `data` in 100 ms pieces at the pace of 32 kHz 16-bit mono audio, from `start`.
    func feedInRealTime(_ data: Data, from start: Date) {
        let chunk = 6400
        var offset = 0
        while offset < data.count {
            let due = start.addingTimeInterval(Double(offset) / 64000)
            let wait = due.timeIntervalSinceNow
            if wait > 0 { usleep(UInt32(wait * 1e6)) }
            write(data.subdata(in: offset..<min(data.count, offset + chunk)))
            offset += chunk
        }
    }

    /// Closes standard input (end of stream).
    func closeInput() { try? input.fileHandleForWriting.close() }

    /// Waits up to `timeout` seconds for the exit; the status, or nil if it is still running.
    func waitForExit(timeout: Double) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        guard !process.isRunning else { return nil }
        process.waitUntilExit()
        readerDone.wait()
        return process.terminationStatus
    }

    /// Waits until `condition` holds for the output lines (true) or `timeout` seconds pass (false).
    func wait(timeout: Double, until condition: ([String]) -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if condition(lines.map(\.line)) { return true }
            usleep(20_000)
        }
        return condition(lines.map(\.line))
    }
}

/// 16-bit little-endian mono PCM of reference clips, concatenated (32 kHz clips).
func pcm16(_ clips: [String]) throws -> Data {
    var out = Data()
    for clip in clips {
        let samples = try loadAudio(path: Reference.path("audio/\(clip).wav")).samples
        let ints = samples.map { Int16(clamping: Int(($0 * 32768).rounded())).littleEndian }
        ints.withUnsafeBytes { out.append(contentsOf: $0) }
    }
    return out
}

/// A parsed JSON object.
func jsonObject(_ text: String) -> [String: Any]? {
    (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any]
}

final class MqttCommandTests: CLITestCase {
    var dir: URL!

    override func setUpWithError() throws { dir = try makeTemporaryDirectory("eartag-mqtt") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    /// A started broker and a subscriber recording `filters` on it, both stopped at the end of the test.
    func brokerAndSubscriber(_ filters: [String], clientId: String? = nil) throws -> (Mosquitto, MosquittoSubscriber) {
        let broker = try Mosquitto(directory: dir)
        try broker.start()
        addTeardownBlock { broker.stop() }
        let sub = try clientId.map { try MosquittoSubscriber(broker: broker, filters: filters, clientId: $0) }
            ?? MosquittoSubscriber(broker: broker, filters: filters)
        addTeardownBlock { sub.stop() }
        return (broker, sub)
    }

    /// The start/end lines of jsonl output, in order.
    func eventLines(_ stdout: [String]) -> [String] {
        stdout.filter { ["start", "end"].contains(jsonObject($0)?["type"] as? String ?? "") }
    }

    /// Checks one discovery message against Home Assistant's MQTT binary sensor schema.
    func assertDiscovery(_ m: ReceivedMessage, source: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let parts = m.topic.split(separator: "/", omittingEmptySubsequences: false)
        XCTAssertEqual(parts.count, 5, m.topic, file: file, line: line)
        XCTAssertEqual(parts.first, "homeassistant", file: file, line: line)
        XCTAssertEqual(parts[1], "binary_sensor", file: file, line: line)
        XCTAssertEqual(parts.last, "config", file: file, line: line)
        let idChars = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
        for id in parts[2...3] {
            XCTAssertTrue(!id.isEmpty && id.unicodeScalars.allSatisfy { idChars.contains($0) }, "node/object id \(id)",
                          file: file, line: line)
        }
        let c = try XCTUnwrap(jsonObject(m.payload), m.payload, file: file, line: line)
        // Keys of Home Assistant's MQTT binary_sensor platform and of its shared `device` block.
        let known: Set<String> = ["name", "unique_id", "object_id", "state_topic", "payload_on", "payload_off",
                                  "availability_topic", "payload_available", "payload_not_available", "device_class",
                                  "device", "qos", "expire_after", "off_delay", "force_update", "icon",
                                  "value_template", "enabled_by_default", "entity_category"]
        XCTAssertTrue(Set(c.keys).isSubset(of: known), "unknown keys \(Set(c.keys).subtracting(known))", file: file, line: line)
        for key in ["name", "unique_id", "state_topic", "availability_topic"] {
            XCTAssertFalse((c[key] as? String ?? "").isEmpty, key, file: file, line: line)
        }
        XCTAssertEqual(c["payload_on"] as? String, "ON", file: file, line: line)
        XCTAssertEqual(c["payload_off"] as? String, "OFF", file: file, line: line)
        XCTAssertEqual(c["payload_available"] as? String, "online", file: file, line: line)
        XCTAssertEqual(c["payload_not_available"] as? String, "offline", file: file, line: line)
        XCTAssertEqual(c["availability_topic"] as? String, "eartag/\(source)/availability", file: file, line: line)
        XCTAssertTrue((c["state_topic"] as? String ?? "").hasPrefix("eartag/\(source)/"), file: file, line: line)
        XCTAssertEqual(c["state_topic"] as? String, "eartag/\(source)/\(parts[3])", file: file, line: line)
        if let dc = c["device_class"] { XCTAssertEqual(dc as? String, "sound", file: file, line: line) }
        let device = try XCTUnwrap(c["device"] as? [String: Any], file: file, line: line)
        let deviceKeys: Set<String> = ["identifiers", "name", "model", "sw_version", "manufacturer", "connections",
                                       "hw_version", "suggested_area", "via_device", "configuration_url"]
        XCTAssertTrue(Set(device.keys).isSubset(of: deviceKeys), "\(device.keys)", file: file, line: line)
        XCTAssertFalse((device["identifiers"] as? [String] ?? []).isEmpty, file: file, line: line)
        XCTAssertEqual(device["model"] as? String, "mn04_as", file: file, line: line)
        let version = try String(contentsOf: Reference.packageRoot.appendingPathComponent("VERSION"), encoding: .utf8)
        XCTAssertEqual(device["sw_version"] as? String, version.trimmingCharacters(in: .whitespacesAndNewlines),
                       file: file, line: line)
    }

    /// Every event of a reference clip arrives on the events topic exactly as the jsonl output printed it; the
    /// per-label states follow the events; the allow list's sensors are announced up front, retained.
    func testEventsStatesAndDiscoveryReachTheBroker() throws {
        let model = try importedModel()
        let (broker, sub) = try brokerAndSubscriber(["eartag/#", "homeassistant/#"])
        let r = try run(["listen", try Reference.path("audio/speech.wav"), "--model", model, "--window", "5",
                         "--format", "jsonl", "--labels", "Speech,Music,Typing",
                         "--mqtt", "mqtt://127.0.0.1:\(broker.port)", "--mqtt-source", "cli-test"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let events = eventLines(r.stdout.split(separator: "\n").map(String.init))
        XCTAssertFalse(events.isEmpty, "the speech clip gives events")
        XCTAssertTrue(sub.wait(timeout: 10) { $0.last?.payload == "offline" }, "\(sub.received)")
        let got = sub.received
        XCTAssertEqual(got.first?.topic, "eartag/cli-test/availability")
        XCTAssertEqual(got.first?.payload, "online")
        XCTAssertEqual(got.filter { $0.topic == "eartag/cli-test/events" }.map(\.payload), events)
        // Each label's state: OFF when announced, then ON/OFF with its starts and ends.
        for (name, slug) in [("Speech", "speech"), ("Music", "music"), ("Typing", "typing")] {
            let expected = ["OFF"] + events.compactMap { e -> String? in
                let o = jsonObject(e)
                return o?["label"] as? String == name ? (o?["type"] as? String == "start" ? "ON" : "OFF") : nil
            }
            XCTAssertEqual(got.filter { $0.topic == "eartag/cli-test/\(slug)" }.map(\.payload), expected, name)
        }
        let discovery = got.filter { $0.topic.hasPrefix("homeassistant/") }
        XCTAssertEqual(Set(discovery.map(\.topic)), Set(["speech", "music", "typing"].map {
            "homeassistant/binary_sensor/eartag_cli-test/\($0)/config"
        }))
        for m in discovery { try assertDiscovery(m, source: "cli-test") }
        XCTAssertEqual(Set(discovery.compactMap { jsonObject($0.payload)?["unique_id"] as? String }).count, 3)
        // A subscriber arriving later gets the retained discovery, state and availability messages.
        let late = try MosquittoSubscriber(broker: broker, filters: ["eartag/cli-test/+", "homeassistant/#"])
        defer { late.stop() }
        XCTAssertTrue(late.wait(timeout: 5) { $0.count >= 7 })
        let retained = late.received
        XCTAssertTrue(retained.allSatisfy(\.retained), "\(retained)")
        XCTAssertEqual(retained.first { $0.topic == "eartag/cli-test/availability" }?.payload, "offline")
        XCTAssertEqual(retained.first { $0.topic == "eartag/cli-test/speech" }?.payload, "OFF", "ended at the stream end")
        XCTAssertFalse(retained.contains { $0.topic == "eartag/cli-test/events" }, "events are not retained")
    }

    /// Without an allow list, a label's sensor is announced when it first starts, before its first ON.
    func testDiscoveryFollowsFiringLabelsWithoutAllowList() throws {
        let model = try importedModel()
        let (broker, sub) = try brokerAndSubscriber(["eartag/#", "homeassistant/#"])
        let r = try run(["listen", try Reference.path("audio/metro_station-paris.wav"), "--model", model, "--window", "5",
                         "--format", "jsonl", "--mqtt", "mqtt://127.0.0.1:\(broker.port)", "--mqtt-source", "lazy"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let events = eventLines(r.stdout.split(separator: "\n").map(String.init))
        let fired = Set(events.compactMap { jsonObject($0)?["label"] as? String })
        XCTAssertFalse(fired.isEmpty)
        XCTAssertTrue(sub.wait(timeout: 10) { $0.last?.payload == "offline" })
        let got = sub.received
        let discovery = got.filter { $0.topic.hasPrefix("homeassistant/") }
        XCTAssertEqual(Set(discovery.compactMap { jsonObject($0.payload)?["name"] as? String }), fired)
        for m in discovery {
            try assertDiscovery(m, source: "lazy")
            let state = try XCTUnwrap(jsonObject(m.payload)?["state_topic"] as? String)
            let configAt = try XCTUnwrap(got.firstIndex(of: m))
            let onAt = try XCTUnwrap(got.firstIndex { $0.topic == state && $0.payload == "ON" })
            XCTAssertLessThan(configAt, onAt, "announced before its first ON")
        }
        XCTAssertEqual(got.filter { $0.topic == "eartag/lazy/events" }.map(\.payload), events)
    }

    /// The broker stops mid-stream and comes back: every event still arrives (at least once, in order), the window
    /// records stay continuous and each is written within a second of its audio arriving (stdin fed in real time).
    func testBrokerOutageLosesNoQueuedEventAndNeverStallsAudio() throws {
        let model = try importedModel()
        let (broker, sub) = try brokerAndSubscriber(["eartag/outage/events"], clientId: "outage-sub")
        let audio = try pcm16(["speech", "music"])
        let listener = try ListenProcess(Self.binary, [
            "listen", "--stdin", "--model", model, "--window", "5", "--hop", "1", "--windows", "--format", "jsonl",
            "--mqtt", "mqtt://127.0.0.1:\(broker.port)", "--mqtt-source", "outage"])
        let start = Date()
        let feeder = Thread { listener.feedInRealTime(audio, from: start); listener.closeInput() }
        feeder.start()
        usleep(6_000_000)
        broker.stop()
        let outageBegan = Date()
        usleep(5_000_000)
        try broker.start()
        let outageEnded = Date()
        XCTAssertEqual(listener.waitForExit(timeout: 40), 0, listener.stderr)
        let lines = listener.lines
        let windows = lines.compactMap { l -> (Date, Double, Double)? in
            guard let o = jsonObject(l.line), o["type"] as? String == "window" else { return nil }
            return (l.time, o["start_s"] as? Double ?? -1, o["end_s"] as? Double ?? -1)
        }
        XCTAssertEqual(windows.map(\.1), (0..<16).map(Double.init), "continuous windows, none lost or repeated")
        for (arrived, _, end) in windows {
            let lag = arrived.timeIntervalSince(start) - end
            XCTAssertLessThan(lag, 1.0, "window ending at \(end) s written \(lag) s after its audio")
        }
        let events = eventLines(lines.map(\.line))
        XCTAssertFalse(events.isEmpty)
        let duringOutage = lines.filter { $0.time > outageBegan && $0.time < outageEnded && events.contains($0.line) }
        XCTAssertFalse(duringOutage.isEmpty, "some events happened while the broker was away")
        XCTAssertTrue(sub.wait(timeout: 15) { got in Set(events).isSubset(of: Set(got.map(\.payload))) },
                      "missing: \(Set(events).subtracting(sub.received.map(\.payload)))\n\(listener.stderr)")
        var firstSeen: [String] = []
        for m in sub.received where !firstSeen.contains(m.payload) { firstSeen.append(m.payload) }
        XCTAssertEqual(firstSeen, events, "in order, nothing foreign")
        XCTAssertTrue(listener.stderr.contains("lost"), listener.stderr)
        XCTAssertTrue(listener.stderr.contains("reconnected"), listener.stderr)
    }

    /// SIGKILL: the broker publishes the retained last will, `offline`, on the availability topic.
    func testSIGKILLMakesTheBrokerPublishTheLastWill() throws {
        let model = try importedModel()
        let (broker, sub) = try brokerAndSubscriber(["eartag/killed/availability"])
        let listener = try ListenProcess(Self.binary, [
            "listen", "--stdin", "--model", model, "--mqtt", "mqtt://127.0.0.1:\(broker.port)", "--mqtt-source", "killed"])
        XCTAssertTrue(sub.wait(timeout: 10) { $0.map(\.payload) == ["online"] }, "\(sub.received) \(listener.stderr)")
        kill(listener.process.processIdentifier, SIGKILL)
        XCTAssertNotNil(listener.waitForExit(timeout: 5))
        XCTAssertTrue(sub.wait(timeout: 10) { $0.map(\.payload) == ["online", "offline"] }, "\(sub.received)")
    }

    /// A run that fails (here: a missing file) does not wait for an unreachable broker to drain the queue.
    func testFailedRunDoesNotWaitForTheBroker() throws {
        let model = try importedModel()
        let missing = dir.appendingPathComponent("missing.wav").path
        let began = Date()
        let r = try run(["listen", missing, "--model", model, "--mqtt", "mqtt://127.0.0.1:\(try freeLoopbackPort())"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains(missing), r.stderr)
        XCTAssertLessThan(Date().timeIntervalSince(began), 3, "no 5 s drain after a failure")
    }

    /// Bad MQTT settings are one-line errors naming the value, before any audio is read.
    func testBadMqttSettingsAreOneLineErrors() throws {
        let model = try importedModel()
        let speech = try Reference.path("audio/speech.wav")
        for (args, subject) in [(["--mqtt", "mqtt//broker"], "mqtt//broker"), (["--mqtt", "mqtts://b:8883"], "TLS"),
                                (["--mqtt", "mqtt://b:99999"], "mqtt://b:99999"),
                                (["--mqtt", "mqtt://b", "--mqtt-source", "a/b"], "'a/b'"),
                                (["--mqtt", "mqtt://b", "--mqtt-queue", "3"], "queue")] {
            let r = try run(["listen", "--model", model, speech] + args)
            assertOneLineError(r, naming: subject)
            XCTAssertEqual(r.stdout, "")
        }
        let config = dir.appendingPathComponent("bad.toml").path
        try "[mqtt]\nurl = \"http://broker\"\n".write(toFile: config, atomically: true, encoding: .utf8)
        let r = try run(["listen", "--model", model, speech, "--config", config])
        assertOneLineError(r, naming: "\(config):2:")
    }
}
