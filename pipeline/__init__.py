"""The stages of one run behind main.py, in the order they run (data, training, acting, prediction, control,
report), its settings and command line, and what runs many runs: the executor and the summary over seeds."""
