"""`python experiments/test_compute.py [--env_name ...] [--seeds ...] [--quick] [--from_run RUN_DIR]`: the test-time
compute curve (`pipeline.test_compute`)."""

from pipeline.test_compute import main

if __name__ == "__main__":
    main()
