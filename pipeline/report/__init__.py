"""Reporting: the statistics of a run and over seeds, the summary of a results folder, its markdown and plots, the
overview and comparison tables, and the pages (README.md, docs/) rendered from their JSON."""
