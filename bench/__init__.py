"""Benchmarks: `python -m bench.append` and `python -m bench.relay`. They print figures; they
assert nothing and are not tests."""
