// The `[mqtt]` and `[metrics]` tables of the listen configuration file: keys read, values checked at their line.
import XCTest
@testable import EarTagPipeline

final class MqttConfigTests: XCTestCase {
    /// Every key is read; relative metrics file paths are relative to the configuration file.
    func testMqttAndMetricsKeys() throws {
        let text = """
        [mqtt]
        url = "mqtt://u:p@broker:1884"
        client_id = "eartag-k"
        topic_prefix = "sounds"
        source = "kitchen"
        discovery_prefix = "ha"
        queue = 500
        [metrics]
        listen = "127.0.0.1:9999"
        allow_remote = false
        file = "eartag.prom"
        interval = 5
        """
        let s = try ListenConfig.parse(text, path: "/etc/eartag/eartag.toml")
        XCTAssertEqual(s.mqttURL, "mqtt://u:p@broker:1884")
        XCTAssertEqual(s.mqttClientId, "eartag-k")
        XCTAssertEqual(s.mqttTopicPrefix, "sounds")
        XCTAssertEqual(s.mqttSource, "kitchen")
        XCTAssertEqual(s.mqttDiscoveryPrefix, "ha")
        XCTAssertEqual(s.mqttQueue, 500)
        XCTAssertEqual(s.metricsListen, "127.0.0.1:9999")
        XCTAssertEqual(s.metricsAllowRemote, false)
        XCTAssertEqual(s.metricsFile, "/etc/eartag/eartag.prom")
        XCTAssertEqual(s.metricsInterval, 5)
    }

    /// Bad values are refused with the line of their key.
    func testBadValuesNameTheirLine() {
        for (text, line, reason) in [
            ("[mqtt]\nurl = \"mqtts://b\"\n", 2, "TLS"),
            ("[mqtt]\nurl = \"mqtt://b\"\n\nsource = \"a/b\"\n", 2, "'a/b'"),
            ("[mqtt]\nqueue = 10\n", 2, "queue"),
            ("[mqtt]\nport = 1883\n", 2, "unknown key 'port'"),
            ("[metrics]\nlisten = \"0.0.0.0:9464\"\n", 2, "not a loopback"),
            ("[metrics]\ninterval = 0\n", 2, "interval"),
        ] {
            XCTAssertThrowsError(try ListenConfig.parse(text, path: "c.toml"), text) { e in
                let message = String(describing: e)
                XCTAssertTrue(message.hasPrefix("c.toml:\(line): "), message)
                XCTAssertTrue(message.contains(reason), message)
            }
        }
        XCTAssertNoThrow(try ListenConfig.parse("[metrics]\nlisten = \"0.0.0.0:9464\"\nallow_remote = true\n", path: "c.toml"))
    }
}
