// Splits one CSV line into fields (RFC 4180 quoting, with blanks allowed around fields).
// ref: RFC 4180 section 2 (double quotes enclose fields; "" inside a quoted field is one quote).

/// Quote-aware splitting of a single CSV line.
enum CSVFields {
    /// Splits `line` at unquoted commas; unquoted fields are trimmed, quoted ones kept verbatim; throws a reason string.
    static func split(_ line: Substring) throws -> [String] {
        var result: [String] = []
        var field = ""
        var inQuotes = false
        var closedQuote = false   // the current field was quoted and its closing quote has been seen
        var wasQuoted = false
        var iterator = line.makeIterator()
        var lookahead: Character? = nil
        while let c = lookahead ?? iterator.next() {
            lookahead = nil
            if inQuotes {
                if c == "\"" {
                    let next = iterator.next()
                    if next == "\"" { field.append("\"") } else { inQuotes = false; closedQuote = true; lookahead = next }
                } else {
                    field.append(c)
                }
            } else if c == "," {
                result.append(wasQuoted ? field : trim(field))
                field = ""; wasQuoted = false; closedQuote = false
            } else if closedQuote {
                guard c == " " || c == "\t" else { throw CSVError("text after a closing quote") }
            } else if c == "\"" {
                guard trim(field).isEmpty else { throw CSVError("quote inside an unquoted field") }
                field = ""; inQuotes = true; wasQuoted = true
            } else {
                field.append(c)
            }
        }
        guard !inQuotes else { throw CSVError("unterminated quoted field") }
        result.append(wasQuoted ? field : trim(field))
        return result
    }

    /// Removes leading and trailing blanks (spaces and tabs).
    static func trim<S: StringProtocol>(_ s: S) -> String {
        var sub = Substring(s)
        while let f = sub.first, f == " " || f == "\t" { sub = sub.dropFirst() }
        while let l = sub.last, l == " " || l == "\t" { sub = sub.dropLast() }
        return String(sub)
    }
}

/// A CSV syntax problem, described in one line.
struct CSVError: Error {
    /// The problem.
    let reason: String
    /// Wraps a reason.
    init(_ reason: String) { self.reason = reason }
}
