// Where audio sources (stdin, ALSA) deliver their output: mono float32 samples at the model rate (32 kHz).

/// A consumer of mono 32 kHz float samples; `write` may block (back-pressure) and must not keep the pointer.
public protocol SampleSink: AnyObject {
    /// Takes a copy of `samples` (valid only during the call).
    func write(_ samples: UnsafeBufferPointer<Float>)
}
