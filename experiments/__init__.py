"""Programs that run many runs of the pipeline: the test-time compute sweep, default selection on val tasks, the
quick-metrics comparison; and the scripts the seed names (`quick_benchmark.py`)."""
