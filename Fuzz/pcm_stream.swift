// libFuzzer target: the stdin PCM / WAV-header decoder. The first two bytes choose the declared format, whether
// WAV is detected and how the rest is cut into push() calls; the rest is the stream.
@testable import EarTagAudio

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 2 else { return 0 }
    let a = Int(data[0]), b = Int(data[1])
    let formats = PCMSampleFormat.allCases
    let format = PCMStreamFormat(sampleRate: [16000, 32000, 44100, 48000][a & 3], channels: 1 + (a >> 2) & 3,
                                 sampleFormat: formats[(a >> 4) % formats.count])
    let chunk = 1 + (b & 0x3F)
    let detect = b & 0x40 == 0
    guard let decoder = try? PCMStreamDecoder(name: "<fuzz>", format: format, detectWAV: detect,
                                              blockFrames: b & 0x80 == 0 ? 4096 : 7) else { return 0 }
    var sum: Float = 0
    /// The decoder promises finite samples (NaN/inf become 0): anything else is a finding.
    func check(_ block: UnsafeBufferPointer<Float>) {
        for x in block {
            if !x.isFinite { fatalError("non-finite sample from the PCM decoder") }
            sum += x
        }
    }
    let body = UnsafeRawBufferPointer(start: data + 2, count: size - 2)
    var p = 0
    do {
        while p < body.count {
            let n = min(chunk, body.count - p)
            try decoder.push(UnsafeRawBufferPointer(rebasing: body[p..<(p + n)]), emit: check)
            p += n
        }
        try decoder.finish(emit: check)
    } catch {}
    return 0
}
