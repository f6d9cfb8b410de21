"""`python experiments/quick_benchmark.py [--section ...]`: the benchmark suite, `ssm-metarl-bench` (benchmarks.cli)."""

from benchmarks.cli import main

if __name__ == "__main__":
    main()
