// The boundary between the corpus side (folders, manifests, the decode cache, teacher logits) and the trainer.

/// Which part of a corpus an example belongs to; the held-out split is fixed by file hash.
public enum DataSplit: String, Sendable, CaseIterable {
    case train
    case validation
}

/// One clip ready for the trainer: 32 kHz mono samples plus optional targets.
public struct TrainingExample: Sendable {
    /// The clip's name for messages (its path relative to the corpus root).
    public var name: String
    /// 32 kHz mono samples as decoded (any length; the trainer crops or tiles to its clip length).
    public var waveform: [Float]
    /// Multi-hot hard labels (classCount values in 0...1), when the corpus has labels.
    public var labels: [Float]?
    /// The teacher's logits for this clip (classCount values), when a teacher directory was given.
    public var teacherLogits: [Float]?

    /// Creates an example.
    public init(name: String, waveform: [Float], labels: [Float]? = nil, teacherLogits: [Float]? = nil) {
        self.name = name
        self.waveform = waveform
        self.labels = labels
        self.teacherLogits = teacherLogits
    }
}

/// A corpus the trainer reads: counts per split and random access to examples.
///
/// `example` throws for a clip that cannot be read (corrupt or missing audio); the trainer skips it with a warning
/// naming it and goes on.
public protocol TrainingData: Sendable {
    /// Number of output classes of the targets (labels and teacher logits).
    var classCount: Int { get }
    /// Number of examples in a split.
    func count(_ split: DataSplit) -> Int
    /// The example at `index` of `split`.
    func example(_ split: DataSplit, _ index: Int) throws -> TrainingExample
}
