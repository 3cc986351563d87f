// EarTagEngineTests: placeholder.
