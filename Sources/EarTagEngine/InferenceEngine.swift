// One interface over the float and int8 engines, so every command runs either kind of model file.
import EarTagModel

/// A prepared network: run it on a log-mel without allocating or throwing.
public protocol InferenceEngine: AnyObject {
    /// Output classes.
    var numClasses: Int { get }
    /// Length of the embedding (pooled last feature map).
    var embeddingSize: Int { get }
    /// Mel bins the input must have.
    var melBins: Int { get }
    /// Runs on `mel` ([melBins][frames] row-major), writing logits and the embedding.
    func run(mel: UnsafeBufferPointer<Float>, frames: Int, logits: UnsafeMutableBufferPointer<Float>,
             embedding: UnsafeMutableBufferPointer<Float>)
    /// Multiply-accumulates per run of `frames` frames.
    func multiplyAccumulates(frames: Int) -> Int
}

extension FloatEngine: InferenceEngine {}
extension Int8Engine: InferenceEngine {}

/// Prepares the engine for a model file of either kind.
public func makeEngine(_ model: AnyModel, maxFrames: Int, threads: Int) throws -> InferenceEngine {
    switch model {
    case .float(let m): return try FloatEngine(model: m, maxFrames: maxFrames, threads: threads)
    case .int8(let m): return try Int8Engine(model: m, maxFrames: maxFrames, threads: threads)
    }
}
