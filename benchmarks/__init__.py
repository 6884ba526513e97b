"""Benchmark scripts, and the models a user brings (``benchmarks.models``)."""
