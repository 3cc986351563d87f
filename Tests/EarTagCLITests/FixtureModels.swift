// Tiny float models whose output is known in advance, written into test folders: every weight is zero, so the
// logits are the classifier's last bias whatever the audio, and the ranking of the classes is chosen by the test.
import Foundation
import EarTagModel

/// Width-0.1 EfficientAT models with zero weights and a chosen class ranking.
enum FixtureModel {
    /// Writes a model named `name` with `labels` to `path`; `ranking` lists class indices best first (the first
    /// gets logit +4, the rest -4, -5, ... in order, so only the first passes the default 0.5 threshold).
    /// Returns the path.
    @discardableResult
    static func write(to path: String, name: String, labels: [Label], ranking: [Int]) throws -> String {
        let n = labels.count
        precondition(Set(ranking) == Set(0..<n), "ranking must list every class once")
        let arch = try Architecture.efficientAT(widthMult: 0.1, head: .mlp, numClasses: n, channelSE: true)
        let shapes = arch.expectedTensorShapes()
        // The output layer's bias: the last classifier bias with one value per class.
        guard let outBias = shapes.keys.filter({ $0.hasPrefix("classifier") && $0.hasSuffix(".bias") && shapes[$0] == [n] })
            .sorted().last else { throw CocoaError(.featureUnsupported) }
        var logits = [Float](repeating: 0, count: n)
        for (rank, k) in ranking.enumerated() { logits[k] = rank == 0 ? 4 : -3 - Float(rank) }
        var tensors: [String: Tensor] = [:]
        for (name, shape) in shapes {
            let count = shape.reduce(1, *)
            let fill: Float = name.hasSuffix("running_var") ? 1 : 0
            tensors[name] = Tensor(shape: shape, data: name == outBias ? logits : [Float](repeating: fill, count: count))
        }
        let model = FloatModel(architecture: arch, frontend: .efficientAT, labels: labels, tensors: tensors,
                               sourceSHA256: nil, name: name)
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true)
        try ModelFile.save(model, to: path)
        return path
    }
}
