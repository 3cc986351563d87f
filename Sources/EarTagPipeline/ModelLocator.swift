// Finding the model to run: --model, $EARTAG_MODEL, the configuration file's [model] path, the installed data
// directory, then Weights/default.safetensors in the current directory (README "Models" states this order).
import FoundationEssentials
import EarTagModel

/// Resolves and loads the model a command should use.
public enum ModelLocator {
    /// The default model's file name, in the data directories and in a source checkout's Weights/.
    public static let defaultFileName = "default.safetensors"

    /// Why no model could be found: every place searched, in order.
    public struct NotFound: Error, CustomStringConvertible {
        public var searched: [String]
        public var description: String {
            "no model: pass --model FILE or set EARTAG_MODEL (make one with `eartag import CHECKPOINT.pt -o "
                + "MODEL.safetensors`, see README \"Models\"); looked in: " + searched.joined(separator: ", ")
        }
    }

    /// A model file found by the search but unreadable: names the file and where the search found it.
    public struct LoadFailed: Error, CustomStringConvertible {
        public var located: Located
        public var reason: String
        public var description: String { "\(located.path) (the \(located.origin)): \(reason)" }
    }

    /// A model path and the step of the search that gave it.
    public struct Located: Equatable, Sendable {
        /// The model file.
        public var path: String
        /// Where it came from, for messages: "--model", "$EARTAG_MODEL", "configuration file's [model] path",
        /// "installed default model", "default model in ./Weights".
        public var origin: String
        /// True when the user named it (--model, $EARTAG_MODEL, configuration file) rather than the search finding it.
        public var named: Bool

        /// A located model.
        public init(path: String, origin: String, named: Bool) {
            self.path = path
            self.origin = origin
            self.named = named
        }
    }

    /// The running executable (resolved through symlinks: /proc/self/exe), else argv[0] made absolute.
    public static func executablePath() -> String {
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") { return exe }
        return URL(fileURLWithPath: CommandLine.arguments.first ?? "eartag").resolvingSymlinksInPath().path
    }

    /// Installed default model locations, in order: PREFIX/share/eartag beside the executable's prefix
    /// (PREFIX/bin/eartag), then /usr/local/share/eartag, then /usr/share/eartag (duplicates dropped).
    public static func installedPaths(executable: String = executablePath()) -> [String] {
        let exe = URL(fileURLWithPath: executable).resolvingSymlinksInPath()
        let prefix = exe.deletingLastPathComponent().deletingLastPathComponent()
        let all = [
            prefix.appendingPathComponent("share/eartag/\(defaultFileName)").path,
            "/usr/local/share/eartag/\(defaultFileName)",
            "/usr/share/eartag/\(defaultFileName)",
        ]
        var seen = Set<String>()
        return all.filter { seen.insert($0).inserted }
    }

    /// `Weights/default.safetensors` under `directory` (a source checkout's committed default model).
    public static func checkoutPath(currentDirectory: String = FileManager.default.currentDirectoryPath) -> String {
        URL(fileURLWithPath: currentDirectory, isDirectory: true)
            .appendingPathComponent("Weights/\(defaultFileName)").path
    }

    /// The model to use: `explicit` (--model), else $EARTAG_MODEL, else `configured` (a configuration file's
    /// [model] path), each taken as given even when missing (loading then names it); else the first existing
    /// installed default, else Weights/default.safetensors in `currentDirectory`. Throws `NotFound` listing every
    /// place searched.
    public static func locate(_ explicit: String?, configured: String? = nil,
                              environment: [String: String] = ProcessInfo.processInfo.environment,
                              executable: String = executablePath(),
                              currentDirectory: String = FileManager.default.currentDirectoryPath) throws -> Located {
        if let e = explicit, !e.isEmpty { return Located(path: e, origin: "--model", named: true) }
        if let env = environment["EARTAG_MODEL"], !env.isEmpty {
            return Located(path: env, origin: "$EARTAG_MODEL", named: true)
        }
        if let c = configured, !c.isEmpty {
            return Located(path: c, origin: "configuration file's [model] path", named: true)
        }
        let found = installedPaths(executable: executable).map { Located(path: $0, origin: "installed default model",
                                                                         named: false) }
            + [Located(path: checkoutPath(currentDirectory: currentDirectory),
                       origin: "default model in ./Weights", named: false)]
        if let hit = found.first(where: { FileManager.default.fileExists(atPath: $0.path) }) { return hit }
        var searched = ["--model", "$EARTAG_MODEL"]
        if configured != nil { searched.append("the configuration file's [model] path") }
        throw NotFound(searched: searched + found.map(\.path))
    }

    /// The path `locate` gives.
    public static func resolve(_ explicit: String?, configured: String? = nil,
                               environment: [String: String] = ProcessInfo.processInfo.environment) throws -> String {
        try locate(explicit, configured: configured, environment: environment).path
    }

    /// Loads a located model; a file the search found (not one the user named) that fails to load is reported
    /// with where it was found, since the user may not know it is there.
    public static func load(_ located: Located) throws -> AnyModel {
        do {
            return try AnyModel.load(path: located.path)
        } catch where !located.named {
            throw LoadFailed(located: located, reason: String(describing: error))
        }
    }

    /// Locates and loads the model.
    public static func load(_ explicit: String?, configured: String? = nil) throws -> AnyModel {
        try load(locate(explicit, configured: configured))
    }
}
