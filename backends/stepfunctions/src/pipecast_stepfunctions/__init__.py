"""pipecast backend for AWS Step Functions (Amazon States Language)."""
