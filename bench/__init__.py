"""Benchmarks that print figures, not tests: `python -m robot_rl.bench.NAME --help` (figures in docs/benchmarks.md)."""
