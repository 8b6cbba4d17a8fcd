"""Benchmarks run as `swarmnode bench NAME`: each prints a table and writes JSON, comparing side by side."""
