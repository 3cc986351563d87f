// libFuzzer target: the restricted unpickler alone (the bytes are a data.pkl, no zip around them), so the
// fuzzer does not spend its time rebuilding CRCs.
@testable import EarTagModel

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    if let root = try? Unpickler(path: "<fuzz>").load(bytes[...]) {
        _ = try? CheckpointReader.stateDictEntries(root, path: "<fuzz>")
    }
    return 0
}
