// EarTagCLITests: placeholder.
