// A lock-free single-producer single-consumer ring of Float samples with absolute 64-bit stream positions.
//
// ref: EarTag streaming spec (brief "SampleRing"): `.dropOldest` for live capture (the producer never waits, never
//      allocates, never locks; the oldest audio is lost and counted), `.lossless` for stdin and files (the producer
//      waits while the ring is full); positions are absolute sample counts so stream time stays truthful after drops.
//
// Memory-ordering argument (why this is race-free and why a torn read is always detected):
//
// * Every slot is a 32-bit atomic holding a Float's bit pattern, accessed with relaxed loads and stores (plain moves
//   on x86-64 and arm64). Concurrent access to a slot is therefore never a data race, only a question of *which*
//   value the consumer sees; the protocol below decides which values it may keep.
// * Publication. The producer stores the samples of positions w..<w+n, then stores `writePosition = w+n` with
//   release (sequentially consistent, which includes release). The consumer loads `writePosition` with acquire
//   (sequentially consistent), so every slot store for a position below the value it saw happens-before its copy:
//   it reads that store or a later one to the same slot (coherence), never an older one.
// * Overwrite detection (seqlock style). Before storing positions w..<w+n (which overwrite positions
//   w-capacity..<w+n-capacity), the producer stores `claim = w+n` (relaxed) and then issues a release fence. The
//   consumer copies positions r..<r+k with relaxed loads, issues an acquire fence, then loads `claim` (relaxed).
//   If any of its slot loads for position p read a value stored for position p+capacity or later, that store comes
//   after the producer's release fence, which follows the store of a claim > p+capacity; the reader's load that saw
//   it precedes its acquire fence, so the two fences synchronise and the reader's claim load sees a value
//   > p+capacity. Hence every position p >= claim - capacity was read intact, and the consumer discards the prefix
//   p < claim - capacity (counting it as dropped). It never keeps a torn or overwritten sample.
// * Lossless back-pressure. The consumer stores `readPosition` (sequentially consistent, so release) after its slot
//   loads; the producer loads it (acquire) and only writes positions below readPosition + capacity, so its slot
//   stores happen after the consumer's loads of the old values: nothing is overwritten unread and the claim check
//   never fires.
// * Sleeping. A waiter publishes a target in `consumerTarget` / `producerTarget` with a sequentially consistent
//   store and then re-checks the other side's position (sequentially consistent load); the other side stores its
//   position (sequentially consistent) and then loads the target (sequentially consistent). In the single total
//   order of these four operations either the waiter sees the new position or the other side sees the target and
//   signals the semaphore (after clearing the target with a compare-exchange, so one wait gets at most one signal).
//   Left-over signals only cause spurious wake-ups, which every wait loop tolerates. In `.dropOldest` the producer
//   only *signals* (a non-blocking semaphore post, a futex wake when the consumer sleeps); it never waits.
//
// Thread Sanitizer does not model fences, but it sees only atomic accesses here, so it has nothing to report.
import Atomics
import Dispatch
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A lock-free single-producer single-consumer ring of Float samples that tracks absolute stream positions.
public final class SampleRing: @unchecked Sendable {
    /// What the producer does when the ring is full.
    public enum OverflowPolicy: Sendable, Equatable {
        /// Live capture: the producer never waits; the oldest unread samples are overwritten and counted as dropped.
        case dropOldest
        /// Files and pipes: the producer waits until the consumer frees space; nothing is lost.
        case lossless
    }

    /// The outcome of one `read(into:)`.
    public struct ReadResult: Sendable, Equatable {
        /// Samples copied to the front of the caller's buffer.
        public var count: Int
        /// Absolute stream index of the first copied sample (the read position after any drop).
        public var startIndex: Int64
        /// Samples lost immediately before `startIndex` since the previous read (overwritten before being read);
        /// can be non-zero with `count` 0 when everything readable was overwritten during the read.
        public var dropped: Int64
        /// True when the ring is closed and fully drained (then `count` is 0).
        public var isEndOfStream: Bool

        /// Builds a result.
        public init(count: Int, startIndex: Int64, dropped: Int64, isEndOfStream: Bool) {
            self.count = count
            self.startIndex = startIndex
            self.dropped = dropped
            self.isEndOfStream = isEndOfStream
        }
    }

    /// The outcome of a consumer wait.
    public enum WaitResult: Sendable, Equatable {
        /// At least the requested number of samples is readable (`available` of them).
        case ready(available: Int)
        /// The ring is closed and fewer samples than requested remain (`available` of them, possibly 0).
        case closed(available: Int)
        /// The timeout expired first (`available` samples are readable).
        case timedOut(available: Int)
    }

    /// Slots in the ring (a power of two).
    public let capacity: Int
    /// The overflow policy chosen at init.
    public let policy: OverflowPolicy

    private let mask: Int64
    /// The samples, as Float bit patterns in 32-bit atomics.
    private let slots: UnsafeMutablePointer<UnsafeAtomic<UInt32>.Storage>
    /// Positions published by the producer: every sample below it is stored.
    private let writePosition = ManagedAtomic<Int64>(0)
    /// Upper bound of positions the producer may be storing right now (claimed before storing).
    private let claim = ManagedAtomic<Int64>(0)
    /// The consumer's position: every sample below it has been read or dropped.
    private let readPosition = ManagedAtomic<Int64>(0)
    /// Samples the consumer found overwritten, in total.
    private let droppedCount = ManagedAtomic<Int64>(0)
    /// Largest fill the producer observed after a write.
    private let highWater = ManagedAtomic<Int>(0)
    private let closedFlag = ManagedAtomic<Bool>(false)
    /// Write position the sleeping consumer waits for (0: not sleeping).
    private let consumerTarget = ManagedAtomic<Int64>(0)
    /// Read position the sleeping lossless producer waits for (0: not sleeping).
    private let producerTarget = ManagedAtomic<Int64>(0)
    /// Reads whose copy the producer lapped (prefix discarded); consumer-side diagnostic for tests.
    internal private(set) var tornReadCount = 0
    private let consumerSignal = DispatchSemaphore(value: 0)
    private let producerSignal = DispatchSemaphore(value: 0)

    /// Creates a ring holding at least `capacity` samples (rounded up to a power of two); all allocation happens here.
    public init(capacity requested: Int, policy: OverflowPolicy) {
        precondition(requested >= 1, "SampleRing capacity must be at least 1, got \(requested)")
        precondition(requested <= 1 << 30, "SampleRing capacity \(requested) is unreasonably large")
        var c = 1
        while c < requested { c <<= 1 }
        capacity = c
        mask = Int64(c - 1)
        self.policy = policy
        slots = .allocate(capacity: c)
        for i in 0..<c { (slots + i).initialize(to: UnsafeAtomic<UInt32>.Storage(0)) }
    }

    deinit {
        slots.deinitialize(count: capacity)
        slots.deallocate()
    }

    /// The atomic view of the slot holding absolute position `position`.
    @inline(__always)
    private func slot(_ position: Int64) -> UnsafeAtomic<UInt32> {
        UnsafeAtomic(at: slots + Int(position & mask))
    }

    // MARK: Producer

    /// Appends samples (producer only): `.dropOldest` never waits; `.lossless` waits until all are stored or the ring is closed.
    public func write(_ samples: UnsafeBufferPointer<Float>) {
        guard let base = samples.baseAddress, samples.count > 0 else { return }
        if closedFlag.load(ordering: .acquiring) { return }  // writes after close are ignored
        var w = writePosition.load(ordering: .relaxed)  // only this thread stores it
        var offset = 0
        let capacity64 = Int64(capacity)
        while offset < samples.count {
            let remaining = samples.count - offset
            var chunk: Int
            if policy == .lossless {
                var free = Int(capacity64 - (w - readPosition.load(ordering: .acquiring)))
                while free == 0 {
                    if closedFlag.load(ordering: .acquiring) { return }
                    // Wait for room for the rest of this write, or half the ring, whichever is smaller.
                    let want = Int64(min(remaining, max(1, capacity / 2)))
                    waitForReadPosition(w - capacity64 + want)
                    free = Int(capacity64 - (w - readPosition.load(ordering: .acquiring)))
                }
                chunk = min(free, remaining)
            } else {
                if closedFlag.load(ordering: .relaxed) { return }
                chunk = min(capacity, remaining)
            }
            let end = w + Int64(chunk)
            // Announce the positions about to be overwritten before touching any slot (see the ordering argument).
            claim.store(end, ordering: .relaxed)
            atomicMemoryFence(ordering: .releasing)
            let src = base + offset
            for i in 0..<chunk {
                slot(w + Int64(i)).store(src[i].bitPattern, ordering: .relaxed)
            }
            writePosition.store(end, ordering: .sequentiallyConsistent)
            w = end
            offset += chunk
            let fill = Int(min(capacity64, end - readPosition.load(ordering: .relaxed)))
            if fill > highWater.load(ordering: .relaxed) { highWater.store(fill, ordering: .relaxed) }
            wakeConsumer(writtenUpTo: end)
        }
    }

    /// Marks the end of the stream (normally the producer; the consumer may call it to abandon a lossless producer).
    public func close() {
        closedFlag.store(true, ordering: .sequentiallyConsistent)
        if consumerTarget.exchange(0, ordering: .sequentiallyConsistent) != 0 { consumerSignal.signal() }
        if producerTarget.exchange(0, ordering: .sequentiallyConsistent) != 0 { producerSignal.signal() }
    }

    /// Signals the consumer if it sleeps waiting for a write position this write reached.
    @inline(__always)
    private func wakeConsumer(writtenUpTo end: Int64) {
        let target = consumerTarget.load(ordering: .sequentiallyConsistent)
        if target != 0, end >= target,
           consumerTarget.compareExchange(expected: target, desired: 0, ordering: .sequentiallyConsistent).exchanged {
            consumerSignal.signal()
        }
    }

    /// Lossless producer: sleeps until the read position reaches `target` or the ring is closed (spurious returns allowed).
    private func waitForReadPosition(_ target: Int64) {
        producerTarget.store(max(1, target), ordering: .sequentiallyConsistent)
        if readPosition.load(ordering: .sequentiallyConsistent) >= target
            || closedFlag.load(ordering: .sequentiallyConsistent) {
            producerTarget.store(0, ordering: .sequentiallyConsistent)
            return
        }
        // The timeout only bounds the damage of a missed wake-up; the protocol above does not miss any.
        _ = producerSignal.wait(timeout: .now() + .milliseconds(100))
        producerTarget.store(0, ordering: .sequentiallyConsistent)
    }

    // MARK: Consumer

    /// Copies up to `buffer.count` of the oldest unread samples to the front of `buffer` (consumer only); never waits.
    public func read(into buffer: UnsafeMutableBufferPointer<Float>) -> ReadResult {
        var r = readPosition.load(ordering: .relaxed)  // only this thread stores it
        let capacity64 = Int64(capacity)
        var dropped: Int64 = 0
        var accounted: Int64 = 0  // part of `dropped` already added to the shared counter
        guard let dst = buffer.baseAddress, buffer.count > 0 else {
            return ReadResult(count: 0, startIndex: r, dropped: 0, isEndOfStream: isDrained(at: r))
        }
        while true {
            // Load `closed` before the write position: if closed is seen, the final write position is seen too.
            let closed = closedFlag.load(ordering: .acquiring)
            let w = writePosition.load(ordering: .sequentiallyConsistent)
            if w - r > capacity64 {
                dropped += w - capacity64 - r
                r = w - capacity64
            }
            // Skip what the producer is already known to be overwriting (an optimisation; the check below decides).
            let risky = claim.load(ordering: .relaxed) - capacity64
            if risky > r && policy == .dropOldest {
                let skip = min(risky, w) - r
                dropped += skip
                r += skip
            }
            let k = Int(min(Int64(buffer.count), w - r))
            if k == 0 {
                publish(read: r, newlyDropped: dropped - accounted)
                return ReadResult(count: 0, startIndex: r, dropped: dropped, isEndOfStream: closed)
            }
            for i in 0..<k {
                dst[i] = Float(bitPattern: slot(r + Int64(i)).load(ordering: .relaxed))
            }
            atomicMemoryFence(ordering: .acquiring)
            let firstIntact = claim.load(ordering: .relaxed) - capacity64
            var start = r
            var count = k
            if firstIntact > r {
                // The producer lapped part of what was copied: discard that prefix and count it as dropped.
                tornReadCount += 1
                let lost = Int(min(firstIntact - r, Int64(k)))
                dropped += Int64(lost)
                start = r + Int64(lost)
                count = k - lost
                if count > 0 { memmove(dst, dst + lost, count * MemoryLayout<Float>.stride) }
            }
            r = start + Int64(count)
            publish(read: r, newlyDropped: dropped - accounted)
            accounted = dropped
            if count == 0 { continue }  // everything copied was overwritten; try again with fresh positions
            return ReadResult(count: count, startIndex: start, dropped: dropped, isEndOfStream: false)
        }
    }

    /// Stores the new read position, accounts drops and wakes a sleeping lossless producer.
    @inline(__always)
    private func publish(read r: Int64, newlyDropped: Int64) {
        if newlyDropped > 0 { droppedCount.wrappingIncrement(by: newlyDropped, ordering: .relaxed) }
        readPosition.store(r, ordering: .sequentiallyConsistent)
        let target = producerTarget.load(ordering: .sequentiallyConsistent)
        if target != 0, r >= target,
           producerTarget.compareExchange(expected: target, desired: 0, ordering: .sequentiallyConsistent).exchanged {
            producerSignal.signal()
        }
    }

    /// True when the ring is closed and nothing remains after read position `r`.
    private func isDrained(at r: Int64) -> Bool {
        closedFlag.load(ordering: .acquiring) && writePosition.load(ordering: .acquiring) == r
    }

    /// Waits (consumer only) until at least `minimum` samples (clamped to 1...capacity) are readable, the ring is closed, or `timeout` passes.
    public func waitForSamples(_ minimum: Int, timeout: Duration) -> WaitResult {
        let need = Int64(min(max(minimum, 1), capacity))
        let (seconds, attoseconds) = timeout.components
        let nanos = min(max(0, seconds), 1_000_000_000) * 1_000_000_000 + max(0, attoseconds) / 1_000_000_000
        let deadline = DispatchTime.now() + .nanoseconds(Int(min(nanos, Int64(Int.max / 2))))
        while true {
            let r = readPosition.load(ordering: .relaxed)
            let closed = closedFlag.load(ordering: .sequentiallyConsistent)
            let available = self.available(from: r)
            if available >= need { return .ready(available: Int(available)) }
            if closed { return .closed(available: Int(available)) }
            consumerTarget.store(r + need, ordering: .sequentiallyConsistent)
            if writePosition.load(ordering: .sequentiallyConsistent) >= r + need
                || closedFlag.load(ordering: .sequentiallyConsistent) {
                consumerTarget.store(0, ordering: .sequentiallyConsistent)
                continue
            }
            let outcome = consumerSignal.wait(timeout: deadline)
            consumerTarget.store(0, ordering: .sequentiallyConsistent)
            if outcome == .timedOut {
                let left = self.available(from: r)
                if left >= need { return .ready(available: Int(left)) }
                if closedFlag.load(ordering: .acquiring) { return .closed(available: Int(self.available(from: r))) }
                return .timedOut(available: Int(left))
            }
        }
    }

    /// Readable samples after read position `r` (at most `capacity`).
    @inline(__always)
    private func available(from r: Int64) -> Int64 {
        min(Int64(capacity), writePosition.load(ordering: .sequentiallyConsistent) - r)
    }

    // MARK: Counters (safe from any thread; momentary values)

    /// Samples written by the producer since init.
    public var totalWritten: Int64 { writePosition.load(ordering: .relaxed) }
    /// Samples lost to overwriting: those the consumer skipped plus those currently overwritten but not yet skipped.
    public var totalDropped: Int64 {
        let r = readPosition.load(ordering: .relaxed)
        let w = writePosition.load(ordering: .relaxed)
        return droppedCount.load(ordering: .relaxed) + max(0, w - Int64(capacity) - r)
    }
    /// Absolute position of the next sample the consumer will read (before any drop).
    public var readIndex: Int64 { readPosition.load(ordering: .relaxed) }
    /// Samples currently readable (0...capacity).
    public var fill: Int {
        let r = readPosition.load(ordering: .relaxed)
        return Int(max(0, min(Int64(capacity), writePosition.load(ordering: .relaxed) - r)))
    }
    /// The highest fill the producer observed right after a write.
    public var highWaterMark: Int { highWater.load(ordering: .relaxed) }
    /// True once `close()` was called.
    public var isClosed: Bool { closedFlag.load(ordering: .acquiring) }
}
