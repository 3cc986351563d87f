// curves.svg: the training and held-out loss and the held-out mAP per epoch, as a hand-written SVG.
import Foundation

/// One plotted series: name, colour and a value per epoch (nil: not measured that epoch).
private struct CurveSeries {
    var name: String
    var colour: String
    var values: [Double?]
}

/// An SVG with two panels side by side: loss (train, validation) and validation mAP, both against the epoch.
/// Epochs without a value leave a gap in their line; a panel with no value at all says so.
public func curvesSVG(_ history: [EpochMetrics]) -> String {
    let panel = 400.0, top = 40.0, plotHeight = 260.0, left = 60.0, gap = 70.0
    let width = left + 2 * panel + gap + 20, height = 360.0
    var svg = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" \
        viewBox="0 0 \(Int(width)) \(Int(height))" font-family="sans-serif" font-size="12">
        <rect width="100%" height="100%" fill="white"/>

        """
    let epochs = history.map(\.epoch)
    let panels: [(String, [CurveSeries], Bool)] = [
        ("loss", [CurveSeries(name: "train_loss", colour: "#1f77b4", values: history.map { $0.train_loss }),
                  CurveSeries(name: "val_loss", colour: "#ff7f0e", values: history.map(\.val_loss))], false),
        ("held-out mAP", [CurveSeries(name: "val_map", colour: "#2ca02c", values: history.map(\.val_map))], true),
    ]
    for (p, (title, series, unitRange)) in panels.enumerated() {
        let x0 = left + Double(p) * (panel + gap), y0 = top
        svg += "<text x=\"\(fmt(x0 + panel / 2))\" y=\"20\" text-anchor=\"middle\" font-size=\"14\">\(title)</text>\n"
        svg += "<rect x=\"\(fmt(x0))\" y=\"\(fmt(y0))\" width=\"\(fmt(panel))\" height=\"\(fmt(plotHeight))\" "
            + "fill=\"none\" stroke=\"#888\"/>\n"
        let all = series.flatMap { $0.values.compactMap { $0 }.filter(\.isFinite) }
        guard let lo0 = all.min(), let hi0 = all.max(), let first = epochs.first, let last = epochs.last else {
            svg += "<text x=\"\(fmt(x0 + panel / 2))\" y=\"\(fmt(y0 + plotHeight / 2))\" text-anchor=\"middle\">"
                + "not measured</text>\n"
            continue
        }
        var lo = unitRange ? min(0, lo0) : lo0, hi = unitRange ? max(1, hi0) : hi0
        if hi - lo < 1e-12 { lo -= 0.5; hi += 0.5 }
        let span = Double(max(last - first, 1))
        /// Pixel position of (epoch, value).
        func at(_ e: Int, _ v: Double) -> (Double, Double) {
            (x0 + panel * Double(e - first) / span, y0 + plotHeight * (1 - (v - lo) / (hi - lo)))
        }
        for t in 0...4 {
            let v = lo + (hi - lo) * Double(t) / 4, y = at(first, v).1
            svg += "<text x=\"\(fmt(x0 - 6))\" y=\"\(fmt(y + 4))\" text-anchor=\"end\">\(String(format: "%.3g", v))</text>\n"
        }
        for e in epochs where epochs.count <= 20 || e == first || e == last {
            svg += "<text x=\"\(fmt(at(e, lo).0))\" y=\"\(fmt(y0 + plotHeight + 16))\" text-anchor=\"middle\">\(e)</text>\n"
        }
        svg += "<text x=\"\(fmt(x0 + panel / 2))\" y=\"\(fmt(y0 + plotHeight + 34))\" text-anchor=\"middle\">epoch</text>\n"
        for (s, line) in series.enumerated() {
            var points: [[(Double, Double)]] = [[]]
            for (e, v) in zip(epochs, line.values) {
                if let v, v.isFinite { points[points.count - 1].append(at(e, v)) } else if !points.last!.isEmpty { points.append([]) }
            }
            for run in points where !run.isEmpty {
                let text = run.map { "\(fmt($0.0)),\(fmt($0.1))" }.joined(separator: " ")
                svg += "<polyline points=\"\(text)\" fill=\"none\" stroke=\"\(line.colour)\" stroke-width=\"2\"/>\n"
                for (x, y) in run { svg += "<circle cx=\"\(fmt(x))\" cy=\"\(fmt(y))\" r=\"3\" fill=\"\(line.colour)\"/>\n" }
            }
            let ly = y0 + 16 + Double(s) * 16
            svg += "<text x=\"\(fmt(x0 + panel - 8))\" y=\"\(fmt(ly))\" text-anchor=\"end\" fill=\"\(line.colour)\">"
                + "\(line.name)</text>\n"
        }
    }
    return svg + "</svg>\n"
}

/// A coordinate with one decimal.
private func fmt(_ v: Double) -> String { String(format: "%.1f", v) }
