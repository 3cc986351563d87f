// Loopback TCP helpers for tests of EarTag's network outputs (MQTT, metrics): connect, listen, one HTTP exchange.
import Foundation

/// An IPv4 loopback address with `port`.
func loopbackAddress(_ port: Int) -> sockaddr_in {
    var a = sockaddr_in()
    a.sin_family = sa_family_t(AF_INET)
    a.sin_port = in_port_t(UInt16(port).bigEndian)
    a.sin_addr.s_addr = inet_addr("127.0.0.1")
    return a
}

/// A socket connected to 127.0.0.1:`port`, or nil when nothing accepts there.
public func connectLoopback(port: Int) -> Int32? {
    let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var a = loopbackAddress(port)
    let rc = withUnsafePointer(to: &a) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    if rc == 0 { return s }
    close(s)
    return nil
}

/// A socket listening on 127.0.0.1:`port` (SO_REUSEADDR), or nil when the port cannot be bound.
public func listenLoopback(port: Int) -> Int32? {
    let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var one: Int32 = 1
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
    var a = loopbackAddress(port)
    let rc = withUnsafePointer(to: &a) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    if rc == 0 && listen(s, 8) == 0 { return s }
    close(s)
    return nil
}

/// Sends `request` to 127.0.0.1:`port` and returns the whole response (read until the server closes), or nil.
public func httpExchange(port: Int, _ request: String) -> String? {
    guard let s = connectLoopback(port: port) else { return nil }
    defer { close(s) }
    _ = Array(request.utf8).withUnsafeBytes { send(s, $0.baseAddress, $0.count, 0) }
    var response: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 8192)
    while true {
        let n = recv(s, &chunk, chunk.count, 0)
        if n <= 0 { break }
        response += chunk[0..<n]
    }
    return String(decoding: response, as: UTF8.self)
}
