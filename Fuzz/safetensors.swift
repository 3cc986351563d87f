// libFuzzer target: safetensors parsing, then validation as a float or int8 EarTag model file.
@testable import EarTagModel

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    if let file = try? SafetensorsFile.parse(bytes, path: "<fuzz>") {
        _ = try? AnyModel.load(file: file, path: "<fuzz>")
        _ = try? QuantizedModel.load(file: file, path: "<fuzz>")
        for t in file.tensors.values { _ = t.float32Values() }
    }
    return 0
}
