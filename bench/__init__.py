"""Benchmark harness behind `make bench` and `make bench-peers`; the results page is docs/benchmarks.md."""
