// `eartag listen --metrics` and `--metrics-file` through the binary: the endpoint scraped during a stream returns
// valid exposition text whose counters match the stream; the textfile holds the final values; bad addresses and a
// port in use are one-line errors.
import Foundation
import XCTest
import EarTagTestSupport

final class MetricsCommandTests: CLITestCase {
    /// The body of `GET /metrics` from 127.0.0.1:`port` (nil when nothing answers).
    func scrape(port: Int) -> String? {
        guard let text = httpExchange(port: port, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n"),
              text.hasPrefix("HTTP/1.1 200 OK\r\n"), let split = text.range(of: "\r\n\r\n") else { return nil }
        return String(text[split.upperBound...])
    }

    /// Per-label start and end counts of jsonl event lines.
    func eventCounts(_ lines: [String]) -> [String: [String: Int]] {
        var counts: [String: [String: Int]] = [:]
        for l in lines {
            guard let o = jsonObject(l), let type = o["type"] as? String, type != "window",
                  let label = o["label"] as? String else { continue }
            counts[label, default: [:]][type, default: 0] += 1
        }
        return counts
    }

    /// Asserts the exposition's event counters equal `counts` (and list no other label).
    func assertEvents(_ p: PrometheusText, _ counts: [String: [String: Int]], file: StaticString = #filePath,
                      line: UInt = #line) {
        let listed = Set(p.samples.filter { $0.name == "eartag_events_total" }.compactMap { $0.labels["label"] })
        XCTAssertEqual(listed, Set(counts.keys), file: file, line: line)
        for s in p.samples where s.name == "eartag_events_total" {
            let expected = counts[s.labels["label"] ?? ""]?[s.labels["type"] ?? ""] ?? 0
            XCTAssertEqual(s.value, Double(expected), "\(s.labels)", file: file, line: line)
        }
    }

    /// Scraped while stdin is still open: valid text at once, then counters equal to what the stream did.
    func testEndpointScrapedDuringStreamMatchesTheStream() throws {
        let model = try importedModel()
        let port = try freeLoopbackPort()
        let listener = try ListenProcess(Self.binary, [
            "listen", "--stdin", "--model", model, "--window", "5", "--hop", "1", "--windows", "--format", "jsonl",
            "--metrics", "127.0.0.1:\(port)"])
        var early: String?
        let deadline = Date().addingTimeInterval(20)
        while early == nil && Date() < deadline { early = scrape(port: port); usleep(20_000) }
        let first = try PrometheusText(try XCTUnwrap(early, listener.stderr))
        XCTAssertEqual(first.value("eartag_windows_processed_total"), 0)
        XCTAssertEqual(first.types["eartag_inference_seconds"], "histogram")
        listener.write(try pcm16(["speech"]))
        XCTAssertTrue(listener.wait(timeout: 20) { $0.filter { $0.contains("\"type\":\"window\"") }.count == 6 })
        var p = try PrometheusText(try XCTUnwrap(scrape(port: port)))
        let until = Date().addingTimeInterval(5)
        while p.value("eartag_audio_samples_total") != 320000 && Date() < until {
            usleep(20_000)
            p = try PrometheusText(try XCTUnwrap(scrape(port: port)))
        }
        XCTAssertEqual(p.value("eartag_windows_processed_total"), 6)
        XCTAssertEqual(p.value("eartag_inference_seconds_count"), 6)
        XCTAssertEqual(p.value("eartag_audio_samples_total"), 320000)
        XCTAssertEqual(p.value("eartag_dropped_samples_total"), 0)
        XCTAssertEqual(p.value("eartag_ring_capacity_samples"), 65536, "stdin ring: two 1 s hops, power of two")
        XCTAssertGreaterThan(p.value("eartag_real_time_factor") ?? 0, 0)
        XCTAssertLessThan(p.value("eartag_real_time_factor") ?? 1, 1)
        XCTAssertGreaterThan(p.value("eartag_inference_seconds_sum") ?? 0, 0)
        let windows = listener.lines.compactMap { jsonObject($0.line) }.filter { $0["type"] as? String == "window" }
        let lastLevel = try XCTUnwrap(windows.last?["level_dbfs"] as? Double)
        XCTAssertEqual(p.value("eartag_input_level_dbfs") ?? 0, lastLevel, accuracy: 0.051)
        assertEvents(p, eventCounts(listener.lines.map(\.line)))
        listener.closeInput()
        XCTAssertEqual(listener.waitForExit(timeout: 20), 0, listener.stderr)
    }

    /// The textfile (node_exporter) gets the final values at exit and no temporary file is left.
    func testMetricsFileHoldsTheFinalValues() throws {
        let model = try importedModel()
        let dir = try makeTemporaryDirectory("eartag-metrics")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("eartag.prom").path
        let r = try run(["listen", try Reference.path("audio/metro_station-paris.wav"), "--model", model, "--window", "5",
                         "--format", "jsonl", "--metrics-file", path, "--metrics-interval", "0.2"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let p = try PrometheusText(try String(contentsOfFile: path, encoding: .utf8))
        XCTAssertEqual(p.value("eartag_windows_processed_total"), 6)
        XCTAssertEqual(p.value("eartag_audio_samples_total"), 320000)
        XCTAssertEqual(p.value("eartag_ring_capacity_samples"), 0, "files need no ring")
        assertEvents(p, eventCounts(r.stdout.split(separator: "\n").map(String.init)))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["eartag.prom"])
    }

    /// Bad addresses, a non-loopback address without --metrics-allow-remote, a port in use and an unwritable
    /// metrics file are one-line errors naming the value.
    func testBadMetricsSettingsAreOneLineErrors() throws {
        let model = try importedModel()
        let speech = try Reference.path("audio/speech.wav")
        let port = try freeLoopbackPort()
        let busy = try XCTUnwrap(listenLoopback(port: port))
        defer { close(busy) }
        for (args, subject) in [(["--metrics", "nonsense"], "--metrics 'nonsense'"),
                                (["--metrics", "127.0.0.1:70000"], "invalid port"),
                                (["--metrics", "0.0.0.0:9464"], "not a loopback address"),
                                (["--metrics", "127.0.0.1:\(port)"], "127.0.0.1:\(port): cannot listen (address already in use)"),
                                (["--metrics-file", "/nonexistent-dir/x.prom"], "/nonexistent-dir/x.prom"),
                                (["--metrics-file", "/tmp/x.prom", "--metrics-interval", "0"], "--metrics-interval")] {
            let r = try run(["listen", "--model", model, speech] + args)
            assertOneLineError(r, naming: subject)
            XCTAssertEqual(r.stdout, "")
        }
    }
}
