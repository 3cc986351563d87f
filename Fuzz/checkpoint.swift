// libFuzzer target: PyTorch checkpoint reader (stored zip + restricted unpickler + tensor gather).
// Build and run with `make fuzz` (docs/robustness.md). A thrown error is the right answer to bad bytes.
@testable import EarTagModel

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    // Mutations rarely keep a CRC-32 right: without this, nearly every input would stop at the CRC check.
    CheckpointReader.verifyCRC = false
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    _ = try? CheckpointImporter.readStateDict(bytes: bytes, name: "<fuzz>")
    return 0
}
