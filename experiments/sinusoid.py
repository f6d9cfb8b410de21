"""`python experiments/sinusoid.py`: the MAML sinusoid protocol (`benchmarks.sinusoid`)."""

from core.openmp import set_wait_policy

set_wait_policy()  # before torch loads

from benchmarks.sinusoid import main

if __name__ == "__main__":
    main()
