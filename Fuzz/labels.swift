// libFuzzer target: the label CSV (class_labels_indices.csv) and, with the labels it yields (or a small fixed
// set), the event threshold file.
@testable import EarTagModel
@testable import EarTagEvents

let fallbackLabels = (0..<4).map { Label(index: $0, mid: "/m/\($0)", displayName: "Class \($0)") }

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    let labels = (try? LabelFile.parse(text, path: "<fuzz>")) ?? fallbackLabels
    _ = try? ThresholdFile.parse(text, path: "<fuzz>", selector: LabelSelector(labels: labels))
    return 0
}
