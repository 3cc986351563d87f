// MQTT 3.1.1 control packets: the encoder for what EarTag sends and a strict decoder for what a broker may answer.
// ref: MQTT Version 3.1.1, OASIS Standard (29 October 2014), sections 2 (format) and 3 (control packets).
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A protocol violation by the broker (or a packet this client must not receive); the connection is dropped.
public struct MqttProtocolError: Error, CustomStringConvertible, Equatable {
    /// What was wrong, one line.
    public var description: String

    /// An error with this one-line message.
    public init(_ description: String) { self.description = description }
}

/// A packet a broker may send to a client that publishes and never subscribes.
public enum MqttIncoming: Equatable, Sendable {
    /// CONNACK: session present flag and return code (0 accepted; 1-5 refused, section 3.2.2.3).
    case connack(sessionPresent: Bool, returnCode: UInt8)
    /// PUBACK for the QoS 1 PUBLISH with this packet identifier.
    case puback(UInt16)
    /// PINGRESP.
    case pingresp
}

/// Encoders of the packets EarTag sends (CONNECT, PUBLISH, PINGREQ, DISCONNECT).
public enum MqttCodec {
    /// Largest value of the remaining-length field: four 7-bit groups (section 2.2.3).
    public static let maxRemainingLength = 268_435_455

    /// Appends the variable-length encoding of `value` (1-4 bytes, low 7 bits first, bit 7 = more follow).
    /// Precondition: 0 <= value <= `maxRemainingLength` (callers check sizes first).
    public static func appendRemainingLength(_ value: Int, to out: inout [UInt8]) {
        precondition(value >= 0 && value <= maxRemainingLength, "MQTT remaining length out of range")
        var x = value
        repeat {
            var byte = UInt8(x % 128)
            x /= 128
            if x > 0 { byte |= 0x80 }
            out.append(byte)
        } while x > 0
    }

    /// Outcome of decoding a remaining-length field.
    public enum LengthResult: Equatable {
        /// More bytes are needed.
        case incomplete
        /// The value and how many bytes encoded it.
        case value(Int, byteCount: Int)
        /// A fifth length byte (section 2.2.3 allows four).
        case malformed
    }

    /// Decodes a remaining-length field starting at `start` of `bytes`.
    public static func decodeRemainingLength(_ bytes: [UInt8], from start: Int) -> LengthResult {
        var value = 0
        var multiplier = 1
        for i in 0..<4 {
            guard start + i < bytes.count else { return .incomplete }
            let b = bytes[start + i]
            value += Int(b & 0x7F) * multiplier
            if b & 0x80 == 0 { return .value(value, byteCount: i + 1) }
            multiplier *= 128
        }
        return .malformed
    }

    /// Appends a UTF-8 string with its 2-byte big-endian length prefix (section 1.5.3).
    static func appendString(_ bytes: [UInt8], to out: inout [UInt8]) {
        appendUInt16(UInt16(bytes.count), to: &out)
        out.append(contentsOf: bytes)
    }

    /// Appends a big-endian 16-bit integer.
    static func appendUInt16(_ v: UInt16, to out: inout [UInt8]) {
        out.append(UInt8(v >> 8))
        out.append(UInt8(v & 0xFF))
    }

    /// A fixed header (type and flags) plus body.
    static func packet(_ firstByte: UInt8, body: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [firstByte]
        out.reserveCapacity(body.count + 5)
        appendRemainingLength(body.count, to: &out)
        out.append(contentsOf: body)
        return out
    }

    /// CONNECT (section 3.1) with protocol level 4, an optional will and optional credentials.
    /// Strings are at most 65535 bytes (checked by `MqttSettings`).
    public static func connect(clientId: String, keepAliveSeconds: UInt16, cleanSession: Bool = true,
                               will: MqttMessage? = nil, username: String? = nil, password: String? = nil) -> [UInt8] {
        var body: [UInt8] = []
        appendString(Array("MQTT".utf8), to: &body)
        body.append(4)  // protocol level 3.1.1
        var flags: UInt8 = cleanSession ? 0x02 : 0
        if let will {
            flags |= 0x04 | (will.qos << 3) | (will.retain ? 0x20 : 0)
        }
        if password != nil { flags |= 0x40 }
        if username != nil { flags |= 0x80 }
        body.append(flags)
        appendUInt16(keepAliveSeconds, to: &body)
        appendString(Array(clientId.utf8), to: &body)
        if let will {
            appendString(Array(will.topic.utf8), to: &body)
            appendString(will.payload, to: &body)
        }
        if let username { appendString(Array(username.utf8), to: &body) }
        if let password { appendString(Array(password.utf8), to: &body) }
        return packet(0x10, body: body)
    }

    /// PUBLISH (section 3.3); `packetId` is required for QoS 1 and ignored for QoS 0.
    public static func publish(_ m: MqttMessage, packetId: UInt16, dup: Bool) -> [UInt8] {
        var body: [UInt8] = []
        body.reserveCapacity(m.topic.utf8.count + m.payload.count + 4)
        appendString(Array(m.topic.utf8), to: &body)
        if m.qos > 0 { appendUInt16(packetId, to: &body) }
        body.append(contentsOf: m.payload)
        let first: UInt8 = 0x30 | (dup && m.qos > 0 ? 0x08 : 0) | (m.qos << 1) | (m.retain ? 0x01 : 0)
        return packet(first, body: body)
    }

    /// PINGREQ (section 3.12).
    public static let pingreq: [UInt8] = [0xC0, 0x00]
    /// DISCONNECT (section 3.14).
    public static let disconnect: [UInt8] = [0xE0, 0x00]

    /// Why a CONNACK return code refused the connection (section 3.2.2.3).
    public static func connackReason(_ code: UInt8) -> String {
        switch code {
        case 1: return "unacceptable protocol version"
        case 2: return "client identifier rejected"
        case 3: return "server unavailable"
        case 4: return "bad user name or password"
        case 5: return "not authorized"
        default: return "return code \(code)"
        }
    }
}

/// Splits the broker's byte stream into packets, refusing anything malformed or unexpected.
public struct MqttFrameReader {
    /// Bytes received and not yet decoded.
    private var buffer: [UInt8] = []
    /// Largest packet accepted from the broker (it only ever sends 2- and 4-byte packets to this client).
    public static let maxPacket = 1024

    /// An empty reader.
    public init() { buffer.reserveCapacity(256) }

    /// Adds received bytes.
    public mutating func append(_ bytes: UnsafeRawBufferPointer) { buffer.append(contentsOf: bytes) }

    /// Adds received bytes.
    public mutating func append(_ bytes: [UInt8]) { buffer.append(contentsOf: bytes) }

    /// The next complete packet, nil when more bytes are needed; throws on a malformed or unexpected packet.
    public mutating func next() throws -> MqttIncoming? {
        guard let first = buffer.first else { return nil }
        let length: Int, lengthBytes: Int
        switch MqttCodec.decodeRemainingLength(buffer, from: 1) {
        case .incomplete: return nil
        case .malformed: throw MqttProtocolError("malformed remaining length (more than 4 bytes)")
        case let .value(v, n): (length, lengthBytes) = (v, n)
        }
        guard length <= Self.maxPacket else {
            throw MqttProtocolError("packet of \(length) bytes from the broker (at most \(Self.maxPacket) expected)")
        }
        let total = 1 + lengthBytes + length
        guard buffer.count >= total else { return nil }
        let body = Array(buffer[(1 + lengthBytes)..<total])
        buffer.removeFirst(total)
        let type = first >> 4, flags = first & 0x0F
        switch type {
        case 2:
            guard flags == 0, body.count == 2 else { throw MqttProtocolError("malformed CONNACK") }
            guard body[0] & 0xFE == 0 else { throw MqttProtocolError("CONNACK with reserved flag bits set") }
            return .connack(sessionPresent: body[0] == 1, returnCode: body[1])
        case 4:
            guard flags == 0, body.count == 2 else { throw MqttProtocolError("malformed PUBACK") }
            let id = UInt16(body[0]) << 8 | UInt16(body[1])
            guard id != 0 else { throw MqttProtocolError("PUBACK for packet identifier 0") }
            return .puback(id)
        case 13:
            guard flags == 0, body.isEmpty else { throw MqttProtocolError("malformed PINGRESP") }
            return .pingresp
        default:
            throw MqttProtocolError("unexpected packet type \(type) from the broker")
        }
    }
}

/// One application message to publish.
public struct MqttMessage: Equatable, Sendable {
    /// Topic name (no wildcards).
    public var topic: String
    /// Payload bytes.
    public var payload: [UInt8]
    /// Quality of service: 0 or 1.
    public var qos: UInt8
    /// Retained by the broker for future subscribers.
    public var retain: Bool

    /// A message; QoS above 1 is not supported (0 or 1).
    public init(topic: String, payload: [UInt8], qos: UInt8, retain: Bool) {
        precondition(qos <= 1, "QoS 0 and 1 only")
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
    }

    /// A message with a UTF-8 text payload.
    public init(topic: String, text: String, qos: UInt8, retain: Bool) {
        self.init(topic: topic, payload: Array(text.utf8), qos: qos, retain: retain)
    }
}
