"""`python experiments/quick_benchmark.py [--section ...]`: the benchmark suite, `ssm-metarl-bench` (benchmarks.cli)."""

from core.openmp import set_wait_policy

set_wait_policy()  # before torch loads

from benchmarks.cli import main

if __name__ == "__main__":
    main()
