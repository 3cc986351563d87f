// FloatEngine against a naive CHW forward on random-weight models of several configurations, plus validation.
import XCTest
import EarTagModel
@testable import EarTagEngine
import EarTagTestSupport

/// Engine against the naive forward on random models, plus validation and buffer-reuse checks.
final class RandomModelTests: XCTestCase {
    /// Random mel input of `frames` frames (128 bins), roughly the range of real log-mels.
    func randomMel(frames: Int, seed: UInt64) -> [Float] {
        var rng = SeededRNG(state: seed)
        return (0..<(128 * frames)).map { _ in Float.random(in: -1.5...0.5, using: &rng) }
    }

    /// Max |a - b| relative to max(1, max |b|).
    func relativeDiff(_ a: [Float], _ b: [Float]) -> Float {
        guard a.count == b.count else { return .infinity }
        let scale = max(1, b.map(abs).max() ?? 0)
        return zip(a, b).map { abs($0 - $1) }.max()! / scale
    }

    /// Checks every features layer, the embedding and the logits against the naive forward.
    func check(_ arch: Architecture, frames: Int, threads: Int = 1, bandBytes: Int? = nil, seed: UInt64,
               file: StaticString = #filePath, line: UInt = #line) throws {
        let model = randomModel(arch, seed: seed)
        let engine = try FloatEngine(model: model, maxFrames: frames + 5, threads: threads)
        if let bandBytes { engine.bandBytes = bandBytes }
        let mel = randomMel(frames: frames, seed: seed &+ 7)
        let expected = naiveForward(model, mel: mel, frames: frames)
        let features = engine.runCapturingFeatures(mel: mel, frames: frames)
        XCTAssertEqual(features.count, arch.blocks.count + 2, file: file, line: line)
        for (i, (f, e)) in zip(features, expected.features).enumerated() {
            XCTAssertLessThan(relativeDiff(f, e), 1e-4, "features.\(i) frames \(frames) seed \(seed)", file: file, line: line)
        }
        let (logits, embedding) = engine.run(mel: mel, frames: frames)
        XCTAssertLessThan(relativeDiff(embedding, expected.embedding), 1e-4, "embedding seed \(seed)", file: file, line: line)
        XCTAssertLessThan(relativeDiff(logits, expected.logits), 1e-4, "logits seed \(seed)", file: file, line: line)
    }

    func testMLPWithSE() throws { try check(makeArchitecture(width: 0.4), frames: 37, seed: 11) }

    func testFullyConvolutionalHead() throws {
        try check(makeArchitecture(width: 0.2, head: .fullyConvolutional), frames: 20, seed: 12)
    }

    func testNoSEOtherStrides() throws {
        try check(makeArchitecture(width: 0.2, se: false, strides: [2, 2, 1, 2], numClasses: 50), frames: 29, seed: 13)
    }

    func testDilatedTail() throws {
        let arch = makeArchitecture(width: 0.4, dilated: true)
        XCTAssertEqual(arch.blocks[13].dilation, 2)
        try check(arch, frames: 33, seed: 14)
    }

    func testSingleFrameAndThreads() throws {
        try check(makeArchitecture(width: 0.1), frames: 1, seed: 15)
        try check(makeArchitecture(width: 0.4), frames: 23, threads: 2, seed: 16)
    }

    func testOneRowBands() throws {
        try check(makeArchitecture(width: 0.4), frames: 41, bandBytes: 1, seed: 17)
        try check(makeArchitecture(width: 0.2, se: false, strides: [2, 2, 1, 2], numClasses: 50), frames: 30,
                  threads: 2, bandBytes: 1, seed: 18)
    }

    func testThreadedRunMatchesSingleThreadExactly() throws {
        let arch = makeArchitecture(width: 0.4)
        let model = randomModel(arch, seed: 3)
        let one = try FloatEngine(model: model, maxFrames: 300)
        let two = try FloatEngine(model: model, maxFrames: 300, threads: 2)
        for frames in [1, 2, 99, 300] {
            let mel = randomMel(frames: frames, seed: UInt64(frames))
            let a = one.run(mel: mel, frames: frames), b = two.run(mel: mel, frames: frames)
            XCTAssertEqual(a.logits, b.logits, "frames \(frames)")
            XCTAssertEqual(a.embedding, b.embedding, "frames \(frames)")
        }
    }

    func testShorterRunAfterLongerRunMatchesFreshEngine() throws {
        let arch = makeArchitecture(width: 0.2, head: .fullyConvolutional)
        let model = randomModel(arch, seed: 5)
        let reused = try FloatEngine(model: model, maxFrames: 200)
        _ = reused.run(mel: randomMel(frames: 200, seed: 1), frames: 200)
        for frames in [37, 1, 64] {
            let mel = randomMel(frames: frames, seed: UInt64(frames) + 100)
            let fresh = try FloatEngine(model: model, maxFrames: frames)
            let a = reused.run(mel: mel, frames: frames), b = fresh.run(mel: mel, frames: frames)
            XCTAssertEqual(a.logits, b.logits, "frames \(frames)")
            XCTAssertEqual(a.embedding, b.embedding, "frames \(frames)")
        }
    }

    func testMissingTensorIsNamed() {
        let arch = makeArchitecture(width: 0.1)
        var model = randomModel(arch)
        model.tensors["features.5.block.2.conc_se_layers.0.fc1.bias"] = nil
        XCTAssertThrowsError(try FloatEngine(model: model, maxFrames: 10)) { error in
            XCTAssertEqual(error as? EngineError, .missingTensor("features.5.block.2.conc_se_layers.0.fc1.bias"))
            XCTAssert("\(error)".contains("features.5.block.2.conc_se_layers.0.fc1.bias"))
        }
    }

    func testWrongShapeIsNamed() {
        let arch = makeArchitecture(width: 0.1)
        var model = randomModel(arch)
        model.tensors["features.16.0.weight"] = Tensor(shape: [3, 2], data: [Float](repeating: 0, count: 6))
        XCTAssertThrowsError(try FloatEngine(model: model, maxFrames: 10)) { error in
            XCTAssert("\(error)".contains("features.16.0.weight"), "\(error)")
            if case .wrongShape(let name, _, let actual)? = error as? EngineError {
                XCTAssertEqual(name, "features.16.0.weight"); XCTAssertEqual(actual, [3, 2])
            } else { XCTFail("expected wrongShape, got \(error)") }
        }
    }

    func testMultiplyAccumulatesCountsEveryConv() throws {
        let arch = makeArchitecture(width: 0.4)
        let engine = try FloatEngine(model: randomModel(arch), maxFrames: 1000)
        let macs = engine.multiplyAccumulates(frames: 1000)
        XCTAssertGreaterThan(macs, 50_000_000)
        XCTAssertLessThan(macs, engine.multiplyAccumulates(frames: 1001) + 1)
    }
}
