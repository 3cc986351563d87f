// Resolves user-typed label names (AudioSet display names or mids) to class indices.
import EarTagModel

/// Maps label names to class indices: exact display name, exact mid, then either case-insensitively.
public struct LabelSelector: Sendable {
    /// The labels, in model order.
    public let labels: [Label]
    private let byName: [String: Int]
    private let byMid: [String: Int]
    private let byFoldedName: [String: Int]
    private let byFoldedMid: [String: Int]

    /// Indexes `labels`; on duplicate names the first (lowest index) wins.
    public init(labels: [Label]) {
        self.labels = labels
        var name: [String: Int] = [:], mid: [String: Int] = [:]
        var foldedName: [String: Int] = [:], foldedMid: [String: Int] = [:]
        for (i, l) in labels.enumerated() {
            if name[l.displayName] == nil { name[l.displayName] = i }
            if mid[l.mid] == nil { mid[l.mid] = i }
            if foldedName[l.displayName.lowercased()] == nil { foldedName[l.displayName.lowercased()] = i }
            if foldedMid[l.mid.lowercased()] == nil { foldedMid[l.mid.lowercased()] = i }
        }
        byName = name; byMid = mid; byFoldedName = foldedName; byFoldedMid = foldedMid
    }

    /// Class index of `name` (blanks around it ignored), or `EventError.unknownLabel` with a suggestion.
    public func index(of name: String) throws -> Int {
        let key = CSVFields.trim(name)
        if let i = byName[key] ?? byMid[key] { return i }
        let folded = key.lowercased()
        if let i = byFoldedName[folded] ?? byFoldedMid[folded] { return i }
        throw EventError.unknownLabel(name: key, suggestion: suggestion(for: key))
    }

    /// Class indices of `names` in order, duplicates dropped; throws on the first unknown name.
    public func indices(of names: [String]) throws -> [Int] {
        var seen = Set<Int>()
        var result: [Int] = []
        for n in names {
            let i = try index(of: n)
            if seen.insert(i).inserted { result.append(i) }
        }
        return result
    }

    /// Splits a comma-separated list of names, honouring CSV double quotes (`Speech,"Railroad car, train wagon"`).
    public static func splitList(_ text: String) throws -> [String] {
        do {
            return try CSVFields.split(Substring(text)).filter { !$0.isEmpty }
        } catch let e as CSVError {
            throw EventError.invalidConfig("label list '\(text)': \(e.reason)")
        }
    }

    /// The display name closest to `name` (substring match or small edit distance), if any is close enough.
    public func suggestion(for name: String) -> String? {
        let query = Array(name.lowercased())
        guard !query.isEmpty else { return nil }
        var best: (distance: Int, name: String)? = nil
        for l in labels {
            let candidate = Array(l.displayName.lowercased())
            let d = LabelSelector.editDistance(query, candidate)
            if best == nil || d < best!.distance { best = (d, l.displayName) }
        }
        if let b = best, b.distance <= max(2, query.count / 3) { return b.name }
        // Fall back to the shortest display name that contains the query as a whole.
        let q = String(query)
        return labels.map(\.displayName).filter { $0.lowercased().contains(q) }.min { $0.count < $1.count }
    }

    /// Levenshtein distance of two character arrays (two-row dynamic programme).
    static func editDistance(_ a: [Character], _ b: [Character]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            }
            swap(&previous, &current)
        }
        return previous[b.count]
    }
}
