"""`python experiments/sinusoid.py`: the MAML sinusoid protocol (`benchmarks.sinusoid`)."""

from benchmarks.sinusoid import main

if __name__ == "__main__":
    main()
