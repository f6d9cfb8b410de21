"""`python main.py --env_name Pendulum-v1`: the pipeline's command line (`pipeline.cli`, also `ssm-metarl`)."""

from pipeline.cli import console_main

if __name__ == "__main__":
    console_main()
