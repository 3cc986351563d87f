// A tiny persistent thread pool: the caller plus width-1 workers each take one part of a parallel job.
// Jobs are a C function pointer plus a context pointer, so dispatching one allocates nothing.
import FoundationEssentials
import Dispatch
import EarTagPlatform
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Fixed set of worker threads, created once, that run the parts of `parallel` alongside the caller.
final class WorkerPool: @unchecked Sendable {
    /// One part of a job: (context, part index, number of parts).
    typealias Task = @convention(c) (UnsafeMutableRawPointer, Int, Int) -> Void

    /// Total participants including the calling thread.
    let width: Int
    private let wake: [DispatchSemaphore]
    private let finished = DispatchSemaphore(value: 0)
    private var task: Task?
    private var context: UnsafeMutableRawPointer?
    private var parts = 0
    private var stopping = false

    /// Starts `width - 1` worker threads (none when width is 1).
    init(width: Int) {
        self.width = max(1, width)
        wake = (0..<max(0, width - 1)).map { _ in DispatchSemaphore(value: 0) }
        for w in 0..<wake.count {
            DetachedThread.start(name: "eartag-engine", stackSize: 1 << 20) { [unowned self] in self.workerLoop(w) }
        }
    }

    /// Worker `w` waits for work, runs part w + 1 of it, and reports completion.
    private func workerLoop(_ w: Int) {
        while true {
            wake[w].wait()
            if stopping { finished.signal(); return }
            if w + 1 < parts, let task, let context { task(context, w + 1, parts) }
            finished.signal()
        }
    }

    /// Runs task(context, part, n) for part in 0..<n, n = min(parts, width); part 0 on the calling thread.
    /// Returns when every part is done. Semaphore signal/wait order publishes the job fields to the workers.
    func parallel(parts: Int, task: Task, context: UnsafeMutableRawPointer) {
        let n = min(parts, width)
        if n <= 1 { task(context, 0, 1); return }
        self.task = task
        self.context = context
        self.parts = n
        for w in 0..<(n - 1) { wake[w].signal() }
        task(context, 0, n)
        for _ in 0..<(n - 1) { finished.wait() }
        self.task = nil
        self.context = nil
    }

    /// Stops the workers (each acknowledges before exiting).
    func shutdown() {
        stopping = true
        for w in wake { w.signal() }
        for _ in wake { finished.wait() }
    }
}
