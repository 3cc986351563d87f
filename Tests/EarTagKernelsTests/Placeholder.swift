// EarTagKernelsTests: placeholder.
