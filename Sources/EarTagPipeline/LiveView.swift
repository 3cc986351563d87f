// `eartag listen --view`: a live ANSI terminal view of the top labels with bars, the input level and the real-time
// factor, redrawn after every window into a buffer allocated once (the steady state does not allocate).
// ref: ECMA-48 control sequences (CUP `ESC [ H`, EL `ESC [ K`, ED `ESC [ J`); xterm private modes 1049
// (alternate screen) and 25 (cursor visibility).
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import EarTagModel

/// Draws the live view on a terminal file descriptor; `finish` restores the terminal.
public final class LiveView: ListenObserver {
    /// Labels shown (the best scores of the last window).
    public let rows: Int
    private let fd: Int32
    /// Display names, cut or padded to `nameWidth` columns, encoded once.
    private let names: [[UInt8]]
    /// Whether each label is between its start and end event.
    private var active: [Bool]
    /// The frame being drawn (capacity reserved once).
    private var frame: [UInt8] = []
    /// Indices of the best `rows` scores.
    private var best: [Int]
    /// The last few event lines, preformatted when the event arrives.
    private var recent: [[UInt8]]
    private var recentCount = 0
    private var realTimeFactor = 0.0
    private var started = false
    private let header: [UInt8]
    private let printer: StreamRecordPrinter
    private static let nameWidth = 32
    private static let barWidth = 50
    private static let recentLines = 6

    /// A view of `rows` labels on `fd` (standard output by default); `title` names the source and model.
    public init(labels: [Label], rows: Int, title: String, fd: Int32 = 1) {
        self.rows = max(1, min(rows, labels.count))
        self.fd = fd
        names = labels.map { l in
            // Whole scalars only, one column each, padded to the column width.
            var b: [UInt8] = [], columns = 0
            for u in l.displayName.unicodeScalars.prefix(Self.nameWidth) {
                b += Array(String(u).utf8)
                columns += 1
            }
            return b + [UInt8](repeating: 32, count: Self.nameWidth - columns)
        }
        active = [Bool](repeating: false, count: labels.count)
        best = [Int](repeating: 0, count: self.rows)
        recent = [[UInt8]](repeating: [], count: Self.recentLines)
        header = Array("EarTag live view: \(title)   (Ctrl-C to stop)".utf8)
        printer = StreamRecordPrinter(format: .text, top: 1, allScores: false, labels: labels)
        frame.reserveCapacity(16384)
    }

    public func window(_ w: WindowStats, scores: UnsafeBufferPointer<Float>) {
        selectBest(scores)
        draw(w, scores)
    }

    public func record(_ r: StreamRecord) {
        switch r {
        case let .start(l, _, _, _): active[l] = true
        case let .end(l, _, _, _, _, _): active[l] = false
        case .window: return
        }
        var line = Array(printer.render(r).utf8.dropLast())
        if line.count > 110 { line = Array(line.prefix(110)) }
        recent[recentCount % Self.recentLines] = line
        recentCount += 1
    }

    public func hop(_ h: HopStats) { realTimeFactor = h.realTimeFactor }

    /// Leaves the alternate screen and shows the cursor again.
    public func finish() {
        guard started else { return }
        started = false
        frame.removeAll(keepingCapacity: true)
        put("\u{1B}[?25h\u{1B}[?1049l")
        flush()
    }

    /// Keeps the `rows` highest scores in `best`, descending (ties: lower index first). O(classes x rows).
    private func selectBest(_ scores: UnsafeBufferPointer<Float>) {
        var filled = 0
        for i in 0..<scores.count {
            let s = scores[i]
            var pos = filled
            while pos > 0 && scores[best[pos - 1]] < s { pos -= 1 }
            guard pos < rows else { continue }
            var j = min(filled, rows - 1)
            while j > pos { best[j] = best[j - 1]; j -= 1 }
            best[pos] = i
            filled = min(filled + 1, rows)
        }
    }

    /// Redraws the whole screen from the home position, clearing each line's rest.
    private func draw(_ w: WindowStats, _ scores: UnsafeBufferPointer<Float>) {
        frame.removeAll(keepingCapacity: true)
        if !started {
            started = true
            put("\u{1B}[?1049h\u{1B}[?25l\u{1B}[2J")
        }
        put("\u{1B}[H")
        frame.append(contentsOf: header)
        endLine()
        put("window ")
        fixed(Double(w.startSample) / 32000, decimals: 1, width: 8)
        put(" -")
        fixed(Double(w.endSample) / 32000, decimals: 1, width: 8)
        put(" s   real-time factor ")
        fixed(realTimeFactor, decimals: 4, width: 7)
        put("   inference ")
        fixed(w.inferenceSeconds * 1000, decimals: 1, width: 6)
        put(" ms")
        endLine()
        put("level  ")
        fixed(max(-99.9, w.levelDBFS), decimals: 1, width: 6)
        put(" dBFS ")
        bar((w.levelDBFS + 90) / 90)
        if w.skipped { put("  below --min-dbfs: inference skipped") }
        endLine()
        endLine()
        for r in 0..<rows {
            let i = best[r]
            frame.append(contentsOf: names[i])
            put(" ")
            fixed(Double(scores[i]), decimals: 3, width: 5)
            put(" ")
            bar(Double(scores[i]))
            put(active[i] ? "  ON" : "")
            endLine()
        }
        endLine()
        put("recent events:")
        endLine()
        let shown = min(recentCount, Self.recentLines)
        for k in 0..<shown {
            frame.append(contentsOf: recent[(recentCount - shown + k) % Self.recentLines])
            endLine()
        }
        put("\u{1B}[J")
        flush()
    }

    /// `[#####.....]` for a fraction 0...1.
    private func bar(_ fraction: Double) {
        let f = fraction.isFinite ? max(0, min(1, fraction)) : 0
        let n = Int((f * Double(Self.barWidth)).rounded())
        frame.append(UInt8(ascii: "["))
        for k in 0..<Self.barWidth { frame.append(k < n ? UInt8(ascii: "#") : UInt8(ascii: ".")) }
        frame.append(UInt8(ascii: "]"))
    }

    /// Clears to the end of the line and moves to the next.
    private func endLine() { put("\u{1B}[K\r\n") }

    /// Appends a string's bytes (static strings: no allocation).
    private func put(_ s: StaticString) {
        s.withUTF8Buffer { frame.append(contentsOf: $0) }
    }

    /// Appends `value` with `decimals` digits after the point, right-aligned in `width` columns.
    private func fixed(_ value: Double, decimals: Int, width: Int) {
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        let v = value.isFinite ? value : 0
        var units = Int64((abs(v) * scale).rounded())
        let negative = v < 0 && units > 0
        // Digits are appended lowest first, then the appended part is reversed in place.
        let begin = frame.count
        var written = 0
        repeat {
            frame.append(UInt8(ascii: "0") + UInt8(units % 10))
            units /= 10
            written += 1
            if written == decimals && decimals > 0 { frame.append(UInt8(ascii: ".")) }
        } while units > 0 || written <= decimals
        if negative { frame.append(UInt8(ascii: "-")) }
        while frame.count - begin < width { frame.append(32) }
        frame[begin...].reverse()
    }

    /// Writes the frame to the terminal (a closed terminal is ignored: the listener goes on).
    private func flush() {
        frame.withUnsafeBytes { buf in
            var offset = 0
            while offset < buf.count {
                let n = Glibc.write(fd, buf.baseAddress! + offset, buf.count - offset)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return }
                offset += n
            }
        }
    }
}
