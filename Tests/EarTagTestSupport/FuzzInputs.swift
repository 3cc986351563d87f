// The fuzz seed corpora and the inputs that once crashed a parser (Fuzz/corpus, Fuzz/regressions; docs/robustness.md).
import Foundation

/// Files the regression tests replay through the normal parsers.
public enum FuzzInputs {
    /// Every file of `Fuzz/corpus/<target>` and `Fuzz/regressions/<target>`, sorted by path, with its bytes.
    public static func files(_ target: String) -> [(path: String, bytes: [UInt8])] {
        var out: [(path: String, bytes: [UInt8])] = []
        for folder in ["corpus", "regressions"] {
            let dir = Reference.packageRoot.appendingPathComponent("Fuzz/\(folder)/\(target)")
            let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
            for name in names.sorted() {
                let path = dir.appendingPathComponent(name).path
                if let data = FileManager.default.contents(atPath: path) { out.append((path, [UInt8](data))) }
            }
        }
        return out
    }

    /// The bytes of one committed fuzz input, e.g. `file("regressions/pickle/list_cycle.pkl")`.
    public static func file(_ relative: String) -> [UInt8]? {
        FileManager.default.contents(atPath: Reference.packageRoot.appendingPathComponent("Fuzz/\(relative)").path)
            .map { [UInt8]($0) }
    }
}
