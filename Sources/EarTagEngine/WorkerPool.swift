// A tiny persistent thread pool: the caller plus N-1 workers each take one part of a parallel loop.
import Foundation

/// Fixed set of worker threads, created once, that run the parts of `parallel(parts:_:)` alongside the caller.
final class WorkerPool: @unchecked Sendable {
    /// Total participants including the calling thread.
    let width: Int
    private let wake: [DispatchSemaphore]
    private let finished = DispatchSemaphore(value: 0)
    private var body: ((Int) -> Void)?
    private var parts = 0
    private var stopping = false
    private var threads: [Thread] = []

    /// Starts `width - 1` worker threads (none when width is 1).
    init(width: Int) {
        self.width = max(1, width)
        wake = (0..<max(0, width - 1)).map { _ in DispatchSemaphore(value: 0) }
        for w in 0..<wake.count {
            let t = Thread { [unowned self] in self.workerLoop(w) }
            t.stackSize = 1 << 20
            threads.append(t)
            t.start()
        }
    }

    /// Worker `w` waits for work, runs part w + 1 of it, and reports completion.
    private func workerLoop(_ w: Int) {
        while true {
            wake[w].wait()
            if stopping { finished.signal(); return }
            if w + 1 < parts, let b = body { b(w + 1) }
            finished.signal()
        }
    }

    /// Runs body(0..<parts) with parts <= width; part 0 on the calling thread. Returns when all are done.
    func parallel(parts: Int, _ body: (Int) -> Void) {
        let n = min(parts, width)
        if n <= 1 { body(0); return }
        withoutActuallyEscaping(body) { escaping in
            self.body = escaping
            self.parts = n
            for w in 0..<(n - 1) { wake[w].signal() }
            escaping(0)
            for _ in 0..<(n - 1) { finished.wait() }
            self.body = nil
        }
    }

    /// Stops the workers.
    func shutdown() {
        stopping = true
        for w in wake { w.signal() }
        for _ in wake { finished.wait() }
    }
}
