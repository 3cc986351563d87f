// The EfficientAT MobileNetV3 ("MN") architecture as data: what the engine builds and the weights file records.
// ref: EfficientAT models/mn/model.py (get_model, _mobilenet_v3_conf) and ../shared/reference/README.md.

/// Non-linearity used inside an inverted residual block.
public enum Activation: String, Codable, Sendable, Equatable {
    case relu = "RE"
    case hardswish = "HS"
}

/// Classifier head of an MN model.
public enum HeadType: String, Codable, Sendable, Equatable {
    /// Global average pool, Linear(C -> hidden), hardswish, dropout, Linear(hidden -> classes).
    case mlp
    /// 1x1 conv to classes (no bias), BatchNorm, global average pool.
    case fullyConvolutional = "fully_convolutional"
}

/// One inverted residual block, with every channel count resolved (width multiplier already applied).
public struct BlockSpec: Codable, Sendable, Equatable {
    /// Depthwise kernel size (3 or 5).
    public var kernel: Int
    public var inputChannels: Int
    /// Channels after the expand 1x1 conv; equal to `inputChannels` when the block has no expand conv.
    public var expandedChannels: Int
    public var outputChannels: Int
    /// Squeeze width of the channel squeeze-excitation, or nil when the block has none.
    public var seChannels: Int?
    public var activation: Activation
    /// Depthwise stride (1 or 2), applied to both frequency and time.
    public var stride: Int
    /// Depthwise dilation (1, or 2 in the tail of a dilated model); padding is (kernel - 1) / 2 * dilation.
    public var dilation: Int

    public init(kernel: Int, inputChannels: Int, expandedChannels: Int, outputChannels: Int, seChannels: Int?,
                activation: Activation, stride: Int, dilation: Int) {
        self.kernel = kernel
        self.inputChannels = inputChannels
        self.expandedChannels = expandedChannels
        self.outputChannels = outputChannels
        self.seChannels = seChannels
        self.activation = activation
        self.stride = stride
        self.dilation = dilation
    }

    /// True when the block has an expand 1x1 conv (`block.0` is then the expand conv).
    public var hasExpand: Bool { expandedChannels != inputChannels }
    /// True when the block adds its input to its output.
    public var hasResidual: Bool { stride == 1 && inputChannels == outputChannels }
}

/// A complete MN network description. Tensor names in the weights file follow EfficientAT's state dict.
public struct Architecture: Codable, Sendable, Equatable {
    /// Always "mn" for now (DyMN is not supported).
    public var family: String
    /// EfficientAT width multiplier this model was built with (informational; channel counts are explicit).
    public var widthMult: Double
    /// Input channels of the stem conv (1: a single log-mel plane).
    public var inputChannels: Int
    /// Output channels of the 3x3 stride-2 stem conv.
    public var stemChannels: Int
    public var blocks: [BlockSpec]
    /// Output channels of the final 1x1 conv (6 x the last block's output channels).
    public var lastConvChannels: Int
    public var head: HeadType
    /// Hidden width of the mlp head (`last_channel`); nil for the fully convolutional head.
    public var headHiddenChannels: Int?
    public var numClasses: Int
    /// Squeeze-excitation dimensions ("c" or none).
    public var seDims: [String]
    /// EfficientAT `strides` argument (the strides of the four down-sampling stages).
    public var strides: [Int]
    /// EfficientAT `dilated` argument.
    public var dilated: Bool
    /// BatchNorm epsilon used by every BatchNorm layer.
    public var batchNormEps: Double

    public init(family: String = "mn", widthMult: Double, inputChannels: Int = 1, stemChannels: Int,
                blocks: [BlockSpec], lastConvChannels: Int, head: HeadType, headHiddenChannels: Int?,
                numClasses: Int, seDims: [String], strides: [Int], dilated: Bool, batchNormEps: Double = 0.001) {
        self.family = family
        self.widthMult = widthMult
        self.inputChannels = inputChannels
        self.stemChannels = stemChannels
        self.blocks = blocks
        self.lastConvChannels = lastConvChannels
        self.head = head
        self.headHiddenChannels = headHiddenChannels
        self.numClasses = numClasses
        self.seDims = seDims
        self.strides = strides
        self.dilated = dilated
        self.batchNormEps = batchNormEps
    }

    /// Length of the embedding (the global average of the last feature map).
    public var embeddingSize: Int { lastConvChannels }
}

/// The log-mel frontend's settings, recorded in every weights file so runtime and trainer agree.
/// ref: EfficientAT models/preprocess.py AugmentMelSTFT and ../shared/reference/README.md "The frontend".
public struct FrontendSettings: Codable, Sendable, Equatable {
    public var sampleRate: Int = 32000
    public var nFFT: Int = 1024
    public var winLength: Int = 800
    public var hopLength: Int = 320
    public var nMels: Int = 128
    public var fmin: Double = 0
    public var fmax: Double = 15000
    /// Pre-emphasis coefficient: y[i] = x[i+1] - preemphasis * x[i].
    public var preemphasis: Double = 0.97
    /// log(mel + logOffset).
    public var logOffset: Double = 1e-5
    /// (log + normAdd) / normDiv.
    public var normAdd: Double = 4.5
    public var normDiv: Double = 5

    public init() {}

    /// EfficientAT's defaults, as used by every published checkpoint.
    public static let efficientAT = FrontendSettings()
}

/// One output class: its index in model order, AudioSet machine id and display name.
public struct Label: Codable, Sendable, Equatable {
    public var index: Int
    public var mid: String
    public var displayName: String

    public init(index: Int, mid: String, displayName: String) {
        self.index = index
        self.mid = mid
        self.displayName = displayName
    }
}

/// A dense float32 tensor in row-major (C) order.
public struct Tensor: Sendable, Equatable {
    public var shape: [Int]
    public var data: [Float]

    public init(shape: [Int], data: [Float]) {
        precondition(shape.reduce(1, *) == data.count, "tensor shape \(shape) does not match \(data.count) values")
        self.shape = shape
        self.data = data
    }

    /// Number of elements the shape implies.
    public var count: Int { data.count }
}

/// A float model: architecture, frontend, labels and the (unfolded) EfficientAT state dict by tensor name.
/// BatchNorm layers keep their four tensors (weight, bias, running_mean, running_var); the engine folds them.
public struct FloatModel: Sendable {
    public var architecture: Architecture
    public var frontend: FrontendSettings
    public var labels: [Label]
    /// State-dict tensors by EfficientAT name (e.g. `features.0.0.weight`), `num_batches_tracked` dropped.
    public var tensors: [String: Tensor]
    /// sha256 (hex) of the checkpoint this model was imported from, when known.
    public var sourceSHA256: String?
    /// A short human name ("mn04_as"), used in outputs.
    public var name: String

    public init(architecture: Architecture, frontend: FrontendSettings, labels: [Label], tensors: [String: Tensor],
                sourceSHA256: String?, name: String) {
        self.architecture = architecture
        self.frontend = frontend
        self.labels = labels
        self.tensors = tensors
        self.sourceSHA256 = sourceSHA256
        self.name = name
    }
}
