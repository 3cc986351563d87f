// The few Foundation facilities the runtime modules need, on POSIX and the standard library only, so that the
// `eartag` binary links FoundationEssentials and not Foundation (which loads FoundationInternationalization and
// ICU: about 6 MB of resident memory measured; see docs/performance.md).
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

extension String {
    /// printf-style formatting through vsnprintf, for C scalar arguments (integers, floating point); a Swift
    /// `String` is not a C string, so `%s` and `%@` are not for Swift values.
    public init(printf format: String, _ arguments: CVarArg...) {
        self = withVaList(arguments) { list in
            var buffer = [CChar](repeating: 0, count: 128)
            let needed = Int(vsnprintf(&buffer, buffer.count, format, list))
            if needed < buffer.count { return String(cString: buffer) }
            return withVaList(arguments) { again in
                var big = [CChar](repeating: 0, count: needed + 1)
                _ = vsnprintf(&big, big.count, format, again)
                return String(cString: big)
            }
        }
    }
}

extension StringProtocol {
    /// The text without leading and trailing spaces and tabs (Foundation's `.whitespaces`: no line breaks).
    public func trimmingSpaces() -> String {
        trimming { $0.isWhitespace && !$0.isNewline }
    }

    /// The text without leading and trailing whitespace, line breaks included.
    public func trimmingWhitespace() -> String {
        trimming { $0.isWhitespace }
    }

    /// The text without the leading and trailing characters matching `drop`.
    private func trimming(_ drop: (Character) -> Bool) -> String {
        guard let first = firstIndex(where: { !drop($0) }), let last = lastIndex(where: { !drop($0) }) else { return "" }
        return String(self[first...last])
    }
}

/// String path operations (NSString's, on `/`-separated paths; no file system access).
public enum PathText {
    /// The last component ("a/b.c" -> "b.c"; trailing slashes ignored).
    public static func lastComponent(_ path: String) -> String {
        let trimmed = stripTrailingSlashes(path)
        guard trimmed != "/", let slash = trimmed.lastIndex(of: "/") else { return trimmed }
        return String(trimmed[trimmed.index(after: slash)...])
    }

    /// The path without its last component ("a/b" -> "a", "/a" -> "/", "a" -> "").
    public static func deletingLastComponent(_ path: String) -> String {
        let trimmed = stripTrailingSlashes(path)
        guard let slash = trimmed.lastIndex(of: "/") else { return "" }
        if slash == trimmed.startIndex { return "/" }
        return stripTrailingSlashes(String(trimmed[..<slash]))
    }

    /// `path` joined with `component` by one slash ("" + "x" -> "x").
    public static func appending(_ path: String, _ component: String) -> String {
        if path.isEmpty { return component }
        return path.hasSuffix("/") ? path + component : path + "/" + component
    }

    /// The extension of the last component without the dot ("a/b.wav" -> "wav"; "" when there is none).
    public static func pathExtension(_ path: String) -> String {
        let name = lastComponent(path)
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return "" }
        return String(name[name.index(after: dot)...])
    }

    /// The path without the last component's extension ("a/b.wav" -> "a/b").
    public static func deletingPathExtension(_ path: String) -> String {
        let ext = pathExtension(path)
        let trimmed = stripTrailingSlashes(path)
        return ext.isEmpty ? trimmed : String(trimmed.dropLast(ext.count + 1))
    }

    /// The path without trailing slashes (keeps a lone "/").
    private static func stripTrailingSlashes(_ path: String) -> String {
        var p = Substring(path)
        while p.count > 1 && p.hasSuffix("/") { p = p.dropLast() }
        return String(p)
    }
}

/// Writes all of `text` to file descriptor `fd` (retrying short writes and EINTR); false when the write fails.
@discardableResult
public func writeAll(fd: Int32, _ text: String) -> Bool {
    var bytes = Array(text.utf8)
    return bytes.withUnsafeMutableBytes { raw -> Bool in
        var done = 0
        while done < raw.count {
            let n = write(fd, raw.baseAddress! + done, raw.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                return false
            }
            done += n
        }
        return true
    }
}

/// The reason a file operation failed: the POSIX message of its underlying errno when there is one (as
/// Foundation's `localizedDescription` gave it), else the error's description.
public func fileErrorReason(_ error: Error) -> String {
    if let cocoa = error as? CocoaError, let posix = cocoa.userInfo["NSUnderlyingError"] as? POSIXError {
        return String(cString: strerror(posix.code.rawValue))
    }
    if let posix = error as? POSIXError { return String(cString: strerror(posix.code.rawValue)) }
    return String(describing: error)
}

/// `text` with `%XX` escapes decoded as UTF-8 (nil for a malformed escape or invalid UTF-8), as
/// `removingPercentEncoding`.
public func percentDecoded(_ text: String) -> String? {
    var bytes: [UInt8] = []
    var it = Array(text.utf8)[...]
    while let b = it.popFirst() {
        guard b == UInt8(ascii: "%") else { bytes.append(b); continue }
        guard it.count >= 2, let v = UInt8(String(decoding: it.prefix(2), as: UTF8.self), radix: 16) else { return nil }
        bytes.append(v)
        it = it.dropFirst(2)
    }
    return String(validating: bytes, as: UTF8.self)
}

/// A mutual-exclusion lock (a heap-allocated pthread mutex: it must not move).
public final class Lock: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    /// A new unlocked mutex.
    public init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        let rc = pthread_mutex_init(mutex, nil)
        precondition(rc == 0, "pthread_mutex_init failed (\(rc))")
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Acquires the lock.
    public func lock() { pthread_mutex_lock(mutex) }

    /// Releases the lock.
    public func unlock() { pthread_mutex_unlock(mutex) }

    /// Runs `body` holding the lock.
    public func withLock<T>(_ body: () throws -> T) rethrows -> T {
        lock()
        defer { unlock() }
        return try body()
    }
}

/// Starts detached POSIX threads (Foundation's `Thread { }.start()` without Foundation).
public enum DetachedThread {
    /// Runs `body` on a new detached thread with `stackSize` bytes of stack (nil: the system default, 8 MB
    /// reserved, touched only as used); traps when the thread cannot be created. `name` (at most 15 bytes kept)
    /// shows in `top -H`, `ps -L` and debuggers on Linux.
    public static func start(name: String? = nil, stackSize: Int? = nil, _ body: @escaping @Sendable () -> Void) {
        /// The thread's closure, passed through pthread_create's context pointer.
        final class Box {
            let body: @Sendable () -> Void
            /// Wraps `b`.
            init(_ b: @escaping @Sendable () -> Void) { body = b }
        }
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        if let stackSize { pthread_attr_setstacksize(&attributes, max(stackSize, Int(PTHREAD_STACK_MIN))) }
        let context = Unmanaged.passRetained(Box {
            if let name { setCurrentThreadName(name) }
            body()
        }).toOpaque()
        #if canImport(Darwin)
        var thread: pthread_t?
        #else
        var thread = pthread_t()
        #endif
        let rc = pthread_create(&thread, &attributes, { raw in
            #if canImport(Darwin)
            let box = Unmanaged<Box>.fromOpaque(raw).takeRetainedValue()
            #else
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            #endif
            box.body()
            return nil
        }, context)
        precondition(rc == 0, "pthread_create failed (\(String(cString: strerror(rc))))")
    }
}

/// Names the calling thread (Linux: writes /proc/thread-self/comm, as pthread_setname_np does; a failure is ignored:
/// the name is for people, nothing depends on it).
func setCurrentThreadName(_ name: String) {
    #if os(Linux)
    let fd = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
    guard fd >= 0 else { return }
    defer { close(fd) }
    let bytes = Array(name.utf8.prefix(15))
    _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    #endif
}

/// A string slot private to each thread (a pthread key; the value is released when its thread ends).
public final class ThreadLocalString: @unchecked Sendable {
    /// A thread's value, retained through the pthread key.
    private final class Box {
        let value: String
        /// Wraps `v`.
        init(_ v: String) { value = v }
    }
    private var key = pthread_key_t()

    /// A new slot, empty on every thread.
    public init() {
        let rc = pthread_key_create(&key) { raw in
            #if canImport(Darwin)
            Unmanaged<AnyObject>.fromOpaque(raw).release()
            #else
            if let raw { Unmanaged<AnyObject>.fromOpaque(raw).release() }
            #endif
        }
        precondition(rc == 0, "pthread_key_create failed (\(rc))")
    }

    /// Replaces the calling thread's value.
    public func set(_ value: String?) {
        if let old = pthread_getspecific(key) { Unmanaged<AnyObject>.fromOpaque(old).release() }
        let new = value.map { Unmanaged<AnyObject>.passRetained(Box($0)).toOpaque() }
        pthread_setspecific(key, new.map { UnsafeRawPointer($0) })
    }

    /// Returns the calling thread's value and clears it.
    public func take() -> String? {
        guard let raw = pthread_getspecific(key) else { return nil }
        let box = Unmanaged<AnyObject>.fromOpaque(raw).takeRetainedValue() as? Box
        pthread_setspecific(key, nil)
        return box?.value
    }
}
