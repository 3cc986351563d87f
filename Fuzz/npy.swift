// libFuzzer target: the .npy reader.
@testable import EarTagModel

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    _ = try? NumpyArray.parse(bytes, name: "<fuzz>")
    return 0
}
