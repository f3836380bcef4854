"""pipecast backend for Vertex AI Pipelines: compiles a pipeline to a KFP v2 PipelineSpec."""
