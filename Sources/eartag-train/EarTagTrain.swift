// `eartag-train`: the offline tools (teacher logits, distillation training); `eartag teach|train` forwards here.
import ArgumentParser

/// Root command.
@main
struct EarTagTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eartag-train",
        abstract: "EarTag's offline tools: store a teacher's logits, train and distil students.",
        subcommands: [Teach.self, Train.self, Evaluate.self, Corpus.self])
}
