"""Benchmarks: each ``bench/bench_*.py`` prints ratios against a baseline measured in the same run and
rewrites its own section of ``docs/benchmarks.md``. They never gate CI. Run one: ``python -m bench.bench_tables``."""
