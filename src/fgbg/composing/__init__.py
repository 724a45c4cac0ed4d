"""Composing the dataset from the sources: synthetic default sources, reading the user's sources,
the per-sample rules and the sharded, resumable build on Dask, with teacher depth."""
