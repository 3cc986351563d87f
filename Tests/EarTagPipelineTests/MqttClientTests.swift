// The MQTT client against a scripted broker on loopback: CONNECT and will, DUP redelivery after a reconnect, the
// bounded queue (oldest dropped and counted), malformed replies refused, drain and clean disconnect at close.
import XCTest
import EarTagTestSupport
@testable import EarTagPipeline

/// A one-port TCP server the test scripts packet by packet (its decoder is independent of the client's).
final class ScriptedBroker {
    let fd: Int32
    let port: Int

    /// Listens on 127.0.0.1:`port` (a free one when nil).
    init(port: Int? = nil) throws {
        self.port = try port ?? freeLoopbackPort()
        guard let s = listenLoopback(port: self.port) else { throw XCTSkip("cannot listen on \(self.port)") }
        fd = s
    }

    deinit { close(fd) }

    /// The next client connection (nil after `timeout` seconds).
    func accept(timeout: Double = 5) -> Connection? {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, Int32(timeout * 1000)) == 1 else { return nil }
        let c = Foundation.accept(fd, nil, nil)
        return c >= 0 ? Connection(fd: c) : nil
    }

    /// One accepted connection.
    final class Connection {
        let fd: Int32
        private var buffer: [UInt8] = []

        init(fd: Int32) { self.fd = fd }
        deinit { close(fd) }

        /// The next packet as (first byte, body), nil on timeout or EOF.
        func read(timeout: Double = 5) -> (first: UInt8, body: [UInt8])? {
            let deadline = Date().addingTimeInterval(timeout)
            while true {
                if buffer.count >= 2 {
                    var length = 0, multiplier = 1, i = 1
                    while i < buffer.count {
                        length += Int(buffer[i] & 0x7F) * multiplier
                        multiplier *= 128
                        if buffer[i] & 0x80 == 0 { break }
                        i += 1
                    }
                    if i < buffer.count, buffer.count >= i + 1 + length {
                        let packet = (buffer[0], Array(buffer[(i + 1)..<(i + 1 + length)]))
                        buffer.removeFirst(i + 1 + length)
                        return packet
                    }
                }
                var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                let left = deadline.timeIntervalSinceNow
                guard left > 0, poll(&p, 1, Int32(left * 1000)) == 1 else { return nil }
                var chunk = [UInt8](repeating: 0, count: 4096)
                let n = recv(fd, &chunk, chunk.count, 0)
                guard n > 0 else { return nil }
                buffer += chunk[0..<n]
            }
        }

        /// Reads the next PUBLISH: topic, payload, QoS, DUP, retain, packet id.
        func readPublish(timeout: Double = 5) -> (topic: String, payload: String, qos: Int, dup: Bool, retain: Bool,
                                                 id: UInt16)? {
            guard let (first, body) = read(timeout: timeout), first >> 4 == 3 else { return nil }
            let qos = Int(first >> 1) & 3
            let topicLength = Int(body[0]) << 8 | Int(body[1])
            let topic = String(decoding: body[2..<(2 + topicLength)], as: UTF8.self)
            var at = 2 + topicLength
            var id: UInt16 = 0
            if qos > 0 { id = UInt16(body[at]) << 8 | UInt16(body[at + 1]); at += 2 }
            return (topic, String(decoding: body[at...], as: UTF8.self), qos, first & 0x08 != 0, first & 1 != 0, id)
        }

        /// Sends raw bytes.
        func send(_ bytes: [UInt8]) { _ = Foundation.send(fd, bytes, bytes.count, Int32(MSG_NOSIGNAL)) }

        /// Acknowledges a QoS 1 PUBLISH.
        func puback(_ id: UInt16) { send([0x40, 2, UInt8(id >> 8), UInt8(id & 0xFF)]) }

        /// Reads CONNECT and accepts it; returns the CONNECT body.
        func acceptConnect() -> [UInt8]? {
            guard let (first, body) = read(), first == 0x10 else { return nil }
            send([0x20, 2, 0, 0])
            return body
        }
    }
}

/// Thread-safe log capture.
final class LogLines: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []
    func add(_ s: String) { lock.lock(); lines.append(s); lock.unlock() }
    var all: [String] { lock.lock(); defer { lock.unlock() }; return lines.map { $0 } }  // a copy: no buffer shared across threads
}

final class MqttClientTests: XCTestCase {
    /// A started client for a broker on `port` and its captured log; closed at the end of the test.
    func startedClient(_ port: Int, keepAlive: Int? = nil) throws -> (MqttClient, LogLines) {
        let log = LogLines()
        var s = try settings(port)
        if let keepAlive { s.keepAliveSeconds = keepAlive }
        let client = MqttClient(settings: s) { log.add($1) }
        client.start()
        addTeardownBlock { client.close() }
        return (client, log)
    }

    /// Settings for a broker on `port` with fast reconnects.
    func settings(_ port: Int, queue: Int = 1000) throws -> MqttSettings {
        var s = try MqttSettings(url: "mqtt://user:pw@127.0.0.1:\(port)", source: "test", queueCapacity: queue)
        s.initialBackoff = 0.05
        s.maxBackoff = 0.2
        s.drainSeconds = 2
        return s
    }

    /// CONNECT carries the will; an unacknowledged QoS 1 PUBLISH is sent again with DUP and the same identifier
    /// after the connection drops, and the queue depth returns to 0 once everything is acknowledged.
    func testWillAndDuplicateRedeliveryAfterReconnect() throws {
        let broker = try ScriptedBroker()
        let (client, log) = try startedClient(broker.port)
        var first: ScriptedBroker.Connection? = try XCTUnwrap(broker.accept())
        let connect = try XCTUnwrap(first?.acceptConnect())
        XCTAssertEqual(connect[7], 0x80 | 0x40 | 0x20 | 0x08 | 0x04 | 0x02, "user, password, retained QoS 1 will, clean")
        XCTAssertTrue(String(decoding: connect, as: UTF8.self).contains("eartag/test/availability"))
        XCTAssertTrue(String(decoding: connect, as: UTF8.self).hasSuffix("offline\0\u{4}user\0\u{2}pw"))
        let birth = try XCTUnwrap(first?.readPublish())
        XCTAssertEqual(birth.topic, "eartag/test/availability")
        XCTAssertEqual(birth.payload, "online")
        XCTAssertTrue(birth.retain)
        client.publish(MqttMessage(topic: "eartag/test/events", text: "e1", qos: 1, retain: false))
        let e1 = try XCTUnwrap(first?.readPublish())
        XCTAssertEqual(e1.payload, "e1")
        XCTAssertFalse(e1.dup)
        first = nil  // drop the connection without acknowledging
        let second = try XCTUnwrap(broker.accept())
        XCTAssertNotNil(second.acceptConnect())
        let again = (0..<3).compactMap { _ in second.readPublish() }
        XCTAssertEqual(again.count, 3)
        XCTAssertEqual(again[0].id, birth.id)
        XCTAssertTrue(again[0].dup)
        XCTAssertEqual(again[1].payload, "e1")
        XCTAssertEqual(again[1].id, e1.id)
        XCTAssertTrue(again[1].dup)
        XCTAssertEqual(again[2].payload, "online")
        XCTAssertFalse(again[2].dup)
        for p in again { second.puback(p.id) }
        let deadline = Date().addingTimeInterval(5)
        while client.stats.queueDepth.load(ordering: .relaxed) != 0 && Date() < deadline { usleep(10_000) }
        XCTAssertEqual(client.stats.queueDepth.load(ordering: .relaxed), 0)
        XCTAssertEqual(client.stats.reconnects.load(ordering: .relaxed), 1)
        XCTAssertTrue(log.all.contains { $0.contains("connection to 127.0.0.1:\(broker.port) lost") }, "\(log.all)")
    }

    /// With the broker away, the queue keeps the newest `capacity` messages and counts the dropped ones; once the
    /// broker comes, they arrive in order. Publishing never waits for the network.
    func testBoundedQueueDropsOldestWhileBrokerIsAway() throws {
        let port = try freeLoopbackPort()
        let client = MqttClient(settings: try settings(port, queue: 64)) { _, _ in }
        client.start()
        defer { client.close() }
        let began = Date()
        for i in 0..<100 { client.publish(MqttMessage(topic: "t", text: "m\(i)", qos: 1, retain: false)) }
        XCTAssertLessThan(Date().timeIntervalSince(began), 0.5, "publish must not wait for the broker")
        XCTAssertEqual(client.stats.dropped.load(ordering: .relaxed), 36)
        XCTAssertEqual(client.stats.queueDepth.load(ordering: .relaxed), 64)
        let broker = try ScriptedBroker(port: port)
        let c = try XCTUnwrap(broker.accept())
        XCTAssertNotNil(c.acceptConnect())
        var payloads: [String] = []
        while payloads.count < 65, let p = c.readPublish() {
            payloads.append(p.payload)
            c.puback(p.id)
        }
        XCTAssertEqual(payloads, ["online"] + (36..<100).map { "m\($0)" })
    }

    /// A malformed CONNACK is refused: the client logs it, drops the connection and reconnects.
    func testMalformedConnackIsRefused() throws {
        let broker = try ScriptedBroker()
        let (client, log) = try startedClient(broker.port)
        let bad = try XCTUnwrap(broker.accept())
        XCTAssertNotNil(bad.read())
        bad.send([0x20, 3, 0, 0, 0])
        let good = try XCTUnwrap(broker.accept(), "no reconnect after a malformed CONNACK")
        XCTAssertNotNil(good.acceptConnect())
        XCTAssertNotNil(good.readPublish())
        XCTAssertTrue(log.all.contains { $0.contains("malformed CONNACK") }, "\(log.all)")
        XCTAssertEqual(client.stats.reconnects.load(ordering: .relaxed), 0, "the refused attempt was no connection")
    }

    /// A refused CONNACK (bad credentials) is reported with its reason.
    func testRefusedConnectionIsReported() throws {
        let broker = try ScriptedBroker()
        let (_, log) = try startedClient(broker.port)
        let c = try XCTUnwrap(broker.accept())
        XCTAssertNotNil(c.read())
        c.send([0x20, 2, 0, 4])
        XCTAssertNotNil(broker.accept(), "retried")
        XCTAssertTrue(log.all.contains { $0.contains("bad user name or password") }, "\(log.all)")
    }

    /// close() drains what is queued, then publishes `offline` (retained) and sends DISCONNECT.
    func testCloseDrainsAndDisconnects() throws {
        let broker = try ScriptedBroker()
        let client = MqttClient(settings: try settings(broker.port)) { _, _ in }
        client.start()
        let c = try XCTUnwrap(broker.accept())
        XCTAssertNotNil(c.acceptConnect())
        let birth = try XCTUnwrap(c.readPublish())
        c.puback(birth.id)
        for i in 0..<5 { client.publish(MqttMessage(topic: "t", text: "m\(i)", qos: 1, retain: false)) }
        let closer = Thread { client.close() }
        closer.start()
        var seen: [String] = []
        while let (first, body) = c.read() {
            if first >> 4 == 3 {
                let topicLength = Int(body[0]) << 8 | Int(body[1])
                let qos = Int(first >> 1) & 3
                let at = 2 + topicLength
                if qos == 1 { c.puback(UInt16(body[at]) << 8 | UInt16(body[at + 1])) }
                seen.append(String(decoding: body[(qos == 1 ? at + 2 : at)...], as: UTF8.self))
                if qos == 0 { XCTAssertEqual(first & 1, 1, "offline is retained") }
            } else {
                XCTAssertEqual(first, 0xE0, "DISCONNECT")
                seen.append("DISCONNECT")
            }
        }
        XCTAssertEqual(seen, ["m0", "m1", "m2", "m3", "m4", "offline", "DISCONNECT"])
        XCTAssertEqual(client.stats.queueDepth.load(ordering: .relaxed), 0)
    }

    /// With the broker away, close() waits the drain time for it; close(drain: false) returns at once, and both
    /// report the messages that were never delivered.
    func testCloseWithoutBrokerReportsUndelivered() throws {
        let port = try freeLoopbackPort()
        for drain in [true, false] {
            let client = MqttClient(settings: try settings(port)) { _, _ in }
            client.start()
            for i in 0..<3 { client.publish(MqttMessage(topic: "t", text: "m\(i)", qos: 1, retain: false)) }
            let began = Date()
            XCTAssertEqual(client.close(drain: drain), 3)
            let took = Date().timeIntervalSince(began)
            if drain { XCTAssertGreaterThan(took, 1.5, "waited for the broker") } else { XCTAssertLessThan(took, 1) }
        }
    }

    /// Keep-alive: an idle connection sends PINGREQ; no PINGRESP within the keep-alive drops it and reconnects.
    func testKeepAlivePingAndTimeout() throws {
        let broker = try ScriptedBroker()
        _ = try startedClient(broker.port, keepAlive: 1)
        let c = try XCTUnwrap(broker.accept())
        XCTAssertNotNil(c.acceptConnect())
        let birth = try XCTUnwrap(c.readPublish())
        c.puback(birth.id)
        let ping = try XCTUnwrap(c.read(timeout: 3))
        XCTAssertEqual(ping.first, 0xC0, "PINGREQ")
        XCTAssertNotNil(broker.accept(timeout: 4), "reconnects after the missing PINGRESP")
    }
}
