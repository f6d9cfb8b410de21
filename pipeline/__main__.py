"""`python -m pipeline` and the `ssm-metarl` console script: the pipeline's command line, as `python main.py`."""

from pipeline.cli import console_main

if __name__ == "__main__":
    console_main()
