// A real Mosquitto broker on a random loopback port, and mosquitto_sub as a recording subscriber, for MQTT tests.
import Foundation
import XCTest

/// A free TCP port on 127.0.0.1 (bound to port 0, read back, released).
public func freeLoopbackPort() throws -> Int {
    let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(s) }
    var a = loopbackAddress(0)
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let ok = withUnsafeMutablePointer(to: &a) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, len) == 0 && getsockname(s, $0, &len) == 0 }
    }
    guard ok else { throw XCTSkip("cannot bind a loopback port") }
    return Int(UInt16(bigEndian: a.sin_port))
}

/// True when a TCP connection to 127.0.0.1:`port` succeeds.
public func canConnect(port: Int) -> Bool {
    guard let s = connectLoopback(port: port) else { return false }
    close(s)
    return true
}

/// The path of a Debian mosquitto tool, or a skip (a failure under CI, where `make deps` must have installed it).
public func mosquittoTool(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws -> String {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"] {
        let p = "\(dir)/\(name)"
        if FileManager.default.isExecutableFile(atPath: p) { return p }
    }
    let message = "\(name) is not installed (make deps installs Debian's mosquitto and mosquitto-clients)"
    if Reference.inCI { XCTFail(message, file: file, line: line) }
    throw XCTSkip(message)
}

/// A mosquitto broker listening on 127.0.0.1 only, with persistence in its own folder; stopped by `stop`.
public final class Mosquitto {
    /// The broker's port.
    public let port: Int
    /// Folder of the configuration, log and persistence file.
    public let directory: URL
    private var process: Process?
    private let binary: String

    /// Writes the configuration; `start` runs the broker.
    public init(directory: URL) throws {
        binary = try mosquittoTool("mosquitto")
        port = try freeLoopbackPort()
        self.directory = directory
        try """
        listener \(port) 127.0.0.1
        allow_anonymous true
        persistence true
        persistence_location \(directory.path)/
        autosave_interval 1
        log_dest file \(directory.path)/mosquitto.log
        log_type all

        """.write(to: directory.appendingPathComponent("mosquitto.conf"), atomically: true, encoding: .utf8)
    }

    deinit { stop() }

    /// Starts the broker and waits (5 s at most) until it accepts connections.
    public func start() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = ["-c", directory.appendingPathComponent("mosquitto.conf").path]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        process = p
        let deadline = Date().addingTimeInterval(5)
        while !canConnect(port: port) {
            guard Date() < deadline, p.isRunning else {
                throw XCTSkip("mosquitto did not start on port \(port): \(log)")
            }
            usleep(20_000)
        }
    }

    /// Stops the broker (SIGTERM: it saves its persistence file) and waits for it to exit.
    public func stop() {
        guard let p = process else { return }
        process = nil
        if p.isRunning { p.terminate() }
        p.waitUntilExit()
    }

    /// The broker's log (for failure messages).
    public var log: String {
        (try? String(contentsOf: directory.appendingPathComponent("mosquitto.log"), encoding: .utf8)) ?? ""
    }
}

/// One message as mosquitto_sub printed it.
public struct ReceivedMessage: Equatable {
    /// Topic.
    public var topic: String
    /// The retained flag (true for retained messages delivered on subscription).
    public var retained: Bool
    /// Payload text.
    public var payload: String
}

/// mosquitto_sub recording every message on some topic filters, with a persistent session (QoS 1, clean session
/// off) so that it receives what was published while a restarted broker was away.
public final class MosquittoSubscriber {
    private let process = Process()
    private let output: URL

    /// Subscribes to `filters` on `broker`; returns once the subscription is active (checked with a marker message).
    public init(broker: Mosquitto, filters: [String], clientId: String = "eartag-test-sub-\(UUID().uuidString.prefix(8))") throws {
        let sub = try mosquittoTool("mosquitto_sub")
        output = broker.directory.appendingPathComponent("sub-\(clientId).txt")
        FileManager.default.createFile(atPath: output.path, contents: nil)
        process.executableURL = URL(fileURLWithPath: sub)
        process.arguments = ["-h", "127.0.0.1", "-p", String(broker.port), "-q", "1", "-c", "-i", clientId,
                             "-F", "%t\t%r\t%p"] + filters.flatMap { ["-t", $0] } + ["-t", "eartag-test/marker"]
        process.standardOutput = try FileHandle(forWritingTo: output)
        process.standardError = FileHandle.nullDevice
        try process.run()
        let pub = try mosquittoTool("mosquitto_pub")
        let deadline = Date().addingTimeInterval(10)
        while !messages.contains(where: { $0.topic == "eartag-test/marker" }) {
            guard Date() < deadline else { throw XCTSkip("mosquitto_sub did not subscribe") }
            let p = Process()
            p.executableURL = URL(fileURLWithPath: pub)
            p.arguments = ["-h", "127.0.0.1", "-p", String(broker.port), "-t", "eartag-test/marker", "-m", "x"]
            try p.run()
            p.waitUntilExit()
            usleep(100_000)
        }
    }

    deinit { stop() }

    /// Ends mosquitto_sub.
    public func stop() {
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
    }

    /// Every message received so far (markers excluded), in order.
    public var messages: [ReceivedMessage] {
        let text = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line in
            let f = line.split(separator: "\t", maxSplits: 2, omittingEmptySubsequences: false)
            guard f.count == 3 else { return nil }
            return ReceivedMessage(topic: String(f[0]), retained: f[1] == "1", payload: String(f[2]))
        }
    }

    /// Waits until `condition` holds for the messages (true) or `timeout` seconds pass (false).
    public func wait(timeout: Double, until condition: ([ReceivedMessage]) -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if condition(messages.filter { $0.topic != "eartag-test/marker" }) { return true }
            usleep(50_000)
        }
        return condition(messages.filter { $0.topic != "eartag-test/marker" })
    }

    /// The messages without the subscription markers.
    public var received: [ReceivedMessage] { messages.filter { $0.topic != "eartag-test/marker" } }
}
