// A pickled `dict` of `str -> int` (EfficientAT's `fname_to_index.pkl`), read through the restricted unpickler.
// ref: EfficientAT datasets/audioset.py (the teacher-logits lookup: fname -> row of the ensemble's logits .npy)
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reader of pickled name -> row dictionaries.
public enum PickledIndex {
    /// The (name, row) pairs of a pickled `{str: int}` dict, in the pickle's order; anything else is refused.
    public static func parse(_ bytes: [UInt8], name: String) throws -> [(name: String, row: Int)] {
        let root = try Unpickler(path: name).load(bytes[...])
        guard case .dict(let dict) = root else {
            throw ModelError.badPickle(path: name, reason: "expected a dict of file name -> row index")
        }
        return try dict.items.map { item in
            guard let key = item.key.stringValue, case .int(let row) = item.value else {
                throw ModelError.badPickle(path: name, reason: "an entry is not file name (str) -> row (int)")
            }
            return (key, row)
        }
    }

    /// Reads and parses a pickle file.
    public static func read(path: String) throws -> [(name: String, row: Int)] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ModelError.unreadable(path: path, reason: "no such file or not readable")
        }
        return try parse([UInt8](data), name: path)
    }
}
