"""Benchmarks for skflow: datasets with exact densities, tuned baselines and scripts.

These modules are not part of the installed package; run the scripts from the
repository root, e.g. ``python benchmarks/density_quality.py --quick``.
"""
