"""pipecast backend: Kubeflow Pipelines."""
