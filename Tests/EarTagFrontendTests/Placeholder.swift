// EarTagFrontendTests: placeholder.
