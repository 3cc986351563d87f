// EarTagPlatform: the Foundation stand-ins the runtime modules use (formatting, trimming, paths, errors, threads).
import Foundation
import XCTest
import EarTagPlatform

/// Checks each stand-in against what the Foundation call it replaced returned.
final class PlatformTests: XCTestCase {
    /// `String(printf:)` gives Foundation's `String(format:)` output, including outputs longer than its first buffer.
    func testPrintfMatchesFoundation() {
        XCTAssertEqual(String(printf: "%.3f", 0.8125), String(format: "%.3f", 0.8125))
        XCTAssertEqual(String(printf: "%9.3f", 12.0), "   12.000")
        XCTAssertEqual(String(printf: "%04d-%02d", 2026, 7), "2026-07")
        XCTAssertEqual(String(printf: "U+%04X", 0xE9), "U+00E9")
        XCTAssertEqual(String(printf: "%02x", UInt8(0xAB)), "ab")
        XCTAssertEqual(String(printf: "%300d|%.1f", 5, 2.25), String(repeating: " ", count: 299) + "5|2.2")
    }

    /// Trimming keeps inner spaces; `trimmingSpaces` keeps line breaks as `.whitespaces` did.
    func testTrimming() {
        XCTAssertEqual("  a b\t".trimmingSpaces(), "a b")
        XCTAssertEqual("\n a \n".trimmingSpaces(), "\n a \n")
        XCTAssertEqual("\n a \r\n".trimmingWhitespace(), "a")
        XCTAssertEqual("   ".trimmingSpaces(), "")
        XCTAssertEqual(Substring("x ").trimmingSpaces(), "x")
    }

    /// Path helpers agree with NSString's (expected values printed by corelibs Foundation's NSString, which traps on
    /// "a" and "" in deletingLastPathComponent, so the table is literal).
    func testPathTextMatchesNSString() {
        let table = [  // path, lastPathComponent, deletingLastPathComponent, pathExtension, deletingPathExtension
            ("a/b.wav", "b.wav", "a", "wav", "a/b"), ("/a/b", "b", "/a", "", "/a/b"), ("/a", "a", "/", "", "/a"),
            ("a/b/", "b", "a", "", "a/b"), ("/", "/", "/", "", "/"), ("b.tar.gz", "b.tar.gz", "", "gz", "b.tar"),
            (".hidden", ".hidden", "", "", ".hidden"), ("dir/.hidden", ".hidden", "dir", "", "dir/.hidden"),
            ("a", "a", "", "", "a"),
        ]
        for (p, last, parent, ext, stem) in table {
            XCTAssertEqual(PathText.lastComponent(p), last, p)
            XCTAssertEqual(PathText.deletingLastComponent(p), parent, p)
            XCTAssertEqual(PathText.pathExtension(p), ext, p)
            XCTAssertEqual(PathText.deletingPathExtension(p), stem, p)
        }
        XCTAssertEqual(PathText.appending("a", "b"), "a/b")
        XCTAssertEqual(PathText.appending("a/", "b"), "a/b")
        XCTAssertEqual(PathText.appending("", "b"), "b")
        XCTAssertEqual(PathText.lastComponent(""), "")
        XCTAssertEqual(PathText.deletingLastComponent(""), "")
    }

    /// Percent-decoding as `removingPercentEncoding`, malformed escapes refused.
    func testPercentDecoding() {
        XCTAssertEqual(percentDecoded("us%40er%3Ax"), "us@er:x")
        XCTAssertEqual(percentDecoded("caf%C3%A9"), "café")
        XCTAssertNil(percentDecoded("bad%2"))
        XCTAssertNil(percentDecoded("bad%zz"))
        XCTAssertNil(percentDecoded("%FF"), "not UTF-8")
        XCTAssertEqual(percentDecoded("plain"), "plain")
    }

    /// A failed file write is described by its errno message.
    func testFileErrorReason() {
        do {
            try Data([1]).write(to: URL(fileURLWithPath: "/nonexistent-eartag-dir/x"))
            XCTFail("the write should fail")
        } catch {
            XCTAssertEqual(fileErrorReason(error), "No such file or directory")
        }
    }

    /// Detached threads run, the lock serialises them, and thread-local strings stay per thread.
    func testThreadsLockAndThreadLocal() {
        /// State the threads share under `lock`.
        final class Shared: @unchecked Sendable {
            let lock = Lock()
            var total = 0
            var seen: [String?] = []
        }
        let shared = Shared()
        let slot = ThreadLocalString()
        let done = DispatchSemaphore(value: 0)
        for t in 0..<4 {
            DetachedThread.start(stackSize: 256 << 10) {
                slot.set("thread \(t)")
                for _ in 0..<10_000 { shared.lock.withLock { shared.total += 1 } }
                let mine = slot.take()
                shared.lock.withLock { shared.seen.append(mine) }
                done.signal()
            }
        }
        for _ in 0..<4 { done.wait() }
        XCTAssertEqual(shared.total, 40_000)
        XCTAssertEqual(Set(shared.seen.compactMap { $0 }), Set((0..<4).map { "thread \($0)" }))
        XCTAssertNil(slot.take(), "nothing set on this thread")
        let named = ThreadLocalString()
        DetachedThread.start(name: "eartag-a-long-thread-name") {
            named.set(try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8))
            shared.lock.withLock { shared.seen = [named.take()] }
            done.signal()
        }
        done.wait()
        XCTAssertEqual(shared.seen, ["eartag-a-long-t\n"], "the name, cut to 15 bytes, as the kernel shows it")
        slot.set("main")
        XCTAssertEqual(slot.take(), "main")
        XCTAssertNil(slot.take(), "take clears")
    }
}
