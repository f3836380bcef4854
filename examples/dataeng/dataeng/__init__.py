"""Step code of the data-engineering example."""
