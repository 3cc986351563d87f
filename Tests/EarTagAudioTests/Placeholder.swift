// EarTagAudioTests: placeholder.
