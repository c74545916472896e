"""Reports of a run: console summary and charts."""
