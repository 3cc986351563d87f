// libFuzzer target: the `eartag listen` configuration file (TOML), with and without labels to check names against.
@testable import EarTagModel
@testable import EarTagPipeline

let labels = (0..<4).map { Label(index: $0, mid: "/m/\($0)", displayName: "Class \($0)") }

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    _ = try? ListenConfig.parse(text, path: "/tmp/fuzz/listen.toml", labels: labels)
    _ = try? ListenConfig.parse(text, path: "/tmp/fuzz/listen.toml", labels: nil)
    return 0
}
