"""Benchmarks: scripts run as `python bench/NAME.py`; each prints a table and writes JSON."""
