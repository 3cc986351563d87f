// libFuzzer target: the teacher store's readers (index.csv, skipped.csv, the logits matrix header and row access,
// EfficientAT's pickled fname -> row index); each input goes through all of them.
@testable import EarTagModel
@testable import EarTagTraining

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    _ = try? TeacherLogits.parseIndex(bytes, name: "<fuzz>")
    _ = try? TeacherLogits.parseSkipped(bytes, name: "<fuzz>")
    _ = try? PickledIndex.parse(bytes, name: "<fuzz>")
    bytes.withUnsafeBytes { raw in
        if let h = try? NpyMatrixHeader.parse(raw, name: "<fuzz>"), h.rows > 0, raw.count >= h.dataOffset + h.dataBytes {
            _ = npyRow(raw, h, row: h.rows - 1)
        }
    }
    return 0
}
