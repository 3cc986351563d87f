// The processing loop's wait: it asks the ring for the samples that complete the next window, not for a whole hop.
import XCTest
import Dispatch
import EarTagAudio
import EarTagModel
import EarTagPipeline
import EarTagTestSupport

/// Checks `StreamProcessor.samplesToNextWindow` and `ListenRunner.awaitNextWindow` on the reference mn04_as.
final class ProcessingWakeUpTests: XCTestCase {
    /// A processor (window 1 s, hop 0.5 s) counts down to each window; the wait returns as soon as the ring holds
    /// the samples completing the window, although that is less than the `limit` (a hop) it could read.
    func testWaitEndsWhenTheWindowIsComplete() throws {
        let labels = try Reference.path("efficientat/class_labels_indices.csv")
        let model = try CheckpointImporter.importCheckpoint(path: try Reference.path("efficientat/mn04_as_mAP_432.pt"),
                                                            labelsPath: labels, name: nil)
        var settings = StreamSettings()
        settings.windowSeconds = 1
        settings.hopSeconds = 0.5
        settings.printWindows = true
        var windows = 0
        let processor = try StreamProcessor(model: .float(model), settings: settings, events: nil) { record in
            if case .window = record { windows += 1 }
        }
        XCTAssertEqual(processor.samplesToNextWindow, 32000)
        let audio = [Float](repeating: 0.01, count: 48000)
        audio.withUnsafeBufferPointer { a in
            processor.consume(UnsafeBufferPointer(rebasing: a[0..<20000]))
            XCTAssertEqual(processor.samplesToNextWindow, 12000)
            processor.consume(UnsafeBufferPointer(rebasing: a[20000..<32000]))
            XCTAssertEqual(windows, 1)
            XCTAssertEqual(processor.samplesToNextWindow, 16000, "the next window ends one hop later")
            processor.consume(UnsafeBufferPointer(rebasing: a[32000..<40000]))
            XCTAssertEqual(processor.samplesToNextWindow, 8000)
        }

        let ring = SampleRing(capacity: 64000, policy: .lossless)
        let part = [Float](repeating: 0.01, count: 7999)
        part.withUnsafeBufferPointer { ring.write($0) }
        var began = DispatchTime.now().uptimeNanoseconds
        ListenRunner.awaitNextWindow(ring, processor, limit: 16000, timeout: .milliseconds(200))
        XCTAssertGreaterThanOrEqual(Double(DispatchTime.now().uptimeNanoseconds - began) / 1e6, 150,
                                    "one sample short of the window: the wait runs to its timeout")
        [Float(0.01)].withUnsafeBufferPointer { ring.write($0) }
        began = DispatchTime.now().uptimeNanoseconds
        ListenRunner.awaitNextWindow(ring, processor, limit: 16000, timeout: .seconds(10))
        XCTAssertLessThan(Double(DispatchTime.now().uptimeNanoseconds - began) / 1e9, 5,
                          "the window's last sample ends the wait, not the 16000-sample limit or the timeout")
    }
}
