"""Benchmarks for voicehello: ``python bench/run.py`` prints a table and refreshes the README."""
