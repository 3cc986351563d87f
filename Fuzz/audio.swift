// libFuzzer target: audio files through EarTag's decoding path (`loadAudio(bytes:)`: WAV header checks, the
// Ogg/Vorbis header check (libvorbisfile, Ogg page walk), libsndfile through its virtual I/O on the bytes in memory,
// channel mean, soxr resampling). Byte 0 picks the target rate and whether the bytes are a stream (placeholder WAV
// sizes allowed); the rest is the file.
@testable import EarTagAudio

/// One fuzz input: mode byte, then the audio file.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 2 else { return 0 }
    let mode = Int(data[0])
    let rate = [32000, 16000, 8000, 48000][mode & 3]
    let bytes = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    // A 60-second limit keeps one input's work small; the 4-hour default is the same code with a larger bound.
    if let audio = try? loadAudio(bytes: bytes, name: "<fuzz>", targetRate: rate, maxDurationSeconds: 60,
                                  stream: mode & 4 != 0) {
        // Decoded audio must be finite and as long as the duration bound allows.
        for x in audio.samples where !x.isFinite { fatalError("non-finite sample from loadAudio") }
        if audio.durationSeconds > 61 { fatalError("loadAudio returned \(audio.durationSeconds) s, limit 60 s") }
    }
    return 0
}
