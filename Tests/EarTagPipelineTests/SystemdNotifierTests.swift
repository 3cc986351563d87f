// SystemdNotifier (sd_notify datagrams) and Log (journald priority prefixes) without the binary.
import Foundation
import XCTest
import EarTagTestSupport
@testable import EarTagPipeline

final class SystemdNotifierTests: XCTestCase {
    /// Binds a datagram socket at `address` (`@name`: abstract) with a 1 s receive timeout; returns its descriptor.
    func bindDatagram(_ address: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        XCTAssertGreaterThanOrEqual(fd, 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(address.utf8)
        if bytes[0] == UInt8(ascii: "@") { bytes[0] = 0 }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in for (i, b) in bytes.enumerated() { raw[i] = b } }
        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + bytes.count + (bytes[0] == 0 ? 0 : 1))
        let status = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        XCTAssertEqual(status, 0, "bind \(address): errno \(errno)")
        var timeout = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        return fd
    }

    /// One datagram's text, or nil after the timeout.
    func receive(_ fd: Int32) -> String? {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        return n >= 0 ? String(decoding: buffer[0..<n], as: UTF8.self) : nil
    }

    /// Datagrams arrive on a socket path and in the abstract namespace.
    func testSendsToPathAndAbstractSockets() throws {
        let dir = try makeTemporaryDirectory("eartag-notifier")
        defer { try? FileManager.default.removeItem(at: dir) }
        for address in [dir.appendingPathComponent("n.sock").path, "@eartag-unit-\(UUID().uuidString)"] {
            let fd = try bindDatagram(address)
            defer { close(fd) }
            let n = SystemdNotifier(environment: ["NOTIFY_SOCKET": address])
            XCTAssertTrue(n.isEnabled)
            XCTAssertTrue(n.send("READY=1"))
            XCTAssertEqual(receive(fd), "READY=1")
            XCTAssertTrue(n.send("STATUS=listening: stdin"))
            XCTAssertEqual(receive(fd), "STATUS=listening: stdin")
        }
    }

    /// Unset, empty, relative or vanished sockets make a silent no-op that never throws.
    func testNoOpWithoutUsableSocket() {
        for env in [[:], ["NOTIFY_SOCKET": ""], ["NOTIFY_SOCKET": "relative.sock"],
                    ["NOTIFY_SOCKET": "/" + String(repeating: "x", count: 200)]] {
            let n = SystemdNotifier(environment: env)
            XCTAssertFalse(n.isEnabled, "\(env)")
            XCTAssertFalse(n.send("READY=1"))
        }
        let gone = SystemdNotifier(environment: ["NOTIFY_SOCKET": "/nonexistent/eartag/notify.sock"])
        XCTAssertTrue(gone.isEnabled)
        XCTAssertFalse(gone.send("WATCHDOG=1"), "nobody listening: not delivered, no error")
    }

    /// The ping interval is half of `$WATCHDOG_USEC`, only for our pid.
    func testWatchdogInterval() {
        XCTAssertNil(SystemdNotifier(environment: [:]).watchdogInterval)
        XCTAssertEqual(SystemdNotifier(environment: ["WATCHDOG_USEC": "30000000"]).watchdogInterval, 15)
        XCTAssertEqual(SystemdNotifier(environment: ["WATCHDOG_USEC": "400000", "WATCHDOG_PID": "\(getpid())"])
                       .watchdogInterval, 0.2)
        XCTAssertNil(SystemdNotifier(environment: ["WATCHDOG_USEC": "400000", "WATCHDOG_PID": "1"]).watchdogInterval)
        XCTAssertNil(SystemdNotifier(environment: ["WATCHDOG_USEC": "0"]).watchdogInterval)
        XCTAssertNil(SystemdNotifier(environment: ["WATCHDOG_USEC": "soon"]).watchdogInterval)
    }

    /// `<N>` prefixes for the journal, `eartag: ` otherwise, always one line.
    func testLogFormat() {
        XCTAssertEqual(Log.format("no model", level: .error, journal: true), "<3>no model\n")
        XCTAssertEqual(Log.format("overruns", level: .warning, journal: true), "<4>overruns\n")
        XCTAssertEqual(Log.format("reloaded", level: .info, journal: true), "<6>reloaded\n")
        XCTAssertEqual(Log.format("no model", level: .error, journal: false), "eartag: no model\n")
        XCTAssertEqual(Log.format("two\nlines", level: .info, journal: false), "eartag: two lines\n")
    }

    /// `$JOURNAL_STREAM` counts only when it names the descriptor's device and inode.
    func testJournalStreamMatchesDeviceAndInode() throws {
        let dir = try makeTemporaryDirectory("eartag-journal")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("stderr").path
        FileManager.default.createFile(atPath: path, contents: nil)
        let fd = open(path, O_WRONLY)
        defer { close(fd) }
        var st = stat()
        XCTAssertEqual(fstat(fd, &st), 0)
        XCTAssertTrue(Log.journalStream("\(st.st_dev):\(st.st_ino)", fd: fd))
        XCTAssertFalse(Log.journalStream("\(st.st_dev):\(st.st_ino + 1)", fd: fd))
        XCTAssertFalse(Log.journalStream("garbage", fd: fd))
        XCTAssertFalse(Log.journalStream(nil, fd: fd))
    }
}

