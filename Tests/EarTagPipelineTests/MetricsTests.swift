// Metrics: the exposition text parses and its values follow the observed windows, hops and events; the HTTP
// endpoint answers GET /metrics (and refuses the rest); addresses and ports are checked; the textfile is atomic.
import XCTest
import EarTagModel
import EarTagTestSupport
@testable import EarTagPipeline

final class MetricsTests: XCTestCase {
    let labels = [Label(index: 0, mid: "/m/09x0r", displayName: "Speech"),
                  Label(index: 1, mid: "/m/x", displayName: "Say \"hi\"\\now")]

    /// A window observation.
    func window(_ metrics: ListenMetrics, inference: Double, analysis: Double = 0.01, skipped: Bool = false,
                level: Double = -20) {
        let scores: [Float] = [0.9, 0.1]
        scores.withUnsafeBufferPointer {
            metrics.window(WindowStats(startSample: 0, endSample: 32000, levelDBFS: level, skipped: skipped,
                                       inferenceSeconds: inference, analysisSeconds: analysis, hopSeconds: 1), scores: $0)
        }
    }

    /// Counters, histogram, gauges and per-label events match what was observed, and the text is valid.
    func testRenderedValuesFollowTheStream() throws {
        let m = ListenMetrics(labels: labels, version: "0.1.0", model: "mn04_as")
        m.temperaturePath = "/nonexistent"
        m.throttledPath = "/nonexistent"
        window(m, inference: 0.004)
        window(m, inference: 0.03)
        window(m, inference: 0, analysis: 1.5, skipped: true, level: -70.5)
        m.record(.start(label: 1, timeSeconds: 1, wallTime: Date(), score: 0.9))
        m.record(.end(label: 1, timeSeconds: 3, wallTime: Date(), peak: 0.9, mean: 0.8, startSeconds: 1))
        m.record(.start(label: 1, timeSeconds: 5, wallTime: Date(), score: 0.9))
        m.hop(HopStats(samplesConsumed: 96000, busySeconds: 0.3, ringFill: 100, ringCapacity: 352000,
                       droppedSamples: 7, xruns: 2, reconnects: 1, deaf: false))
        let p = try PrometheusText(m.render())
        XCTAssertEqual(p.value("eartag_windows_processed_total"), 3)
        XCTAssertEqual(p.value("eartag_windows_skipped_total"), 1)
        XCTAssertEqual(p.value("eartag_deadline_overruns_total"), 1)
        XCTAssertEqual(p.value("eartag_inference_seconds_count"), 2)
        XCTAssertEqual(p.value("eartag_inference_seconds_bucket", ["le": "0.002"]), 0)
        XCTAssertEqual(p.value("eartag_inference_seconds_bucket", ["le": "0.005"]), 1)
        XCTAssertEqual(p.value("eartag_inference_seconds_bucket", ["le": "0.05"]), 2)
        XCTAssertEqual(p.value("eartag_inference_seconds_sum") ?? 0, 0.034, accuracy: 1e-6)
        XCTAssertEqual(p.value("eartag_audio_samples_total"), 96000)
        XCTAssertEqual(p.value("eartag_real_time_factor") ?? 0, 0.1, accuracy: 1e-9)
        XCTAssertEqual(p.value("eartag_input_level_dbfs"), -70.5)
        XCTAssertEqual(p.value("eartag_dropped_samples_total"), 7)
        XCTAssertEqual(p.value("eartag_xruns_total"), 2)
        XCTAssertEqual(p.value("eartag_device_reconnects_total"), 1)
        XCTAssertEqual(p.value("eartag_ring_fill_samples"), 100)
        let quoted = ["label": "Say \"hi\"\\now", "mid": "/m/x"]
        XCTAssertEqual(p.value("eartag_events_total", quoted.merging(["type": "start"]) { $1 }), 2)
        XCTAssertEqual(p.value("eartag_events_total", quoted.merging(["type": "end"]) { $1 }), 1)
        XCTAssertNil(p.value("eartag_events_total", ["label": "Speech", "mid": "/m/09x0r", "type": "start"]),
                     "labels that never fired are not listed")
        XCTAssertEqual(p.value("eartag_build_info", ["version": "0.1.0", "model": "mn04_as"]), 1)
        XCTAssertNil(p.types["eartag_mqtt_queue_depth"], "no MQTT family without MQTT")
        XCTAssertNil(p.types["eartag_soc_temperature_celsius"])
        for name in p.types.keys { XCTAssertTrue(name.hasPrefix("eartag_"), name) }
    }

    /// SoC temperature and Raspberry Pi throttling flags are read from their files when readable.
    func testTemperatureAndThrottlingFiles() throws {
        let dir = try makeTemporaryDirectory("eartag-metrics")
        defer { try? FileManager.default.removeItem(at: dir) }
        let temp = dir.appendingPathComponent("temp").path, throttled = dir.appendingPathComponent("get_throttled").path
        try "48312\n".write(toFile: temp, atomically: true, encoding: .utf8)
        try "50005\n".write(toFile: throttled, atomically: true, encoding: .utf8)
        let m = ListenMetrics(labels: labels, version: "0.1.0", model: "m")
        m.temperaturePath = temp
        m.throttledPath = throttled
        let p = try PrometheusText(m.render())
        XCTAssertEqual(p.value("eartag_soc_temperature_celsius") ?? 0, 48.312, accuracy: 1e-9)
        XCTAssertEqual(p.value("eartag_throttled", ["flag": "under_voltage"]), 1)
        XCTAssertEqual(p.value("eartag_throttled", ["flag": "throttled"]), 1)
        XCTAssertEqual(p.value("eartag_throttled", ["flag": "arm_frequency_capped"]), 0)
        XCTAssertEqual(p.value("eartag_throttled", ["flag": "under_voltage_occurred"]), 1)
        XCTAssertEqual(p.value("eartag_throttled", ["flag": "throttling_occurred"]), 1)
    }

    /// The parser used by these tests rejects what Prometheus would.
    func testParserRejectsInvalidText() {
        for text in ["eartag_x 1\n", "# HELP eartag_x h\n# TYPE eartag_x counter\neartag_x -1\n",
                     "# HELP eartag_x h\n# TYPE eartag_x gauge\neartag_x{a=\"1} 1\n",
                     "# HELP eartag_x h\n# TYPE eartag_x gauge\neartag_x one\n",
                     "# HELP eartag_h h\n# TYPE eartag_h histogram\neartag_h_bucket{le=\"1\"} 2\neartag_h_bucket{le=\"+Inf\"} 1\neartag_h_sum 1\neartag_h_count 1\n",
                     "# HELP eartag_x h\n# TYPE eartag_x gauge\neartag_x 1"] {
            XCTAssertThrowsError(try PrometheusText(text), text)
        }
    }

    /// GET /metrics gets the exposition text with its content type and length; other paths and methods do not.
    func testEndpointServesMetricsOnly() throws {
        let m = ListenMetrics(labels: labels, version: "0.1.0", model: "m")
        let server = try MetricsServer(address: try MetricsAddress("127.0.0.1:0", allowRemote: false), render: m.render)
        server.start()
        defer { server.stop() }
        window(m, inference: 0.01)
        let ok = try XCTUnwrap(httpExchange(port: server.port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"))
        XCTAssertTrue(ok.hasPrefix("HTTP/1.1 200 OK\r\n"), ok)
        XCTAssertTrue(ok.contains("Content-Type: text/plain; version=0.0.4"), ok)
        let parts = ok.components(separatedBy: "\r\n\r\n")
        XCTAssertEqual(parts.count, 2)
        XCTAssertTrue(ok.contains("Content-Length: \(parts[1].utf8.count)\r\n"))
        XCTAssertEqual(try PrometheusText(parts[1]).value("eartag_windows_processed_total"), 1)
        XCTAssertTrue(try XCTUnwrap(httpExchange(port: server.port, "GET / HTTP/1.1\r\n\r\n")).hasPrefix("HTTP/1.1 404"))
        XCTAssertTrue(try XCTUnwrap(httpExchange(port: server.port, "POST /metrics HTTP/1.1\r\n\r\n")).hasPrefix("HTTP/1.1 405"))
        XCTAssertTrue(try XCTUnwrap(httpExchange(port: server.port, "garbage\r\n\r\n")).hasPrefix("HTTP/1.1 400"))
        let head = try XCTUnwrap(httpExchange(port: server.port, "HEAD /metrics HTTP/1.1\r\n\r\n"))
        XCTAssertTrue(head.hasSuffix("\r\n\r\n"), "HEAD has no body")
    }

    /// Addresses: loopback forms accepted, others refused unless allowed; a port in use is a one-line error.
    func testAddressesAndPortInUse() throws {
        XCTAssertEqual(try MetricsAddress("9464", allowRemote: false), try MetricsAddress("127.0.0.1:9464", allowRemote: false))
        XCTAssertEqual(try MetricsAddress(":9464", allowRemote: false).host, "127.0.0.1")
        XCTAssertEqual(try MetricsAddress("localhost:1", allowRemote: false).host, "127.0.0.1")
        XCTAssertEqual(try MetricsAddress("[::1]:9464", allowRemote: false).host, "::1")
        XCTAssertEqual(try MetricsAddress("0.0.0.0:9464", allowRemote: true).host, "0.0.0.0")
        for (text, reason) in [("0.0.0.0:9464", "not a loopback"), ("192.168.1.2:9464", "not a loopback"),
                               ("127.0.0.1:99999", "invalid port"), ("127.0.0.1:", "invalid port"),
                               ("host.example:9464", "not a numeric"), ("::1:9464", "brackets"), ("[::1]9464", "IPv6")] {
            XCTAssertThrowsError(try MetricsAddress(text, allowRemote: false), text) { e in
                XCTAssertTrue(String(describing: e).contains("--metrics '\(text)'"), "\(e)")
                XCTAssertTrue(String(describing: e).contains(reason), "\(text): \(e)")
            }
        }
        let first = try MetricsServer(address: try MetricsAddress("127.0.0.1:0", allowRemote: false)) { "" }
        XCTAssertThrowsError(try MetricsServer(address: try MetricsAddress("127.0.0.1:\(first.port)", allowRemote: false)) { "" }) {
            XCTAssertEqual(String(describing: $0), "--metrics 127.0.0.1:\(first.port): cannot listen (address already in use)")
        }
    }

    /// The textfile is written at once, replaced atomically, refreshed periodically and finally at stop.
    func testTextfileIsWrittenAtomically() throws {
        let dir = try makeTemporaryDirectory("eartag-metrics")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("eartag.prom").path
        let m = ListenMetrics(labels: labels, version: "0.1.0", model: "m")
        let writer = try MetricsFileWriter(path: path, interval: 0.1, render: m.render)
        XCTAssertEqual(try PrometheusText(String(contentsOfFile: path, encoding: .utf8)).value("eartag_windows_processed_total"), 0)
        writer.start()
        window(m, inference: 0.01)
        let deadline = Date().addingTimeInterval(5)
        var seen = 0.0
        while seen != 1, Date() < deadline {
            usleep(50_000)
            seen = (try? PrometheusText(String(contentsOfFile: path, encoding: .utf8)))?.value("eartag_windows_processed_total") ?? -1
        }
        XCTAssertEqual(seen, 1, "periodic rewrite")
        window(m, inference: 0.01)
        writer.stop()
        XCTAssertEqual(try PrometheusText(String(contentsOfFile: path, encoding: .utf8)).value("eartag_windows_processed_total"), 2)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["eartag.prom"], "no temporary left")
        XCTAssertThrowsError(try MetricsFileWriter(path: dir.appendingPathComponent("missing/x.prom").path, interval: 1,
                                                   render: m.render)) {
            XCTAssertTrue(String(describing: $0).hasPrefix("--metrics-file \(dir.path)/missing/x.prom: cannot write"), "\($0)")
        }
        XCTAssertThrowsError(try MetricsFileWriter(path: path, interval: 0, render: m.render))
    }
}
