"""Benchmarks and the load test; results land in docs/benchmarks.md.

Every module here is imported as ``bench.<name>``: the tests have the repository root on
``sys.path``, and each script (run as ``python bench/<script>.py``) puts it there first.
"""
