// `eartag tag --window --plot OUT.svg`: the log-mel spectrogram with the top labels' scores over time beneath it.
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import EarTagPlatform
import EarTagModel

/// Renders one file's spectrogram and per-window scores as a self-contained SVG.
public struct SpectrogramPlot {
    /// The file's batch log-mel, [bins][frames].
    public var mel: [Float]
    public var bins: Int
    public var frames: Int
    /// Seconds per mel frame (hop / sample rate).
    public var frameSeconds: Double
    /// Window records: start, end (seconds) and all class scores.
    public var windows: [(start: Double, end: Double, scores: [Float])]
    public var labels: [Label]
    /// How many labels to draw (those with the highest peak score over all windows).
    public var top: Int
    public var title: String

    public init(mel: [Float], bins: Int, frames: Int, frameSeconds: Double,
                windows: [(start: Double, end: Double, scores: [Float])], labels: [Label], top: Int, title: String) {
        self.mel = mel
        self.bins = bins
        self.frames = frames
        self.frameSeconds = frameSeconds
        self.windows = windows
        self.labels = labels
        self.top = top
        self.title = title
    }

    /// The SVG document.
    public func svg() -> String {
        let width = 1000.0, left = 60.0, imageHeight = 256.0, chartHeight = 220.0, gap = 30.0
        let imageTop = 30.0, chartTop = imageTop + imageHeight + gap
        let total = Double(frames) * frameSeconds
        let columns = min(frames, 1000)
        let png = PNGWriter.rgb(width: columns, height: bins, pixel: pixelFunction(columns: columns))
        var s = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width + left + 220))" \
        height="\(Int(chartTop + chartHeight + 40))" font-family="sans-serif" font-size="12">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(left)" y="18" font-size="14">\(xmlEscape(title))</text>
        <image x="\(left)" y="\(imageTop)" width="\(width)" height="\(imageHeight)" preserveAspectRatio="none" \
        href="data:image/png;base64,\(Data(png).base64EncodedString())"/>
        <text x="\(left - 8)" y="\(imageTop + 10)" text-anchor="end">mel \(bins)</text>
        <text x="\(left - 8)" y="\(imageTop + imageHeight)" text-anchor="end">0</text>
        <rect x="\(left)" y="\(chartTop)" width="\(width)" height="\(chartHeight)" fill="none" stroke="#888"/>

        """
        for v in [0.0, 0.5, 1.0] {
            let y = chartTop + chartHeight * (1 - v)
            s += "<text x=\"\(left - 8)\" y=\"\(y + 4)\" text-anchor=\"end\">\(v)</text>\n"
        }
        let ticks = max(1, Int((total / 10).rounded(.up)))
        for k in stride(from: 0.0, through: total, by: Double(ticks)) {
            let x = left + width * k / max(total, 1e-9)
            s += "<text x=\"\(x)\" y=\"\(chartTop + chartHeight + 16)\" text-anchor=\"middle\">\(Int(k)) s</text>\n"
        }
        let palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
        for (rank, c) in topLabels().enumerated() {
            let colour = palette[rank % palette.count]
            let points = windows.map { w -> String in
                let x = left + width * ((w.start + w.end) / 2) / max(total, 1e-9)
                let y = chartTop + chartHeight * (1 - Double(w.scores[c]))
                return String(printf: "%.1f,%.1f", x, y)
            }.joined(separator: " ")
            s += "<polyline fill=\"none\" stroke=\"\(colour)\" stroke-width=\"2\" points=\"\(points)\"/>\n"
            s += "<text x=\"\(left + width + 12)\" y=\"\(chartTop + 14 + Double(rank) * 18)\" fill=\"\(colour)\">"
                + "\(xmlEscape(labels[c].displayName))</text>\n"
        }
        return s + "</svg>\n"
    }

    /// Classes with the highest peak score over all windows, best first.
    func topLabels() -> [Int] {
        guard let n = windows.first?.scores.count else { return [] }
        var peak = [Float](repeating: 0, count: n)
        for w in windows { for i in 0..<n { peak[i] = max(peak[i], w.scores[i]) } }
        return topClassIndices(peak, top)
    }

    /// Colour of image pixel (x, y): the mel averaged over the frames of column x, top row = highest bin.
    private func pixelFunction(columns: Int) -> (Int, Int) -> (UInt8, UInt8, UInt8) {
        let lo = mel.min() ?? 0, hi = mel.max() ?? 1
        let span = max(hi - lo, 1e-6)
        return { x, y in
            let f0 = x * frames / columns, f1 = max(f0 + 1, (x + 1) * frames / columns)
            let bin = bins - 1 - y
            var sum: Float = 0
            for f in f0..<f1 { sum += mel[bin * frames + f] }
            return colourMap((sum / Float(f1 - f0) - lo) / span)
        }
    }
}

/// A dark-blue -> teal -> yellow colour ramp for values in [0, 1].
func colourMap(_ v: Float) -> (UInt8, UInt8, UInt8) {
    let stops: [(Float, Float, Float)] = [(0.07, 0.02, 0.25), (0.17, 0.45, 0.56), (0.35, 0.76, 0.42), (0.99, 0.91, 0.15)]
    let t = min(max(v, 0), 1) * Float(stops.count - 1)
    let i = min(Int(t), stops.count - 2)
    let u = t - Float(i)
    let a = stops[i], b = stops[i + 1]
    func c(_ x: Float, _ y: Float) -> UInt8 { UInt8(max(0, min(255, (x + (y - x) * u) * 255))) }
    return (c(a.0, b.0), c(a.1, b.1), c(a.2, b.2))
}

/// Escapes text for SVG.
func xmlEscape(_ s: String) -> String {
    s.replacing("&", with: "&amp;").replacing("<", with: "&lt;")
        .replacing(">", with: "&gt;").replacing("\"", with: "&quot;")
}

/// Minimal PNG encoder: 8-bit RGB, zlib stream of stored (uncompressed) deflate blocks.
/// ref: PNG specification (ISO/IEC 15948) chunks IHDR/IDAT/IEND; RFC 1950 (zlib), RFC 1951 3.2.4 (stored blocks).
enum PNGWriter {
    /// Encodes a width x height image whose pixels come from `pixel(x, y)`.
    static func rgb(width: Int, height: Int, pixel: (Int, Int) -> (UInt8, UInt8, UInt8)) -> [UInt8] {
        var raw: [UInt8] = []
        raw.reserveCapacity(height * (1 + 3 * width))
        for y in 0..<height {
            raw.append(0)  // filter: none
            for x in 0..<width {
                let (r, g, b) = pixel(x, y)
                raw += [r, g, b]
            }
        }
        var zlib: [UInt8] = [0x78, 0x01]
        var offset = 0
        repeat {
            let n = min(65535, raw.count - offset)
            let final: UInt8 = offset + n == raw.count ? 1 : 0
            zlib += [final, UInt8(n & 0xFF), UInt8(n >> 8), UInt8(~n & 0xFF), UInt8((~n >> 8) & 0xFF)]
            zlib += raw[offset..<(offset + n)]
            offset += n
        } while offset < raw.count
        zlib += be32(adler32(raw))
        var png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        png += chunk("IHDR", be32(UInt32(width)) + be32(UInt32(height)) + [8, 2, 0, 0, 0])
        png += chunk("IDAT", zlib)
        png += chunk("IEND", [])
        return png
    }

    /// One PNG chunk: length, type, data, CRC-32 of type and data.
    static func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let body = Array(type.utf8) + data
        return be32(UInt32(data.count)) + body + be32(CRC32.checksum(body))
    }

    /// Big-endian bytes of a 32-bit value.
    static func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)] }

    /// Adler-32 checksum (RFC 1950 section 8).
    static func adler32(_ bytes: [UInt8]) -> UInt32 {
        var a: UInt32 = 1, b: UInt32 = 0
        for x in bytes {
            a = (a + UInt32(x)) % 65521
            b = (b + a) % 65521
        }
        return b << 16 | a
    }
}
