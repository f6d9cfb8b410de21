"""`python main.py --env_name Pendulum-v1`: the pipeline's command line (`pipeline.cli`, also `ssm-metarl`)."""

from core.openmp import set_wait_policy

set_wait_policy()  # before torch loads

from pipeline.cli import console_main

if __name__ == "__main__":
    console_main()
