"""pipecast backend for Azure ML pipeline jobs (CLI v2 YAML)."""
