// A restricted unpickler for PyTorch state dicts: it builds plain values and never imports or calls anything.
// ref: CPython Lib/pickletools.py (opcode table, argument encodings); torch/serialization.py (_load: persistent ids
// ('storage', StorageType, key, location, numel)); torch/_utils.py (_rebuild_tensor_v2, _rebuild_parameter).
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import EarTagPlatform

/// A mutable list built by the pickle (reference type, so memoized copies see later appends).
final class PickleList {
    var items: [PickleValue] = []
    /// Nesting depth (1 when it holds no container).
    var depth = 1
    /// True once it sits inside another value: it may no longer change (keeps depths exact and cycles out).
    var nested = false
}

/// A mutable dict or OrderedDict built by the pickle, keeping insertion order.
final class PickleDict {
    var items: [(key: PickleValue, value: PickleValue)] = []
    /// State given by BUILD (an OrderedDict's `__dict__`, e.g. `_metadata`); kept but not interpreted.
    var state: PickleValue?
    /// Nesting depth (1 when it holds no container).
    var depth = 1
    /// True once it sits inside another value: it may no longer change (keeps depths exact and cycles out).
    var nested = false
}

/// A typed torch storage named by a persistent id: the bytes are the zip entry `<top>/data/<key>`.
struct StorageRef: Equatable {
    /// Storage class name, e.g. "FloatStorage".
    var typeName: String
    var key: String
    var location: String
    /// Element count the pickle claims (checked against the entry's byte count on load).
    var numel: Int
}

/// A tensor view onto a storage, as `_rebuild_tensor_v2` describes it.
struct TensorRef: Equatable {
    var storage: StorageRef
    var offset: Int
    var shape: [Int]
    var stride: [Int]
}

/// The values the restricted unpickler can produce.
indirect enum PickleValue {
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case bytes([UInt8])
    case tuple([PickleValue])
    case list(PickleList)
    case dict(PickleDict)
    /// An allowed global (callable or class), referenced but never executed.
    case global(module: String, name: String)
    case storage(StorageRef)
    case tensor(TensorRef)

    /// The string payload, if any.
    var stringValue: String? { if case .string(let s) = self { return s }; return nil }
    /// The integer payload, if any (bools count as 0/1 like in Python).
    var intValue: Int? {
        switch self {
        case .int(let i): return i
        case .bool(let b): return b ? 1 : 0
        default: return nil
        }
    }
}

/// Restricted unpickler: pickle protocols 0-5 binary opcodes needed by torch state dicts, an allow-list of globals.
struct Unpickler {
    /// Checkpoint path used in error messages.
    let path: String
    /// Largest value stack, mark stack and memo accepted.
    static let maxStack = 1_000_000
    static let maxMarks = 10_000
    static let maxMemo = 1_000_000
    /// Deepest nesting of containers accepted (a state dict needs about 5; freeing a value recurses per level, so a
    /// pickle of a million nested tuples would overflow the stack).
    static let maxDepth = 100

    /// Storage classes torch emits in persistent ids.
    static let storageTypes: Set<String> = [
        "FloatStorage", "DoubleStorage", "HalfStorage", "BFloat16Storage", "LongStorage", "IntStorage",
        "ShortStorage", "CharStorage", "ByteStorage", "BoolStorage",
    ]

    /// True for the globals a state dict may reference.
    static func isAllowed(module: String, name: String) -> Bool {
        switch (module, name) {
        case ("collections", "OrderedDict"), ("torch._utils", "_rebuild_tensor_v2"),
             ("torch._utils", "_rebuild_parameter"):
            return true
        case ("torch", _): return storageTypes.contains(name)
        default: return false
        }
    }

    /// Error helper.
    private func bad(_ reason: String) -> ModelError { .badPickle(path: path, reason: reason) }

    /// Runs the pickle program in `data` and returns the object STOP leaves on the stack.
    func load(_ data: ArraySlice<UInt8>) throws -> PickleValue {
        let b = Array(data)
        var pos = 0
        var stack: [PickleValue] = []
        /// Nesting depth of each stack value (tuples are immutable, so theirs is fixed when they are built).
        var depths: [Int] = []
        var marks: [Int] = []
        var memo: [Int: (value: PickleValue, depth: Int)] = [:]

        /// Consumes n bytes.
        func read(_ n: Int) throws -> ArraySlice<UInt8> {
            guard n >= 0, pos <= b.count - n else { throw bad("unexpected end of data at offset \(pos)") }
            defer { pos += n }
            return b[pos..<(pos + n)]
        }
        /// Consumes an n-byte little-endian unsigned integer.
        func uint(_ n: Int) throws -> UInt64 {
            var v: UInt64 = 0
            for (i, x) in try read(n).enumerated() { v |= UInt64(x) << (8 * UInt64(i)) }
            return v
        }
        /// Consumes an n-byte length, refusing lengths beyond the data.
        func length(_ n: Int) throws -> Int {
            let v = try uint(n)
            guard v <= UInt64(b.count - pos) else { throw bad("length \(v) at offset \(pos - n) exceeds the data") }
            return Int(v)
        }
        /// Consumes a newline-terminated text argument (GLOBAL).
        func line() throws -> String {
            guard let nl = b[pos...].firstIndex(of: 0x0A) else { throw bad("unterminated line at offset \(pos)") }
            defer { pos = nl + 1 }
            return String(decoding: b[pos..<nl], as: UTF8.self)
        }
        /// Current nesting depth of a value whose depth was `recorded` (lists and dicts keep their own).
        func depth(_ v: PickleValue, _ recorded: Int) -> Int {
            switch v {
            case .list(let l): return l.depth
            case .dict(let d): return d.depth
            default: return recorded
            }
        }
        /// Marks values as placed inside a container and returns the container's depth (deepest item + 1).
        func nest(_ items: [PickleValue], _ itemDepths: [Int]) throws -> Int {
            var deepest = 0
            for (v, d) in Swift.zip(items, itemDepths) {
                deepest = max(deepest, depth(v, d))
                if case .list(let l) = v { l.nested = true } else if case .dict(let x) = v { x.nested = true }
            }
            guard deepest < Self.maxDepth else { throw bad("containers nested deeper than \(Self.maxDepth) at offset \(pos)") }
            return deepest + 1
        }
        /// Pushes onto the bounded stack.
        func push(_ v: PickleValue, depth d: Int = 1) throws {
            guard stack.count < Self.maxStack else { throw bad("stack larger than \(Self.maxStack)") }
            stack.append(v)
            depths.append(d)
        }
        /// Pops, refusing to cross the innermost mark.
        func popEntry() throws -> (value: PickleValue, depth: Int) {
            guard let v = stack.popLast(), let d = depths.popLast() else { throw bad("stack underflow at offset \(pos)") }
            if let m = marks.last, stack.count < m { throw bad("stack popped past a mark at offset \(pos)") }
            return (v, depth(v, d))
        }
        func pop() throws -> PickleValue { try popEntry().value }
        /// Pops everything above the innermost mark, with their depths.
        func popMarkEntries() throws -> (items: [PickleValue], depths: [Int]) {
            guard let m = marks.popLast() else { throw bad("no mark at offset \(pos)") }
            guard m <= stack.count else { throw bad("mark beyond stack at offset \(pos)") }
            let items = Array(stack[m...])
            let d = Array(depths[m...])
            stack.removeSubrange(m...)
            depths.removeSubrange(m...)
            return (items, d)
        }
        func popMark() throws -> [PickleValue] { try popMarkEntries().items }
        /// Pushes a tuple of these items.
        func pushTuple(_ items: [PickleValue], _ itemDepths: [Int]) throws {
            try push(.tuple(items), depth: try nest(items, itemDepths))
        }
        /// Refuses to change a container that already sits inside another value.
        func mutable(_ nested: Bool, _ what: String) throws {
            guard !nested else { throw bad("\(what) on a container already placed inside another, at offset \(pos)") }
        }
        /// Memoizes the top of the stack.
        func put(_ index: Int) throws {
            guard let top = stack.last, let d = depths.last else { throw bad("memo put with an empty stack at offset \(pos)") }
            guard memo.count < Self.maxMemo || memo[index] != nil else { throw bad("memo larger than \(Self.maxMemo)") }
            memo[index] = (top, d)
        }
        /// Pushes a memoized value.
        func get(_ index: Int) throws {
            guard let v = memo[index] else { throw bad("memo key \(index) not found at offset \(pos)") }
            try push(v.value, depth: v.depth)
        }
        /// Pushes an allowed global or refuses it (never imported).
        func global(_ module: String, _ name: String) throws {
            guard Self.isAllowed(module: module, name: name) else {
                throw ModelError.forbiddenGlobal(path: path, global: "\(module).\(name)")
            }
            try push(.global(module: module, name: name))
        }
        /// Adds key/value pairs to the dict below them.
        func setItems(_ pairs: [PickleValue], _ pairDepths: [Int]) throws {
            guard pairs.count % 2 == 0 else { throw bad("odd number of items for SETITEMS") }
            guard case .dict(let d) = try pop() else { throw bad("SETITEM(S) on a non-dict") }
            try mutable(d.nested, "SETITEM(S)")
            guard !pairs.contains(where: { if case .dict(let x) = $0 { return x === d }; return false }) else {
                throw bad("a dict set into itself at offset \(pos)")
            }
            d.depth = max(d.depth, try nest(pairs, pairDepths))
            var i = 0
            while i < pairs.count { d.items.append((pairs[i], pairs[i + 1])); i += 2 }
            try push(.dict(d), depth: d.depth)
        }
        /// Decodes UTF-8 text.
        func string(_ bytes: ArraySlice<UInt8>) throws -> String {
            guard let s = String(validating: bytes, as: UTF8.self) else { throw bad("invalid UTF-8 string at offset \(pos)") }
            return s
        }

        while true {
            let opOffset = pos
            let op = try read(1).first!
            switch op {
            case 0x80: // PROTO
                let v = try uint(1)
                guard v <= 5 else { throw bad("unsupported pickle protocol \(v)") }
            case 0x95: _ = try uint(8) // FRAME: framing is only a hint, the data is contiguous here.
            case 0x2E: // STOP
                guard stack.count == 1, marks.isEmpty else { throw bad("STOP with \(stack.count) values on the stack") }
                return stack[0]
            case 0x28: // MARK
                guard marks.count < Self.maxMarks else { throw bad("more than \(Self.maxMarks) nested marks") }
                marks.append(stack.count)
            case 0x30: _ = try pop() // POP
            case 0x31: _ = try popMark() // POP_MARK
            case 0x32: // DUP
                guard let top = stack.last, let d = depths.last else { throw bad("DUP on an empty stack") }
                try push(top, depth: d)
            case 0x63: // GLOBAL
                let module = try line()
                let name = try line()
                try global(module, name)
            case 0x93: // STACK_GLOBAL
                let name = try pop()
                let module = try pop()
                guard let m = module.stringValue, let n = name.stringValue else { throw bad("STACK_GLOBAL needs two strings") }
                try global(m, n)
            case 0x7D: try push(.dict(PickleDict())) // EMPTY_DICT
            case 0x64: // DICT
                let (items, itemDepths) = try popMarkEntries()
                let d = PickleDict()
                guard items.count % 2 == 0 else { throw bad("odd number of items for DICT") }
                d.depth = try nest(items, itemDepths)
                var i = 0
                while i < items.count { d.items.append((items[i], items[i + 1])); i += 2 }
                try push(.dict(d), depth: d.depth)
            case 0x29: try push(.tuple([])) // EMPTY_TUPLE
            case 0x74: let (items, d) = try popMarkEntries(); try pushTuple(items, d) // TUPLE
            case 0x85: let a = try popEntry(); try pushTuple([a.value], [a.depth]) // TUPLE1
            case 0x86: let b2 = try popEntry(); let a = try popEntry(); try pushTuple([a.value, b2.value], [a.depth, b2.depth]) // TUPLE2
            case 0x87: // TUPLE3
                let c = try popEntry(); let b2 = try popEntry(); let a = try popEntry()
                try pushTuple([a.value, b2.value, c.value], [a.depth, b2.depth, c.depth])
            case 0x5D: try push(.list(PickleList())) // EMPTY_LIST
            case 0x6C: // LIST
                let (items, d) = try popMarkEntries()
                let l = PickleList(); l.depth = try nest(items, d); l.items = items
                try push(.list(l), depth: l.depth)
            case 0x61, 0x65: // APPEND, APPENDS
                var (items, d) = ([PickleValue](), [Int]())
                if op == 0x61 { let e = try popEntry(); (items, d) = ([e.value], [e.depth]) } else { (items, d) = try popMarkEntries() }
                guard case .list(let l) = try pop() else { throw bad("APPEND(S) on a non-list") }
                try mutable(l.nested, "APPEND(S)")
                guard !items.contains(where: { if case .list(let x) = $0 { return x === l }; return false }) else {
                    throw bad("a list appended to itself at offset \(pos)")
                }
                l.depth = max(l.depth, try nest(items, d))
                l.items.append(contentsOf: items)
                try push(.list(l), depth: l.depth)
            case 0x58: try push(.string(try string(try read(try length(4))))) // BINUNICODE
            case 0x8C: try push(.string(try string(try read(try length(1))))) // SHORT_BINUNICODE
            case 0x8D: try push(.string(try string(try read(try length(8))))) // BINUNICODE8
            case 0x54: try push(.string(String(decoding: try read(try length(4)), as: UTF8.self))) // BINSTRING
            case 0x55: try push(.string(String(decoding: try read(try length(1)), as: UTF8.self))) // SHORT_BINSTRING
            case 0x42: try push(.bytes(Array(try read(try length(4))))) // BINBYTES
            case 0x43: try push(.bytes(Array(try read(try length(1))))) // SHORT_BINBYTES
            case 0x4A: try push(.int(Int(Int32(bitPattern: UInt32(try uint(4)))))) // BININT
            case 0x4B: try push(.int(Int(try uint(1)))) // BININT1
            case 0x4D: try push(.int(Int(try uint(2)))) // BININT2
            case 0x8A: // LONG1: little-endian two's complement of n bytes
                let n = Int(try uint(1))
                guard n <= 8 else { throw bad("LONG1 of \(n) bytes is too large") }
                var v = try uint(n)
                if n > 0, n < 8, v & (1 << (8 * UInt64(n) - 1)) != 0 { v |= ~((1 << (8 * UInt64(n))) - 1) }
                try push(.int(n == 0 ? 0 : Int(Int64(bitPattern: v))))
            case 0x47: // BINFLOAT: big-endian IEEE double
                var v: UInt64 = 0
                for x in try read(8) { v = v << 8 | UInt64(x) }
                try push(.float(Double(bitPattern: v)))
            case 0x4E: try push(.none) // NONE
            case 0x88: try push(.bool(true)) // NEWTRUE
            case 0x89: try push(.bool(false)) // NEWFALSE
            case 0x71: try put(Int(try uint(1))) // BINPUT
            case 0x72: try put(Int(try uint(4))) // LONG_BINPUT
            case 0x94: try put(memo.count) // MEMOIZE
            case 0x68: try get(Int(try uint(1))) // BINGET
            case 0x6A: try get(Int(try uint(4))) // LONG_BINGET
            case 0x51: try push(try persistentLoad(try pop())) // BINPERSID (a storage: no nesting)
            case 0x52: // REDUCE
                let args = try pop()
                let callable = try pop()
                try push(try reduce(callable, args))
            case 0x62: // BUILD
                let state = try popEntry()
                let obj = try pop()
                switch obj {
                case .dict(let d):
                    try mutable(d.nested, "BUILD")
                    if case .dict(let x) = state.value, x === d { throw bad("a dict given itself as state at offset \(opOffset)") }
                    d.depth = max(d.depth, try nest([state.value], [state.depth]))
                    d.state = state.value
                    try push(obj, depth: d.depth)
                case .tensor: try push(obj) // _rebuild_tensor_v2 results carry no Python state we need.
                default: throw bad("BUILD on an unsupported object at offset \(opOffset)")
                }
            case 0x73: // SETITEM
                let v = try popEntry()
                let k = try popEntry()
                try setItems([k.value, v.value], [k.depth, v.depth])
            case 0x75: let (items, d) = try popMarkEntries(); try setItems(items, d) // SETITEMS
            default:
                throw bad(String(printf: "unsupported opcode 0x%02x at offset %d", Int(op), opOffset))
            }
        }
    }

    /// Resolves a torch persistent id `('storage', StorageType, key, location, numel)` to a storage reference.
    /// ref: torch/serialization.py _load.persistent_load.
    private func persistentLoad(_ pid: PickleValue) throws -> PickleValue {
        guard case .tuple(let t) = pid, t.count == 5, t[0].stringValue == "storage",
              case .global(let module, let typeName) = t[1], module == "torch", Self.storageTypes.contains(typeName)
        else { throw bad("unsupported persistent id (expected ('storage', torch.XStorage, key, location, numel))") }
        let key: String
        if let s = t[2].stringValue { key = s } else if let i = t[2].intValue { key = String(i) } else {
            throw bad("storage key is neither a string nor an int")
        }
        guard !key.isEmpty, key.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else {
            throw bad("storage key '\(key)' is not a plain name")
        }
        guard let numel = t[4].intValue, numel >= 0 else { throw bad("storage \(key) has no valid element count") }
        return .storage(StorageRef(typeName: typeName, key: key, location: t[3].stringValue ?? "", numel: numel))
    }

    /// Applies an allowed callable to its argument tuple (REDUCE), producing a value without executing code.
    private func reduce(_ callable: PickleValue, _ args: PickleValue) throws -> PickleValue {
        guard case .global(let module, let name) = callable, case .tuple(let a) = args else {
            throw bad("REDUCE of a non-global or without an argument tuple")
        }
        switch (module, name) {
        case ("collections", "OrderedDict"):
            guard a.isEmpty else { throw bad("OrderedDict with arguments is not supported") }
            return .dict(PickleDict())
        case ("torch._utils", "_rebuild_tensor_v2"):
            // ref: torch/_utils.py _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
            // backward_hooks, metadata=None)
            guard a.count == 6 || a.count == 7, case .storage(let s) = a[0], let offset = a[1].intValue,
                  case .tuple(let size) = a[2], case .tuple(let stride) = a[3] else {
                throw bad("unexpected _rebuild_tensor_v2 arguments")
            }
            let shape = size.compactMap(\.intValue)
            let strides = stride.compactMap(\.intValue)
            guard shape.count == size.count, strides.count == stride.count, shape.count == strides.count else {
                throw bad("tensor size/stride are not matching tuples of ints")
            }
            return .tensor(TensorRef(storage: s, offset: offset, shape: shape, stride: strides))
        case ("torch._utils", "_rebuild_parameter"):
            // ref: torch/_utils.py _rebuild_parameter(data, requires_grad, backward_hooks)
            guard a.count == 3, case .tensor = a[0] else { throw bad("unexpected _rebuild_parameter arguments") }
            return a[0]
        default:
            throw bad("\(module).\(name) cannot be called")
        }
    }
}
