"""Benchmarks that print figures, not tests: `python -m bench.NAME --help` (figures in docs/benchmarks.md)."""
