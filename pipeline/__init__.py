"""The end-to-end pipeline behind main.py: data, meta-training, evaluation, control, outputs."""
