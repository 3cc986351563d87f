// EarTagPipelineTests: placeholder.
