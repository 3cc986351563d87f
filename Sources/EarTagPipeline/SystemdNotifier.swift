// sd_notify(3) without libsystemd: datagrams to `$NOTIFY_SOCKET`, and journald-friendly diagnostics.
import FoundationEssentials
import EarTagPlatform
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Sends service state notifications (`READY=1`, `WATCHDOG=1`, `STATUS=...`, `STOPPING=1`) to systemd.
public final class SystemdNotifier: @unchecked Sendable {
    /// The datagram socket, or -1 when notifications are disabled.
    private let fd: Int32
    /// The encoded destination address.
    private var address = sockaddr_un()
    /// Length of the meaningful part of `address`.
    private var addressLength: socklen_t = 0
    /// Half of `$WATCHDOG_USEC` in seconds (how often to ping), or nil when no watchdog is expected.
    public let watchdogInterval: Double?
    /// The socket path as given (`@name` for the abstract namespace), or nil when disabled.
    public let socketPath: String?

    /// A notifier for `$NOTIFY_SOCKET` in `environment`; a no-op when it is unset, empty or unusable.
    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        let usec = environment["WATCHDOG_USEC"].flatMap { UInt64($0) }.flatMap { $0 > 0 ? $0 : nil }
        let pidMatches = environment["WATCHDOG_PID"].map { Int32($0) == getpid() } ?? true
        watchdogInterval = (usec != nil && pidMatches) ? Double(usec!) / 2_000_000 : nil
        guard let path = environment["NOTIFY_SOCKET"], !path.isEmpty,
              path.hasPrefix("/") || path.hasPrefix("@") else {
            fd = -1
            socketPath = nil
            return
        }
        var bytes = Array(path.utf8)
        if bytes[0] == UInt8(ascii: "@") { bytes[0] = 0 }
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard bytes.count < capacity else {
            fd = -1
            socketPath = nil
            return
        }
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        // Abstract names are exactly their bytes; paths carry their terminating NUL.
        let pathLength = bytes[0] == 0 ? bytes.count : bytes.count + 1
        addressLength = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + pathLength)
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        socketPath = fd >= 0 ? path : nil
    }

    deinit { if fd >= 0 { close(fd) } }

    /// True when notifications go somewhere.
    public var isEnabled: Bool { fd >= 0 }

    /// Sends one state datagram (e.g. `READY=1`); never blocks or throws, returns false if it was not delivered.
    @discardableResult
    public func send(_ state: String) -> Bool {
        guard fd >= 0 else { return false }
        var message = Array(state.utf8)
        var addr = address
        let sent = message.withUnsafeMutableBytes { buf in
            withUnsafePointer(to: &addr) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, buf.baseAddress, buf.count, Int32(MSG_DONTWAIT) | Int32(MSG_NOSIGNAL), $0, addressLength)
                }
            }
        }
        return sent == message.count
    }
}

/// Severity of a diagnostic line (syslog priorities, as journald reads them from `<N>` prefixes).
public enum LogLevel: Int, Sendable {
    case error = 3
    case warning = 4
    case info = 6
}

/// Diagnostics on standard error: `<N>message` when stderr is the journal stream, `eartag: message` otherwise.
public enum Log {
    /// True when `$JOURNAL_STREAM` names the device and inode of our standard error (see systemd.exec(5)).
    public static let toJournal: Bool = journalStream(ProcessInfo.processInfo.environment["JOURNAL_STREAM"], fd: 2)

    /// True when `value` (`DEVICE:INODE`) matches the open file `fd`.
    public static func journalStream(_ value: String?, fd: Int32) -> Bool {
        guard let value else { return false }
        let parts = value.split(separator: ":")
        guard parts.count == 2, let dev = UInt64(parts[0]), let ino = UInt64(parts[1]) else { return false }
        var st = stat()
        guard fstat(fd, &st) == 0 else { return false }
        return UInt64(st.st_dev) == dev && UInt64(st.st_ino) == ino
    }

    /// The line for `message` at `level`, newline included.
    public static func format(_ message: String, level: LogLevel, journal: Bool = Log.toJournal) -> String {
        let flat = message.split(whereSeparator: \.isNewline).joined(separator: " ")
        return journal ? "<\(level.rawValue)>\(flat)\n" : "eartag: \(flat)\n"
    }

    /// Writes one diagnostic line to standard error.
    public static func write(_ message: String, level: LogLevel) {
        writeAll(fd: 2, format(message, level: level))
    }

    /// An error line.
    public static func error(_ message: String) { write(message, level: .error) }
    /// A warning line.
    public static func warning(_ message: String) { write(message, level: .warning) }
    /// An informational line.
    public static func info(_ message: String) { write(message, level: .info) }
}
