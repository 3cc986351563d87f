// Finding the model to run: --model, then $EARTAG_MODEL, then the installed default.
import FoundationEssentials
import EarTagModel

/// Resolves and loads the model a command should use.
public enum ModelLocator {
    /// Why no model could be found.
    public struct NotFound: Error, CustomStringConvertible {
        public var searched: [String]
        public var description: String {
            "no model: pass --model FILE or set EARTAG_MODEL (make one with `eartag import CHECKPOINT.pt -o "
                + "MODEL.safetensors`, see README); looked in: " + searched.joined(separator: ", ")
        }
    }

    /// Default model locations, in order: beside the executable's prefix, then the system prefixes.
    public static func defaultPaths(executable: String = CommandLine.arguments.first ?? "eartag") -> [String] {
        let exe = URL(fileURLWithPath: executable).resolvingSymlinksInPath()
        let prefix = exe.deletingLastPathComponent().deletingLastPathComponent()
        return [
            prefix.appendingPathComponent("share/eartag/default.safetensors").path,
            "/usr/local/share/eartag/default.safetensors",
            "/usr/share/eartag/default.safetensors",
        ]
    }

    /// The path to use: the explicit one, else $EARTAG_MODEL, else the first default that exists.
    public static func resolve(_ explicit: String?, environment: [String: String] = ProcessInfo.processInfo.environment)
        throws -> String {
        if let e = explicit, !e.isEmpty { return e }
        if let env = environment["EARTAG_MODEL"], !env.isEmpty { return env }
        let candidates = defaultPaths()
        if let found = candidates.first(where: { FileManager.default.fileExists(atPath: $0) }) { return found }
        throw NotFound(searched: ["$EARTAG_MODEL"] + candidates)
    }

    /// Resolves and loads the model.
    public static func load(_ explicit: String?) throws -> AnyModel {
        try AnyModel.load(path: resolve(explicit))
    }
}
