// Serving the metrics: GET /metrics over a tiny HTTP/1.1 server on its own thread, and a textfile for
// node_exporter written atomically (temporary file + rename) every few seconds.
// ref: RFC 9112 (HTTP/1.1 message syntax); node_exporter textfile collector (files named *.prom, written atomically).
import FoundationEssentials
import Dispatch
import EarTagPlatform
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Atomics

/// Where the metrics endpoint listens: a numeric IPv4 or IPv6 address and a port.
public struct MetricsAddress: Equatable, Sendable {
    /// Numeric address (`127.0.0.1`, `::1`, ...).
    public var host: String
    /// TCP port (0: any free port, for tests).
    public var port: Int

    /// Parses `HOST:PORT`, `[V6]:PORT`, `:PORT` or `PORT` (loopback); a non-loopback host needs `allowRemote`.
    public init(_ text: String, allowRemote: Bool) throws {
        func bad(_ why: String) -> StreamSettingsError {
            StreamSettingsError(description: "--metrics '\(text)': \(why) (expected HOST:PORT, e.g. 127.0.0.1:9464)")
        }
        var hostPart = "127.0.0.1", portPart = Substring(text)
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                throw bad("malformed IPv6 address")
            }
            hostPart = String(text[text.index(after: text.startIndex)..<close])
            portPart = text[text.index(close, offsetBy: 2)...]
        } else if let colon = text.lastIndex(of: ":") {
            guard text.firstIndex(of: ":") == colon else { throw bad("put an IPv6 address in brackets") }
            if colon != text.startIndex { hostPart = String(text[..<colon]) }
            portPart = text[text.index(after: colon)...]
        }
        if hostPart == "localhost" { hostPart = "127.0.0.1" }
        guard let port = Int(portPart), (0...65535).contains(port) else { throw bad("invalid port '\(portPart)'") }
        var v4 = in_addr(), v6 = in6_addr()
        let isV4 = inet_pton(AF_INET, hostPart, &v4) == 1
        guard isV4 || inet_pton(AF_INET6, hostPart, &v6) == 1 else { throw bad("'\(hostPart)' is not a numeric IP address") }
        let loopback = isV4 ? hostPart.hasPrefix("127.") : hostPart == "::1"
        guard loopback || allowRemote else {
            throw bad("\(hostPart) is not a loopback address; add --metrics-allow-remote to serve other hosts")
        }
        host = hostPart
        self.port = port
    }

    /// `HOST:PORT` for messages.
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// A minimal HTTP/1.1 server answering `GET /metrics` (one request per connection, then close).
public final class MetricsServer: @unchecked Sendable {
    /// The listening socket.
    private let fd: Int32
    /// The port actually bound (useful when 0 was asked for).
    public let port: Int
    /// Produces the body of each response.
    private let render: () -> String
    private let stopping = ManagedAtomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)
    /// Requests answered (any status).
    public let requests = ManagedAtomic<Int>(0)

    /// Binds and listens now (errors such as a port in use are thrown here, naming the address); serves from `start`.
    public init(address: MetricsAddress, render: @escaping () -> String) throws {
        self.render = render
        let v6 = address.host.contains(":")
        let s = socket(v6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard s >= 0 else { throw StreamSettingsError(description: "--metrics \(address.description): socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var rc: Int32
        if v6 {
            var a = sockaddr_in6()
            a.sin6_family = sa_family_t(AF_INET6)
            a.sin6_port = in_port_t(UInt16(address.port).bigEndian)
            inet_pton(AF_INET6, address.host, &a.sin6_addr)
            rc = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(s, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
        } else {
            var a = sockaddr_in()
            a.sin_family = sa_family_t(AF_INET)
            a.sin_port = in_port_t(UInt16(address.port).bigEndian)
            inet_pton(AF_INET, address.host, &a.sin_addr)
            rc = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        }
        if rc != 0 || listen(s, 16) != 0 {
            let message = String(cString: strerror(errno)).lowercased()
            Glibc.close(s)
            throw StreamSettingsError(description: "--metrics \(address.description): cannot listen (\(message))")
        }
        var bound = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &bound) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            getsockname(s, $0, &len) } }
        port = withUnsafePointer(to: &bound) { p in
            v6 ? Int(UInt16(bigEndian: p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_port }))
               : Int(UInt16(bigEndian: p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_port }))
        }
        fd = s
    }

    deinit { Glibc.close(fd) }

    /// Serves on a thread of its own until `stop`.
    public func start() {
        DetachedThread.start(name: "eartag-metrics") { [self] in
            while !stopping.load(ordering: .relaxed) {
                var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                guard poll(&p, 1, 100) > 0 else { continue }
                let client = accept(fd, nil, nil)
                if client >= 0 {
                    _ = fcntl(client, F_SETFD, FD_CLOEXEC)
                    serve(client)
                }
            }
            finished.signal()
        }
    }

    /// Stops serving (returns once the thread has ended).
    public func stop() {
        guard !stopping.exchange(true, ordering: .relaxed) else { return }
        finished.wait()
    }

    /// Reads one request head (8 KiB and 2 s at most) and answers it.
    private func serve(_ client: Int32) {
        defer { Glibc.close(client) }
        var tv = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var head: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1024)
        let end: [UInt8] = Array("\r\n\r\n".utf8)
        while head.count < 8192 {
            let n = chunk.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { return }
            head.append(contentsOf: chunk[0..<n])
            if head.count >= 4, head.indices.dropLast(3).contains(where: { Array(head[$0..<($0 + 4)]) == end }) { break }
        }
        requests.wrappingIncrement(ordering: .relaxed)
        let response = Self.respond(to: head, render: render)
        var offset = 0
        while offset < response.count {
            let n = response.withUnsafeBytes { Glibc.send(client, $0.baseAddress! + offset, $0.count - offset,
                                                                Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { return }
            offset += n
        }
    }

    /// The full HTTP response for a request head: 200 for GET/HEAD /metrics, else 404, 405 or 400.
    static func respond(to head: [UInt8], render: () -> String) -> [UInt8] {
        let line = String(decoding: head.prefix { $0 != 13 && $0 != 10 }, as: UTF8.self)
        let parts = line.split(separator: " ")
        /// A response with a status and body.
        func reply(_ status: String, _ type: String, _ body: String, headOnly: Bool = false) -> [UInt8] {
            let b = Array(body.utf8)
            var r = Array(("HTTP/1.1 \(status)\r\nContent-Type: \(type)\r\nContent-Length: \(b.count)\r\n"
                           + "Connection: close\r\n\r\n").utf8)
            if !headOnly { r += b }
            return r
        }
        guard parts.count == 3, parts[2].hasPrefix("HTTP/1.") else {
            return reply("400 Bad Request", "text/plain", "bad request\n")
        }
        guard parts[0] == "GET" || parts[0] == "HEAD" else {
            return reply("405 Method Not Allowed", "text/plain", "only GET\n")
        }
        let path = parts[1].split(separator: "?", maxSplits: 1).first.map(String.init) ?? ""
        guard path == "/metrics" else { return reply("404 Not Found", "text/plain", "try /metrics\n") }
        return reply("200 OK", "text/plain; version=0.0.4; charset=utf-8", render(), headOnly: parts[0] == "HEAD")
    }
}

/// Writes the metrics to a file for node_exporter's textfile collector every `interval` seconds, atomically.
public final class MetricsFileWriter: @unchecked Sendable {
    /// The target file.
    public let path: String
    private let interval: Double
    private let render: () -> String
    private let stopping = ManagedAtomic<Bool>(false)
    private let wakeup = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    /// Diagnostics (a failed periodic write is logged once, not thrown).
    private let log: (LogLevel, String) -> Void

    /// Writes the file once now (a path that cannot be written is thrown here, naming it), then from `start`.
    public init(path: String, interval: Double, render: @escaping () -> String,
                log: @escaping (LogLevel, String) -> Void = { Log.write($1, level: $0) }) throws {
        guard interval.isFinite, interval >= 0.1 else {
            throw StreamSettingsError(description: "--metrics-interval must be at least 0.1 seconds (got \(interval))")
        }
        self.path = path
        self.interval = interval
        self.render = render
        self.log = log
        try write()
    }

    /// Writes `PATH.tmp.PID` and renames it over `PATH`.
    public func write() throws {
        let tmp = "\(path).tmp.\(getpid())"
        do {
            try Data(render().utf8).write(to: URL(fileURLWithPath: tmp))
        } catch {
            throw StreamSettingsError(description: "--metrics-file \(path): cannot write (\(Self.reason(error)))")
        }
        guard rename(tmp, path) == 0 else {
            let why = String(cString: strerror(errno))
            unlink(tmp)
            throw StreamSettingsError(description: "--metrics-file \(path): cannot rename into place (\(why))")
        }
    }

    /// The underlying POSIX reason of a Foundation write error, when there is one.
    private static func reason(_ error: Error) -> String {
        fileErrorReason(error)
    }

    /// Rewrites the file every interval on a thread of its own until `stop`.
    public func start() {
        DetachedThread.start(name: "eartag-textfile") { [self] in
            var failed = false
            while wakeup.wait(timeout: .now() + interval) == .timedOut, !stopping.load(ordering: .relaxed) {
                do { try write(); failed = false } catch {
                    if !failed { log(.warning, String(describing: error)) }
                    failed = true
                }
            }
            finished.signal()
        }
    }

    /// Stops the thread and writes the final values.
    public func stop() {
        guard !stopping.exchange(true, ordering: .relaxed) else { return }
        wakeup.signal()
        finished.wait()
        do { try write() } catch { log(.warning, String(describing: error)) }
    }
}
