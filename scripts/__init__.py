"""Tools run from the repository: the servers harness (``scripts.harness``) that tests and benchmarks share,
and command-line scripts (run as files: ``python scripts/serve.py``)."""
