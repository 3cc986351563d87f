// MQTT 3.1.1 packet encoder and decoder: remaining-length edge cases, packet layouts, malformed broker replies.
import XCTest
@testable import EarTagPipeline

final class MqttPacketTests: XCTestCase {
    /// Encodes a remaining length.
    func encoded(_ v: Int) -> [UInt8] {
        var out: [UInt8] = []
        MqttCodec.appendRemainingLength(v, to: &out)
        return out
    }

    /// The boundary values of section 2.2.3's table, both ways.
    func testRemainingLengthBoundaries() {
        let table: [(Int, [UInt8])] = [
            (0, [0x00]), (127, [0x7F]), (128, [0x80, 0x01]), (16_383, [0xFF, 0x7F]), (16_384, [0x80, 0x80, 0x01]),
            (2_097_151, [0xFF, 0xFF, 0x7F]), (2_097_152, [0x80, 0x80, 0x80, 0x01]),
            (268_435_455, [0xFF, 0xFF, 0xFF, 0x7F]),
        ]
        for (value, bytes) in table {
            XCTAssertEqual(encoded(value), bytes, "\(value)")
            XCTAssertEqual(MqttCodec.decodeRemainingLength([0x30] + bytes, from: 1), .value(value, byteCount: bytes.count))
            // Every strict prefix needs more bytes (all but the last byte have the continuation bit).
            for cut in 0..<bytes.count {
                XCTAssertEqual(MqttCodec.decodeRemainingLength(Array(bytes.prefix(cut)), from: 0), .incomplete,
                               "\(value) cut at \(cut)")
            }
        }
        XCTAssertEqual(MqttCodec.decodeRemainingLength([0xFF, 0xFF, 0xFF, 0xFF, 0x7F], from: 0), .malformed)
        XCTAssertEqual(MqttCodec.decodeRemainingLength([0x80, 0x80, 0x80, 0x80], from: 0), .malformed)
    }

    /// Every value round-trips, sampled densely around each byte-count change.
    func testRemainingLengthRoundTrip() {
        for base in [0, 128, 16_384, 2_097_152] {
            for v in max(0, base - 3)...(base + 3) {
                let e = encoded(v)
                XCTAssertEqual(MqttCodec.decodeRemainingLength(e, from: 0), .value(v, byteCount: e.count))
            }
        }
    }

    /// CONNECT: protocol name and level, flags for clean session, will (QoS 1, retained) and credentials, payload order.
    func testConnectLayout() {
        let will = MqttMessage(topic: "eartag/x/availability", text: "offline", qos: 1, retain: true)
        let p = MqttCodec.connect(clientId: "id", keepAliveSeconds: 30, will: will, username: "u", password: "p")
        XCTAssertEqual(p[0], 0x10)
        let body = Array(p[2...])
        XCTAssertEqual(Int(p[1]), body.count)
        XCTAssertEqual(Array(body[0..<7]), [0, 4] + Array("MQTT".utf8) + [4])
        XCTAssertEqual(body[7], 0x80 | 0x40 | 0x20 | 0x08 | 0x04 | 0x02)
        XCTAssertEqual(Array(body[8..<10]), [0, 30])
        var expected: [UInt8] = [0, 2] + Array("id".utf8) + [0, 21] + Array("eartag/x/availability".utf8)
        expected += [0, 7] + Array("offline".utf8) + [0, 1, UInt8(ascii: "u"), 0, 1, UInt8(ascii: "p")]
        XCTAssertEqual(Array(body[10...]), expected)
        let bare = MqttCodec.connect(clientId: "a", keepAliveSeconds: 5)
        XCTAssertEqual(bare[2 + 7], 0x02, "only clean session")
    }

    /// PUBLISH: flags for QoS, retain and DUP; the packet identifier only for QoS 1; a long payload's length.
    func testPublishLayout() {
        let q1 = MqttMessage(topic: "a/b", text: "hi", qos: 1, retain: true)
        XCTAssertEqual(MqttCodec.publish(q1, packetId: 0x1234, dup: false),
                       [0x33, 9, 0, 3, 0x61, 0x2F, 0x62, 0x12, 0x34, 0x68, 0x69])
        XCTAssertEqual(MqttCodec.publish(q1, packetId: 0x1234, dup: true)[0], 0x3B)
        let q0 = MqttMessage(topic: "t", text: "x", qos: 0, retain: false)
        XCTAssertEqual(MqttCodec.publish(q0, packetId: 7, dup: true), [0x30, 4, 0, 1, 0x74, 0x78], "no id, no DUP at QoS 0")
        let big = MqttMessage(topic: "t", payload: [UInt8](repeating: 1, count: 200), qos: 0, retain: false)
        let p = MqttCodec.publish(big, packetId: 0, dup: false)
        XCTAssertEqual(Array(p[1...2]), [0xCB, 0x01], "203 = 0x4B + 1 x 128")
        XCTAssertEqual(p.count, 1 + 2 + 203)
    }

    /// The broker's packets decode, split anywhere across reads.
    func testReaderDecodesAcrossSplits() throws {
        let stream: [UInt8] = [0x20, 2, 1, 0, 0x40, 2, 0x12, 0x34, 0xD0, 0]
        for split in 0...stream.count {
            var r = MqttFrameReader()
            var got: [MqttIncoming] = []
            r.append(Array(stream[..<split]))
            while let p = try r.next() { got.append(p) }
            r.append(Array(stream[split...]))
            while let p = try r.next() { got.append(p) }
            XCTAssertEqual(got, [.connack(sessionPresent: true, returnCode: 0), .puback(0x1234), .pingresp], "split \(split)")
        }
    }

    /// Malformed or unexpected broker packets are refused with an error, never misread.
    func testMalformedBrokerRepliesAreRefused() {
        let bad: [([UInt8], String)] = [
            ([0x20, 3, 0, 0, 0], "CONNACK"),             // wrong length
            ([0x21, 2, 0, 0], "CONNACK"),                // reserved fixed-header flags
            ([0x20, 2, 2, 0], "reserved"),               // reserved acknowledge flags
            ([0x40, 1, 0], "PUBACK"),                    // short PUBACK
            ([0x40, 2, 0, 0], "identifier 0"),           // packet id 0
            ([0xD0, 1, 0], "PINGRESP"),                  // PINGRESP with a body
            ([0x30, 3, 0, 1, 0x74], "type 3"),           // PUBLISH to a client that never subscribed
            ([0x90, 3, 0, 1, 0], "type 9"),              // SUBACK
            ([0x00, 0], "type 0"),                       // reserved type
            ([0x40, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F], "remaining length"),
            ([0x40, 0x80, 0x80, 0x01], "bytes from the broker"),  // 16384-byte packet: larger than any reply
        ]
        for (bytes, reason) in bad {
            var r = MqttFrameReader()
            r.append(bytes)
            XCTAssertThrowsError(try r.next(), "\(bytes)") { e in
                XCTAssertTrue(String(describing: e).contains(reason), "\(bytes): \(e)")
            }
        }
    }

    /// CONNACK refusal codes have readable reasons.
    func testConnackReasons() {
        XCTAssertEqual(MqttCodec.connackReason(4), "bad user name or password")
        XCTAssertEqual(MqttCodec.connackReason(5), "not authorized")
        XCTAssertEqual(MqttCodec.connackReason(9), "return code 9")
    }

    /// URLs: defaults, credentials (percent-decoded), IPv6, and one-line errors naming the URL.
    func testURLParsing() throws {
        let a = try MqttSettings.parseURL("mqtt://broker.local")
        XCTAssertEqual(a.host, "broker.local")
        XCTAssertEqual(a.port, 1883)
        XCTAssertNil(a.user)
        let b = try MqttSettings.parseURL("mqtt://ha%40home:s%3Acret@10.0.0.2:1884/")
        XCTAssertEqual(b.host, "10.0.0.2")
        XCTAssertEqual(b.port, 1884)
        XCTAssertEqual(b.user, "ha@home")
        XCTAssertEqual(b.password, "s:cret")
        let c = try MqttSettings.parseURL("mqtt://[::1]:1999")
        XCTAssertEqual(c.host, "::1")
        XCTAssertEqual(c.port, 1999)
        for url in ["broker:1883", "http://broker", "mqtts://broker", "mqtt://", "mqtt://host:0", "mqtt://host:65536",
                    "mqtt://host:x", "mqtt://host/topic", "mqtt://[::1", "mqtt://ho st", "mqtt://@host"] {
            XCTAssertThrowsError(try MqttSettings.parseURL(url), url) { e in
                let message = String(describing: e)
                XCTAssertTrue(message.contains("--mqtt '\(url)'"), message)
                XCTAssertFalse(message.contains("\n"))
            }
        }
    }

    /// Topic names come from the settings; names that would break a topic level are refused.
    func testTopicsAndNames() throws {
        let s = try MqttSettings(url: "mqtt://h", source: "kitchen")
        XCTAssertEqual(s.eventsTopic, "eartag/kitchen/events")
        XCTAssertEqual(s.availabilityTopic, "eartag/kitchen/availability")
        XCTAssertEqual(s.clientId, "eartag-kitchen")
        for bad in ["a/b", "a+", "#", ""] {
            XCTAssertThrowsError(try MqttSettings(url: "mqtt://h", source: bad), bad)
        }
        XCTAssertThrowsError(try MqttSettings(url: "mqtt://h", queueCapacity: 10))
        XCTAssertFalse(MqttSettings.hostName().contains("/"))
    }
}
