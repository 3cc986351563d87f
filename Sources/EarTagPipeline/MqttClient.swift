// The MQTT 3.1.1 publisher thread: POSIX TCP socket, CONNECT with a last will, keep-alive, QoS 0/1 with PUBACK
// tracking and DUP redelivery after a reconnect, exponential backoff and a bounded queue while the broker is away.
// ref: MQTT Version 3.1.1, OASIS Standard: 3.1 (CONNECT, will), 3.3 (PUBLISH, DUP), 4.4 (redelivery on reconnect).
import FoundationEssentials
import Dispatch
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import EarTagPlatform
import Atomics

/// Counters of the MQTT publisher (atomics: written by its thread and by producers, read by the metrics).
public final class MqttStats: Sendable {
    /// Messages waiting to be sent or acknowledged.
    public let queueDepth = ManagedAtomic<Int>(0)
    /// Messages dropped because the queue was full (the oldest unsent first).
    public let dropped = ManagedAtomic<Int>(0)
    /// Successful connections after the first.
    public let reconnects = ManagedAtomic<Int>(0)
    /// Messages handed to the broker (QoS 0 written, QoS 1 acknowledged).
    public let delivered = ManagedAtomic<Int>(0)
    /// 1 while connected, else 0.
    public let connected = ManagedAtomic<Int>(0)

    /// Zeroed counters.
    public init() {}
}

/// Publishes messages to one broker from its own thread; `publish` only enqueues (never blocks on the network).
public final class MqttClient: @unchecked Sendable {
    /// Connection settings and topics.
    public let settings: MqttSettings
    /// Counters for the metrics.
    public let stats = MqttStats()
    /// The retained message published at every connection (availability `online`).
    private let birth: MqttMessage
    /// The last will (availability `offline`, retained): published by the broker if EarTag vanishes.
    private let will: MqttMessage
    /// Diagnostics sink (stderr or the journal).
    private let log: (LogLevel, String) -> Void
    /// Guards `pending` (held only for O(1) queue operations, never during I/O).
    private let lock = Lock()
    /// Unsent messages, oldest first: a ring of `settings.queueCapacity` slots.
    private var pending: [MqttMessage?]
    private var pendingHead = 0
    private var pendingCount = 0
    /// Set once `close` was called.
    private let stopping = ManagedAtomic<Bool>(false)
    /// `close(drain: false)`: no time for the queue to drain.
    private let skipDrain = ManagedAtomic<Bool>(false)
    /// Wakes the thread when a message is queued or the client is closed: a non-blocking pipe (read end polled).
    private let wakeFD: Int32
    /// The pipe's write end.
    private let wakeWriteFD: Int32
    /// Ends when the thread has finished.
    private let finished = DispatchSemaphore(value: 0)
    private var started = false
    /// Monotonic deadline for draining the queue after `close`.
    private var drainDeadline = 0.0

    // Thread-owned connection state.
    /// QoS 1 messages written and not yet acknowledged, in order.
    private var inflight: [(id: UInt16, message: MqttMessage)] = []
    /// Last packet identifier used.
    private var lastId: UInt16 = 0
    /// Retained topics and their last payload handed to the broker: republished after a reconnect.
    private var retained: [String: MqttMessage] = [:]
    /// Order in which retained topics first appeared.
    private var retainedOrder: [String] = []
    /// Connected at least once.
    private var everConnected = false
    /// Dropped count at the start of the current outage (for one summary line per outage).
    private var droppedAtOutage = 0

    /// Messages written and acknowledged at most in flight at once.
    static let maxInflight = 32

    /// A client for `settings` (no connection yet: `start` begins connecting on the client's thread).
    public init(settings: MqttSettings, log: @escaping (LogLevel, String) -> Void = { Log.write($1, level: $0) }) {
        self.settings = settings
        self.log = log
        pending = [MqttMessage?](repeating: nil, count: settings.queueCapacity)
        birth = MqttMessage(topic: settings.availabilityTopic, text: "online", qos: 1, retain: true)
        will = MqttMessage(topic: settings.availabilityTopic, text: "offline", qos: 1, retain: true)
        var fds: [Int32] = [-1, -1]
        if pipe(&fds) == 0 {
            for f in fds {
                _ = fcntl(f, F_SETFL, fcntl(f, F_GETFL) | O_NONBLOCK)
                _ = fcntl(f, F_SETFD, FD_CLOEXEC)
            }
        }
        (wakeFD, wakeWriteFD) = (fds[0], fds[1])
    }

    deinit {
        if wakeFD >= 0 { Glibc.close(wakeFD) }
        if wakeWriteFD >= 0 { Glibc.close(wakeWriteFD) }
    }

    /// Starts the client thread.
    public func start() {
        started = true
        DetachedThread.start(name: "eartag-mqtt") { [self] in
            run()
            finished.signal()
        }
    }

    /// Queues a message; when the queue is full the oldest unsent message is dropped and counted. O(1), no I/O.
    public func publish(_ message: MqttMessage) {
        lock.lock()
        let capacity = pending.count
        if pendingCount == capacity {
            pending[pendingHead] = nil
            pendingHead = (pendingHead + 1) % capacity
            pendingCount -= 1
            stats.dropped.wrappingIncrement(ordering: .relaxed)
            stats.queueDepth.wrappingDecrement(ordering: .relaxed)
        }
        pending[(pendingHead + pendingCount) % capacity] = message
        pendingCount += 1
        lock.unlock()
        stats.queueDepth.wrappingIncrement(ordering: .relaxed)
        wake()
    }

    /// Stops the thread: waits up to `settings.drainSeconds` (0 without `drain`) for queued messages to be
    /// delivered, publishes `offline` and disconnects cleanly. Returns the number of messages never delivered.
    @discardableResult
    public func close(drain: Bool = true) -> Int {
        skipDrain.store(!drain, ordering: .relaxed)
        guard started, !stopping.exchange(true, ordering: .acquiringAndReleasing) else { return 0 }
        wake()
        finished.wait()
        started = false  // the thread's closure, which held self, was released when the thread ended
        return stats.queueDepth.load(ordering: .relaxed)
    }

    /// Writes a byte to the wake pipe so a waiting `poll` returns (a full pipe already means "wake up").
    private func wake() {
        var one: UInt8 = 1
        _ = Glibc.write(wakeWriteFD, &one, 1)
    }

    /// Empties the wake pipe.
    private func drainWake() {
        var bytes = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        while withUnsafeMutableBytes(of: &bytes, { Glibc.read(wakeFD, $0.baseAddress, $0.count) }) > 0 {}
    }

    /// Takes the oldest unsent message, if any.
    private func takePending() -> MqttMessage? {
        lock.lock()
        defer { lock.unlock() }
        guard pendingCount > 0 else { return nil }
        let m = pending[pendingHead]
        pending[pendingHead] = nil
        pendingHead = (pendingHead + 1) % pending.count
        pendingCount -= 1
        return m
    }

    /// True when nothing is queued or waiting for an acknowledgement (client thread only).
    private var isDrained: Bool {
        lock.lock()
        defer { lock.unlock() }
        return pendingCount == 0 && inflight.isEmpty
    }

    /// The client thread: connect, serve, reconnect with backoff; after `close`, drain and disconnect.
    private func run() {
        var backoff = settings.initialBackoff
        var failureLogged = false
        while true {
            if stopping.load(ordering: .acquiring) {
                if drainDeadline == 0 { startDrain() }
                if isDrained || monotonicSeconds() >= drainDeadline { break }
            }
            do {
                let connection = try MqttConnection(settings: settings, will: will, wakeFD: wakeFD,
                                                    deadline: stopping.load(ordering: .relaxed) ? drainDeadline : nil)
                backoff = settings.initialBackoff
                failureLogged = false
                onConnected()
                let reason = serve(connection)
                stats.connected.store(0, ordering: .relaxed)
                if let reason {
                    log(.warning, "mqtt: connection to \(settings.endpoint) lost (\(reason)); queueing up to "
                        + "\(settings.queueCapacity) messages and reconnecting")
                    droppedAtOutage = stats.dropped.load(ordering: .relaxed)
                } else {
                    return  // closed cleanly after draining
                }
            } catch {
                if !failureLogged {
                    log(.warning, "mqtt: cannot connect to \(settings.endpoint) (\(error)); retrying with backoff")
                    failureLogged = true
                }
            }
            // Backoff, interruptible by close(): the wait ends early when the wake pipe fires.
            let until = monotonicSeconds() + backoff
            backoff = min(backoff * 2, settings.maxBackoff)
            while monotonicSeconds() < until {
                if stopping.load(ordering: .acquiring) {
                    if drainDeadline == 0 { startDrain() }
                    if monotonicSeconds() >= drainDeadline || isDrained { break }
                }
                var p = pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)
                let ms = Int32(max(1, min(100, (until - monotonicSeconds()) * 1000)))
                if poll(&p, 1, ms) > 0 { drainWake() }
            }
        }
        let lost = stats.queueDepth.load(ordering: .relaxed)
        if lost > 0 { log(.warning, "mqtt: \(lost) messages were never delivered (broker away at exit)") }
    }

    /// Sets the drain deadline when `close` was first noticed.
    private func startDrain() {
        drainDeadline = monotonicSeconds() + (skipDrain.load(ordering: .relaxed) ? 0 : settings.drainSeconds)
    }

    /// Bookkeeping after a CONNACK: counters and the outage summary.
    private func onConnected() {
        stats.connected.store(1, ordering: .relaxed)
        if everConnected {
            stats.reconnects.wrappingIncrement(ordering: .relaxed)
            let lost = stats.dropped.load(ordering: .relaxed) - droppedAtOutage
            log(.info, "mqtt: reconnected to \(settings.endpoint)"
                + (lost > 0 ? "; \(lost) messages were dropped while it was away (queue full)" : ""))
        } else {
            log(.info, "mqtt: connected to \(settings.endpoint) as \(settings.clientId)")
        }
        everConnected = true
    }

    /// Next free packet identifier (1...65535, skipping those in flight).
    private func nextPacketId() -> UInt16 {
        repeat {
            lastId = lastId == UInt16.max ? 1 : lastId + 1
        } while inflight.contains { $0.id == lastId }
        return lastId
    }

    /// Writes one message (QoS 1 ones are tracked until their PUBACK).
    private func transmit(_ m: MqttMessage, on c: MqttConnection, counted: Bool) throws {
        if m.retain && m.topic != settings.availabilityTopic {
            if retained.updateValue(m, forKey: m.topic) == nil { retainedOrder.append(m.topic) }
        }
        if m.qos == 0 {
            try c.send(MqttCodec.publish(m, packetId: 0, dup: false))
            if counted {
                stats.delivered.wrappingIncrement(ordering: .relaxed)
                stats.queueDepth.wrappingDecrement(ordering: .relaxed)
            }
            return
        }
        let id = nextPacketId()
        inflight.append((id, m))
        if !counted { stats.queueDepth.wrappingIncrement(ordering: .relaxed) }
        try c.send(MqttCodec.publish(m, packetId: id, dup: false))
    }

    /// Serves one connection until it fails (returns why) or the client is closed and drained (returns nil).
    private func serve(_ c: MqttConnection) -> String? {
        do {
            // Unacknowledged QoS 1 messages first, with DUP set and their identifiers (section 4.4), then the
            // birth message and the retained state (a broker restarted without persistence has lost it).
            for (id, m) in inflight { try c.send(MqttCodec.publish(m, packetId: id, dup: true)) }
            try transmit(birth, on: c, counted: false)
            for topic in retainedOrder { if let m = retained[topic] { try c.send(MqttCodec.publish(
                MqttMessage(topic: m.topic, payload: m.payload, qos: 0, retain: true), packetId: 0, dup: false)) } }
            let keepAlive = Double(settings.keepAliveSeconds)
            var pingSentAt: Double?
            while true {
                while inflight.count < Self.maxInflight, let m = takePending() { try transmit(m, on: c, counted: true) }
                if stopping.load(ordering: .acquiring) {
                    if drainDeadline == 0 { startDrain() }
                    if isDrained || monotonicSeconds() >= drainDeadline {
                        try? c.send(MqttCodec.publish(MqttMessage(topic: will.topic, payload: will.payload, qos: 0, retain: true),
                                                              packetId: 0, dup: false))
                        try? c.send(MqttCodec.disconnect)
                        return nil
                    }
                }
                let now = monotonicSeconds()
                if let sent = pingSentAt, now - sent > keepAlive { return "no PINGRESP within \(settings.keepAliveSeconds) s" }
                if pingSentAt == nil && now - c.lastSend >= keepAlive {
                    try c.send(MqttCodec.pingreq)
                    pingSentAt = now
                }
                let ready = try c.wait(milliseconds: 100)
                if ready.wake { drainWake() }
                if ready.socket {
                    for packet in try c.receive() {
                        switch packet {
                        case .puback(let id):
                            let index = inflight.firstIndex { $0.id == id }
                            if let index { inflight.remove(at: index) }
                            if index != nil {
                                stats.delivered.wrappingIncrement(ordering: .relaxed)
                                stats.queueDepth.wrappingDecrement(ordering: .relaxed)
                            }
                        case .pingresp: pingSentAt = nil
                        case .connack: throw MqttProtocolError("second CONNACK")
                        }
                    }
                }
            }
        } catch {
            return String(describing: error)
        }
    }
}

/// One TCP connection to the broker after a successful CONNECT/CONNACK.
final class MqttConnection {
    /// The socket.
    private let fd: Int32
    /// The client's wake pipe, polled beside the socket.
    private let wakeFD: Int32
    /// Decoder of the broker's packets.
    private var reader = MqttFrameReader()
    /// Monotonic time of the last write (for keep-alive).
    private(set) var lastSend = 0.0

    /// Connects (5 s timeout per address), sends CONNECT and waits up to 10 s for an accepting CONNACK.
    init(settings: MqttSettings, will: MqttMessage, wakeFD: Int32, deadline: Double?) throws {
        self.wakeFD = wakeFD
        fd = try Self.connectTCP(host: settings.host, port: settings.port, timeout: 5)
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        do {
            try send(MqttCodec.connect(clientId: settings.clientId, keepAliveSeconds: UInt16(settings.keepAliveSeconds),
                                       will: will, username: settings.username, password: settings.password))
            let limit = min(monotonicSeconds() + 10, deadline ?? .infinity)
            while true {
                guard monotonicSeconds() < limit else { throw MqttProtocolError("no CONNACK within 10 s") }
                if try wait(milliseconds: 100).socket {
                    let packets = try receive()
                    guard let first = packets.first else { continue }
                    guard case let .connack(_, code) = first else {
                        throw MqttProtocolError("expected CONNACK, got \(first)")
                    }
                    guard code == 0 else {
                        throw MqttProtocolError("broker refused the connection: \(MqttCodec.connackReason(code))")
                    }
                    return
                }
            }
        } catch {
            Glibc.close(fd)
            throw error
        }
    }

    deinit { Glibc.close(fd) }

    /// A connected TCP socket to the first address of `host:port` that answers.
    static func connectTCP(host: String, port: Int, timeout: Double) throws -> Int32 {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_family = AF_UNSPEC
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &list)
        guard rc == 0, let first = list else {
            throw MqttProtocolError("cannot resolve \(host): \(String(cString: gai_strerror(rc)))")
        }
        defer { freeaddrinfo(list) }
        var lastError = ECONNREFUSED
        var ai: UnsafeMutablePointer<addrinfo>? = first
        while let a = ai {
            ai = a.pointee.ai_next
            let s = socket(a.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            if s < 0 { lastError = errno; continue }
            let flags = fcntl(s, F_GETFL)
            _ = fcntl(s, F_SETFL, flags | O_NONBLOCK)
            var ok = Glibc.connect(s, a.pointee.ai_addr, a.pointee.ai_addrlen) == 0
            if !ok && errno == EINPROGRESS {
                var p = pollfd(fd: s, events: Int16(POLLOUT), revents: 0)
                if poll(&p, 1, Int32(timeout * 1000)) == 1 {
                    var err: Int32 = 0
                    var len = socklen_t(MemoryLayout<Int32>.size)
                    getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len)
                    ok = err == 0
                    if !ok { lastError = err }
                } else {
                    lastError = ETIMEDOUT
                }
            } else if !ok {
                lastError = errno
            }
            if ok {
                _ = fcntl(s, F_SETFL, flags & ~O_NONBLOCK)
                return s
            }
            Glibc.close(s)
        }
        throw MqttProtocolError(String(cString: strerror(lastError)))
    }

    /// Writes all bytes (blocking, bounded by SO_SNDTIMEO); throws when the connection is gone.
    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, $0.count - offset,
                                                             Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw MqttProtocolError("send: \(String(cString: strerror(errno)))")
            }
            offset += n
        }
        lastSend = monotonicSeconds()
    }

    /// Waits for the socket or the wake pipe; reports which is readable. A socket error or hang-up throws.
    func wait(milliseconds: Int32) throws -> (socket: Bool, wake: Bool) {
        var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0), pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)]
        let n = poll(&fds, 2, milliseconds)
        if n < 0 { return (false, false) }
        return (fds[0].revents != 0, fds[1].revents != 0)
    }

    /// Reads what the socket has and returns the complete packets; EOF or a malformed packet throws.
    func receive() throws -> [MqttIncoming] {
        var buffer = [UInt8](repeating: 0, count: 512)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n == 0 { throw MqttProtocolError("closed by the broker") }
        if n < 0 {
            if errno == EINTR || errno == EAGAIN { return [] }
            throw MqttProtocolError("recv: \(String(cString: strerror(errno)))")
        }
        reader.append(Array(buffer[0..<n]))
        var packets: [MqttIncoming] = []
        while let p = try reader.next() { packets.append(p) }
        return packets
    }
}
