"""Input and output below the engine: image and point files, chunked
storage read once per run, the sample data, and the plumbing of a
dask.distributed cluster (images shipped once, points cut into tasks).

Nothing here is public API: the command line and the engine use it.
"""
