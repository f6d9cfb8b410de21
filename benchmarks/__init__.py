"""Benchmark suite: each `bench_<section>` module times a component against the obvious alternative, side by side.

Run it with `ssm-metarl-bench` (`benchmarks.cli`); `benchmarks.sinusoid` is the MAML sinusoid protocol.
"""
