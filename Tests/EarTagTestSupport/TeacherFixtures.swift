// Synthetic inputs for the teacher-store tests: EfficientAT's pickled fname -> row index.
import Foundation

extension PickleEmitter {
    /// The pickle (protocol 2) of a `{str: int}` dict, as Python's `pickle.dump` lays it out (EMPTY_DICT, MARK,
    /// key/value pairs, SETITEMS, STOP).
    public static func stringIntDict(_ pairs: [(String, Int)]) -> [UInt8] {
        var p = PickleEmitter()
        p.op(0x7D)
        p.mark()
        for (k, v) in pairs { p.string(k); p.int(v) }
        p.op(0x75)
        p.stop()
        return p.b
    }
}
