// Tests of SampleRing: sequence-numbered samples through concurrent producer and consumer threads in both
// policies, close/EOF, timeouts, wrap-around, drop accounting and capacity edge cases. Also run under TSan.
import XCTest
import Foundation
@testable import EarTagAudio

/// The sample carrying sequence number `n` (its bit pattern is n + 1, so a never-written slot (0) is detectable).
private func tagged(_ n: Int64) -> Float { Float(bitPattern: UInt32(truncatingIfNeeded: n + 1)) }

/// The sequence number carried by a sample made by `tagged`.
private func sequence(_ x: Float) -> Int64 { Int64(x.bitPattern) - 1 }

/// Deterministic chunk sizes in 1...limit (xorshift).
private struct ChunkSizes {
    var state: UInt64
    let limit: Int
    /// Next size in 1...limit.
    mutating func next() -> Int {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return 1 + Int(state % UInt64(limit))
    }
}

/// Runs `body` on a new thread; the returned semaphore is signalled when it finishes.
private func spawn(_ body: @escaping @Sendable () -> Void) -> DispatchSemaphore {
    let done = DispatchSemaphore(value: 0)
    let thread = Thread {
        body()
        done.signal()
    }
    thread.stackSize = 1 << 20
    thread.start()
    return done
}

/// Writes sequence numbers start..<start+count in chunks of 1...maxChunk, optionally yielding every few chunks.
private func produce(_ ring: SampleRing, count: Int, maxChunk: Int, seed: UInt64, yieldEvery: Int = 0) {
    var sizes = ChunkSizes(state: seed, limit: maxChunk)
    var chunk = [Float](repeating: 0, count: maxChunk)
    var n: Int64 = 0
    var chunks = 0
    while n < Int64(count) {
        let k = min(sizes.next(), count - Int(n))
        for i in 0..<k { chunk[i] = tagged(n + Int64(i)) }
        chunk.withUnsafeBufferPointer { ring.write(UnsafeBufferPointer(rebasing: $0[0..<k])) }
        n += Int64(k)
        chunks += 1
        if yieldEvery > 0 && chunks % yieldEvery == 0 { sched_yield() }
    }
}

/// What a consumer saw: samples received, drops reported, gaps checked.
private struct ConsumerLog {
    var received: Int64 = 0
    var droppedReported: Int64 = 0
    var reads = 0
    var readsWithDrops = 0
    var errors: [String] = []
    var sawEOF = false
}

/// Drains `ring` until EOF, checking that samples are consecutive sequence numbers equal to their absolute indices
/// and that every gap equals the reported drop. `pause` runs after each read (a slow consumer).
private func consume(_ ring: SampleRing, bufferSize: Int, seed: UInt64, pause: (Int) -> Void = { _ in }) -> ConsumerLog {
    var log = ConsumerLog()
    var buffer = [Float](repeating: 0, count: bufferSize)
    var sizes = ChunkSizes(state: seed, limit: bufferSize)
    var expected: Int64 = 0
    while true {
        let want = sizes.next()
        let result = buffer.withUnsafeMutableBufferPointer {
            ring.read(into: UnsafeMutableBufferPointer(rebasing: $0[0..<want]))
        }
        // Every result (even an empty one, when all that was readable got overwritten) reports the gap before it.
        if result.startIndex != expected + result.dropped {
            log.errors.append("read at \(result.startIndex), expected \(expected) + dropped \(result.dropped)")
        }
        if result.dropped > 0 { log.readsWithDrops += 1 }
        log.droppedReported += result.dropped
        expected = result.startIndex + Int64(result.count)
        if result.isEndOfStream { log.sawEOF = true; break }
        if result.count == 0 {
            _ = ring.waitForSamples(1, timeout: .seconds(5))
            continue
        }
        log.reads += 1
        for i in 0..<result.count where sequence(buffer[i]) != result.startIndex + Int64(i) {
            log.errors.append("sample \(i) of read at \(result.startIndex) carries \(sequence(buffer[i]))")
            break
        }
        if log.errors.count > 5 { break }
        log.received += Int64(result.count)
        pause(log.reads)
    }
    return log
}

/// Concurrent and single-threaded tests of the SPSC sample ring.
final class SampleRingTests: XCTestCase {
    /// Lossless: a million samples through a small ring, random chunk sizes on both sides: nothing lost, duplicated or reordered.
    func testLosslessConcurrentKeepsEverythingInOrder() {
        let count = 1_000_000
        let ring = SampleRing(capacity: 1000, policy: .lossless)
        XCTAssertEqual(ring.capacity, 1024)
        let producer = spawn {
            produce(ring, count: count, maxChunk: 700, seed: 0x1234_5678_9ABC_DEF1)
            ring.close()
        }
        let log = consume(ring, bufferSize: 500, seed: 0xDEAD_BEEF_CAFE_F00D)
        producer.wait()
        XCTAssertEqual(log.errors, [])
        XCTAssertTrue(log.sawEOF)
        XCTAssertEqual(log.received, Int64(count))
        XCTAssertEqual(log.droppedReported, 0)
        XCTAssertEqual(ring.totalDropped, 0)
        XCTAssertEqual(ring.totalWritten, Int64(count))
        XCTAssertLessThanOrEqual(ring.highWaterMark, ring.capacity)
        XCTAssertGreaterThan(ring.highWaterMark, 0)
    }

    /// Lossless with a slow consumer: the producer waits (the ring fills up) and still nothing is lost.
    func testLosslessSlowConsumerBlocksProducer() {
        let count = 200_000
        let ring = SampleRing(capacity: 256, policy: .lossless)
        let producer = spawn {
            produce(ring, count: count, maxChunk: 1000, seed: 77)
            ring.close()
        }
        let log = consume(ring, bufferSize: 64, seed: 99) { reads in
            if reads % 200 == 0 { usleep(200) }
        }
        producer.wait()
        XCTAssertEqual(log.errors, [])
        XCTAssertEqual(log.received, Int64(count))
        XCTAssertEqual(ring.totalDropped, 0)
        XCTAssertEqual(ring.highWaterMark, 256, "a slow consumer should let the ring fill up")
    }

    /// Drop-oldest with a deliberately slow consumer: no duplicates or reordering; each gap equals the reported drop.
    func testDropOldestSlowConsumerAccountsEveryGap() {
        let count = 1_000_000
        let ring = SampleRing(capacity: 1024, policy: .dropOldest)
        let producer = spawn {
            produce(ring, count: count, maxChunk: 320, seed: 5, yieldEvery: 8)
            ring.close()
        }
        let log = consume(ring, bufferSize: 256, seed: 6) { reads in
            if reads % 50 == 0 { usleep(100) }
        }
        producer.wait()
        XCTAssertEqual(log.errors, [])
        XCTAssertTrue(log.sawEOF)
        XCTAssertGreaterThan(log.droppedReported, 0, "the consumer was meant to fall behind")
        XCTAssertEqual(log.received + log.droppedReported, Int64(count), "every sample is either read or counted dropped")
        XCTAssertEqual(ring.totalDropped, log.droppedReported)
        XCTAssertEqual(ring.totalWritten, Int64(count))
        XCTAssertEqual(ring.highWaterMark, ring.capacity)
        print("dropOldest slow consumer: received \(log.received), dropped \(log.droppedReported) in \(log.readsWithDrops) gaps")
    }

    /// Drop-oldest with whole-ring reads racing a fast producer: torn copies are detected (the sequence check would
    /// catch any overwritten sample that slipped through) and counted as drops.
    func testDropOldestWholeRingReadsNeverKeepOverwrittenSamples() {
        let count = 2_000_000
        let ring = SampleRing(capacity: 64, policy: .dropOldest)
        let producer = spawn {
            produce(ring, count: count, maxChunk: 48, seed: 11, yieldEvery: 3)
            ring.close()
        }
        let log = consume(ring, bufferSize: 64, seed: 12)
        producer.wait()
        XCTAssertEqual(log.errors, [])
        XCTAssertTrue(log.sawEOF)
        XCTAssertEqual(log.received + log.droppedReported, Int64(count))
        XCTAssertEqual(ring.totalDropped, log.droppedReported)
        print("dropOldest racing: received \(log.received), dropped \(log.droppedReported) in \(log.readsWithDrops) gaps,"
              + " \(ring.tornReadCount) copies lapped by the producer and trimmed")
    }

    /// Close: the consumer drains what is left, then sees EOF; waits report `.closed`; late writes are ignored.
    func testCloseDrainsThenReportsEndOfStream() {
        for policy in [SampleRing.OverflowPolicy.dropOldest, .lossless] {
            let ring = SampleRing(capacity: 128, policy: policy)
            let samples = (0..<100).map { tagged(Int64($0)) }
            samples.withUnsafeBufferPointer { ring.write($0) }
            ring.close()
            XCTAssertTrue(ring.isClosed)
            XCTAssertEqual(ring.waitForSamples(200, timeout: .seconds(5)), .closed(available: 100))
            XCTAssertEqual(ring.waitForSamples(50, timeout: .seconds(5)), .ready(available: 100))
            samples.withUnsafeBufferPointer { ring.write($0) }  // after close: ignored
            XCTAssertEqual(ring.totalWritten, 100)
            var out = [Float](repeating: 0, count: 60)
            let first = out.withUnsafeMutableBufferPointer { ring.read(into: $0) }
            XCTAssertEqual(first, .init(count: 60, startIndex: 0, dropped: 0, isEndOfStream: false))
            let second = out.withUnsafeMutableBufferPointer { ring.read(into: $0) }
            XCTAssertEqual(second, .init(count: 40, startIndex: 60, dropped: 0, isEndOfStream: false))
            XCTAssertEqual(sequence(out[39]), 99)
            let third = out.withUnsafeMutableBufferPointer { ring.read(into: $0) }
            XCTAssertEqual(third, .init(count: 0, startIndex: 100, dropped: 0, isEndOfStream: true))
            XCTAssertEqual(ring.waitForSamples(1, timeout: .seconds(5)), .closed(available: 0))
        }
    }

    /// A wait times out on an empty ring, and wakes promptly when another thread writes or closes.
    func testWaitTimesOutAndWakesOnWriteOrClose() {
        let ring = SampleRing(capacity: 64, policy: .dropOldest)
        var start = Date()
        XCTAssertEqual(ring.waitForSamples(10, timeout: .milliseconds(50)), .timedOut(available: 0))
        var elapsed = Date().timeIntervalSince(start)
        XCTAssertGreaterThanOrEqual(elapsed, 0.045)
        XCTAssertLessThan(elapsed, 2)

        let writer = spawn {
            usleep(30_000)
            let s = [Float](repeating: 1, count: 5)
            s.withUnsafeBufferPointer { ring.write($0) }
            usleep(30_000)
            s.withUnsafeBufferPointer { ring.write($0) }
        }
        start = Date()
        XCTAssertEqual(ring.waitForSamples(10, timeout: .seconds(10)), .ready(available: 10))
        elapsed = Date().timeIntervalSince(start)
        XCTAssertLessThan(elapsed, 5)
        writer.wait()

        let closer = spawn {
            usleep(30_000)
            ring.close()
        }
        start = Date()
        XCTAssertEqual(ring.waitForSamples(20, timeout: .seconds(10)), .closed(available: 10))
        XCTAssertLessThan(Date().timeIntervalSince(start), 5)
        closer.wait()
    }

    /// A lossless producer blocked on a full ring returns when the consumer closes the ring.
    func testLosslessProducerReleasedByClose() {
        let ring = SampleRing(capacity: 16, policy: .lossless)
        let producer = spawn {
            let s = [Float](repeating: 0, count: 100)
            s.withUnsafeBufferPointer { ring.write($0) }
        }
        usleep(50_000)
        XCTAssertEqual(ring.totalWritten, 16, "the producer should be waiting on the full ring")
        ring.close()
        XCTAssertEqual(producer.wait(timeout: .now() + 5), .success)
        XCTAssertEqual(ring.totalWritten, 16)
    }

    /// Wrap-around in a tiny ring keeps order and absolute indices.
    func testWrapAroundKeepsOrderAndPositions() {
        let ring = SampleRing(capacity: 8, policy: .lossless)
        var next: Int64 = 0
        var expected: Int64 = 0
        var out = [Float](repeating: 0, count: 8)
        for round in 0..<50 {
            let k = 1 + round % 7
            let s = (0..<k).map { tagged(next + Int64($0)) }
            s.withUnsafeBufferPointer { ring.write($0) }
            next += Int64(k)
            XCTAssertEqual(ring.fill, Int(next - expected))
            let want = 1 + (round * 3) % 8
            let r = out.withUnsafeMutableBufferPointer { ring.read(into: UnsafeMutableBufferPointer(rebasing: $0[0..<want])) }
            XCTAssertEqual(r.startIndex, expected)
            XCTAssertEqual(r.dropped, 0)
            for i in 0..<r.count { XCTAssertEqual(sequence(out[i]), expected + Int64(i)) }
            expected += Int64(r.count)
            // Keep the ring from filling in this single-threaded lossless test.
            while ring.fill > 1 {
                let r2 = out.withUnsafeMutableBufferPointer { ring.read(into: $0) }
                for i in 0..<r2.count { XCTAssertEqual(sequence(out[i]), expected + Int64(i)) }
                expected += Int64(r2.count)
            }
        }
        XCTAssertEqual(ring.readIndex, expected)
    }

    /// Drop-oldest accounting in one thread: overrun by several capacities, then read the newest `capacity` samples.
    func testDropOldestOverrunKeepsNewestSamples() {
        let ring = SampleRing(capacity: 16, policy: .dropOldest)
        let s = (0..<40).map { tagged(Int64($0)) }
        s.withUnsafeBufferPointer { ring.write($0) }  // one write larger than the ring
        XCTAssertEqual(ring.fill, 16)
        XCTAssertEqual(ring.totalDropped, 24)
        XCTAssertEqual(ring.highWaterMark, 16)
        var out = [Float](repeating: 0, count: 100)
        let r = out.withUnsafeMutableBufferPointer { ring.read(into: $0) }
        XCTAssertEqual(r, .init(count: 16, startIndex: 24, dropped: 24, isEndOfStream: false))
        XCTAssertEqual((0..<16).map { sequence(out[$0]) }, Array(24..<40))
        XCTAssertEqual(ring.totalDropped, 24)
        // A second overrun after a partial read: the gap is reported once.
        s.withUnsafeBufferPointer { ring.write(UnsafeBufferPointer(rebasing: $0[0..<20])) }
        let r2 = out.withUnsafeMutableBufferPointer { ring.read(into: UnsafeMutableBufferPointer(rebasing: $0[0..<3])) }
        XCTAssertEqual(r2, .init(count: 3, startIndex: 44, dropped: 4, isEndOfStream: false))
        XCTAssertEqual(ring.totalDropped, 28)
        XCTAssertEqual(ring.totalWritten, 60)
    }

    /// Capacities round up to powers of two; a one-slot ring still works in both policies.
    func testCapacityEdgeCases() {
        XCTAssertEqual(SampleRing(capacity: 1, policy: .lossless).capacity, 1)
        XCTAssertEqual(SampleRing(capacity: 3, policy: .lossless).capacity, 4)
        XCTAssertEqual(SampleRing(capacity: 1024, policy: .dropOldest).capacity, 1024)
        XCTAssertEqual(SampleRing(capacity: 1025, policy: .dropOldest).capacity, 2048)

        let tiny = SampleRing(capacity: 1, policy: .dropOldest)
        let s = (0..<10).map { tagged(Int64($0)) }
        s.withUnsafeBufferPointer { tiny.write($0) }
        var out = [Float](repeating: 0, count: 4)
        let r = out.withUnsafeMutableBufferPointer { tiny.read(into: $0) }
        XCTAssertEqual(r, .init(count: 1, startIndex: 9, dropped: 9, isEndOfStream: false))
        XCTAssertEqual(sequence(out[0]), 9)
        let empty = out.withUnsafeMutableBufferPointer { tiny.read(into: UnsafeMutableBufferPointer(rebasing: $0[0..<0])) }
        XCTAssertEqual(empty, .init(count: 0, startIndex: 10, dropped: 0, isEndOfStream: false))

        // A one-slot lossless ring passes a stream between threads one sample at a time.
        let one = SampleRing(capacity: 1, policy: .lossless)
        let producer = spawn {
            produce(one, count: 20_000, maxChunk: 5, seed: 3)
            one.close()
        }
        let log = consume(one, bufferSize: 3, seed: 4)
        producer.wait()
        XCTAssertEqual(log.errors, [])
        XCTAssertEqual(log.received, 20_000)
    }
}
