"""`python -m benchmarks` and the `ssm-metarl-bench` console script: the speed benchmarks (`benchmarks.cli`)."""

from benchmarks.cli import console_main

if __name__ == "__main__":
    console_main()
