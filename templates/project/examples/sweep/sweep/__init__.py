"""Step code of the hyper-parameter sweep example."""
